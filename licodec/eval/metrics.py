"""Image quality metrics on 8-bit RGB."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..extras import require

# pytorch-msssim's 5-scale MS-SSIM with an 11-tap window needs sides > 160 pixels;
# smaller images are reflect-padded up to this before measuring.
MS_SSIM_MIN_SIDE = 161


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (255 peak), over all samples."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _as_nchw(a: np.ndarray) -> torch.Tensor:
    # float32: 7x faster than float64 here and equal to it within 1e-6 (tests/test_eval.py)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB images (data range 255), averaged over channels."""
    x, y = _as_nchw(a), _as_nchw(b)
    h, w = x.shape[-2:]
    ph, pw = max(0, MS_SSIM_MIN_SIDE - h), max(0, MS_SSIM_MIN_SIDE - w)
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        y = torch.nn.functional.pad(y, (0, pw, 0, ph), mode=mode)
    msssim = require("pytorch_msssim", "eval", "MS-SSIM").ms_ssim
    return float(msssim(x, y, data_range=255.0, size_average=True))


def ms_ssim_db(value: float) -> float:
    return -10.0 * math.log10(max(1e-12, 1.0 - value))
