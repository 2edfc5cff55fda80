"""Would the decoder gain from reconstructing each latent at its bin's centroid instead of
its centre? y' = mu + s - sign(s) * a * delta[index, |s| > 1], delta the mean distance of
the analysis' values from s + mu towards zero, per table index (fitted on one folder);
the symbols, and so the rate, stay the same, only the synthesis' input moves.

    python benchmarks/reconstruction_offset.py --fit ../shared/data/train --fit-limit 12 \
        --folder ../shared/data/valid --limit 6 --scales 1,0.15,-0.15 [--model bls2017-hp-mse]

Prints the PSNR change per quality and scale a, averaged over the images (cropped to a
multiple of 64 pixels). A synthesis trained on rounded latents (--quantizer mixed) has
learnt where the values in a bin lie: the centroid then only helps if it still moves
the reconstruction closer.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from licodec.eval.metrics import psnr
from licodec.imageio import list_images, load_rgb
from licodec.zoo.registry import VARIABLE_RATE_MODEL, resolve_model


def crop64(img: np.ndarray) -> np.ndarray:
    return img[: img.shape[0] // 64 * 64, : img.shape[1] // 64 * 64]


@torch.no_grad()
def latents(model, img: np.ndarray, q: float):
    """(gained latents y', means, symbols s, table indexes) as the codec computes them."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    y = model.analyse(x, torch.tensor([q]))
    z = model.entropy_bottleneck.quantize(model.h_a(y).float())
    index, features = model.hyper_index(z)
    mu = model.hyper_mean(features)
    return y, mu, torch.round(y - mu), index.long()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fit", required=True)
    p.add_argument("--fit-limit", type=int, default=12)
    p.add_argument("--folder", required=True)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", default="1,3,5,7,9,10")
    p.add_argument("--scales", default="1,0.15,-0.15")
    p.add_argument("--model", default=VARIABLE_RATE_MODEL)
    args = p.parse_args()
    art = resolve_model(args.model)
    if not art.hyperprior:
        p.error(f"{art.model_id} is not a variable-rate model")
    model = art.model.eval()
    qualities = [float(q) for q in args.qualities.split(",")]
    scales = [float(a) for a in args.scales.split(",")]
    levels = model.gaussian.levels

    sums, counts = np.zeros((2, levels)), np.zeros((2, levels))
    paths = list_images(args.fit)
    np.random.default_rng(0).shuffle(paths)
    for path in paths[: args.fit_limit]:
        img = crop64(load_rgb(path))
        for q in qualities:
            y, mu, s, index = latents(model, img, q)
            used = s != 0
            towards_zero = (-torch.sign(s) * (y - mu - s))[used].double().numpy()
            where = ((s.abs() > 1)[used].long().numpy(), index[used].numpy())
            np.add.at(sums, where, towards_zero)
            np.add.at(counts, where, 1)
    delta = torch.from_numpy(sums / np.maximum(counts, 1)).float()
    print("centroid offset towards zero, |s| = 1, by table index (every 8th): "
          + " ".join(f"{i}:{delta[0, i]:.3f}" for i in range(0, levels, 8) if counts[0, i] > 100))

    gains = {(q, a): [] for q in qualities for a in scales}
    for path in list_images(args.folder)[: args.limit]:
        img = crop64(load_rgb(path))
        for q in qualities:
            y, mu, s, index = latents(model, img, q)
            shift = torch.sign(s) * delta[(s.abs() > 1).long(), index]

            def rebuilt(a: float) -> float:
                with torch.no_grad():
                    x = model.synthesise(s + mu - a * shift, torch.tensor([q])).clamp(0, 1)
                return psnr(img, (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            base = rebuilt(0.0)
            for a in scales:
                gains[(q, a)].append(rebuilt(a) - base)
    print("PSNR change (dB), mean over images:")
    print("quality " + "".join(f"  a={a:<6g}" for a in scales))
    for q in qualities:
        print(f"{q:7g} " + "".join(f"  {np.mean(gains[(q, a)]):+7.3f} " for a in scales))


if __name__ == "__main__":
    main()
