"""Time per megapixel of thin images against a square one of the same area.

    python benchmarks/thin_images.py [--model NAME_OR_PATH] [--repeats 3]

Encodes and decodes a 3x50000, a 50000x3 and a 387x387 image (0.15 MP each; a smooth
random texture) and prints seconds per megapixel and the ratio to the square one.
Tall tiles are computed on their side (licodec.codec._upright), so a tall image costs
what a wide one does. What remains is the transforms' 16x16 blocks: a 3-pixel-high
image is computed 16 pixels high.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from licodec.codec import decode_array, encode_array
from licodec.zoo.registry import select_model


def image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy[..., None] / 23.0 + np.arange(3))
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="default: the default shipped model")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    art, quality = select_model(args.model)
    print(f"model {art.model_id}, median of {args.repeats}")
    print(f"{'size':>10} {'MP':>6} {'enc s/MP':>9} {'dec s/MP':>9} {'enc ratio':>10} {'dec ratio':>10}")
    rows = []
    for h, w in [(387, 387), (3, 50000), (50000, 3)]:
        img = image(h, w)
        enc, dec = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            data = encode_array(img, art, quality)
            t1 = time.perf_counter()
            decode_array(data, art)
            enc.append(t1 - t0)
            dec.append(time.perf_counter() - t1)
        mp = h * w / 1e6
        rows.append((f"{h}x{w}", mp, statistics.median(enc) / mp, statistics.median(dec) / mp))
    for name, mp, e, d in rows:
        print(f"{name:>10} {mp:>6.3f} {e:>9.2f} {d:>9.2f} {e / rows[0][2]:>9.2f}x {d / rows[0][3]:>9.2f}x")


if __name__ == "__main__":
    main()
