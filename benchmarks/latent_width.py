"""How many latent channels the high rates need: the best linear code of the same width.

    python benchmarks/latent_width.py --fit ../shared/data/train --fit-limit 120 \
        --folder ../shared/data/valid-photo --widths 128,192,256,320 \
        [--results results/valid-photo]

A model with downsampling factor 16 and M latent channels describes each 16x16 RGB block
(768 values) with M numbers. For a linear code of that size, the best one (in squared
error) is the projection on the M leading principal components of the blocks: this
script fits them on ``--fit`` images and prints the PSNR of the ``--folder`` images
projected on them, unquantized, for each width. It says what M numbers per block can
hold at all, whatever the rate: a learned nonlinear transform does better than this at a
given width only by as much as the images are not Gaussian (compare the model's own
unquantized PSNR, benchmarks/ceiling.py).

With ``--results`` (an evaluation folder of ``licodec eval``), it also prints, for each
licodec quality, the mean PSNR difference to JPEG 2000 on each image's own curve
(JPEG 2000 interpolated at the image's licodec rate, in log bpp; images whose licodec
rate lies outside their JPEG 2000 rates are left out): where along the rates the
codec falls behind.
"""
from __future__ import annotations

import argparse
import collections
import csv
from pathlib import Path

import numpy as np

from licodec.imageio import list_images, load_rgb

BLOCK = 16


def blocks(img: np.ndarray) -> np.ndarray:
    """(blocks, 768) float64 of the whole 16x16 blocks of an RGB image."""
    h, w = img.shape[0] // BLOCK * BLOCK, img.shape[1] // BLOCK * BLOCK
    a = img[:h, :w].astype(np.float64)
    return a.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).transpose(0, 2, 1, 3, 4).reshape(-1, BLOCK * BLOCK * 3)


def principal_components(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean (768,) and components (768, 768), leading first, of the blocks of ``paths``."""
    n, total, outer = 0, np.zeros(BLOCK * BLOCK * 3), np.zeros((BLOCK * BLOCK * 3,) * 2)
    for path in paths:
        b = blocks(load_rgb(path))
        n += len(b)
        total += b.sum(0)
        outer += b.T @ b
    mean = total / n
    cov = outer / n - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    return mean, vectors[:, ::-1]


def projected_psnr(img: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> float:
    b = blocks(img)
    rec = np.clip(np.round((b - mean) @ basis @ basis.T + mean), 0, 255)
    mse = np.mean((rec - b) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def per_image_gap(results: Path) -> dict[float, list[float]]:
    """{licodec quality: [PSNR of licodec - PSNR of JPEG 2000 at that rate, per image]}."""
    def load(name):
        rows = collections.defaultdict(list)
        with open(results / f"{name}-per-image.csv", newline="") as f:
            for r in csv.DictReader(f):
                rows[r["image"]].append((float(r["setting"]), float(r["bpp"]), float(r["psnr"])))
        return rows

    ours, j2k = load("licodec"), load("jpeg2000")
    gaps = collections.defaultdict(list)
    for image, points in ours.items():
        ref = sorted(j2k.get(image, []), key=lambda t: t[1])
        if len(ref) < 2:
            continue
        log_bpp, ref_psnr = np.log([t[1] for t in ref]), [t[2] for t in ref]
        for quality, bpp, value in points:
            if log_bpp[0] <= np.log(bpp) <= log_bpp[-1]:
                gaps[quality].append(value - float(np.interp(np.log(bpp), log_bpp, ref_psnr)))
    return gaps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fit", required=True, help="folder of images to fit the components on")
    p.add_argument("--fit-limit", type=int, default=120)
    p.add_argument("--folder", required=True, help="folder of images to measure")
    p.add_argument("--limit", type=int, default=0, help="at most this many images of --folder (0: all)")
    p.add_argument("--widths", default="128,192,256,320")
    p.add_argument("--results", help="a licodec eval folder: per-quality PSNR gap to JPEG 2000")
    args = p.parse_args()
    fit = list_images(args.fit)
    fit = fit[:: max(1, len(fit) // args.fit_limit)][: args.fit_limit]  # spread over the folder's sources
    mean, components = principal_components(fit)
    paths = list_images(args.folder)
    paths = paths[: args.limit] if args.limit else paths
    images = [load_rgb(path) for path in paths]
    print(f"components of 16x16 RGB blocks fitted on {len(fit)} images of {args.fit}; "
          f"{len(images)} images of {args.folder}")
    print(f"{'width':>6} {'PSNR (linear code, unquantized)':>32}")
    for width in (int(v) for v in args.widths.split(",")):
        basis = components[:, :width]
        print(f"{width:6d} {np.mean([projected_psnr(img, mean, basis) for img in images]):32.2f}")
    if args.results:
        gaps = per_image_gap(Path(args.results))
        print(f"\nlicodec against JPEG 2000 on each image's curve ({args.results}):")
        print(f"{'quality':>8} {'images':>7} {'mean dB':>8} {'median dB':>10}")
        for quality in sorted(gaps):
            g = gaps[quality]
            print(f"{quality:8g} {len(g):7d} {np.mean(g):+8.2f} {np.median(g):+10.2f}")


if __name__ == "__main__":
    main()
