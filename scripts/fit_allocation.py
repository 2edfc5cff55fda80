"""Fit a variable-rate model's allocation rule (licodec.codec.allocated_quality) on
training images and record it in the weights' info.

    python scripts/fit_allocation.py WEIGHTS --folder ../shared/data/train --limit 80 \
        --out OUT.safetensors [--curves curves.npz] [--slope S]

1. For each image (a random sample of --limit, seed 1): the analysis once, then at every
   quality of a grid (step 0.5) the rounded latents' rate (the model's likelihoods, within
   1% of the coded size), PSNR and MS-SSIM of the rounded reconstruction, and f, the share
   of latents that round to nonzero. --curves saves them (and reuses a saved file).
2. reference(q) = the mean of ln f over the images at each grid quality.
3. The slope: each candidate (0 to -3) moves every image's quality by
   slope * (ln f - reference), and the mean curve of the images (mean bpp against mean
   PSNR, and against the MS-SSIM of the mean MS-SSIM) is compared with the mean curve at
   unmoved qualities by BD-rate; the slope whose lesser gain of the two is largest wins
   (both measures gain, as evenly as they can; or --slope), among those that keep every
   image's moved quality increasing with the asked one.
4. Writes WEIGHTS with the rule in its info to OUT (the tensors, and so the digest that
   files name, unchanged: files coded before decode as they did).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from safetensors.numpy import load as st_load, save as st_save  # noqa: E402

from licodec.codec import ALLOCATION, MAX_MOVE, HyperpriorEncoder, nonzero_share  # noqa: E402
from licodec.eval.bdrate import bd_rate, pchip  # noqa: E402
from licodec.eval.metrics import ms_ssim, ms_ssim_db, psnr  # noqa: E402
from licodec.imageio import IMAGE_SUFFIXES, atomic_write, load_image  # noqa: E402
from licodec.zoo.artifact import load_artifact  # noqa: E402
from licodec.zoo.metadata import metadata  # noqa: E402

STEP = 0.01  # the fine grid the curves are interpolated on
SLOPES = np.round(np.arange(0.0, -3.01, -0.25), 2)


@torch.inference_mode()
def image_curves(art, arr: np.ndarray, qualities: np.ndarray) -> dict[str, list[float]]:
    """Rate, PSNR, MS-SSIM and share of nonzero latents at each quality, from the
    encoder's own analysis (HyperpriorEncoder) and the hyper transforms on its padding."""
    model, enc = art.model, HyperpriorEncoder(arr, art)
    h, w = arr.shape[:2]
    k = model.hyper_factor
    medians = model.entropy_bottleneck.medians.view(1, -1, 1, 1)
    out = {"bpp": [], "psnr": [], "ms_ssim": [], "share": []}
    for q in qualities:
        qt = torch.tensor([float(q)])
        y = enc.y * model.gains(qt)
        y_pad = F.pad(y, (0, (-enc.w) % k, 0, (-enc.h) % k), mode="replicate")
        z = model.h_a(y_pad)
        _, z_likelihoods = model.entropy_bottleneck(z, training=False)
        index, mu = model.hyper_synthesis(torch.round(z - medians) + medians)
        index, mu = index[:, :, :enc.h, :enc.w], mu[:, :, :enc.h, :enc.w]
        y_hat = torch.round(y - mu) + mu
        likelihoods = model.gaussian.likelihood(y_hat - mu, index)
        bits = -float(torch.log2(likelihoods).sum() + torch.log2(z_likelihoods).sum())
        rec = model.g_s(y_hat * model.inverse_gains(qt))[0, :, :h, :w].clamp(0, 1)
        rec = (rec.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if arr.ndim == 2:
            rec = rec[..., 0]
        out["bpp"].append(bits / (h * w))
        out["psnr"].append(psnr(arr, rec))
        out["ms_ssim"].append(ms_ssim(arr, rec))
        out["share"].append(nonzero_share(model, enc.y, float(q)))
    return out


def collect(art, folder: Path, limit: int) -> dict[str, np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    random.Random(1).shuffle(files)
    files = files[:limit]
    q_min, q_max = art.model.quality_range
    qualities = np.arange(q_min, q_max + 1e-9, 0.5)
    rows = []
    for k, path in enumerate(files):
        rows.append(image_curves(art, load_image(path), qualities))
        print(f"{k + 1}/{len(files)} {path.name}", flush=True)
    curves = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    curves["qualities"] = qualities
    return curves


def mean_curve(curves, pick):
    """Mean bpp, PSNR and MS-SSIM (dB of the mean) over the images at grid positions pick (n, k)."""
    b = np.take_along_axis(curves["bpp"], pick, 1).mean(0)
    p = np.take_along_axis(curves["psnr"], pick, 1).mean(0)
    m = np.array([ms_ssim_db(v) for v in np.take_along_axis(curves["ms_ssim"], pick, 1).mean(0)])
    return b, p, m


def fit(raw: dict[str, np.ndarray], slopes=SLOPES) -> tuple[np.ndarray, float, list]:
    q = raw["qualities"]
    fine = np.round(np.arange(q[0], q[-1] + STEP / 2, STEP), 6)
    n = raw["bpp"].shape[0]

    def interp(a, log):
        a = np.log(np.maximum(a, 1e-6)) if log else a
        out = np.stack([pchip(q, a[i], fine) for i in range(n)])
        return np.exp(out) if log else out
    curves = {"bpp": interp(raw["bpp"], True), "psnr": interp(raw["psnr"], False),
              "ms_ssim": interp(raw["ms_ssim"], False)}
    log_share = np.log(np.maximum(interp(raw["share"], True), 1e-6))
    reference = np.log(np.maximum(raw["share"], 1e-6)).mean(0)
    ref_fine = np.interp(fine, q, reference)
    asked = np.arange(0, len(fine), int(round(0.25 / STEP)))
    base = mean_curve(curves, np.tile(asked, (n, 1)))
    results = []
    for slope in slopes:
        move = np.clip(slope * (log_share - ref_fine[None]), -MAX_MOVE, MAX_MOVE)  # as the encoder moves
        moved = np.clip(fine[None] + move, fine[0], fine[-1])
        monotone = bool(np.all(np.diff(moved, axis=1) >= -1e-9))
        pick = np.clip(np.round((moved[:, asked] - fine[0]) / STEP).astype(int), 0, len(fine) - 1)
        b, p, m = mean_curve(curves, pick)
        results.append((float(slope), bd_rate(base[0], base[1], b, p), bd_rate(base[0], base[2], b, m), monotone))
    ok = [r for r in results if r[3] and np.isfinite(r[1] + r[2])]
    best = max(ok, key=lambda r: min(-r[1], -r[2]))[0] if ok else 0.0
    return reference, best, results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="exported variable-rate weights (.safetensors)")
    p.add_argument("--folder", type=Path, required=True, help="training images")
    p.add_argument("--limit", type=int, default=80)
    p.add_argument("--out", type=Path, required=True, help="where to write the weights with the rule")
    p.add_argument("--curves", type=Path, help="save the measured curves here (reused if it exists)")
    p.add_argument("--slope", type=float, help="use this slope instead of the best one")
    p.add_argument("--force", "-f", action="store_true", help="overwrite OUT")
    args = p.parse_args()
    if args.out.exists() and not args.force:
        p.error(f"{args.out} exists (use -f)")
    art = load_artifact(args.weights)
    if not art.hyperprior:
        p.error(f"{args.weights} is not a variable-rate model")
    if args.curves is not None and args.curves.exists():
        raw = dict(np.load(args.curves))
    else:
        raw = collect(art, args.folder, args.limit)
        if args.curves is not None:
            np.savez(args.curves, **raw)
    reference, best, results = fit(raw)
    print("slope   BD-rate of the mean curves against unmoved qualities (PSNR / MS-SSIM)   monotone")
    for slope, bd_p, bd_m, mono in results:
        print(f"{slope:+5.2f}   {bd_p:+6.1f}% / {bd_m:+6.1f}%   {mono}")
    slope = best if args.slope is None else args.slope
    print(f"slope {slope:+.2f}, from {raw['bpp'].shape[0]} images")
    data = args.weights.read_bytes()
    meta = metadata(data)
    info = json.loads(meta.get("info", "{}"))
    info[ALLOCATION] = {"qualities": [round(float(v), 4) for v in raw["qualities"]],
                        "reference": [round(float(v), 4) for v in reference], "slope": slope,
                        "fitted_on": f"{raw['bpp'].shape[0]} images of {args.folder.name}"}
    meta["info"] = json.dumps(info, sort_keys=True)
    atomic_write(args.out, st_save(st_load(data), metadata=meta), force=args.force)
    load_artifact(args.out)  # same tensors, same digest
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
