"""Pure tensor functions shared by layers and entropy models.

No bitstreams, files or coders here: float tensors in, float tensors out.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Offset of the GDN reparametrisation (Balle 2018, "Efficient nonlinear transforms for
# lossy image compression", Appendix): values are stored as sqrt(v + pedestal) with
# pedestal = REPARAM_OFFSET**2 so that gradients stay well scaled near zero.
REPARAM_OFFSET = 2.0**-18


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bf16 convolutions natively: a CUDA GPU that supports
    bf16, or a CPU whose oneDNN has bf16 kernels (AVX512-BF16 or AMX). Elsewhere bf16 is
    emulated: 20-50x slower than float32 on an AVX2 CPU (benchmarks/RESULTS.md)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    return False


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient passes where it moves x back towards the feasible set.

    A plain ``max`` would give zero gradient below the bound, so a parameter that fell
    under it could never come back; the identity gradient everywhere would let an
    optimiser push it further down. This passes the gradient when x >= bound, or when
    descent (x - lr * grad) increases x, i.e. grad < 0.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad_output < 0)
        return pass_through.to(grad_output.dtype) * grad_output, None


def lower_bound(x: Tensor, bound: float) -> Tensor:
    """Elementwise max(x, bound) with the "identity if towards" gradient."""
    return _LowerBound.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class NonNegativeParametrizer(torch.nn.Module):
    """Maps a stored value r to v = max(r, sqrt(minimum + pedestal))**2 - pedestal >= minimum.

    ``init(v)`` gives the stored value for a wanted v.
    """

    def __init__(self, minimum: float = 0.0, offset: float = REPARAM_OFFSET):
        super().__init__()
        self.minimum = float(minimum)
        self.pedestal = float(offset) ** 2
        self.bound = (self.minimum + self.pedestal) ** 0.5

    def init(self, value: Tensor) -> Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, stored: Tensor) -> Tensor:
        return lower_bound(stored, self.bound) ** 2 - self.pedestal


def add_uniform_noise(y: Tensor) -> Tensor:
    """The training proxy of rounding: y + U(-1/2, 1/2), independently per element."""
    return y + torch.empty_like(y).uniform_(-0.5, 0.5)


def pad_amounts(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Bottom and right padding that makes (height, width) multiples of ``multiple``."""
    return (-height) % multiple, (-width) % multiple


def tiled_apply(fn, x: Tensor, out: Tensor, in_unit: int, out_unit: int, tile: int, margin: int) -> Tensor:
    """Applies a convolutional ``fn`` to x tile by tile and writes the result into ``out``.

    Tiles are laid on the grid of latent positions: one grid unit is ``in_unit`` samples
    of x and ``out_unit`` samples of the output (16 and 1 for an analysis transform with
    downsampling 16; 1 and 16 for the synthesis). Each tile of ``tile`` x ``tile`` units
    is computed with ``margin`` extra units on every side (clipped at the borders) and
    cropped back, so when the margin covers fn's receptive field the result equals
    fn(x) up to float rounding: no seams, and memory bounded by the tile size. With
    ``out`` a tuple of tensors, fn returns a tuple of as many results.
    """
    height, width = x.shape[-2] // in_unit, x.shape[-1] // in_unit
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(height, top + tile), min(width, left + tile)
            t0, l0 = max(0, top - margin), max(0, left - margin)
            t1, l1 = min(height, bottom + margin), min(width, right + margin)
            ys = fn(x[..., t0 * in_unit: t1 * in_unit, l0 * in_unit: l1 * in_unit])
            for y, o in zip(ys, out) if isinstance(out, tuple) else [(ys, out)]:
                crop = y[..., (top - t0) * out_unit: (bottom - t0) * out_unit,
                         (left - l0) * out_unit: (right - l0) * out_unit]
                o[..., top * out_unit: bottom * out_unit, left * out_unit: right * out_unit] = crop
    return out
