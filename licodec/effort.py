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
from torch import Tensor

from .errors import LicodecError
from .ops import native_bf16


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
# Margin of a hyperprior model's windows, in z positions (h_s sees 2 on each side).
HYPER_MARGIN = 2


# The synthesis runs forward and backward in bfloat16 and channels-last layout where the
# CPU has fast bf16 arithmetic (3x faster on AVX-512 bf16): the gradients only steer the
# search, and the chosen latents are then coded and measured in full precision.
BF16 = native_bf16("cpu")


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


def _windows(height: int, width: int, whole: bool | None = None, tile: int | None = None,
             margin: int | None = None):
    """(core, window) boxes covering a grid: one box for a small grid (or ``whole``),
    else tiles with a margin of context (optimised in turn, the others held fixed)."""
    tile, margin = tile or TILE, MARGIN if margin is None else margin
    if height * width <= WHOLE_LIMIT if whole is None else whole:
        yield (0, height, 0, width), (0, height, 0, width)
        return
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            core = (top, min(height, top + tile), left, min(width, left + tile))
            window = (max(0, top - margin), min(height, core[1] + margin),
                      max(0, left - margin), min(width, core[3] + margin))
            yield core, window


def _hyper_windows(h: int, w: int, k: int):
    """The windows of a hyperprior model's grids: on the z grid (k latent positions per
    z position), whole when the latent grid h x w is small."""
    yield from _windows(-(-h // k), -(-w // k), h * w <= WHOLE_LIMIT, TILE // k, HYPER_MARGIN)


def _window_count(height: int, width: int) -> int:
    return sum(1 for _ in _windows(height, width))


def _mask(shape, box) -> Tensor:
    m = torch.zeros(shape, dtype=torch.bool)
    m[..., box[0]:box[1], box[2]:box[3]] = True
    return m


def _descend(opt, bits: Tensor, x_hat: Tensor, target: Tensor, lmbda: float, tick) -> None:
    """One optimiser step on this window's rate-distortion loss: bits per pixel of the
    target plus lambda times its MSE on the 0..255 scale (the training loss)."""
    pixels = target.shape[-2] * target.shape[-1]
    loss = bits / pixels + lmbda * 255.0**2 * torch.mean((x_hat - target) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if tick is not None:
        tick()


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
        core = _mask(window.shape, (t0 - u0, t1 - u0, l0 - m0, l1 - m0))
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
            _descend(opt, bits, x_hat, target, lmbda, tick)
        with torch.no_grad():
            v[..., u0:u1, m0:m1] = torch.where(core, free, window)
    return torch.round(v).to(torch.int32)


def refine_hyperprior(model, x: Tensor, y: Tensor, z: Tensor, height: int, width: int, quality: float,
                      steps: int, tick=None) -> tuple[Tensor, Tensor]:
    """Optimised gained latents y' (1, M, h, w) and hyper-latents z (1, Nz, hz, wz), both
    float, of a hyperprior model at ``quality``, from its latents y = g_a(x) and the
    hyper-analysis z = h_a(y') of the gained latents (both computed by the caller, tile by
    tile); the codec rounds and codes them (z to round(z), y' about the means its exact
    hyper-synthesis gives). A large image is optimised window by window on the z grid,
    each with a margin of context held fixed."""
    eb, k, f = model.entropy_bottleneck, model.hyper_factor, model.downsampling_factor
    q = torch.tensor([float(quality)])
    lmbda = float(model.lmbda(float(quality)))
    with torch.no_grad():
        y = y.float() * model.gains(q)
        z = z.float().clone()
        inverse = model.inverse_gains(q)
    h, w = y.shape[-2:]
    c = eb.channels
    for (t0, t1, l0, l1), (u0, u1, m0, m1) in _hyper_windows(h, w, k):
        z_fixed = z[..., u0:u1, m0:m1].clone()
        z_core = _mask(z_fixed.shape, (t0 - u0, t1 - u0, l0 - m0, l1 - m0))
        ya, yb, yl, yr = u0 * k, min(h, u1 * k), m0 * k, min(w, m1 * k)  # the window's latents
        y_fixed = y[..., ya:yb, yl:yr].clone()
        y_box = (t0 * k - ya, min(h, t1 * k) - ya, l0 * k - yl, min(w, l1 * k) - yl)
        y_core = _mask(y_fixed.shape, y_box)
        p_box = (y_box[0] * f, min(height - ya * f, y_box[1] * f), y_box[2] * f, min(width - yl * f, y_box[3] * f))
        target = x[..., ya * f:yb * f, yl * f:yr * f][..., p_box[0]:p_box[1], p_box[2]:p_box[3]]
        y_free = y_fixed.clone().requires_grad_(True)
        z_free = z_fixed.clone().requires_grad_(True)
        opt = torch.optim.Adam([y_free, z_free], lr=learning_rate(steps))
        for tau in _temperatures(steps):
            # h_s reads round(z); the coded symbol is round(z) - median
            z_now = torch.where(z_core, z_free, z_fixed)
            z_hat = torch.where(z_core, sga_round(z_now, tau), torch.round(z_now))
            mass = eb._mass(z_hat.transpose(0, 1).reshape(c, 1, -1), stop_gradient=True)
            bits_z = -torch.log2(mass.clamp_min(eb.likelihood_bound)).reshape(c, *z_hat.shape[2:])[z_core[0]].sum()
            index, mu = model.hyper_synthesis(z_hat)
            index, mu = index[..., :yb - ya, :yr - yl], mu[..., :yb - ya, :yr - yl]
            r = torch.where(y_core, y_free, y_fixed) - mu
            residual = torch.where(y_core, sga_round(r, tau), torch.round(r))
            bits_y = -torch.log2(model.gaussian.likelihood(residual, index))[y_core].sum()
            x_hat = _synthesis(model.g_s, (residual + mu) * inverse)[..., p_box[0]:p_box[1], p_box[2]:p_box[3]]
            _descend(opt, bits_y + bits_z, x_hat, target, lmbda, tick)
        with torch.no_grad():
            y[..., ya:yb, yl:yr] = torch.where(y_core, y_free, y_fixed)
            z[..., u0:u1, m0:m1] = torch.where(z_core, z_free, z_fixed)
    return y, torch.round(z)


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over the optimisation steps (or a no-op)."""
    if not enabled or total == 0:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="step", desc="encoder effort", leave=False, dynamic_ncols=True)


def total_steps(height: int, width: int, steps: int, hyper_factor: int | None = None) -> int:
    """Steps over all windows of an h x w latent grid (a hyperprior model's windows lie
    on its z grid, ``hyper_factor`` latent positions per z position)."""
    if hyper_factor:
        return steps * sum(1 for _ in _hyper_windows(height, width, hyper_factor))
    return steps * _window_count(height, width)


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
