"""One optimisation step of the rate-distortion loss, shared by every training path.

    loss = bpp + lmbda * 255**2 * MSE          (metric "mse", images in [0, 1])
    loss = bpp + lmbda * (1 - MS-SSIM)         (metric "ms-ssim")

bpp is -sum(log2 likelihoods) / pixels of the noisy latents. The entropy model's tail
quantiles have their own optimiser and loss (aux_loss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class StepResult:
    loss: Tensor
    bpp: Tensor
    mse: Tensor
    aux: Tensor


def distortion(metric: str, x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(distortion term, mse) of float32 images in [0, 1]."""
    mse = torch.mean((x_hat - x) ** 2)
    if metric == "mse":
        return 255.0**2 * mse, mse
    if metric == "ms-ssim":
        from pytorch_msssim import ms_ssim
        return 1.0 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0), mse
    raise ValueError(f"unknown metric {metric!r}")


def train_step(model, x: Tensor, lmbda: float, opt, aux_opt, *, metric: str = "mse", bf16: bool = False,
               clip: float = 0.0, forward=None, before_aux_step=None, quantizer: str = "noise") -> StepResult:
    """Forward (``forward`` may be a compiled or DDP-wrapped model), loss, both optimiser steps."""
    forward = model if forward is None else forward
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(x, training=True, quantizer=quantizer)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = -torch.log2(out.likelihoods).sum() / num_pixels
    dist_term, mse = distortion(metric, out.x_hat.float(), x)
    loss = bpp + lmbda * dist_term
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.main_parameters(), clip)
    opt.step()
    aux = model.aux_loss()
    aux_opt.zero_grad(set_to_none=True)
    aux.backward()
    if before_aux_step is not None:
        before_aux_step()
    aux_opt.step()
    return StepResult(loss.detach(), bpp.detach(), mse.detach(), aux.detach())
