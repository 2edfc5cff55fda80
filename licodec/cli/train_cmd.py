"""train: rate-distortion training on a folder of images (see licodec.train.loop)."""
from __future__ import annotations

from dataclasses import fields

from ..train.config import TrainConfig


def _range(text: str) -> tuple[float, float]:
    import argparse
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI (two numbers), got {text!r}") from None
    if not (0 <= lo < hi < float("inf")):
        raise argparse.ArgumentTypeError(f"expected 0 <= LO < HI, got {text!r}")
    return lo, hi


def add_arguments(p):
    d = TrainConfig(data="", out="")

    def opt(flag, help_, **kw):
        """An option whose default is TrainConfig's: left None on the command line, so that
        a resume can tell what was given (and keep the run's own values for the rest)."""
        dest = flag.lstrip("-").replace("-", "_")
        default = getattr(d, dest)
        p.add_argument(flag, default=None, help=f"{help_} (default: {default})", **kw)

    p.add_argument("--data", required=True, help="folder of training images (PNG/JPEG/WebP, any size)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv, model.safetensors")
    opt("--model", "architecture; bls2017-hp: mean-scale hyperprior, one network for every rate "
        "(its lambdas come from the model's quality range; --lmbda is not used)",
        choices=["bls2017", "factorized", "bls2017-hp"])
    opt("--gains", "bls2017-hp: how the quality scales the latents", choices=["channel", "scalar"])
    opt("--hyper-kernel", "bls2017-hp: kernel of h_a's first layer and of the means' head "
        "(1: a ninth of their cost, for wide latents)", type=int, choices=[1, 3])
    p.add_argument("--qualities", type=_range, metavar="LO:HI",
                   help="bls2017-hp: range of the quality parameter, a learned gain vector at each integer "
                        "(default: 1:10); with --resume, moves the run's range, the gains re-interpolated")
    p.add_argument("--lmbdas", type=_range, metavar="LO:HI",
                   help="bls2017-hp: lambda at the lowest and the highest quality, log-linear between "
                        "(default: 0.0003:0.4)")
    opt("--balance", "bls2017-hp: weight each image's loss by (lambda_mid / lambda)^BALANCE, lambda_mid the "
        "geometric middle of the range, so that low rates weigh as much as high ones (0: plain)", type=float)
    p.add_argument("--N", type=int, help="hidden channels (default: those of the --init weights, "
                                         "else the architecture's)")
    p.add_argument("--M", type=int, help="latent channels (default: those of the --init weights, else the "
                                         "architecture's; a different count starts the latent layers anew)")
    opt("--lmbda", "rate-distortion trade-off: loss = bpp + lmbda * 255^2 * MSE", type=float)
    opt("--metric", "distortion measure", choices=["mse", "ms-ssim"])
    opt("--quantizer", "what the synthesis sees in training: noisy latents (the paper) or rounded "
        "ones with a straight-through gradient", choices=["noise", "mixed"])
    opt("--crop", "side of the square training crops, a multiple of 16", type=int)
    opt("--sampling", "draw crops from every image equally often, or in proportion to image area",
        choices=["image", "area"])
    p.add_argument("--oversample", metavar="GLOB=FACTOR[,...]",
                   help="draw the training images whose file names match GLOB FACTOR times as often "
                        "as --sampling alone would (e.g. 'photo-*=2'; default: none)")
    opt("--batch", "crops per step", type=int)
    opt("--steps", "total steps (a resumed run continues to this)", type=int)
    opt("--lr", "learning rate", type=float)
    opt("--density-lr-scale", "learning rate of the factorized density (z of a hyperprior) relative to --lr",
        type=float)
    opt("--aux-lr", "learning rate of the entropy model's tail quantiles", type=float)
    opt("--warmup", "steps of linear learning-rate warm-up", type=int)
    opt("--decay-at", "fraction of the steps after which the learning rate drops 10x", type=float)
    opt("--clip", "gradient norm clip (0: off)", type=float)
    p.add_argument("--freeze", metavar="NAME[,NAME...]",
                   help="keep these parameters fixed: parameter names or module prefixes such as "
                        "'g_a.0,g_a.1' (default: none; a name the model lacks is an error that lists "
                        "its modules); with --resume, replaces the run's list ('' frees all)")
    opt("--ema", "keep a moving average of the weights with this decay (e.g. 0.9995; 0: off), "
                 "validated and exported in their place", type=float)
    opt("--device", "cpu, cuda, cuda:1, ...")
    p.add_argument("--bf16", dest="bf16", action="store_const", const=True, default=None,
                   help="train with bf16 autocast: about twice as fast where the GPU or CPU computes bf16 "
                        "natively (CPUs with AVX512-BF16 or AMX), emulated and tens of times slower elsewhere; "
                        "keep one precision for a run's whole life (default: float32)")
    p.add_argument("--no-bf16", dest="bf16", action="store_const", const=False,
                   help="train in float32 (the default; on a GPU with TF32 off)")
    p.add_argument("--channels-last", dest="channels_last", action="store_const", const=True, default=None,
                   help="channels-last memory layout (default: with bf16, and on a GPU)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_const", const=False,
                   help="keep the default memory layout")
    p.add_argument("--compile", action="store_const", const=True, default=None,
                   help="torch.compile the model (10-20%% faster after a warm-up of about 30 s)")
    p.add_argument("--valid", help="folder of validation images (real encoding)")
    opt("--valid-every", "steps between validations", type=int)
    opt("--valid-limit", "validation images (the folder's first)", type=int)
    opt("--checkpoint-minutes", "minutes between checkpoints", type=float)
    p.add_argument("--init", help="start from these weights: checkpoint.pt, an exported .safetensors, "
                                  "or a shipped model's name (bls2017-mse-q5)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt with the run's own settings, except those given")
    opt("--seed", "random seed of crops, qualities and noise", type=int)
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                   help="no progress bar (default: shown)")


def run(args) -> int:
    from ..train.loop import train
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    train(TrainConfig(**given), explicit=set(given))
    return 0
