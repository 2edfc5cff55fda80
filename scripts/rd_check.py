"""Rate-distortion check of training checkpoints or model files by real encoding.

    python scripts/rd_check.py RUN/checkpoint.pt [MORE ...] --folder ../shared/data/valid \
        --limit 24 --reference results/valid --per-rate licodec-bls2017

For each model: mean bpp (from the bytes written), PSNR and MS-SSIM per quality over the
first ``--limit`` images of the folder, then BD-rates (PSNR, MS-SSIM dB) against every
codec whose per-image CSV is in the ``--reference`` folder (from ``licodec eval``),
restricted to the same images, so that a 24-image check compares like with like.
A factorized model (one rate) is one point; pass several to make a curve.

``--per-rate CODEC`` (e.g. licodec-bls2017, the eight bls2017 models of ``licodec eval``) also
prints, at each of that codec's points, the model's PSNR and MS-SSIM (dB) interpolated
at the same bpp (linear in log bpp) and the difference; "outside" where the point's
rate lies beyond the model's measured range (counted as beaten where the model's top
point has fewer bits and more of both measures). A variable-rate model beats the codec
at every rate when every point is beaten.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from licodec.codec import decode_array, encode_array
from licodec.eval.bdrate import bd_rate
from licodec.eval.metrics import ms_ssim, ms_ssim_db, psnr
from licodec.eval.runner import per_image_bd, read_per_image
from licodec.imageio import list_images, load_rgb
from licodec.train.loop import load_trained
from licodec.zoo.artifact import load_artifact, load_artifact_bytes, save_artifact


def load(path: str):
    if path.endswith(".pt"):
        model, info = load_trained(path)
        return load_artifact_bytes(save_artifact(model, {"name": Path(path).parent.name})), info.get("steps")
    return load_artifact(path), None


def measure(art, images, qualities) -> list[dict]:
    """Mean points per quality; each point's "images" holds (bpp, PSNR, MS-SSIM) per image."""
    points = []
    for q in qualities if art.hyperprior else [None]:
        rows = []
        for name, img in images:
            data = encode_array(img, art, q)
            rec = decode_array(data, art)
            rows.append((8.0 * len(data) / (img.shape[0] * img.shape[1]), psnr(img, rec), ms_ssim(img, rec)))
        bpp, p, m = np.mean(rows, axis=0)
        points.append({"quality": q, "bpp": bpp, "psnr": p, "ms_ssim": m, "ms_ssim_db": ms_ssim_db(m),
                       "images": {name: row for (name, _), row in zip(images, rows)}})
    return points


def per_image_curves(points: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """The points' per-image results in read_per_image's form."""
    out = {}
    for name in points[0]["images"]:
        a = np.array([p["images"][name] for p in points], dtype=np.float64)
        out[name] = {"bpp": a[:, 0], "psnr": a[:, 1], "ms-ssim": np.array([ms_ssim_db(v) for v in a[:, 2]])}
    return out


def reference_curves(folder: Path, names: set[str]) -> dict[str, dict]:
    curves = {}
    for path in sorted(folder.glob("*-per-image.csv")):
        by_setting = defaultdict(list)
        with open(path) as fh:
            for row in csv.DictReader(fh):
                if row["image"] in names:
                    by_setting[row["setting"]].append(row)
        pts = []
        for rows in by_setting.values():
            if len(rows) == len(names):
                pts.append((np.mean([float(r["bpp"]) for r in rows]), np.mean([float(r["psnr"]) for r in rows]),
                            ms_ssim_db(np.mean([float(r["ms_ssim"]) for r in rows]))))
        if len(pts) >= 2:
            pts.sort()
            per_image = read_per_image(path) or {}
            curves[path.name[: -len("-per-image.csv")]] = {
                "bpp": [p[0] for p in pts], "psnr": [p[1] for p in pts], "msdb": [p[2] for p in pts],
                "per_image": {k: v for k, v in per_image.items() if k in names}}
    return curves


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoint.pt files or .safetensors model files")
    p.add_argument("--folder", default="../shared/data/valid")
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", default="1,2.5,4,5.5,7,8.5,10")
    p.add_argument("--reference", help="folder with per-image CSVs of licodec eval (same image names)")
    p.add_argument("--per-rate", metavar="CODEC", help="compare at each point of this reference codec")
    args = p.parse_args(argv)
    paths = list_images(args.folder)[: args.limit]
    images = [(path.name, load_rgb(path)) for path in paths]
    qualities = [float(q) for q in args.qualities.split(",")]
    refs = reference_curves(Path(args.reference), {n for n, _ in images}) if args.reference else {}
    factorized = []
    for model in args.models:
        art, step = load(model)
        points = measure(art, images, qualities)
        label = f"{model}" + (f" (step {step})" if step is not None else "")
        for pt in points:
            q = "" if pt["quality"] is None else f"q {pt['quality']:g}: "
            print(f"{label}: {q}{pt['bpp']:.4f} bpp  {pt['psnr']:.2f} dB  MS-SSIM {pt['ms_ssim']:.4f}")
        if art.hyperprior:
            report(label, points, refs)
            if args.per_rate:
                if args.per_rate not in refs:
                    p.error(f"--per-rate {args.per_rate}: no such curve in --reference ({', '.join(refs)})")
                per_rate(points, refs[args.per_rate], args.per_rate)
        else:
            factorized += points
    if len(factorized) >= 2:
        report("factorized models", sorted(factorized, key=lambda p: p["bpp"]), refs)
    sys.stdout.flush()
    return 0


def report(label: str, points: list[dict], refs: dict[str, dict]) -> None:
    """BD-rates against each reference: of the mean curves, and image by image (the
    geometric mean of the images' own BD-rates, as licodec eval's second table)."""
    rate = [p["bpp"] for p in points]
    mine = per_image_curves(points) if "images" in points[0] else {}
    for name, ref in refs.items():
        bd_p = bd_rate(ref["bpp"], ref["psnr"], rate, [p["psnr"] for p in points])
        bd_m = bd_rate(ref["bpp"], ref["msdb"], rate, [p["ms_ssim_db"] for p in points])
        line = f"  {label} vs {name}: BD-rate PSNR {bd_p:+.1f}%, MS-SSIM {bd_m:+.1f}%"
        if mine and ref.get("per_image"):
            (ip, n, total), (im, _, _) = (per_image_bd(ref["per_image"], mine, m) for m in ("psnr", "ms-ssim"))
            line += f"; image by image {ip:+.1f}%, {im:+.1f}% ({n} of {total} images)"
        print(line)


def per_rate(points: list[dict], ref: dict, name: str) -> tuple[int, int]:
    """Prints the model against each of the reference's points; returns (points the model
    beats in both measures, points compared)."""
    pts = sorted(points, key=lambda p: p["bpp"])
    log_rate = np.log([p["bpp"] for p in pts])
    wins = 0
    print(f"  per rate against {name}:       bpp   PSNR  model   diff | MS-SSIM dB  model   diff")
    for i, (bpp, db, msdb) in enumerate(zip(ref["bpp"], ref["psnr"], ref["msdb"])):
        head = f"  {name} point {i + 1}: {bpp:8.4f} {db:6.2f}"
        if not log_rate[0] <= np.log(bpp) <= log_rate[-1]:
            top = pts[-1]
            dominated = bpp > top["bpp"] and top["psnr"] > db and top["ms_ssim_db"] > msdb
            wins += dominated
            print(f"{head}  outside the model's range {pts[0]['bpp']:.4f} .. {top['bpp']:.4f} bpp"
                  + (f"; its top point has fewer bits, {top['psnr']:.2f} dB and {top['ms_ssim_db']:.2f} dB MS-SSIM"
                     if dominated else ""))
            continue
        mp = float(np.interp(np.log(bpp), log_rate, [p["psnr"] for p in pts]))
        mm = float(np.interp(np.log(bpp), log_rate, [p["ms_ssim_db"] for p in pts]))
        wins += mp > db and mm > msdb
        print(f"{head} {mp:6.2f} {mp - db:+6.2f} |      {msdb:6.2f} {mm:6.2f} {mm - msdb:+6.2f}")
    print(f"  better in both measures at {wins} of {len(ref['bpp'])} points of {name}")
    return wins, len(ref["bpp"])


if __name__ == "__main__":
    sys.exit(main())
