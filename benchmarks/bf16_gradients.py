"""How far bf16 autocast moves a variable-rate model's training gradient from float32's.

    python benchmarks/bf16_gradients.py --model checkpoints/bls2017-hp320.safetensors \
        --data ../shared/data/train --batches 4 [--freeze g_a.0,g_a.1,...]

For each of ``--batches`` batches of random crops (one quality per image, drawn uniformly
over the model's range, as `licodec train` draws them), computes the gradient of the
training loss (rate + lambda * MSE, each image weighted by (lambda_mid / lambda)^0.75, the
mixed quantizer) with the same crops and the same noise in float32 and with bf16
autocast (as `licodec train` uses it where the CPU computes bf16 natively), and with
bf16 autocast but the analysis g_a, or g_a and the synthesis g_s, kept in float32. Where
``--freeze`` fixes the leading layers of g_a, two more: float32 with only those layers in
bf16 (they need no gradient), and, as a control,
float32 with their output multiplied by 1 + U(-2^-9, 2^-9) (one bf16 rounding); on the
first batch it also prints how far bf16 moves those layers' output and their time. It
prints the cosine similarity of each to the float32 gradient, over all trained
parameters and per part (the latent synthesis g_s.1, the gains, the latent analysis
g_a.4, the hyper-transforms), and the norms. A cosine near 1 means the step goes where
float32's would; near 0 or below, bf16 rounding, not the data, steers it. The models'
codecs always run in float32.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from licodec.imageio import list_images, load_rgb
from licodec.train.step import rd_loss
from licodec.zoo.registry import resolve_model

PARTS = {"all": ("",), "g_s.1": ("g_s.1.",), "gains": ("log_gains", "log_inverse_gains"), "g_a.4": ("g_a.4.",),
         "hyper": ("h_a.", "h_s_")}
VARIANTS = {"bf16": (), "bf16, g_a fp32": ("g_a",), "bf16, g_a+g_s fp32": ("g_a", "g_s")}


class Float32(torch.nn.Module):
    """Runs a module with autocast off, on float32 input."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())


class FixedPrefix(torch.nn.Module):
    """The leading layers of g_a, without gradient, in bf16 or with their float32 output
    jittered by one bf16 rounding's relative size."""

    def __init__(self, inner: torch.nn.Module, mode: str):
        super().__init__()
        self.inner, self.mode = inner, mode

    def forward(self, x):
        with torch.no_grad():
            if self.mode == "bf16":
                with torch.autocast(x.device.type, dtype=torch.bfloat16):
                    return self.inner(x.contiguous(memory_format=torch.channels_last)).float()
            out = self.inner(x)
            noise = torch.rand(out.shape, generator=torch.Generator().manual_seed(7))
            return out * (1 + 2.0 ** -9 * (2 * noise - 1))


def frozen_prefix(model, frozen) -> int:
    """How many leading layers of g_a have every parameter in ``frozen``."""
    k = 0
    for layer in model.g_a:
        names = [f"g_a.{k}.{n}" for n, _ in layer.named_parameters()]
        if not names or not all(n.startswith(frozen) for n in names):
            break
        k += 1
    return k


def prefix_line(prefix: torch.nn.Module, x: torch.Tensor, k: int) -> str:
    """How far bf16 moves the output of g_a's fixed leading layers, and their time."""
    times = {}
    with torch.no_grad():
        for name, on in (("float32", False), ("bf16", True)):
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=on):
                inp = x.contiguous(memory_format=torch.channels_last)
                prefix(inp)  # warm-up
                start = time.perf_counter()
                out = prefix(inp).float()
                times[name] = (time.perf_counter() - start, out)
    (t32, ref), (t16, low) = times["float32"], times["bf16"]
    err = float((low - ref).norm() / ref.norm())
    return (f"g_a.0-{k - 1} in bf16: output {100 * err:.2f}% rms from float32's (one rounding: "
            f"{100 * 2 ** -9 / math.sqrt(3):.2f}%); {t32:.2f} s in float32, {t16:.2f} s in bf16")


def crops(paths, rng, batch: int, size: int) -> torch.Tensor:
    out = []
    while len(out) < batch:
        img = load_rgb(paths[rng.integers(len(paths))])
        h, w = img.shape[:2]
        if h < size or w < size:
            continue
        t, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
        out.append(torch.from_numpy(img[t:t + size, left:left + size].copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def gradient(model, x, quality, bf16: bool, fp32_parts=(), seed: int = 0, balance: float = 0.75,
             prefix: tuple[int, str] | None = None) -> dict:
    g_a = model.g_a
    saved = {name: getattr(model, name) for name in fp32_parts}
    for name in fp32_parts:
        setattr(model, name, Float32(saved[name]))
    if prefix:  # g_a.0 runs the fixed leading layers, the rest of them pass through: names stay
        k, mode = prefix
        model.g_a = torch.nn.Sequential(FixedPrefix(g_a[:k], mode), *[torch.nn.Identity()] * (k - 1), *g_a[k:])
    try:
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        inp = x.contiguous(memory_format=torch.channels_last) if bf16 else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(inp, quality=quality, training=True, quantizer="mixed")
        lmbda = model.lmbda(quality)
        lmbda_mid = math.sqrt(model.config.lmbda_min * model.config.lmbda_max)
        loss, _, _ = rd_loss(out, x, lmbda, "mse", (lmbda_mid / lmbda) ** balance)
        loss.backward()
    finally:
        for name, module in saved.items():
            setattr(model, name, module)
        model.g_a = g_a
    return {n: p.grad.detach().flatten().clone() for n, p in model.named_parameters() if p.grad is not None}


def part(grads: dict, prefixes) -> torch.Tensor:
    return torch.cat([g for n, g in grads.items() if n.startswith(tuple(prefixes))])


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm() + 1e-30))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bls2017-hp-mse", help="a variable-rate model: zoo name or file")
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=384)
    p.add_argument("--freeze", default="", help="parameter name prefixes kept fixed, as licodec train --freeze")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    art = resolve_model(args.model)
    if not art.hyperprior:
        print("--model must be a variable-rate (bls2017-hp) model", file=sys.stderr)
        return 1
    model = art.model.train()
    frozen = tuple(f for f in args.freeze.split(",") if f)
    for name, param in model.named_parameters():
        param.requires_grad_(not (frozen and name.startswith(frozen)))
    paths = list_images(args.data)
    rng = np.random.default_rng(args.seed)
    q_min, q_max = model.quality_range
    print(f"model {args.model}, {args.batches} batches of {args.batch} x {args.crop}^2 from {args.data}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    variants = {label: {"bf16": True, "fp32_parts": parts} for label, parts in VARIANTS.items()}
    k = frozen_prefix(model, frozen) if frozen else 0
    if k:
        variants[f"fp32, g_a.0-{k - 1} bf16"] = {"bf16": False, "prefix": (k, "bf16")}
        variants[f"fp32, g_a.0-{k - 1} x(1+-2^-9)"] = {"bf16": False, "prefix": (k, "jitter")}
    print(f"cosine to the float32 gradient: {'  '.join(f'{k:>7s}' for k in PARTS)}   |grad| / float32's")
    sums = {v: np.zeros(len(PARTS)) for v in variants}
    for b in range(args.batches):
        x = crops(paths, rng, args.batch, args.crop)
        quality = torch.from_numpy(rng.uniform(q_min, q_max, args.batch)).float()
        ref = gradient(model, x, quality, bf16=False)
        print(f"batch {b + 1}, qualities {' '.join(f'{float(q):.1f}' for q in quality)}")
        if k and b == 0:
            print("  " + prefix_line(model.g_a[:k], x, k))
        for label, kwargs in variants.items():
            g = gradient(model, x, quality, **kwargs)
            row = np.array([cos(part(ref, pre), part(g, pre)) for pre in PARTS.values()])
            sums[label] += row
            ratio = float(part(g, ("",)).norm() / part(ref, ("",)).norm())
            print(f"  {label:28s}  {'  '.join(f'{c:+7.3f}' for c in row)}   {ratio:.2f}")
    print("mean over the batches")
    for label in variants:
        print(f"  {label:28s}  {'  '.join(f'{c:+7.3f}' for c in sums[label] / args.batches)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
