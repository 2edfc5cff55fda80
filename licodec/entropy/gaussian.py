"""A Gaussian per latent element, its scale picked from a fixed table by an integer index.

Each element of y has a mean mu and a scale from a table of ``levels`` log-spaced
values in [scale_min, scale_max] (Balle et al. 2018; tensorflow-compression's
LocationScaleIndexedEntropyModel and CompressAI's GaussianConditional use 64 scales
from 0.11 to 256). The coded symbol is round(y - mu), whose probability is the
Gaussian of that scale convolved with the unit uniform:

    p(s) = Phi((s + 1/2) / sigma) - Phi((s - 1/2) / sigma)

A model predicts a continuous index v; coding uses round(v), clamped to the table, and
one integer frequency table per index (built once at export, like the factorized
density's). Training evaluates the same mass at the noisy y + U(-1/2, 1/2) - mu with
the table's scale for round(v) (straight-through), so the rate it learns is the rate
the tables charge.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..coding.tables import CodingTables, quantize_pmf
from ..ops import lower_bound

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64
# Mass left outside each table (values out there take the escape code).
TAIL_MASS = 1e-9
LIKELIHOOD_BOUND = 1e-9


def _std_cdf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def upper_bound(x: Tensor, bound: float) -> Tensor:
    """min(x, bound) whose gradient passes where it moves x back below the bound."""
    return -lower_bound(-x, -bound)


class GaussianConditional(nn.Module):
    """Likelihoods and coding tables of a Gaussian whose scale is indexed in a table."""

    def __init__(self, levels: int = SCALE_LEVELS, scale_min: float = SCALE_MIN,
                 scale_max: float = SCALE_MAX, tail_mass: float = TAIL_MASS,
                 likelihood_bound: float = LIKELIHOOD_BOUND):
        super().__init__()
        self.levels = int(levels)
        self.log_min = math.log(scale_min)
        self.log_step = (math.log(scale_max) - math.log(scale_min)) / (self.levels - 1)
        self.tail_mass = float(tail_mass)
        self.likelihood_bound = float(likelihood_bound)

    def table_scales(self) -> np.ndarray:
        """The ``levels`` scales, float64."""
        return np.exp(self.log_min + self.log_step * np.arange(self.levels, dtype=np.float64))

    def scales(self, index: Tensor) -> Tensor:
        """Scale of each (continuous) index, with the index bounded to the table and
        rounded to the table's grid (straight-through)."""
        index = upper_bound(lower_bound(index, 0.0), float(self.levels - 1))
        index = index + (torch.round(index) - index).detach()
        return torch.exp(self.log_min + self.log_step * index)

    def likelihood(self, values: Tensor, index: Tensor) -> Tensor:
        """Mass of [v - 1/2, v + 1/2] for values v = y - mu, float32."""
        with torch.autocast(values.device.type, enabled=False):
            values = values.float().abs()
            scales = self.scales(index.float())
            upper = _std_cdf((0.5 - values) / scales)
            lower = _std_cdf((-0.5 - values) / scales)
            return torch.clamp(upper - lower, min=self.likelihood_bound)

    @torch.no_grad()
    def build_tables(self, precision: int) -> CodingTables:
        """One row per table index; row k codes the symbols -T_k .. T_k, then the escape."""
        rows, offsets = [], []
        # Half-width covering all but tail_mass of the Gaussian: Phi^-1(1 - tail / 2).
        z = float(-torch.special.ndtri(torch.tensor(self.tail_mass / 2, dtype=torch.float64)))
        for scale in self.table_scales():
            half = max(1, int(math.ceil(scale * z)))
            s = torch.arange(-half, half + 1, dtype=torch.float64)
            pmf = (_std_cdf((s + 0.5) / scale) - _std_cdf((s - 0.5) / scale)).numpy()
            tail = max(0.0, 1.0 - float(pmf.sum()))
            rows.append(quantize_pmf(np.concatenate([pmf, [tail]]), precision))
            offsets.append(-half)
        return CodingTables.from_rows(rows, offsets=np.array(offsets), precision=precision)
