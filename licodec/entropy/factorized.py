"""Learned non-parametric per-channel density of the latents ("factorized prior").

The density of each channel is the "deep factorized" cumulative of Balle et al. 2018
(Appendix 6.1): a monotone function c(x) = sigmoid(f_K(...f_1(x))) built from small
per-channel matrices with non-negative entries and tanh gates. Convolving the density
with the unit uniform, as in Balle, Laparra, Simoncelli 2017, gives the probability
mass of the interval [v - 1/2, v + 1/2]:  p(v) = c(v + 1/2) - c(v - 1/2).

During training that mass evaluated at y + U(-1/2, 1/2) is the rate term; at
inference it is evaluated at the rounded latents. ``build_tables`` turns the learned
density into integer frequency tables once, at export; coding only ever uses those.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..coding.tables import CodingTables, quantize_pmf
from ..ops import add_uniform_noise

# Probability mass left outside the learned tail quantiles; values out there take the
# escape code. Small, because escapes are expensive (CompressAI uses the same 1e-9).
TAIL_MASS = 1e-9
# Hidden widths of the deep factorized cumulative (Balle et al. 2018 use (3, 3, 3)).
FILTERS = (3, 3, 3)
# Initial spread of the density: the latents of an untrained model span about +-10.
INIT_SCALE = 10.0
# Likelihoods are floored so that log2 stays finite when a latent lands far in a tail.
LIKELIHOOD_BOUND = 1e-9
# Longest table a channel may have (values beyond go through the escape); bounds memory.
MAX_TABLE_LENGTH = 4096


class EntropyBottleneck(nn.Module):
    """Per-channel learned density over the latents y of shape (N, C, H, W)."""

    def __init__(self, channels: int, *, filters: tuple[int, ...] = FILTERS,
                 init_scale: float = INIT_SCALE, tail_mass: float = TAIL_MASS,
                 likelihood_bound: float = LIKELIHOOD_BOUND, integer_medians: bool = False):
        super().__init__()
        self.channels = int(channels)
        # Quantize about the medians rounded to integers: the symbols are then round(y)
        # minus an integer, so round(y) itself is known exactly to the decoder (a
        # hyperprior's integer h_s reads it).
        self.integer_medians = bool(integer_medians)
        self.filters = tuple(int(f) for f in filters)
        self.tail_mass = float(tail_mass)
        self.likelihood_bound = float(likelihood_bound)

        dims = (1,) + self.filters + (1,)
        scale = init_scale ** (1.0 / (len(self.filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(self.filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[k + 1], 1).uniform_(-0.5, 0.5)))
            if k < len(self.filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

        # Tail quantiles and median per channel, learned by the auxiliary loss only.
        self.quantiles = nn.Parameter(
            torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))
        target = math.log(2.0 / self.tail_mass - 1.0)
        self.register_buffer("_quantile_target", torch.tensor([-target, 0.0, target]),
                             persistent=False)

    # -- parameter groups -------------------------------------------------------------
    def aux_parameters(self) -> list[nn.Parameter]:
        return [self.quantiles]

    def main_parameters(self) -> list[nn.Parameter]:
        return [*self.matrices, *self.biases, *self.factors]

    # -- density ----------------------------------------------------------------------
    def _logits_cumulative(self, x: Tensor, stop_gradient: bool) -> Tensor:
        """Logit of the cumulative at x of shape (C, 1, n), per channel."""
        logits = x
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if k < len(self.factors):
                factor = self.factors[k].detach() if stop_gradient else self.factors[k]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _mass(self, values: Tensor, stop_gradient: bool = False) -> Tensor:
        """P(v - 1/2 < Y < v + 1/2) for values of shape (C, 1, n), in float32."""
        values = values.float()
        lower = self._logits_cumulative(values - 0.5, stop_gradient)
        upper = self._logits_cumulative(values + 0.5, stop_gradient)
        # Difference taken on the side where both sigmoids are small, for precision.
        sign = -torch.sign(lower + upper).detach()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    @property
    def medians(self) -> Tensor:
        """The quantization offsets: the learned medians (rounded, with integer_medians)."""
        medians = self.quantiles[:, 0, 1].detach()
        return torch.round(medians) if self.integer_medians else medians

    def aux_loss(self) -> Tensor:
        """Pulls ``quantiles`` to the tail_mass/2 quantiles and the median of the density."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self._quantile_target.view(1, 1, 3)).sum()

    # -- training / evaluation ---------------------------------------------------------
    def forward(self, y: Tensor, training: bool) -> tuple[Tensor, Tensor]:
        """Returns (y_tilde, likelihoods), both shaped like y.

        training=True: y_tilde = y + U(-1/2, 1/2); -sum(log2 likelihoods) is a
        differentiable upper bound of the rate. training=False: y_tilde is the
        quantized y (rounded about the medians), and the likelihoods are what the
        coding tables approximate.
        """
        with torch.autocast(y.device.type, enabled=False):
            y = y.float()
            y_tilde = add_uniform_noise(y) if training else self.dequantize(self.quantize(y))
            c = self.channels
            values = y_tilde.transpose(0, 1).reshape(c, 1, -1)
            mass = self._mass(values)
            mass = mass.reshape(c, y.shape[0], *y.shape[2:]).transpose(0, 1)
            likelihoods = torch.clamp(mass, min=self.likelihood_bound)
        return y_tilde, likelihoods

    def round_straight_through(self, y: Tensor) -> Tensor:
        """y rounded about the medians as the decoder will see it, with the gradient of
        the identity (training's "mixed" quantizer feeds this to the synthesis)."""
        return y + (self.dequantize(self.quantize(y)).to(y.dtype) - y).detach()

    def quantize(self, y: Tensor) -> Tensor:
        """Integer symbols round(y - median), as int32; the one float -> int step."""
        medians = self.medians.view(1, -1, *([1] * (y.dim() - 2)))
        return torch.round(y.float() - medians).to(torch.int32)

    def quantize_st(self, y: Tensor) -> Tensor:
        """round(y - median) as float, with the identity's gradient (training)."""
        medians = self.medians.view(1, -1, *([1] * (y.dim() - 2)))
        v = y - medians
        return v + (torch.round(v) - v).detach()

    def dequantize(self, symbols: Tensor) -> Tensor:
        medians = self.medians.view(1, -1, *([1] * (symbols.dim() - 2)))
        return symbols.float() + medians

    @torch.no_grad()
    def update_quantiles(self, iterations: int = 60) -> None:
        """Sets ``quantiles`` to the exact tail quantiles and median by bisection.

        The cumulative is monotone in x, so bisection converges whatever the auxiliary
        optimiser reached; the export step calls this before building tables.
        """
        c = self.channels
        target = self._quantile_target.view(1, 1, 3).expand(c, 1, 3)
        low = torch.full((c, 1, 3), -1.0)
        high = torch.full((c, 1, 3), 1.0)
        for _ in range(64):  # widen the bracket until it holds every target
            below = self._logits_cumulative(low, True) > target
            above = self._logits_cumulative(high, True) < target
            if not (below.any() or above.any()):
                break
            low = torch.where(below, low * 2, low)
            high = torch.where(above, high * 2, high)
        for _ in range(iterations):
            mid = (low + high) / 2
            too_high = self._logits_cumulative(mid, True) > target
            high = torch.where(too_high, mid, high)
            low = torch.where(too_high, low, mid)
        self.quantiles.copy_((low + high) / 2)

    # -- export ------------------------------------------------------------------------
    @torch.no_grad()
    def build_tables(self, precision: int) -> CodingTables:
        """Integer frequency tables of the symbols round(y - median), one row per channel.

        Row c covers the symbols offset[c] .. offset[c] + length[c] - 2; its last entry
        is the escape, whose probability is the mass outside that range.
        """
        q = self.quantiles.detach().float()
        medians = self.medians.float()
        low = torch.ceil(medians - q[:, 0, 0]).clamp(min=0)
        high = torch.ceil(q[:, 0, 2] - medians).clamp(min=0)
        half = (MAX_TABLE_LENGTH - 2) // 2
        low, high = low.clamp(max=half), high.clamp(max=half)
        n_values = (low + high + 1).to(torch.int64)
        width = int(n_values.max())
        steps = torch.arange(width, dtype=torch.float32).view(1, 1, -1)
        values = steps + (medians - low).view(-1, 1, 1)
        pmf = self._mass(values, stop_gradient=True)[:, 0, :].double().numpy()
        rows = []
        for c in range(self.channels):
            p = pmf[c, : int(n_values[c])]
            tail = max(0.0, 1.0 - float(p.sum()))
            rows.append(np.concatenate([p, [tail]]))
        return CodingTables.from_rows(
            [quantize_pmf(row, precision) for row in rows],
            offsets=(-low).to(torch.int64).numpy(), precision=precision)
