"""The only module that wires model, tables, entropy coder and container together.

Factorized models (bls2017):
    image -> [0,1] float, padded -> g_a -> symbols -> coding -> section "y" -> bitstream.write
Hyperprior models (bls2017-hp):
    image -> g_a * gain(q) -> y' -> h_a -> z symbols -> section "z"
                                 z symbols -> integer h_s -> table indexes, means
                                 round(y' - means) -> coded with those indexes -> section "y"
and back: bytes -> bitstream.read -> z -> h_s -> y -> g_s -> crop, round -> image.
"""
from __future__ import annotations

import math
import os
import weakref
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream, coding
from .effort import frozen, progress_bar, refine_factorized, refine_hyperprior, steps_for, total_steps
from .errors import BitstreamError, LicodecError, ModelError
from .imageio import icc_profile, load_image_icc, to_array
from .models.base import transposed_copy
from .ops import native_bf16, pad_amounts, tiled_apply
from .zoo import Artifact, resolve_model
from .zoo.registry import SHIPPED, available_qualities, find_by_digest, is_paper_family, select_model


# Transforms run on tiles of TILE x TILE latent positions (1024 x 1024 pixels for a
# downsampling factor of 16) plus MARGIN positions on each side, wider than the
# receptive fields of g_a and g_s (about 2 and 3 positions for bls2017): memory stays
# bounded by the tile, and tiled output equals whole-image output up to float rounding.
TILE = 64
MARGIN = 6
# The hyper transforms run on tiles of HYPER_TILE x HYPER_TILE z positions (256 x 256
# latent positions), HYPER_MARGIN wider on each side than their receptive field.
HYPER_TILE = 16
HYPER_MARGIN = 4
# Qualities are coded in thousandths.
QUALITY_SCALE = 1000
# A variable-rate model's info may carry an allocation rule (see allocated_quality).
ALLOCATION = "allocation"
# The most the rule moves a quality: beyond the moves it makes on photographs (within 2.2
# on the training images it was fitted on), for content unlike them (a flat screenshot).
MAX_MOVE = 3.0


_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _upright(fn):
    """fn(model, tile) as a function of the tile alone: a tile taller than wide is
    computed on its side by the model's transposed twin (models.base.transposed_copy)
    and turned back, the same result up to float rounding in about half the time."""
    def apply(model, t):
        if t.shape[-2] <= t.shape[-1]:
            return fn(model, t)
        twin = _TWINS.get(model)
        if twin is None:
            twin = _TWINS[model] = transposed_copy(model)
        return fn(twin, t.transpose(-1, -2)).transpose(-1, -2)
    return apply


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """The tile in channels-last layout, on which oneDNN's float convolutions run 10-50%
    faster (the same values up to float rounding; the exact integer path is float64 and
    does not use it). Used for g_s and the hyper-transforms; g_a in channels-last would
    encode 20-30% faster with every model, but the hyperprior's encoding time would then
    exceed 1.25x that of bls2017 (benchmarks/RESULTS.md, "Coding speed")."""
    return t.contiguous(memory_format=torch.channels_last)


def _analysis(model):
    upright = _upright(lambda m, t: m.g_a(t).float())
    return lambda t: upright(model, t)


# The hyper-analysis runs in bf16 where the CPU computes bf16 natively (AVX512-BF16 or
# AMX; 1.7-1.9x faster than float32 there). It only chooses the z symbols that the file
# carries, and the decoder never runs it: its precision changes which z a file holds,
# never whether or how a file decodes. z rounded from bf16 differs from z rounded from
# float32 in about 0.1% of its elements (benchmarks/RESULTS.md, "The hyper-analysis in bf16").
# Elsewhere bf16 is emulated and slow.
HYPER_ANALYSIS_BF16 = native_bf16("cpu")


def _hyper_analysis(model):
    def apply(t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=HYPER_ANALYSIS_BF16):
            return model.h_a(_channels_last(t)).float()
    return apply


def _quality_of(art: Artifact) -> int:
    for q, name in SHIPPED.items():
        if art.model_id == name:
            return q
    return 0


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    # torch.tensor copies: a read-only array (np.asarray of a PIL image) stays untouched
    x = torch.tensor(np.asarray(arr, dtype=np.uint8)).float().div_(255.0)
    if x.dim() == 2:
        x = x.unsqueeze(-1).expand(-1, -1, 3)
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def quality_code(art: Artifact, quality: float | None) -> int:
    """The quality a file records, in thousandths: a hyperprior model's quality in its
    range (its default if None), a shipped factorized model's own quality, else 0."""
    if not art.hyperprior:
        return QUALITY_SCALE * _quality_of(art)
    q_min, q_max = art.model.quality_range
    if quality is None:
        quality = default_quality(art)
    if isinstance(quality, bool) or not isinstance(quality, (int, float, np.integer, np.floating)):
        raise LicodecError(f"quality must be a number, got {type(quality).__name__}")
    if not (math.isfinite(quality) and q_min <= quality <= q_max):
        raise LicodecError(f"quality must lie in {q_min:g}..{q_max:g}, got {quality}")
    return int(round(float(quality) * QUALITY_SCALE))


def default_quality(art: Artifact) -> float:
    return float(art.info.get("default_quality", 5.0))


def _header(arr: np.ndarray, art: Artifact, code: int) -> bitstream.Header:
    height, width = arr.shape[:2]
    header = bitstream.Header(art.model_id, art.digest[: bitstream.format.DIGEST_BYTES], width, height,
                              1 if arr.ndim == 2 else 3, 8, coding.CODER_ID, art.precision, code)
    header.validate()  # refuse oversize images before any work
    return header


def _padded_tensor(arr: np.ndarray, art: Artifact) -> torch.Tensor:
    x = _to_tensor(arr)
    pad_h, pad_w = pad_amounts(arr.shape[0], arr.shape[1], art.model.downsampling_factor)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _with_icc(sections: dict[str, bytes], icc: bytes | None) -> dict[str, bytes]:
    """Adds the optional "icc" section: the image's colour profile, returned on decoding."""
    return {**sections, "icc": bytes(icc)} if icc else sections


def encode_array(arr: np.ndarray, art: Artifact, quality: float | None = None, icc: bytes | None = None,
                 effort: int = 0, progress: bool = False, adapt: bool = True) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> .lic bytes. ``quality``: a hyperprior model's
    quality (any number in its range); a factorized model has one rate. ``icc``: an ICC
    profile to carry along. ``effort`` 1..4 optimises the latents for this image
    (licodec/effort.py), keeping the plain encoding where that costs less. ``adapt``:
    let the model's allocation rule move the quality for this image (allocated_quality);
    False codes at exactly ``quality``."""
    steps_for(effort)
    if art.hyperprior:
        return HyperpriorEncoder(arr, art).encode(quality, icc, effort=effort, progress=progress, adapt=adapt)
    header = _header(arr, art, quality_code(art, quality))
    x = _padded_tensor(arr, art)
    m, h, w = latent_shape(art, arr.shape[0], arr.shape[1])
    y = torch.empty((1, m, h, w), dtype=torch.float32)
    with torch.inference_mode():
        tiled_apply(_analysis(art.model), x, y, art.model.downsampling_factor, 1, TILE, MARGIN)
        symbols = art.model.entropy_bottleneck.quantize(y)

    def write(sym):
        return bitstream.write(header, _with_icc({"y": coding.encode(sym[0].reshape(m, -1).numpy(),
                                                                     art.tables["y"])}, icc))
    data = write(symbols)
    if not effort:
        return data
    lmbda = art.info.get("lmbda")
    if not isinstance(lmbda, (int, float)) or lmbda <= 0:
        raise ModelError(f"model {art.model_id} does not record the lambda it was trained for; "
                         "encoder effort needs it")
    steps = steps_for(effort)
    bar = progress_bar(total_steps(h, w, steps), progress)
    with frozen(art.model):
        refined = refine_factorized(art.model, x, y.clone(), arr.shape[0], arr.shape[1], float(lmbda), steps,
                                    tick=(lambda: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    return cheaper(arr, art, [data, write(refined)], float(lmbda))


def rd_cost(arr: np.ndarray, art: Artifact, data: bytes, lmbda: float) -> float:
    """The real rate-distortion cost of a file: bits per pixel from its bytes plus
    lambda * 255^2 * MSE of its decoded image, the loss the models are trained on."""
    rec = decode_array(data, art).astype(np.float64)
    mse = float(np.mean((rec - arr) ** 2)) / 255.0**2
    return 8.0 * len(data) / (arr.shape[0] * arr.shape[1]) + lmbda * 255.0**2 * mse


def cheaper(arr: np.ndarray, art: Artifact, candidates: list[bytes], lmbda: float) -> bytes:
    """The candidate of lowest real rate-distortion cost (the first on a tie)."""
    costs = [rd_cost(arr, art, data, lmbda) for data in candidates]
    return candidates[int(np.argmin(costs))]


def allocation_rule(art: Artifact) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A variable-rate model's allocation rule from its info: (qualities, reference,
    slope), or None if it has none."""
    rule = art.info.get(ALLOCATION)
    if rule is None:
        return None
    try:
        q = np.asarray(rule["qualities"], dtype=np.float64)
        ref = np.asarray(rule["reference"], dtype=np.float64)
        slope = float(rule["slope"])
        ok = (q.ndim == 1 and q.shape == ref.shape and q.size >= 2 and np.all(np.diff(q) > 0)
              and np.all(np.isfinite(ref)) and math.isfinite(slope))
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ModelError(f"model {art.model_id}: malformed allocation rule in its info")
    return q, ref, slope


def nonzero_share(model, y: torch.Tensor, quality: float) -> float:
    """The share of latents ``y`` (before the gains) that round to nonzero at ``quality``:
    how busy an image is, the measure of the allocation rule."""
    return float((y * model.gains(torch.tensor([quality]))).abs().gt(0.5).float().mean())


def allocated_quality(art: Artifact, y: torch.Tensor, quality: float) -> float:
    """The quality one image is coded at when ``quality`` is asked, from its latents
    ``y`` (before the gains).

    At one quality the network gives every image the same rate-distortion trade-off,
    so an easy image (sky, snow) gets few bits at a high PSNR and a busy one many bits
    at a low PSNR, where a bit buys less. The model's allocation rule moves the quality
    of each image by ``slope * (ln f - reference(quality))``, where f is the share of
    its latents that round to nonzero at ``quality`` (how busy the image is, free once
    the analysis has run) and reference the mean of ln f over training images: busy
    images down, easy ones up, a typical image stays; by MAX_MOVE at most, within the
    model's range. Fitted by scripts/fit_allocation.py; the decoder reads the quality
    used from the header.
    """
    rule = allocation_rule(art)
    if rule is None:
        return quality
    qualities, reference, slope = rule
    model = art.model
    share = nonzero_share(model, y, quality)
    move = slope * (math.log(max(share, 1e-6)) - float(np.interp(quality, qualities, reference)))
    q_min, q_max = model.quality_range
    return min(max(quality + min(max(move, -MAX_MOVE), MAX_MOVE), q_min), q_max)


class HyperpriorEncoder:
    """Encodes one image at any number of qualities; the analysis transform (most of the
    encoder's work) runs once, in the constructor."""

    def __init__(self, arr: np.ndarray, art: Artifact):
        self.arr, self.art = arr, art
        _header(arr, art, 0)
        model = art.model
        self.h, self.w = latent_shape(art, arr.shape[0], arr.shape[1])[1:]
        self.x = _padded_tensor(arr, art)
        self.y = torch.empty((1, model.config.M, self.h, self.w), dtype=torch.float32)
        with torch.inference_mode():
            tiled_apply(_analysis(model), self.x, self.y, model.downsampling_factor, 1, TILE, MARGIN)

    def encode(self, quality: float | None = None, icc: bytes | None = None, effort: int = 0,
               progress: bool = False, adapt: bool = False) -> bytes:
        """The file at ``quality``; ``adapt`` moves it for this image (allocated_quality)."""
        art, model = self.art, self.art.model
        code = quality_code(art, quality)
        if adapt:
            code = int(round(allocated_quality(art, self.y, code / QUALITY_SCALE) * QUALITY_SCALE))
        q = code / QUALITY_SCALE
        h, w, k = self.h, self.w, model.hyper_factor
        with torch.inference_mode():
            y = self.y * model.gains(torch.tensor([q]))
            nz, hz, wz = hyper_shape(art, h, w)
            y_pad = F.pad(y, (0, wz * k - w, 0, hz * k - h), mode="replicate")
            z_float = torch.empty((1, nz, hz, wz), dtype=torch.float32)
            tiled_apply(_hyper_analysis(model), y_pad, z_float, k, 1, HYPER_TILE, HYPER_MARGIN)
            z = model.entropy_bottleneck.quantize(z_float)
        data = self._write(y, z, code, icc)
        steps = steps_for(effort)
        if not steps:
            return data
        bar = progress_bar(total_steps(h, w, steps, k), progress)
        with frozen(model):
            y2, z2 = refine_hyperprior(model, self.x, self.y.clone(), z_float, self.arr.shape[0], self.arr.shape[1],
                                       q, steps, tick=(lambda: bar.update(1)) if bar is not None else None)
        if bar is not None:
            bar.close()
        z2 = (z2 - model.entropy_bottleneck.medians.view(1, -1, 1, 1)).to(torch.int32)
        return cheaper(self.arr, art, [data, self._write(y2, z2, code, icc)], float(model.lmbda(q)))

    def _write(self, y: torch.Tensor, z: torch.Tensor, code: int, icc: bytes | None) -> bytes:
        """The file of gained latents y' and z symbols: y' is coded about the means the
        exact hyper-synthesis gives for z."""
        art = self.art
        nz = z.shape[1]
        index, mu = hyper_predict(art, z, self.h, self.w)
        symbols = torch.round(y - mu).to(torch.int32)
        sections = {"z": coding.encode(z[0].reshape(nz, -1).numpy(), art.tables["z"]),
                    "y": coding.encode_indexed(symbols.reshape(-1).numpy(), index.reshape(-1), art.tables["y"])}
        return bitstream.write(_header(self.arr, art, code), _with_icc(sections, icc))


def hyper_shape(art: Artifact, h: int, w: int) -> tuple[int, int, int]:
    k = art.model.hyper_factor
    return art.model.entropy_bottleneck.channels, -(-h // k), -(-w // k)


def hyper_predict(art: Artifact, z: torch.Tensor, h: int, w: int) -> tuple[np.ndarray, torch.Tensor]:
    """Table indexes (int32 numpy, M x h x w; exact) and means (float32) from z symbols."""
    model = art.model
    k = model.hyper_factor
    m = model.config.M

    def predict(t):
        index, features = model.hyper_index(t)
        return index, model.hyper_mean(features)

    shape = (1, m, z.shape[2] * k, z.shape[3] * k)
    index, mu = torch.empty(shape, dtype=torch.int32), torch.empty(shape, dtype=torch.float32)
    with torch.inference_mode():
        tiled_apply(predict, z, (index, mu), 1, k, HYPER_TILE, HYPER_MARGIN)
    return np.ascontiguousarray(index[0, :, :h, :w].numpy()), mu[:, :, :h, :w]


def latent_shape(art: Artifact, height: int, width: int) -> tuple[int, int, int]:
    f = art.model.downsampling_factor
    return art.model.config.M, -(-height // f), -(-width // f)


def read_header(data: bytes) -> bitstream.Header:
    return bitstream.read(data)[0]


def find_model(header: bitstream.Header, model=None) -> Artifact:
    """The model a file was written with: the given one if it matches, else a shipped one."""
    if model is not None:
        art = resolve_model(model)
        if not art.digest.startswith(header.model_digest):
            raise ModelError(f"file was written with model {header.model_name} "
                             f"({header.model_digest.hex()[:12]}), not with the given weights "
                             f"({art.model_id}, {art.digest.hex()[:12]})")
        return art
    art = find_by_digest(header.model_digest, header.model_name)
    if art is None:
        raise ModelError(f"file needs model {header.model_name} ({header.model_digest.hex()[:12]}), "
                         "which is not installed here; give its weights with --model PATH")
    return art


def _section(sections: dict[str, bytes], name: str) -> bytes:
    if name not in sections:
        raise BitstreamError(f"file has no section {name!r} (sections: {', '.join(sections)})")
    return sections[name]


def decode_array(data: bytes, model=None) -> np.ndarray:
    """.lic bytes -> uint8 (H, W) or (H, W, 3) array."""
    return decode_image(data, model)[0]


def decode_image(data: bytes, model=None) -> tuple[np.ndarray, bytes | None]:
    """.lic bytes -> (uint8 (H, W) or (H, W, 3) array, ICC profile or None)."""
    header, sections = bitstream.read(data)
    icc = sections.pop("icc", None)
    art = find_model(header, model)
    if header.coder_id != coding.CODER_ID:
        raise BitstreamError(f"unknown entropy coder id {header.coder_id}")
    if header.precision != art.precision:
        raise BitstreamError("table precision in the file does not match the model's tables")
    expected = {"z", "y"} if art.hyperprior else {"y"}
    if set(sections) != expected:
        raise BitstreamError(f"file has sections {', '.join(sections)}; model {art.model_id} "
                             f"codes {', '.join(sorted(expected))} (and an optional icc)")
    m, h, w = latent_shape(art, header.height, header.width)
    if art.hyperprior:
        q_min, q_max = art.model.quality_range
        quality = header.quality / QUALITY_SCALE
        if not q_min <= quality <= q_max:
            raise BitstreamError(f"quality {quality:g} in the file is outside the model's {q_min:g}..{q_max:g}")
        nz, hz, wz = hyper_shape(art, h, w)
        z = coding.decode(_section(sections, "z"), art.tables["z"], hz * wz)
        index, mu = hyper_predict(art, torch.from_numpy(z).reshape(1, nz, hz, wz), h, w)
        symbols = coding.decode_indexed(_section(sections, "y"), index, art.tables["y"])
        y = torch.from_numpy(symbols).reshape(1, m, h, w).float() + mu
        q = torch.tensor([quality])
        upright = _upright(lambda model, t: model.synthesise(_channels_last(t), q))
    else:
        symbols = coding.decode(_section(sections, "y"), art.tables["y"], h * w)
        y = torch.from_numpy(symbols).reshape(1, m, h, w)
        upright = _upright(lambda model, t: model.synthesise(_channels_last(t)))

    def synthesise(t):
        return upright(art.model, t).clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    f = art.model.downsampling_factor
    image = torch.empty((1, 3, h * f, w * f), dtype=torch.uint8)
    with torch.inference_mode():
        tiled_apply(synthesise, y, image, 1, f, TILE, MARGIN)
    out = image[0, :, : header.height, : header.width].permute(1, 2, 0).numpy()
    if header.channels == 1:
        out = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return np.ascontiguousarray(out), icc


def _bisect(n: int, ok) -> int | None:
    """The largest i in 0..n-1 with ok(i), for ok true up to some point and false
    after it (None if ok(0) is false)."""
    if not ok(0):
        return None
    lo, hi = 0, n - 1  # ok(lo) holds
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def encode_to_target(arr: np.ndarray, model=None, *, target_bpp: float | None = None, size: int | None = None,
                     target_psnr: float | None = None, icc: bytes | None = None) -> tuple[bytes, str]:
    """Searches the quality for one image: the largest whose file fits ``size`` bytes
    (or ``target_bpp``), or the smallest whose PSNR reaches ``target_psnr`` dB, by real
    encoding (bisection: about 13 encodes for a variable-rate model, whose analysis
    transform runs once). Returns the bytes and a description of the quality chosen.
    """
    from .eval.metrics import psnr
    given = [v is not None for v in (target_bpp, size, target_psnr)]
    if sum(given) != 1:
        raise LicodecError("give exactly one of target_bpp, size and target_psnr")
    for name, value in (("target_bpp", target_bpp), ("size", size), ("target_psnr", target_psnr)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise LicodecError(f"{name} must be a positive number, got {value!r}")
    pixels = arr.shape[0] * arr.shape[1]
    limit = size if size is not None else (None if target_bpp is None else target_bpp * pixels / 8)

    art, _ = select_model(model)
    if art.hyperprior:
        encoder = HyperpriorEncoder(arr, art)
        q_min, q_max = art.model.quality_range
        lo = int(round(q_min * QUALITY_SCALE))
        settings = [(lo + i) / QUALITY_SCALE for i in range(int(round(q_max * QUALITY_SCALE)) - lo + 1)]
        describe = [f"quality {q:g}" for q in settings]

        def make(i):
            return encoder.encode(settings[i], icc)
    else:
        family = model is None or is_paper_family(model)
        arts = [resolve_model(None, q) for q in available_qualities()] if family else [art]
        describe = [f"model {a.model_id}" for a in arts]

        def make(i):
            return encode_array(arr, arts[i], icc=icc)
        settings = arts

    cache: dict[int, bytes] = {}

    def coded(i):
        if i not in cache:
            cache[i] = make(i)
        return cache[i]

    if limit is not None:
        best = _bisect(len(settings), lambda i: len(coded(i)) <= limit)
        if best is None:
            smallest = len(coded(0))
            raise LicodecError(f"cannot fit {math.floor(limit)} bytes ({8 * limit / pixels:.4f} bpp): the smallest "
                               f"file ({describe[0]}) is {smallest} bytes ({8 * smallest / pixels:.4f} bpp)")
        return coded(best), describe[best]
    n = len(settings)
    quality = {}

    def reaches(i):
        if i not in quality:
            quality[i] = psnr(arr, decode_array(coded(i), art if art.hyperprior else settings[i]))
        return quality[i] >= target_psnr
    # smallest i that reaches the target = (largest i that does not) + 1
    below = _bisect(n, lambda i: not reaches(i))
    best = 0 if below is None else below + 1
    if best >= n:
        raise LicodecError(f"cannot reach {target_psnr:g} dB: the best setting ({describe[-1]}) gives "
                           f"{quality[n - 1]:.2f} dB")
    return coded(best), describe[best]


def compress(image, model: str | Path | Artifact | None = None, quality: float | None = None,
             convert: bool = False, *, target_bpp: float | None = None, size: int | None = None,
             target_psnr: float | None = None, effort: int = 0, progress: bool = False,
             adapt: bool = True) -> bytes:
    """Compresses a PIL image or uint8 numpy array into .lic bytes.

    ``model``: a shipped model name, ``"bls2017"`` (the paper's eight models, one per
    whole ``quality`` 1..8), a path to exported weights, or None for the default (the
    variable-rate model where installed, else the bls2017 models). A variable-rate model
    takes any ``quality`` in its range.
    ``target_bpp``, ``size`` (bytes) or ``target_psnr`` (dB) search the quality for
    this image instead (see encode_to_target). ``convert=True`` accepts images that
    lose something in coding (alpha is dropped, 16-bit samples become 8-bit).
    ``effort`` 1..4 spends more encoding time on smaller files of the same quality (the
    decoder and the format are the same; ``progress`` shows a bar). ``adapt=False``
    codes at exactly ``quality``, without the per-image move of allocated_quality.
    """
    if isinstance(image, (str, os.PathLike)):
        arr, icc = load_image_icc(image, convert=convert)
    else:
        arr, icc = to_array(image, convert=convert), icc_profile(image)
    if any(v is not None for v in (target_bpp, size, target_psnr)):
        if quality is not None:
            raise LicodecError("give either a quality or a target, not both")
        if effort:
            raise LicodecError("encoder effort applies to a quality, not to a size or PSNR target")
        return encode_to_target(arr, model, target_bpp=target_bpp, size=size, target_psnr=target_psnr,
                                icc=icc)[0]
    art, quality = select_model(model, quality)
    return encode_array(arr, art, quality, icc, effort=effort, progress=progress, adapt=adapt)


def decompress(data, model: str | Path | Artifact | None = None) -> Image.Image:
    """Decodes .lic bytes (bytes, bytearray, memoryview), or the .lic file at a path,
    into a PIL image (mode L or RGB, as encoded; ``info["icc_profile"]`` if the file
    carries one)."""
    if isinstance(data, (str, os.PathLike)):
        try:
            data = Path(data).read_bytes()
        except OSError as exc:
            raise LicodecError(f"{data}: cannot read ({exc.strerror})") from None
    elif isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
    else:
        raise LicodecError(f"expected .lic bytes or a path, got {type(data).__name__}")
    arr, icc = decode_image(data, model)
    image = Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
    if icc:
        image.info["icc_profile"] = icc
    return image
