"""How good the transforms of a variable-rate model can be at all: PSNR of g_s(g_a(x)) with
no quantization, beside the PSNR with the latents rounded (no entropy model involved).

    python benchmarks/ceiling.py --folder ../shared/data/valid --limit 6 \
        --qualities 2,6,8,10 [--model bls2017-hp-mse]

A model whose rounded PSNR approaches its unquantized PSNR at the top qualities cannot
gain more there by spending bits: the transforms (their width, or how much of the
training loss the high rates carried) set the ceiling. Images are cropped to a multiple
of 64 pixels; PSNR is on 8-bit RGB, averaged over the images.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from licodec.eval.metrics import psnr
from licodec.imageio import list_images, load_rgb
from licodec.zoo.registry import VARIABLE_RATE_MODEL, resolve_model


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", default="2,6,8,10")
    p.add_argument("--model", default=VARIABLE_RATE_MODEL)
    args = p.parse_args()
    art = resolve_model(args.model)
    if not art.hyperprior:
        p.error(f"{art.model_id} is not a variable-rate model")
    model = art.model.eval()
    images = []
    for path in list_images(args.folder)[: args.limit]:
        img = load_rgb(path)
        h, w = img.shape[0] // 64 * 64, img.shape[1] // 64 * 64
        if h and w:
            images.append(np.ascontiguousarray(img[:h, :w]))
    print(f"{len(images)} images from {args.folder}, model {art.model_id}")
    print(f"{'quality':>8} {'PSNR unquantized':>17} {'PSNR rounded':>13}")
    for q in (float(v) for v in args.qualities.split(",")):
        plain, rounded = [], []
        quality = torch.tensor([q])
        for img in images:
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                y = model.analyse(x, quality)
                plain.append(psnr(img, to_uint8(model.synthesise(y, quality))))
                rounded.append(psnr(img, to_uint8(model.synthesise(torch.round(y), quality))))
        print(f"{q:8g} {np.mean(plain):17.2f} {np.mean(rounded):13.2f}")


if __name__ == "__main__":
    main()
