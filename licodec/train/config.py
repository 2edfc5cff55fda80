"""The settings of a training run (no torch here: the CLI reads them to build its options)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "bls2017"
    N: int | None = None
    M: int | None = None
    lmbda: float = 0.0130
    metric: str = "mse"
    quantizer: str = "noise"  # what the synthesis sees in training: "noise" or "mixed"
    gains: str = "channel"  # bls2017-hp: per-channel gains or one scalar step ("scalar")
    hyper_kernel: int = 3  # bls2017-hp: kernel of h_a's first layer and of the means' head (3 or 1)
    # bls2017-hp: the quality range and the lambdas at its ends (None: the model's
    # defaults); on a resume, a new range re-interpolates the run's gain vectors
    qualities: tuple[float, float] | None = None
    lmbdas: tuple[float, float] | None = None
    # bls2017-hp: each image's loss weighted by (lambda_mid / lambda)^balance, lambda_mid
    # the geometric middle of the range (0: plain; 0.5 gives every rate a loss of
    # similar size, where plain lets the highest rates outweigh the lowest 50 to 1)
    balance: float = 0.0
    crop: int = 256
    sampling: str = "image"  # draw crops from images uniformly, or in proportion to their area
    # "GLOB=FACTOR[,GLOB=FACTOR...]": images whose file names match are drawn FACTOR
    # times as often (e.g. "photo-*=2")
    oversample: str | None = None
    batch: int = 8
    steps: int = 100_000
    lr: float = 1e-4
    density_lr_scale: float = 1.0  # learning rate of the factorized density, relative to lr
    aux_lr: float = 1e-3
    warmup: int = 200
    decay_at: float = 0.85  # lr drops 10x after this fraction of the steps
    clip: float = 1.0
    # comma-separated parameter names or module prefixes ("g_a.0,g_a.1") kept fixed:
    # no gradients are computed for them, which makes each step cheaper
    freeze: str | None = None
    # decay of an exponential moving average of the weights, kept beside them (0: off);
    # when on, validation and export use the average
    ema: float = 0.0
    device: str = "cpu"
    # bf16 autocast (None or False: float32) and the channels-last layout (None: with bf16
    # or on a GPU), given anew each time a run starts or resumes (train.loop.machine_precision)
    bf16: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    valid: str | None = None
    valid_every: int = 2000
    valid_limit: int = 24
    checkpoint_minutes: float = 5.0
    init: str | None = None  # start from these weights (checkpoint or exported artifact)
    resume: bool = False
    seed: int = 0
    progress: bool = True
