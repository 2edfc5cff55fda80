"""Encoder effort: per-image optimisation of the latents, for the same decoder and format.

The analysis transform gives a first guess of the latents; gradient steps on this one
image's rate-distortion loss, through the fixed synthesis and entropy model, find latents
that cost fewer bits for the same quality (Yang, Bamler, Mandt 2020, "Improving
Inference for Neural Image Compression"). Rounding is relaxed by stochastic Gumbel
annealing (SGA): each latent is a random soft choice between floor and ceil, whose
temperature falls to near zero over the steps, so that the optimised values are ones
that survive rounding; the rate is the entropy model's own probability of the relaxed
values. The codec keeps whichever of the plain and the optimised encodings has the lower
real rate-distortion cost, bits counted from the bytes.

Neural transforms and entropy models are used as they are; this module returns latents,
and knows nothing of bitstreams.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import LicodecError


# Optimisation steps per effort level; level 0 is the plain encoder.
EFFORT_STEPS = {0: 0, 1: 40, 2: 100, 3: 250, 4: 500}
MAX_EFFORT = max(EFFORT_STEPS)


def learning_rate(steps: int) -> float:
    """Adam's step size on the latents (symbol units): 1e-2 up to 125 steps, then 1.25 /
    steps, so that longer runs take smaller steps over about the same distance (250
    steps on 6 valid images: -11.6% BD-rate at 5e-3, -2.8% at 1e-2)."""
    return min(1e-2, 1.25 / max(1, steps))

# Temperature of the relaxed rounding, falling linearly from TAU_START to TAU_END.
TAU_START, TAU_END = 0.5, 0.05
# Largest latent grid (positions) optimised in one piece; larger images go tile by tile.
WHOLE_LIMIT = 128 * 128
TILE, MARGIN = 64, 4


def _bf16_ok() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# The synthesis runs forward and backward in bfloat16 and channels-last layout where the
# CPU has fast bf16 arithmetic (3x faster on AVX-512 bf16): the gradients only steer the
# search, and the chosen latents are then coded and measured in full precision.
BF16 = _bf16_ok()


def _synthesis(g_s, latents: Tensor) -> Tensor:
    if not BF16 or latents.device.type != "cpu":
        return g_s(latents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return g_s(latents.contiguous(memory_format=torch.channels_last)).float()


def steps_for(effort: int) -> int:
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in EFFORT_STEPS:
        raise LicodecError(f"effort must be an integer 0..{MAX_EFFORT}, got {effort!r}")
    return EFFORT_STEPS[effort]


def sga_round(v: Tensor, tau: float) -> Tensor:
    """A soft, random choice between floor(v) and ceil(v), nearer values likelier; it
    tends to rounding as ``tau`` goes to zero (Yang et al. 2020, eq. 6).

    The two-way Gumbel-softmax is drawn as one logistic variate (the difference of two
    Gumbel variates is logistic): weight of ceil = sigmoid((logit + L) / tau), with the
    logits -atanh(v - floor) and -atanh(ceil - v) scaled by 1 / tau."""
    low = torch.floor(v)
    frac = (v - low).clamp(1e-5, 1 - 1e-5)
    u = torch.rand_like(frac).clamp_(1e-7, 1 - 1e-7)
    logit = (torch.atanh(frac) - torch.atanh(1 - frac)) / tau + torch.log(u) - torch.log1p(-u)
    return low + torch.sigmoid(logit / tau)


def _temperatures(steps: int):
    for i in range(steps):
        yield TAU_START + (TAU_END - TAU_START) * i / max(1, steps - 1)


def _windows(height: int, width: int):
    """(core, window) latent boxes covering the grid: one box for a small grid, else
    tiles with a margin of context (optimised in turn, the others held fixed)."""
    if height * width <= WHOLE_LIMIT:
        yield (0, height, 0, width), (0, height, 0, width)
        return
    for top in range(0, height, TILE):
        for left in range(0, width, TILE):
            core = (top, min(height, top + TILE), left, min(width, left + TILE))
            window = (max(0, top - MARGIN), min(height, core[1] + MARGIN),
                      max(0, left - MARGIN), min(width, core[3] + MARGIN))
            yield core, window


def _window_count(height: int, width: int) -> int:
    return sum(1 for _ in _windows(height, width))


def refine_factorized(model, x: Tensor, y: Tensor, height: int, width: int, lmbda: float, steps: int,
                      tick=None) -> Tensor:
    """Optimised int32 symbols (1, M, h, w) of a factorized model, from its latents y =
    g_a(x) (computed by the caller, tile by tile), for the padded image x (1, 3, H, W) in
    [0, 1] whose first height x width pixels are the image."""
    eb, f = model.entropy_bottleneck, model.downsampling_factor
    with torch.no_grad():
        medians = eb.medians.view(1, -1, 1, 1)
        v = y.float() - medians  # latents in symbol units
    h, w = v.shape[-2:]
    c = eb.channels
    for (t0, t1, l0, l1), (u0, u1, m0, m1) in _windows(h, w):
        window = v[..., u0:u1, m0:m1].clone()
        core = torch.zeros_like(window, dtype=torch.bool)
        core[..., t0 - u0:t1 - u0, l0 - m0:l1 - m0] = True
        free = window.clone().requires_grad_(True)
        opt = torch.optim.Adam([free], lr=learning_rate(steps))
        py0, py1 = (t0 - u0) * f, min(height, t1 * f) - u0 * f
        px0, px1 = (l0 - m0) * f, min(width, l1 * f) - m0 * f
        target = x[..., u0 * f:u1 * f, m0 * f:m1 * f][..., py0:py1, px0:px1]
        for tau in _temperatures(steps):
            current = torch.where(core, free, window)
            relaxed = torch.where(core, sga_round(current, tau), torch.round(current)) + medians
            values = relaxed.transpose(0, 1).reshape(c, 1, -1)
            mass = eb._mass(values, stop_gradient=True).reshape(c, *relaxed.shape[2:])
            bits = -torch.log2(mass.clamp_min(eb.likelihood_bound))[core[0]].sum()
            x_hat = _synthesis(model.g_s, relaxed)[..., py0:py1, px0:px1]
            loss = bits / target[0, 0].numel() + lmbda * 255.0**2 * torch.mean((x_hat - target) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if tick is not None:
                tick()
        with torch.no_grad():
            v[..., u0:u1, m0:m1] = torch.where(core, free, window)
    return torch.round(v).to(torch.int32)


def refine_hyperprior(model, x: Tensor, y: Tensor, height: int, width: int, quality: float, steps: int,
                      tick=None) -> tuple[Tensor, Tensor]:
    """Optimised gained latents y' (1, M, h, w) and hyper-latents z (1, Nz, hz, wz), both
    float, of a hyperprior model at ``quality``, from its latents y = g_a(x); the codec
    rounds and codes them (z to round(z), y' about the means its exact hyper-synthesis
    gives)."""
    eb, k = model.entropy_bottleneck, model.hyper_factor
    q = torch.tensor([float(quality)])
    lmbda = float(model.lmbda(float(quality)))
    with torch.no_grad():
        y = y.float() * model.gains(q)
        h, w = y.shape[-2:]
        hz, wz = -(-h // k), -(-w // k)
        y_pad = F.pad(y, (0, wz * k - w, 0, hz * k - h), mode="replicate")
        z = model.h_a(y_pad)
        inverse = model.inverse_gains(q)
    target = x[..., :height, :width]
    y_free = y.clone().requires_grad_(True)
    z_free = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([y_free, z_free], lr=learning_rate(steps))
    c = eb.channels
    for tau in _temperatures(steps):
        z_hat = sga_round(z_free, tau)  # h_s reads round(z); the coded symbol is round(z) - median
        mass = eb._mass(z_hat.transpose(0, 1).reshape(c, 1, -1), stop_gradient=True)
        bits_z = -torch.log2(mass.clamp_min(eb.likelihood_bound)).sum()
        index, mu = model.hyper_synthesis(z_hat)
        index, mu = index[..., :h, :w], mu[..., :h, :w]
        residual = sga_round(y_free - mu, tau)
        bits_y = -torch.log2(model.gaussian.likelihood(residual, index)).sum()
        x_hat = _synthesis(model.g_s, (residual + mu) * inverse)[..., :height, :width]
        loss = (bits_y + bits_z) / (height * width) + lmbda * 255.0**2 * torch.mean((x_hat - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tick is not None:
            tick()
    return y_free.detach(), torch.round(z_free.detach())


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over the optimisation steps (or a no-op)."""
    if not enabled or total == 0:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="step", desc="encoder effort", leave=False, dynamic_ncols=True)


def total_steps(height: int, width: int, steps: int, hyperprior: bool) -> int:
    return steps if hyperprior else steps * _window_count(height, width)


@contextmanager
def frozen(model):
    """Gradients on for the latents, off for the model's own weights."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
