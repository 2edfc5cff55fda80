"""What the hyper-analysis in bf16 costs: real files, bf16 against float32.

    python benchmarks/hyper_analysis_precision.py --folder ../shared/data/valid-photo --limit 10 \
        [--model bls2017-hp-mse] [--qualities 2,5,8]

Where the CPU computes bf16 natively the encoder runs h_a in bf16
(``licodec.codec.HYPER_ANALYSIS_BF16``). For each image and quality this encodes twice,
with h_a in bf16 and in float32, decodes both files and prints: the share of z elements
that round differently, the total bytes (bf16 / float32) and the mean PSNR difference.
bf16 is emulated (slow) on CPUs without native support, but the figures hold there too.
"""
from __future__ import annotations

import argparse
import numpy as np
import torch
from PIL import Image

from licodec import codec
from licodec.codec import decode_array, encode_array
from licodec.eval.metrics import psnr
from licodec.imageio import list_images
from licodec.zoo.registry import VARIABLE_RATE_MODEL, resolve_model


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--model", nargs="+", default=[VARIABLE_RATE_MODEL])
    p.add_argument("--qualities", default="2,5,8")
    args = p.parse_args()
    files = list_images(args.folder)[: args.limit]
    if not files:
        p.error(f"no images in {args.folder}")
    qualities = [float(q) for q in args.qualities.split(",")]
    print(f"{len(files)} images of {args.folder}, qualities {args.qualities}, "
          f"native bf16: {codec.native_bf16('cpu')}")
    print(f"{'model':<40} {'z rounded differently':>22} {'bytes bf16/f32':>15} {'dB PSNR bf16-f32':>17} {'largest size change':>20}")
    for spec in args.model:
        art = resolve_model(spec)
        model = art.model
        flips = elements = 0
        size = {True: 0, False: 0}
        dpsnr, worst = [], 0.0
        for f in files:
            with Image.open(f) as im:
                img = np.asarray(im.convert("RGB"))
            x = codec._padded_tensor(img, art)
            with torch.inference_mode():
                y0 = codec._analysis(model)(x)
            for q in qualities:
                z, n, quality = {}, {}, {}
                for bf16 in (True, False):
                    codec.HYPER_ANALYSIS_BF16 = bf16
                    with torch.inference_mode():
                        z[bf16] = codec._hyper_analysis(model)(y0 * model.gains(torch.tensor([q]))).round()
                    data = encode_array(img, art, q)
                    n[bf16], quality[bf16] = len(data), psnr(img, decode_array(data, art))
                    size[bf16] += len(data)
                flips += int((z[True] != z[False]).sum())
                elements += z[True].numel()
                dpsnr.append(quality[True] - quality[False])
                worst = max(worst, abs(n[True] / n[False] - 1))
        print(f"{spec:<40} {flips / elements:>21.3%} {size[True] / size[False]:>15.5f} "
              f"{np.mean(dpsnr):>+17.4f} {worst:>19.2%}")


if __name__ == "__main__":
    main()
