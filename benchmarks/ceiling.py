"""How good the transforms of a variable-rate model can be at all: PSNR of g_s(g_a(x)) with
no quantization, beside the PSNR with the latents rounded (no entropy model involved).

    python benchmarks/ceiling.py --folder ../shared/data/valid --limit 6 \
        --qualities 2,6,8,10 [--model bls2017-hp-mse]

A model whose rounded PSNR approaches its unquantized PSNR at the top qualities cannot
gain more there by spending bits: the transforms (their width, or how much of the
training loss the high rates carried) set the ceiling. Images are cropped to a multiple
of 64 pixels; PSNR is on 8-bit RGB, averaged over the images.

``--optimise STEPS`` asks which part of the synthesis sets that ceiling: for each image
(at the highest of ``--qualities``, cut to ``--crop`` pixels), the input of synthesis
stage k (k = 0: the latents; 2, 4: the feature maps entering the second and third
IGDN; 5: the last convolution's input) is optimised for MSE alone with Adam, from what
the analysis gives, and the PSNR of what the stages from k on can make of any input is
printed. A PSNR that stays low when only the last stages remain means those stages'
weights, not the latents or the analysis, stop the top qualities.

    python benchmarks/ceiling.py --folder ../shared/data/valid-photo --limit 4 \
        --qualities 12 --optimise 300 --model checkpoints/bls2017-hp320.safetensors

``--probe TRAIN`` asks the same of the analysis: how much of the image its first and
second stages keep. A linear read-out (least squares, fitted on the first 40 images of
TRAIN, 256x256 corners) maps each stage's feature map, 3x3 positions around a block, to
that block's pixels (4x4 after the first stage, 8x8 after the second); its PSNR on the
``--folder`` images (256x256 corners) is a floor on what the best synthesis could
recover from those features.

    python benchmarks/ceiling.py --folder ../shared/data/valid-photo --limit 20 \
        --qualities 12 --probe ../shared/data/train --model checkpoints/bls2017-hp320.safetensors
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


def load_images(folder: str, limit: int, side: int | None = None) -> list[np.ndarray]:
    """The first ``limit`` images of ``folder`` (their top-left ``side`` x ``side`` corner if
    given), cut to multiples of 64 pixels."""
    images = []
    for path in list_images(folder)[:limit]:
        img = load_rgb(path)[:side, :side]
        h, w = img.shape[0] // 64 * 64, img.shape[1] // 64 * 64
        if h and w:
            images.append(np.ascontiguousarray(img[:h, :w]))
    return images


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", default="2,6,8,10")
    p.add_argument("--model", default=VARIABLE_RATE_MODEL)
    p.add_argument("--optimise", type=int, default=0, metavar="STEPS",
                   help="also optimise each synthesis stage's input for MSE (see above)")
    p.add_argument("--crop", type=int, default=512, help="with --optimise: square crop side")
    p.add_argument("--probe", metavar="TRAIN", help="also read the analysis' stages out linearly (see above)")
    args = p.parse_args()
    art = resolve_model(args.model)
    if not art.hyperprior:
        p.error(f"{art.model_id} is not a variable-rate model")
    model = art.model.eval()
    images = load_images(args.folder, args.limit)
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
    if args.probe:
        probe_analysis(model, args.probe, images)
    if args.optimise:
        optimise_stages(model, images, max(float(v) for v in args.qualities.split(",")),
                        args.optimise, args.crop)


STAGES = (0, 2, 4, 5)


def _probe_pairs(model, layers: int, block: int, images) -> tuple[torch.Tensor, torch.Tensor]:
    """(features of 3x3 positions + 1, pixels of the block at the centre) per position."""
    feats, pixels = [], []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            f = model.g_a[:layers](x)
        f = torch.nn.functional.unfold(torch.nn.functional.pad(f, (1, 1, 1, 1), mode="replicate"), 3)
        feats.append(f[0].T.double())
        pixels.append(torch.nn.functional.unfold(x, block, stride=block)[0].T.double())
    f = torch.cat(feats)
    return torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1), torch.cat(pixels)


def probe_analysis(model, train: str, images) -> None:
    fit = load_images(train, 40, side=256)
    print(f"\nlinear read-out of the analysis' stages (fitted on {len(fit)} images of {train})")
    for stage, layers, block in ((1, 2, 4), (2, 4, 8)):
        a, b = _probe_pairs(model, layers, block, fit)
        weights = torch.linalg.lstsq(a, b, driver="gelsd").solution
        mse = []
        for img in images:
            a, b = _probe_pairs(model, layers, block, [img[:256, :256]])
            mse.append(float(((a @ weights).clamp(0, 1) - b).square().mean()))
        print(f"after stage {stage} ({block}x{block} blocks): {10 * np.log10(1 / np.mean(mse)):.2f} dB PSNR"
              f" (mean MSE over {len(images)} images)")


def optimise_stages(model, images, quality: float, steps: int, crop: int) -> None:
    """Per image: PSNR of g_s[k:] from its best input found by Adam, for k in STAGES."""
    for p in model.parameters():
        p.requires_grad_(False)
    q = torch.tensor([quality])
    print(f"\nquality {quality:g}, each stage's input optimised for MSE ({steps} Adam steps,"
          f" {crop}x{crop} crops)")
    print(f"{'image':>6} {'analysis':>9}" + "".join(f" {'from g_s.%d' % k:>11}" for k in STAGES))
    table = []
    for n, img in enumerate(images):
        img = np.ascontiguousarray(img[:crop, :crop])
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            feats = [model.analyse(x, q) * model.inverse_gains(q)]
            for layer in model.g_s:
                feats.append(layer(feats[-1]))
        row = [psnr(img, to_uint8(feats[-1]))]
        for k in STAGES:
            v = feats[k].clone().requires_grad_(True)
            opt = torch.optim.Adam([v], lr=0.01 * float(v.detach().abs().mean()))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
            for _ in range(steps):
                loss = (model.g_s[k:](v) - x).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            with torch.no_grad():
                row.append(psnr(img, to_uint8(model.g_s[k:](v))))
        table.append(row)
        print(f"{n:>6} " + " ".join(f"{v:{11 if i else 9}.2f}" for i, v in enumerate(row)), flush=True)
    print(f"{'mean':>6} " + " ".join(f"{v:{11 if i else 9}.2f}" for i, v in enumerate(np.mean(table, 0))))


if __name__ == "__main__":
    main()
