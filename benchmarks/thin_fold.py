"""Thin strips: coded as they are (padded to 16 rows) against folded into a squarish image.

    python benchmarks/thin_fold.py FOLDER [--limit 8] [--width 120] [--model bls2017-mse]

From each image of FOLDER, three rows across its middle, repeated to a 3x12000 strip;
coded padded (what licodec does) and folded (cut into pieces --width wide, stacked into
a (3 * pieces) x width image, unfolded after decoding), with the four bls2017 models
q2, q4, q6, q8. Prints mean bpp (of the strip's pixels), PSNR and times per setting, and
the BD-rate of folding against padding. Folding would make a thin image cost what a
square one does, but at the price printed here.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from licodec.codec import decode_array, encode_array
from licodec.eval.bdrate import bd_rate
from licodec.eval.metrics import psnr
from licodec.imageio import list_images, load_rgb
from licodec.zoo.registry import resolve_model

ROWS, LENGTH = 3, 12000


def fold(strip: np.ndarray, width: int) -> np.ndarray:
    pieces = strip.shape[1] // width
    return np.ascontiguousarray(np.concatenate([strip[:, i * width:(i + 1) * width] for i in range(pieces)], 0))


def unfold(folded: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([folded[i:i + rows] for i in range(0, folded.shape[0], rows)], 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--width", type=int, default=120, help="width of the folded pieces (divides 12000)")
    p.add_argument("--model", default="bls2017-mse", help="models MODEL-q2, -q4, -q6, -q8")
    args = p.parse_args()
    if LENGTH % args.width:
        p.error(f"--width must divide {LENGTH}")
    models = {q: resolve_model(f"{args.model}-q{q}") for q in (2, 4, 6, 8)}
    sums: dict[tuple[str, int], np.ndarray] = {}
    paths = list_images(args.folder)[:args.limit]
    for path in paths:
        img = load_rgb(path)
        rows = img[img.shape[0] // 2: img.shape[0] // 2 + ROWS]
        strip = np.concatenate([rows] * (LENGTH // rows.shape[1] + 1), 1)[:, :LENGTH]
        for layout in ("padded", "folded"):
            x = strip if layout == "padded" else fold(strip, args.width)
            for q, art in models.items():
                t0 = time.perf_counter()
                data = encode_array(x, art)
                t1 = time.perf_counter()
                rec = decode_array(data, art)
                t2 = time.perf_counter()
                rec = rec if layout == "padded" else unfold(rec, ROWS)
                row = np.array([8 * len(data) / strip.shape[0] / strip.shape[1], psnr(strip, rec), t1 - t0, t2 - t1])
                sums[layout, q] = sums.get((layout, q), 0) + row
    print(f"{len(paths)} strips of {ROWS}x{LENGTH} from {args.folder}; folded pieces {args.width} wide")
    print(f"{'layout':>7} {'q':>2} {'bpp':>7} {'PSNR':>6} {'enc s':>6} {'dec s':>6}")
    curves = {}
    for (layout, q), total in sums.items():
        bpp, db, enc, dec = total / len(paths)
        print(f"{layout:>7} {q:>2} {bpp:>7.3f} {db:>6.2f} {enc:>6.3f} {dec:>6.3f}")
        curves.setdefault(layout, ([], []))
        curves[layout][0].append(bpp)
        curves[layout][1].append(db)
    print(f"BD-rate of folding against padding (PSNR): {bd_rate(*curves['padded'], *curves['folded']):+.1f}%")


if __name__ == "__main__":
    main()
