"""What encoder effort buys: BD-rate against effort 0, and encoding time, per level.

    python benchmarks/effort.py --folder ../shared/data/valid --limit 6 \
        --qualities 2,4,6,8 --efforts 0,1,2,3 [--model MODEL] [--crop 768x512]

For each effort level, every image is encoded for real at every quality (the shipped
bls2017 models by default, or a variable-rate MODEL at those qualities), decoded and
measured; the curve of mean bpp, PSNR and MS-SSIM over the images is compared with the
effort-0 curve by BD-rate (PCHIP), and the encoding time is given in seconds per
megapixel. ``--crop WxH`` cuts each image's centre to that size first.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from licodec.codec import decode_array, encode_array
from licodec.eval.bdrate import bd_rate
from licodec.eval.metrics import ms_ssim, ms_ssim_db, psnr
from licodec.imageio import list_images, load_rgb
from licodec.zoo.registry import resolve_model


def crop(img: np.ndarray, size: str | None) -> np.ndarray:
    if not size:
        return img
    w, h = (int(v) for v in size.split("x"))
    if img.shape[0] > img.shape[1] and h < w:  # portrait: crop it turned
        w, h = h, w
    top, left = max(0, (img.shape[0] - h) // 2), max(0, (img.shape[1] - w) // 2)
    return img[top: top + h, left: left + w]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", default="2,4,6,8")
    p.add_argument("--efforts", default="0,1,2,3")
    p.add_argument("--model", help="a variable-rate model (default: the shipped bls2017 models)")
    p.add_argument("--crop", help="WxH: encode the centre of each image at that size")
    args = p.parse_args()
    images = [crop(load_rgb(path), args.crop) for path in list_images(args.folder)[: args.limit]]
    qualities = [float(q) for q in args.qualities.split(",")]
    efforts = [int(e) for e in args.efforts.split(",")]
    variable = resolve_model(args.model) if args.model else None
    mpix = sum(img.shape[0] * img.shape[1] for img in images) / 1e6
    print(f"{len(images)} images from {args.folder} ({mpix:.2f} MP), qualities {args.qualities}, "
          f"model {variable.model_id if variable else 'bls2017-mse-q*'}", flush=True)
    curves = {}
    for e in efforts:
        points, seconds = [], 0.0
        for q in qualities:
            art = variable or resolve_model(None, int(q))
            rows = []
            for img in images:
                t0 = time.perf_counter()
                data = encode_array(img, art, q if variable else None, effort=e)
                seconds += time.perf_counter() - t0
                rec = decode_array(data, art)
                rows.append((8 * len(data) / (img.shape[0] * img.shape[1]), psnr(img, rec), ms_ssim(img, rec)))
            bpp, p_, m = np.mean(rows, axis=0)
            points.append((bpp, p_, ms_ssim_db(m)))
        curves[e] = (np.array(points), seconds / (mpix * len(qualities)))
        base = curves[efforts[0]][0]
        pts = curves[e][0]
        bd_p = bd_rate(base[:, 0], base[:, 1], pts[:, 0], pts[:, 1])
        bd_m = bd_rate(base[:, 0], base[:, 2], pts[:, 0], pts[:, 2])
        detail = "  ".join(f"q{q:g}: {b:.4f} bpp {d:.2f} dB" for q, (b, d, _) in zip(qualities, pts))
        print(f"effort {e}: BD-rate vs effort {efforts[0]}: PSNR {bd_p:+.2f}%, MS-SSIM {bd_m:+.2f}%; "
              f"encode {curves[e][1]:.1f} s/MP | {detail}", flush=True)


if __name__ == "__main__":
    main()
