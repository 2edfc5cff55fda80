"""Codecs against an anchor by rate: mean PSNR at a reference codec's points, and BD-rates
over the settings up to several limits.

    python benchmarks/bd_by_range.py results/valid-photo --codecs licodec,licodec-W
        [--anchor jpeg2000] [--others avif] [--upto 8,10,12]

From the per-image CSVs and JSON curves of `licodec eval`. The table gives, at the mean bpp
of the first codec's settings, every curve's mean PSNR (interpolated in log bpp, blank
outside a curve's range). Then, for each codec and each limit of --upto, its BD-rate
(PSNR / MS-SSIM dB) against the anchor image by image (the geometric mean of the images'
rate ratios, as `licodec eval` averages them) over its settings up to that limit: where
a codec's curve runs on to higher rates, a BD-rate over its whole range also weighs rates
that the other codecs never reach.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from licodec.eval.bdrate import bd_rate, pchip  # noqa: E402
from licodec.eval.metrics import ms_ssim_db  # noqa: E402


def mean_curve(folder: Path, codec: str) -> tuple[np.ndarray, np.ndarray]:
    results = json.loads((folder / f"{codec}.json").read_text())["results"]
    return np.asarray(results["bpp"], dtype=float), np.asarray(results["psnr-rgb"], dtype=float)


def per_image(folder: Path, codec: str, upto: float | None = None) -> dict[str, np.ndarray]:
    """image -> rows (bpp, PSNR, MS-SSIM dB) of the settings up to ``upto``, by rate."""
    rows = defaultdict(list)
    with open(folder / f"{codec}-per-image.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if upto is not None and float(r["setting"]) > upto:
                continue
            rows[r["image"]].append((float(r["bpp"]), float(r["psnr"]), float(ms_ssim_db(float(r["ms_ssim"])))))
    return {k: np.array(sorted(v)) for k, v in rows.items()}


def image_by_image(anchor: dict, test: dict) -> tuple[float, float]:
    shared = sorted(set(anchor) & set(test))
    out = []
    for col in (1, 2):
        ratios = [1 + bd_rate(anchor[i][:, 0], anchor[i][:, col], test[i][:, 0], test[i][:, col]) / 100
                  for i in shared]
        out.append(100 * (float(np.exp(np.mean(np.log(ratios)))) - 1))
    return out[0], out[1]


def at(curve: tuple[np.ndarray, np.ndarray], bpp: float) -> float:
    b, p = curve
    if not b.min() <= bpp <= b.max():
        return float("nan")
    return float(pchip(np.log(b), p, np.log(np.array([bpp])))[0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--codecs", required=True, help="comma-separated; the first gives the table's rates")
    p.add_argument("--anchor", default="jpeg2000")
    p.add_argument("--others", default="", help="more curves for the table only (e.g. avif)")
    p.add_argument("--upto", default="", help="comma-separated setting limits for the BD-rates")
    args = p.parse_args()
    codecs = [c for c in args.codecs.split(",") if c]
    shown = codecs + [args.anchor] + [c for c in args.others.split(",") if c]
    curves = {c: mean_curve(args.folder, c) for c in shown}
    print("mean PSNR (dB) at the mean bpp of " + codecs[0])
    print(f"{'setting':>7} {'bpp':>6} " + " ".join(f"{c:>14}" for c in shown))
    for i, bpp in enumerate(curves[codecs[0]][0], 1):
        print(f"{i:>7} {bpp:>6.3f} " + " ".join(f"{at(curves[c], bpp):>14.2f}" for c in shown))
    anchor = per_image(args.folder, args.anchor)
    limits = [float(u) for u in args.upto.split(",") if u] or [None]
    print(f"\nBD-rate against {args.anchor}, image by image (PSNR / MS-SSIM dB)")
    for c in codecs:
        for u in limits:
            psnr, msssim = image_by_image(anchor, per_image(args.folder, c, u))
            label = "all settings" if u is None else f"settings up to {u:g}"
            print(f"  {c:<20} {label:<22} {psnr:+6.1f}% / {msssim:+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
