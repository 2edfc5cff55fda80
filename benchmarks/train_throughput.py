"""Training throughput (megapixels of training crops per second) per architecture and setting.

    python benchmarks/train_throughput.py [--arch bls2017 bls2017-hp factorized] [--steps 5] [--compile]
                                          [--M 192 320]

Runs full training steps (forward, rate + MSE loss, backward, Adam, aux step) on random
256x256 crops, batch 8, and prints s/step and MP/s for fp32 and bf16 autocast, each also in
channels_last (and with torch.compile with --compile; ``--only`` picks settings). bf16 is
fast only where the CPU computes it natively (AVX512-BF16, AMX); see benchmarks/RESULTS.md.
The variable-rate bls2017-hp trains as ``licodec train`` runs it: a quality per image, its
lambda, the mixed quantizer; ``--M`` measures it at each of several latent widths. Compare ratios within one run.
"""
from __future__ import annotations

import argparse
import time

import torch

from licodec.models import build_model
from licodec.train.step import train_step


def measure(arch: str, M: int | None, bf16: bool, channels_last: bool, compile_: bool, steps: int, batch: int, crop: int):
    torch.manual_seed(0)
    model = build_model(arch, M=M)
    x = torch.rand(batch, 3, crop, crop)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.main_parameters(), 1e-4)
    aux = torch.optim.Adam(model.aux_parameters(), 1e-3)
    fwd = torch.compile(model) if compile_ else model
    kwargs = {"lmbda": 0.013}
    if hasattr(model, "quality_range"):
        quality = torch.linspace(*model.quality_range, batch)
        kwargs = {"lmbda": model.lmbda(quality), "quality": quality, "quantizer": "mixed"}

    def step():
        train_step(model, x, opt=opt, aux_opt=aux, bf16=bf16, forward=fwd, **kwargs)

    t0 = time.perf_counter()
    step()
    step()  # warm-up (and compilation)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    return dt, batch * crop * crop / dt / 1e6, warm


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["bls2017", "bls2017-hp", "factorized"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--only", help="measure only these settings, comma-separated (e.g. fp32,bf16+channels_last)")
    p.add_argument("--M", type=int, nargs="+", help="latent widths of bls2017-hp to measure (default: its own)")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x {args.crop}^2")
    settings = [("fp32", False, False, False), ("fp32+channels_last", False, True, False),
                ("bf16", True, False, False), ("bf16+channels_last", True, True, False)]
    if args.compile:
        settings += [("fp32+compile", False, False, True), ("fp32+channels_last+compile", False, True, True),
                     ("bf16+channels_last+compile", True, True, True)]
    if args.only:
        settings = [s for s in settings if s[0] in args.only.split(",")]
    runs = [(arch, m) for arch in args.arch
            for m in (args.M if args.M and arch == "bls2017-hp" else [None])]
    print(f"{'arch':<17} {'setting':<28} {'s/step':>7} {'MP/s':>6} {'vs fp32':>8} {'warm-up s':>9}")
    for arch, m in runs:
        label = arch if m is None else f"{arch} M={m}"
        base = None
        for name, bf16, cl, comp in settings:
            dt, mps, warm = measure(arch, m, bf16, cl, comp, args.steps, args.batch, args.crop)
            base = base or mps
            print(f"{label:<17} {name:<28} {dt:>7.3f} {mps:>6.3f} {mps / base:>7.2f}x {warm:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
