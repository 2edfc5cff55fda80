"""Generalized divisive normalization (Balle, Laparra, Simoncelli 2016/2017).

    GDN:   y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j**2)
    IGDN:  y_i = x_i * sqrt(beta_i + sum_j gamma_ij * x_j**2)

This is the "classic" form of the ICLR 2017 paper (alpha = 2, epsilon = 1/2), not the
L1 simplification that tensorflow-compression calls GDN by default.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from ..ops import NonNegativeParametrizer

# beta >= BETA_MIN keeps the denominator away from zero (tensorflow-compression's default).
BETA_MIN = 1e-6
# gamma starts as GAMMA_INIT * identity: a mild per-channel normalisation (Balle 2017, sec. 3).
GAMMA_INIT = 0.1


class GDN(nn.Module):
    """GDN over the channel axis of an NCHW tensor; ``inverse=True`` gives IGDN.

    beta and gamma are stored reparametrised (``beta_reparam``, ``gamma_reparam``) so that
    they stay positive and trainable whatever the optimiser does; the real values are the
    read-only properties ``beta`` and ``gamma``.
    """

    def __init__(self, channels: int, *, inverse: bool = False, beta_min: float = BETA_MIN,
                 gamma_init: float = GAMMA_INIT):
        super().__init__()
        if channels <= 0:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = int(channels)
        self.inverse = bool(inverse)
        self.beta_param = NonNegativeParametrizer(minimum=beta_min)
        self.gamma_param = NonNegativeParametrizer(minimum=0.0)
        self.beta_reparam = nn.Parameter(self.beta_param.init(torch.ones(channels)))
        self.gamma_reparam = nn.Parameter(
            self.gamma_param.init(gamma_init * torch.eye(channels)))

    @property
    def beta(self) -> Tensor:
        return self.beta_param(self.beta_reparam)

    @property
    def gamma(self) -> Tensor:
        return self.gamma_param(self.gamma_reparam)

    def forward(self, x: Tensor) -> Tensor:
        gamma = self.gamma.to(x.dtype).reshape(self.channels, self.channels, 1, 1)
        norm = F.conv2d(x * x, gamma, self.beta.to(x.dtype))
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    def extra_repr(self) -> str:
        return f"{self.channels}, inverse={self.inverse}"
