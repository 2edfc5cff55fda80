"""Transform-coding models with a factorized prior.

        x --g_a--> y --Q--> y_hat --g_s--> x_hat
                         |
                  EntropyBottleneck (rate)

Models know nothing of bitstreams: they map images to latents, latents to integer
symbols and back, and give likelihoods for the rate term.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..entropy import EntropyBottleneck
from ..layers import GDN


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's modules (stored next to its weights)."""

    architecture: str  # "bls2017", "factorized" or "bls2017-hp"
    N: int = 192  # channels of the hidden stages
    M: int = 192  # channels of the latent y
    # Hyperprior models only (None elsewhere, and then left out of the stored config,
    # so that the digests of earlier models do not change):
    hyper_channels: int | None = None  # channels of z
    scale_levels: int | None = None  # scales in the Gaussian's table
    quality_min: float | None = None  # the range of the quality parameter
    quality_max: float | None = None
    lmbda_min: float | None = None  # lambda at quality_min and quality_max (log-linear)
    lmbda_max: float | None = None
    lmbda_ref: float | None = None  # lambda the warm-start transforms were trained for
    gains: str | None = None  # "channel": a gain per latent channel; "scalar": one step size
    # kernel of the two hyper-transform layers at the latents' resolution, h_a's first
    # and the means' head: 3 (None; Minnen et al.) or 1 (a ninth of their cost)
    hyper_kernel: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, config: dict) -> "ModelConfig":
        """The config a model file stores; an unknown field is an error, not dropped."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)} (written by a newer licodec?)")
        return cls(**config)


@dataclass
class RDOutput:
    x_hat: Tensor
    likelihoods: Tensor  # per element of y
    y: Tensor
    z_likelihoods: Tensor | None = None  # per element of z (hyperprior models)


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    # output_padding = stride - 1 makes the output exactly stride times larger.
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)


class EntropyModelParameters:
    """The parameter groups of a model with an ``entropy_bottleneck``: its tail
    quantiles train on their own (aux) loss, everything else on the rate-distortion loss."""

    def aux_parameters(self) -> list[nn.Parameter]:
        return self.entropy_bottleneck.aux_parameters()

    def main_parameters(self) -> list[nn.Parameter]:
        aux = {id(p) for p in self.aux_parameters()}
        return [p for p in self.parameters() if id(p) not in aux]

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.aux_loss()


class CompressionModel(EntropyModelParameters, nn.Module):
    """g_a, g_s and an entropy bottleneck over the latent channels."""

    def __init__(self, config: ModelConfig, g_a: nn.Module, g_s: nn.Module, downsampling_factor: int):
        super().__init__()
        self.config = config
        self.g_a = g_a
        self.g_s = g_s
        self.entropy_bottleneck = EntropyBottleneck(config.M)
        self.downsampling_factor = downsampling_factor

    def forward(self, x: Tensor, training: bool | None = None, quantizer: str = "noise") -> RDOutput:
        """x in [0, 1], NCHW, sides multiples of ``downsampling_factor``.

        In training the rate is always measured on y + U(-1/2, 1/2). ``quantizer`` picks
        what the synthesis sees: "noise" the same noisy latents (the paper), "mixed" the
        rounded latents with a straight-through gradient, as the decoder will see them
        (Minnen & Singh 2020); mixed is for fine-tuning a model trained with noise.
        """
        training = self.training if training is None else training
        if quantizer not in ("noise", "mixed"):
            raise ValueError(f"unknown quantizer {quantizer!r}")
        y = self.g_a(x)
        y_tilde, likelihoods = self.entropy_bottleneck(y, training=training)
        if training and quantizer == "mixed":
            y_tilde = self.entropy_bottleneck.round_straight_through(y.float())
        x_hat = self.g_s(y_tilde.to(y.dtype))
        return RDOutput(x_hat=x_hat, likelihoods=likelihoods, y=y)

    @torch.no_grad()
    def analyse(self, x: Tensor) -> Tensor:
        """Integer symbols (int32, N x M x h x w) of images x in [0, 1]."""
        return self.entropy_bottleneck.quantize(self.g_a(x))

    @torch.no_grad()
    def synthesise(self, symbols: Tensor) -> Tensor:
        """Reconstruction in [0, 1] (not yet clamped or rounded) from integer symbols."""
        return self.g_s(self.entropy_bottleneck.dequantize(symbols))


def bls2017_transforms(N: int, M: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Balle, Laparra, Simoncelli 2017: 9x9/4, 5x5/2, 5x5/2 stages, each with GDN."""
    g_a = nn.Sequential(
        _conv(3, N, 9, 4), GDN(N),
        _conv(N, N, 5, 2), GDN(N),
        _conv(N, M, 5, 2), GDN(M),
    )
    g_s = nn.Sequential(
        GDN(M, inverse=True), _deconv(M, N, 5, 2),
        GDN(N, inverse=True), _deconv(N, N, 5, 2),
        GDN(N, inverse=True), _deconv(N, 3, 9, 4),
    )
    return g_a, g_s


def bls2017(config: ModelConfig) -> CompressionModel:
    """The paper's model: its transforms and the factorized density."""
    g_a, g_s = bls2017_transforms(config.N, config.M)
    return CompressionModel(config, g_a, g_s, downsampling_factor=16)


def factorized(config: ModelConfig) -> CompressionModel:
    """Balle et al. 2018, factorized prior: four 5x5/2 stages, GDN between them."""
    N, M = config.N, config.M
    g_a = nn.Sequential(
        _conv(3, N, 5, 2), GDN(N),
        _conv(N, N, 5, 2), GDN(N),
        _conv(N, N, 5, 2), GDN(N),
        _conv(N, M, 5, 2),
    )
    g_s = nn.Sequential(
        _deconv(M, N, 5, 2), GDN(N, inverse=True),
        _deconv(N, N, 5, 2), GDN(N, inverse=True),
        _deconv(N, N, 5, 2), GDN(N, inverse=True),
        _deconv(N, 3, 5, 2),
    )
    return CompressionModel(config, g_a, g_s, downsampling_factor=16)


def bls2017_hp(config: ModelConfig):
    from .hyperprior import MeanScaleHyperprior
    return MeanScaleHyperprior(config)


ARCHITECTURES = {"bls2017": bls2017, "factorized": factorized, "bls2017-hp": bls2017_hp}
DEFAULT_CHANNELS = {"bls2017": (192, 192), "factorized": (128, 192), "bls2017-hp": (192, 192)}
# The hyperprior's defaults: 64 scales (0.11 .. 256), qualities 1 .. 10 with lambda
# log-linear from 0.0003 (q1, below the rate of bls2017-mse-q1) to 0.4 (q10, above the
# rate of bls2017-mse-q8 on clean photographs), about 2.2x per quality step.
HYPERPRIOR_DEFAULTS = {"hyper_channels": 192, "scale_levels": 64, "quality_min": 1.0, "quality_max": 10.0,
                       "lmbda_min": 0.0003, "lmbda_max": 0.4, "lmbda_ref": 0.013,
                       "gains": "channel"}


def build_from_config(config: ModelConfig):
    """The one place a model is rebuilt from its config (every field is used)."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; "
                         f"choose from {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[config.architecture](config)


def build_model(architecture: str, N: int | None = None, M: int | None = None, **options):
    """A new model of ``architecture`` with default or given channel counts; hyperprior
    models take the HYPERPRIOR_DEFAULTS fields as ``options``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; "
                         f"choose from {', '.join(sorted(ARCHITECTURES))}")
    dn, dm = DEFAULT_CHANNELS[architecture]
    if architecture in ("bls2017", "bls2017-hp") and N is not None and M is None:
        M = N  # the paper's model has one channel count throughout
    if architecture == "bls2017-hp":
        options = {**HYPERPRIOR_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    elif options:
        raise ValueError(f"{architecture} takes no options {sorted(options)}")
    return build_from_config(ModelConfig(architecture, N=N or dn, M=M or dm, **options))


def transposed_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose analysis and synthesis transforms work on transposed
    images: copy.g_a(x.mT) == model.g_a(x).mT and copy.g_s(y.mT) == model.g_s(y).mT, up to
    float rounding. Every convolution kernel of g_a and g_s is mirrored about its diagonal
    (strides and paddings are square); GDN mixes channels only. Convolutions run much
    faster along long rows than down long columns, so a tall image is best computed on
    its side."""
    twin = copy.deepcopy(model)
    for transform in (twin.g_a, twin.g_s):
        for layer in transform.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                layer.weight.data = layer.weight.data.transpose(-1, -2).contiguous()
                for name in ("kernel_size", "stride", "padding", "output_padding", "dilation"):
                    value = getattr(layer, name)
                    if isinstance(value, tuple):
                        setattr(layer, name, value[::-1])
    return twin.eval()
