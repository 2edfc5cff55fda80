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
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from licodec.eval.bdrate import pchip  # noqa: E402
from licodec.eval.runner import per_image_bd, read_per_image  # noqa: E402


def mean_curve(folder: Path, codec: str) -> tuple[np.ndarray, np.ndarray]:
    results = json.loads((folder / f"{codec}.json").read_text())["results"]
    return np.asarray(results["bpp"], dtype=float), np.asarray(results["psnr-rgb"], dtype=float)


def up_to(curves: dict[str, dict], limit: float | None) -> dict[str, dict]:
    """read_per_image's curves keeping only the settings up to ``limit``."""
    if limit is None:
        return curves
    out = {}
    for image, c in curves.items():
        keep = np.array([float(s) <= limit for s in c["setting"]])
        out[image] = {k: v[keep] for k, v in c.items() if k != "setting"}
    return out


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
    anchor = read_per_image(args.folder / f"{args.anchor}-per-image.csv")
    limits = [float(u) for u in args.upto.split(",") if u] or [None]
    print(f"\nBD-rate against {args.anchor}, image by image (PSNR / MS-SSIM dB)")
    for c in codecs:
        mine = read_per_image(args.folder / f"{c}-per-image.csv")
        for u in limits:
            (psnr, _, _), (msssim, _, _) = (per_image_bd(anchor, up_to(mine, u), m) for m in ("psnr", "ms-ssim"))
            label = "all settings" if u is None else f"settings up to {u:g}"
            print(f"  {c:<20} {label:<22} {psnr:+6.1f}% / {msssim:+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
