"""train: rate-distortion training on a folder of images (see licodec.train.loop)."""
from __future__ import annotations

from dataclasses import fields

from ..train.config import TrainConfig


def add_arguments(p):
    d = TrainConfig(data="", out="")
    p.add_argument("--data", required=True, help="folder of training images (PNG/JPEG, any size)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv, model.safetensors")
    p.add_argument("--model", default=d.model, choices=["bls2017", "factorized", "bls2017-hp"],
                   help="architecture; bls2017-hp: mean-scale hyperprior, one network for every rate "
                        "(its lambdas come from the model's quality range; --lmbda is not used)")
    p.add_argument("--gains", default=d.gains, choices=["channel", "scalar"],
                   help="bls2017-hp: how the quality scales the latents")
    p.add_argument("--N", type=int, help="hidden channels (default: the architecture's)")
    p.add_argument("--M", type=int, help="latent channels (default: the architecture's)")
    p.add_argument("--lmbda", type=float, default=d.lmbda, help="rate-distortion trade-off")
    p.add_argument("--metric", default=d.metric, choices=["mse", "ms-ssim"])
    p.add_argument("--quantizer", default=d.quantizer, choices=["noise", "mixed"],
                   help="what the synthesis sees in training: noisy latents (the paper) or rounded "
                        "ones with a straight-through gradient (for fine-tuning)")
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--sampling", default=d.sampling, choices=["image", "area"],
                   help="draw crops from every image equally often, or in proportion to image area")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--steps", type=int, default=d.steps, help="total steps (a resumed run continues to this)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--aux-lr", type=float, default=d.aux_lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--decay-at", type=float, default=d.decay_at, help="fraction of steps after which lr drops 10x")
    p.add_argument("--clip", type=float, default=d.clip, help="gradient norm clip (0: off)")
    p.add_argument("--device", default=d.device, help="cpu, cuda, cuda:1, ...")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--valid", help="folder of validation images (real encoding)")
    p.add_argument("--valid-every", type=int, default=d.valid_every)
    p.add_argument("--valid-limit", type=int, default=d.valid_limit)
    p.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes)
    p.add_argument("--init", help="start from these weights: checkpoint.pt, an exported .safetensors, "
                                  "or a shipped model's name (bls2017-mse-q5)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    from ..train.loop import train
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    train(cfg)
    return 0
