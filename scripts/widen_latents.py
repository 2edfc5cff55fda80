"""Widen the latents of a bls2017-hp training checkpoint (M -> a larger M) without
changing what the model computes, so that training goes on from it with more latent
channels instead of starting over (MeanScaleHyperprior.widened).

    python scripts/widen_latents.py runs/hp/checkpoint.pt widened.pt --M 320
    licodec train --init widened.pt --model bls2017-hp --M 320 ...   # the run's settings

The output keeps the checkpoint's record (history, settings) and drops its optimiser
state: `--init` starts a new run from it.

Measured (benchmarks/RESULTS.md, "wider latents grown into a trained model"): in every
setting tried, the rate term switched the new channels off within a few thousand steps,
and the synthesis drew at most 0.1 dB from them where they stayed on. To train a wider
model, start its latent layers anew instead: `licodec train --init WEIGHTS --M 320 ...`. Before writing, checks on a random image that
the widened model analyses to the old latents and reconstructs the old image whatever
the new channels hold.
"""
from __future__ import annotations

import argparse
import sys

import torch

from licodec.models.base import ModelConfig, build_from_config


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a bls2017-hp training checkpoint (checkpoint.pt)")
    p.add_argument("out", help="the widened checkpoint to write (for licodec train --init)")
    p.add_argument("--M", type=int, default=320, help="latent channels after widening (default 320)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new analysis filters")
    p.add_argument("--filter-scale", type=float, default=0.03,
                   help="spread of the new analysis filters against the old ones' (default 0.03)")
    args = p.parse_args()
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    config = ModelConfig.from_dict(ckpt["model_config"])
    if config.architecture != "bls2017-hp":
        sys.exit(f"widen_latents: {args.checkpoint} holds a {config.architecture} model, not bls2017-hp")
    old = build_from_config(config)
    old.load_state_dict(ckpt["model"])
    try:
        new = old.widened(args.M, torch.Generator().manual_seed(args.seed), filter_scale=args.filter_scale)
    except ValueError as e:
        sys.exit(f"widen_latents: {e}")
    old.eval(), new.eval()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for q in (1.0, 5.5, 10.0):
            qt = torch.tensor([q])
            y_old, y_new = old.analyse(x, qt), new.analyse(x, qt)
            ref = old.synthesise(y_old, qt)
            recon = new.synthesise(torch.cat([y_old, torch.randn_like(y_new[:, config.M:])], 1), qt)
            same_y = torch.allclose(y_old, y_new[:, :config.M], atol=1e-5)
            err = (recon - ref).abs().max().item()
            print(f"quality {q:g}: latents equal: {same_y}, largest reconstruction difference {err:.2e}")
            if not same_y or err > 1e-4:
                sys.exit("widen_latents: the widened model does not compute what the old one did")
    ckpt = {k: v for k, v in ckpt.items() if k not in ("opt", "aux_opt")}
    ckpt["model"] = new.state_dict()
    ckpt["model_config"] = new.config.to_dict()
    torch.save(ckpt, args.out)
    print(f"wrote {args.out}: M {config.M} -> {args.M}, step {ckpt.get('step')}")


if __name__ == "__main__":
    main()
