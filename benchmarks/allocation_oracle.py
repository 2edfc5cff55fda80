"""How much of a codec's mean-curve BD-rate is the way its settings share bits among images.

    python benchmarks/allocation_oracle.py results/valid-photo [--codec licodec] [--anchor jpeg2000]

From the per-image CSVs of `licodec eval`: each image's curve of the codec (PCHIP in
log bpp, within its measured range) is sampled where an allocation puts it, and the
images are averaged as the mean curves are (mean bpp, mean PSNR, MS-SSIM in dB of the
mean MS-SSIM). Allocations:

- as coded: the codec's own settings (its mean curve in the eval's tables);
- equal slope of PSNR, of MS-SSIM, or of their mix: for each trade-off mu, each image at
  the point of its curve where the measure gains mu per bpp, which maximises the mean
  measure at that mean bpp. No encoder knows these curves in advance: they bound what a
  per-image choice of setting can gain on the mean curves. Image-by-image BD-rates do not
  change with the allocation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from licodec.eval.bdrate import bd_rate, pchip  # noqa: E402
from licodec.eval.metrics import ms_ssim_db  # noqa: E402
from licodec.eval.runner import read_per_image  # noqa: E402


def raw(db):
    return 1.0 - 10.0 ** (-np.asarray(db) / 10.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--codec", default="licodec")
    p.add_argument("--anchor", default="jpeg2000")
    args = p.parse_args()
    anchor = read_per_image(args.folder / f"{args.anchor}-per-image.csv")
    test = read_per_image(args.folder / f"{args.codec}-per-image.csv")
    if anchor is None or test is None:
        p.error(f"no per-image CSV of {args.anchor} or {args.codec} in {args.folder}")
    images = sorted(set(anchor) & set(test))

    def mean(curves):
        b = np.mean([curves[i]["bpp"] for i in images], 0)
        q = np.mean([curves[i]["psnr"] for i in images], 0)
        m = np.array([ms_ssim_db(v) for v in np.mean([raw(curves[i]["ms-ssim"]) for i in images], 0)])
        return b, q, m
    ab, ap, am = mean(anchor)
    dense = {}
    for i in images:
        # one point per rate (qualities moved to the top of the range code alike)
        bpp, order = np.unique(test[i]["bpp"], return_index=True)
        grid = np.geomspace(bpp[0], bpp[-1], 600)
        dense[i] = (grid, pchip(np.log(bpp), test[i]["psnr"][order], np.log(grid)),
                    pchip(np.log(bpp), raw(test[i]["ms-ssim"][order]), np.log(grid)))
    tb, tp, tm = mean(test)
    print(f"{len(images)} images; mean-curve BD-rate of {args.codec} against {args.anchor} (PSNR / MS-SSIM dB)")
    print(f"  as coded:                        {bd_rate(ab, ap, tb, tp):+6.1f}% / {bd_rate(ab, am, tb, tm):+6.1f}%")
    # MS-SSIM enters as 400 x raw MS-SSIM: near 0.98, 0.0025 of it is about 1 dB of PSNR's scale
    for name, w in (("equal PSNR slope", 1.0), ("equal mix slope (half each)", 0.5), ("equal MS-SSIM slope", 0.0)):
        points = []
        for mu in np.geomspace(0.5, 5000, 60):
            picks = [np.argmax(w * dense[i][1] + (1 - w) * 400 * dense[i][2] - mu * dense[i][0]) for i in images]
            points.append((np.mean([dense[i][0][k] for i, k in zip(images, picks)]),
                           np.mean([dense[i][1][k] for i, k in zip(images, picks)]),
                           ms_ssim_db(np.mean([dense[i][2][k] for i, k in zip(images, picks)]))))
        pts = np.unique(np.array(points), axis=0)
        print(f"  {name + ':':32s} {bd_rate(ab, ap, pts[:, 0], pts[:, 1]):+6.1f}% / "
              f"{bd_rate(ab, am, pts[:, 0], pts[:, 2]):+6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
