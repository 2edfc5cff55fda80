"""One optimisation step of the rate-distortion loss, shared by every training path.

    loss = bpp + lmbda * 255**2 * MSE          (metric "mse", images in [0, 1])
    loss = bpp + lmbda * (1 - MS-SSIM)         (metric "ms-ssim")

bpp is -sum(log2 likelihoods) / pixels of the noisy latents (y, and z for a hyperprior
model). A variable-rate model is trained with a quality per image and its lambda(q):
the loss is the mean over the batch of each image's bpp + lambda(q) * distortion. The
entropy model's tail quantiles have their own optimiser and loss (aux_loss).
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
    """(distortion term, mse) per image, of float32 images in [0, 1]."""
    mse = torch.mean((x_hat - x) ** 2, dim=(1, 2, 3))
    if metric == "mse":
        return 255.0**2 * mse, mse
    if metric == "ms-ssim":
        from ..extras import require
        ms_ssim = require("pytorch_msssim", "train", "--metric ms-ssim").ms_ssim
        return 1.0 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0, size_average=False), mse
    raise ValueError(f"unknown metric {metric!r}")


def bits_per_image(likelihoods: Tensor) -> Tensor:
    return -torch.log2(likelihoods).flatten(1).sum(dim=1)


def rd_loss(out, x: Tensor, lmbda: float | Tensor, metric: str = "mse",
            weight: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, mean bpp, mean MSE) of a forward pass ``out`` on images x: the mean over the
    batch of each image's bpp + lambda * distortion, scaled by ``weight`` (one per image)."""
    bits = bits_per_image(out.likelihoods)
    if out.z_likelihoods is not None:
        bits = bits + bits_per_image(out.z_likelihoods)
    bpp_i = bits / (x.shape[2] * x.shape[3])
    dist_term, mse_i = distortion(metric, out.x_hat.float(), x)
    loss_i = bpp_i + lmbda * dist_term
    return torch.mean(loss_i if weight is None else weight * loss_i), bpp_i.mean(), mse_i.mean()


def train_step(model, x: Tensor, lmbda: float | Tensor, opt, aux_opt, *, metric: str = "mse", bf16: bool = False,
               clip: float = 0.0, forward=None, before_aux_step=None, quantizer: str = "noise",
               quality: Tensor | None = None, weight: Tensor | None = None) -> StepResult:
    """Forward (``forward`` may be a compiled or DDP-wrapped model), loss, both optimiser steps.

    ``quality`` (one per image) goes to a variable-rate model, whose ``lmbda`` is then
    a tensor of one lambda per image; ``weight`` (one per image) scales each image's loss.
    """
    forward = model if forward is None else forward
    kwargs = {} if quality is None else {"quality": quality}
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(x, training=True, quantizer=quantizer, **kwargs)
    loss, bpp, mse = rd_loss(out, x, lmbda, metric, weight)
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
