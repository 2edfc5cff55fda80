"""Mean-scale hyperprior over the paper's transforms, one network for every rate.

    x --g_a--> y --*gain(q)--> y' --h_a--> z --Q--> z_sym --h_s--> index, mu
                                |                                    |
                                +-- s = round(y' - mu) <-------------+
    x_hat <--g_s-- (s + mu) * inverse_gain(q)

- g_a, g_s: Balle, Laparra, Simoncelli 2017 (9x9/4, 5x5/2, 5x5/2 with GDN / IGDN).
- h_a, h_s and a Gaussian per element of y with predicted mean and scale: Minnen,
  Balle, Toderici 2018 ("mean-scale"), the scale picked from a log-spaced table.
- z is coded with the factorized density of the 2017 model (EntropyBottleneck).
- Variable rate (Cui et al. 2021, "gain units"): a quality q in [q_min, q_max] scales
  each latent channel by a gain before quantization and by an inverse gain after it,
  both interpolated exponentially between learned vectors at integer qualities; the
  network is trained with q drawn per image and lambda(q) log-linear in q.
- h_s is an integer network up to the table index (layers/integer.py): the index of
  every symbol's table is computed exactly on any machine. The means come from a
  float head on the same integer features: they only shift the reconstruction, since
  the coded symbols are round(y' - mu) and the decoder adds the same mu back.

The quality enters only the float path (gains before h_a, inverse gains before g_s):
the decoder derives every table index from the z symbols alone.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..entropy import EntropyBottleneck
from ..entropy.gaussian import GaussianConditional
from ..layers.integer import ACT_BITS, IntegerConv, round_st, shift_round
from ..ops import add_uniform_noise
from .base import EntropyModelParameters, ModelConfig, RDOutput, _conv, bls2017_transforms

# z symbols entering h_s are clamped to this magnitude (bounds the exact arithmetic);
# trained z symbols stay within a few tens.
Z_CLAMP = 1 << 15
# The index head's output is multiplied by 2**INDEX_BITS (a shift in the integer
# path): its parameters stay of order one while the index spans 0..63, so that the
# optimiser moves the predicted scales as fast as the other weights.
INDEX_BITS = 3
# Extra z positions on each side of a tile of h_a / h_s (wider than their receptive
# fields of 2 z positions), so tiled results equal whole-image ones.
HYPER_MARGIN = 4


class MeanScaleHyperprior(EntropyModelParameters, nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        N, M = config.N, config.M
        Nz = config.hyper_channels or N
        self.g_a, self.g_s = bls2017_transforms(N, M)
        self.downsampling_factor = 16
        self.hyper_factor = 4  # z positions per y position, each way
        k = config.hyper_kernel or 3
        if k not in (1, 3):
            raise ValueError(f"hyper_kernel must be 1 or 3, got {k}")
        self.h_a = nn.Sequential(
            _conv(M, N, k, 1), nn.ReLU(inplace=True),
            _conv(N, N, 5, 2), nn.ReLU(inplace=True),
            _conv(N, Nz, 5, 2),
        )
        # h_s: an integer trunk (5x5/2 and 3x3/2 transposed convs), a 1x1 integer head
        # for the table index, a 3x3 (or, with hyper_kernel 1, 1x1) float head for the means. The integer path is
        # evaluated in float64 at coding time, so it is kept light: 270 MMAC for a
        # 768x512 image, against 1.4 GMAC for Minnen et al.'s 5x5, 5x5, 3x3 on 288
        # channels, which made encoding 1.6x slower than bls2017.
        self.h_s_trunk = nn.Sequential(
            IntegerConv(Nz, N, 5, 2, transpose=True, in_bits=0, in_max=Z_CLAMP),
            IntegerConv(N, N, 3, 2, transpose=True),
        )
        self.h_s_index = IntegerConv(N, M, 1, 1, activation=False)
        with torch.no_grad():  # start at index 25 (a scale of about 2.4), not at the table's floor
            self.h_s_index.bias.fill_(25.0 / (1 << INDEX_BITS))
        self.h_s_mean = _conv(N, M, k, 1)
        self.entropy_bottleneck = EntropyBottleneck(Nz, integer_medians=True)
        self.gaussian = GaussianConditional(config.scale_levels or 64)
        q_min, q_max = self.quality_range
        anchors = int(round(q_max - q_min)) + 1
        # log of lambda(q) / lambda of the model the transforms are tuned to
        # (init: gain = sqrt(lambda ratio), the high-rate optimum of a step size).
        ref = math.log(config.lmbda_ref or self.lmbda(q_min + (q_max - q_min) * 0.625))
        logs = torch.tensor([0.5 * (math.log(self.lmbda(q_min + i)) - ref) for i in range(anchors)])
        if config.gains not in ("channel", "scalar"):
            raise ValueError(f"gains must be 'channel' or 'scalar', got {config.gains!r}")
        width = M if config.gains == "channel" else 1
        self.log_gains = nn.Parameter(logs.view(-1, 1).repeat(1, width).contiguous())
        self.log_inverse_gains = nn.Parameter(-logs.view(-1, 1).repeat(1, width).contiguous())

    # -- quality -----------------------------------------------------------------------
    @property
    def quality_range(self) -> tuple[float, float]:
        return float(self.config.quality_min), float(self.config.quality_max)

    def lmbda(self, quality: float | Tensor):
        """The rate-distortion trade-off the network is trained for at ``quality``:
        log-linear from lmbda_min at quality_min to lmbda_max at quality_max."""
        q_min, q_max = self.quality_range
        t = (quality - q_min) / (q_max - q_min)
        lo, hi = math.log(self.config.lmbda_min), math.log(self.config.lmbda_max)
        if isinstance(t, Tensor):
            return torch.exp(lo + (hi - lo) * t)
        return math.exp(lo + (hi - lo) * t)

    def _interpolate(self, table: Tensor, quality: Tensor) -> Tensor:
        """Per-image (B, M, 1, 1) exp of the log vectors interpolated at ``quality`` (B,)."""
        q_min, q_max = self.quality_range
        pos = (quality.float().clamp(q_min, q_max) - q_min)
        i = pos.floor().clamp(max=table.shape[0] - 2).long()
        f = (pos - i).view(-1, 1)
        logs = table[i] * (1 - f) + table[i + 1] * f
        return torch.exp(logs)[:, :, None, None]

    def gains(self, quality: Tensor) -> Tensor:
        return self._interpolate(self.log_gains, quality)

    def inverse_gains(self, quality: Tensor) -> Tensor:
        return self._interpolate(self.log_inverse_gains, quality)

    def anchor_positions(self, config: ModelConfig) -> Tensor:
        """Where the integer qualities of another range ``config`` fall in this model's
        gain tables: row positions (float, outside 0 .. rows-1 beyond this range) of
        the same lambdas."""
        q_min, q_max = self.quality_range
        lo, hi = math.log(self.config.lmbda_min), math.log(self.config.lmbda_max)
        new_lo, new_hi = math.log(config.lmbda_min), math.log(config.lmbda_max)
        rows = int(round(config.quality_max - config.quality_min)) + 1
        t = torch.arange(rows, dtype=torch.float64) / (config.quality_max - config.quality_min)
        log_lmbda = new_lo + (new_hi - new_lo) * t
        return (log_lmbda - lo) / (hi - lo) * (q_max - q_min)

    def reranged(self, **fields) -> "MeanScaleHyperprior":
        """A copy covering another quality or lambda range (``quality_min``,
        ``quality_max``, ``lmbda_min``, ``lmbda_max``): every weight is kept, and the
        gain vectors at the new integer qualities are this model's at the same lambda,
        interpolated linearly in log lambda (extrapolated from the end segments
        beyond this model's range). Used to widen a variable-rate run's range."""
        unknown = set(fields) - {"quality_min", "quality_max", "lmbda_min", "lmbda_max"}
        if unknown:
            raise ValueError(f"reranged() takes no field(s) {', '.join(sorted(unknown))}")
        config = ModelConfig.from_dict({**self.config.to_dict(), **fields})
        if not (config.quality_max > config.quality_min and config.lmbda_max > config.lmbda_min > 0):
            raise ValueError("a range needs quality_max > quality_min and lmbda_max > lmbda_min > 0")
        new = MeanScaleHyperprior(config)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("log_")}
        pos = self.anchor_positions(config)
        for name in ("log_gains", "log_inverse_gains"):
            state[name] = interpolate_rows(getattr(self, name).detach(), pos)
        new.load_state_dict(state)
        return new

    def widened(self, M: int, generator: torch.Generator | None = None,
                filter_scale: float = 0.03) -> "MeanScaleHyperprior":
        """A copy with ``M`` latent channels instead of ``config.M`` that computes what
        this model computes (Net2Net-style growth, so that training goes on from here).

        The new channels enter nothing the old ones compute: the synthesis and h_a read
        them with zero weights, and the latent GDN / IGDN normalise old channels by old
        channels only. The analysis writes them with random filters of ``filter_scale``
        times the old filters' spread, so that training finds a gradient for them at
        once. Their gains start at the mean of the old channels', their table indexes
        are those of old channel i mod config.M, their means zero."""
        old_m = self.config.M
        if M <= old_m:
            raise ValueError(f"widened() grows the latents: M={M} is not above {old_m}")
        config = ModelConfig.from_dict({**self.config.to_dict(), "M": M})
        new = MeanScaleHyperprior(config)
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        extra = M - old_m
        copy_of = torch.arange(extra) % old_m

        def rows(t: Tensor, added: Tensor) -> Tensor:
            return torch.cat([t, added.to(t.dtype)], 0)

        for key in ("log_gains", "log_inverse_gains"):
            t = state[key]
            if t.shape[1] == old_m:  # per-channel gains (a scalar gain needs no change)
                state[key] = torch.cat([t, t.mean(1, keepdim=True).repeat(1, extra)], 1)
        w = state["g_a.4.weight"]
        noise = torch.randn((extra,) + w.shape[1:], generator=generator)
        state["g_a.4.weight"] = rows(w, noise * w.std() * filter_scale)
        state["g_a.4.bias"] = rows(state["g_a.4.bias"], torch.zeros(extra))
        zero_gamma = new.g_a[5].gamma_param.init(torch.zeros(()))
        for gdn in ("g_a.5", "g_s.0"):
            beta = state[f"{gdn}.beta_reparam"]
            state[f"{gdn}.beta_reparam"] = rows(beta, beta[copy_of])
            gamma = state[f"{gdn}.gamma_reparam"]
            grown = torch.full((M, M), float(zero_gamma), dtype=gamma.dtype)
            grown[:old_m, :old_m] = gamma
            grown[old_m:, old_m:].fill_diagonal_(float(gamma.diagonal().median()))
            state[f"{gdn}.gamma_reparam"] = grown
        w = state["g_s.1.weight"]  # transposed conv: (in = M, out = N, k, k)
        state["g_s.1.weight"] = rows(w, torch.zeros((extra,) + w.shape[1:]))
        w = state["h_a.0.weight"]  # (N, M, 3, 3)
        state["h_a.0.weight"] = torch.cat([w, torch.zeros((w.shape[0], extra) + w.shape[2:], dtype=w.dtype)], 1)
        for key in ("h_s_index.weight", "h_s_index.bias"):
            state[key] = rows(state[key], state[key][copy_of])
        for key in ("h_s_mean.weight", "h_s_mean.bias"):
            state[key] = rows(state[key], torch.zeros((extra,) + state[key].shape[1:]))
        new.load_state_dict(state)
        return new

    # -- training ----------------------------------------------------------------------
    def forward(self, x: Tensor, quality: Tensor, training: bool | None = None,
                quantizer: str = "mixed") -> RDOutput:
        """x in [0, 1], sides multiples of 64; quality (B,). The rate is measured on
        noisy latents; with quantizer "mixed" the synthesis sees y' rounded about the
        predicted means (straight-through), as the decoder will."""
        training = self.training if training is None else training
        if quantizer not in ("noise", "mixed"):
            raise ValueError(f"unknown quantizer {quantizer!r}")
        y = self.g_a(x)
        with torch.autocast(x.device.type, enabled=False):
            y = y.float() * self.gains(quality)
        z = self.h_a(y.to(x.dtype) if x.dtype != torch.float32 else y)
        with torch.autocast(x.device.type, enabled=False):
            _, z_likelihoods = self.entropy_bottleneck(z.float(), training=training)
            index, mu = self.hyper_synthesis(round_st(z.float()))
            if training:
                y_noisy = add_uniform_noise(y)
                likelihoods = self.gaussian.likelihood(y_noisy - mu, index)
                y_hat = round_st(y - mu) + mu if quantizer == "mixed" else y_noisy
            else:
                y_hat = torch.round(y - mu) + mu
                likelihoods = self.gaussian.likelihood(y_hat - mu, index)
            y_hat = y_hat * self.inverse_gains(quality)
        x_hat = self.g_s(y_hat)
        return RDOutput(x_hat=x_hat, likelihoods=likelihoods, y=y, z_likelihoods=z_likelihoods)

    def hyper_synthesis(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Training / float simulation of h_s on round(z): (continuous index, mu), float32."""
        feat = self.h_s_trunk(z_hat.clamp(-Z_CLAMP, Z_CLAMP))
        return self.h_s_index(feat) * float(1 << INDEX_BITS), self.h_s_mean(feat)

    # -- coding (the codec calls these; tiling is the codec's) -------------------------
    @torch.no_grad()
    def analyse(self, x: Tensor, quality: Tensor) -> Tensor:
        """Gained latents y' (float32) of images x in [0, 1]."""
        return self.g_a(x).float() * self.gains(quality)

    @torch.no_grad()
    def hyper_index(self, z_sym: Tensor) -> tuple[Tensor, Tensor]:
        """Exact integer h_s of the coded z symbols: (table indexes as int32, the
        integer trunk features as float64). Identical on every machine: see
        layers/integer.py. h_s reads round(z) = symbol + integer median."""
        offsets = self.entropy_bottleneck.medians.double().view(1, -1, 1, 1)
        a = (z_sym.double() + offsets).clamp(-Z_CLAMP, Z_CLAMP)
        for layer in self.h_s_trunk:
            a = layer.integer_forward(a)
        acc = self.h_s_index.integer_forward(a)
        index = shift_round(acc, self.h_s_index.acc_bits - INDEX_BITS).clamp_(0, self.gaussian.levels - 1)
        return index.to(torch.int32), a

    @torch.no_grad()
    def hyper_mean(self, features: Tensor) -> Tensor:
        """Means (float32) from the integer trunk features of ``hyper_index``."""
        f = (features / float(1 << ACT_BITS)).float()
        return self.h_s_mean(f.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        """Reconstruction in [0, 1] (not yet clamped or rounded) from y' = s + mu."""
        return self.g_s(y_hat * self.inverse_gains(quality))

    def check_exact(self) -> None:
        """Raises ValueError unless every integer layer is exact in float64."""
        for layer in (*self.h_s_trunk, self.h_s_index):
            layer.check_exact()


def interpolate_rows(table: Tensor, pos: Tensor, extrapolate: bool = True) -> Tensor:
    """Rows of ``table`` at fractional row positions ``pos``, linear between rows; beyond
    the ends, continued along the end segments (``extrapolate``) or held at the end
    rows (for quantities that must stay within the table's values)."""
    last = table.shape[0] - 1
    if not extrapolate:
        pos = pos.clamp(0, last)
    i = pos.floor().clamp(0, last - 1).long()
    f = (pos - i).to(table.dtype).view(-1, *[1] * (table.dim() - 1))
    return table[i] * (1 - f) + table[i + 1] * f
