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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream, coding
from .errors import BitstreamError, LicodecError, ModelError
from .imageio import to_array
from .ops import pad_amounts, tiled_apply
from .zoo import Artifact, resolve_model
from .zoo.registry import SHIPPED, find_by_digest


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


def _quality_of(art: Artifact) -> int:
    for q, name in SHIPPED.items():
        if art.model_id == name:
            return q
    return 0


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(arr).float().div_(255.0)
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


def encode_array(arr: np.ndarray, art: Artifact, quality: float | None = None) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> .lic bytes. ``quality``: a hyperprior model's
    quality (any number in its range); a factorized model has one rate."""
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else 3
    code = quality_code(art, quality)
    header = bitstream.Header(art.model_id, art.digest[: bitstream.format.DIGEST_BYTES], width, height,
                              channels, 8, coding.CODER_ID, art.precision, code)
    header.validate()  # refuse oversize images before any work
    x = _to_tensor(arr)
    pad_h, pad_w = pad_amounts(height, width, art.model.downsampling_factor)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    f = art.model.downsampling_factor
    m, h, w = latent_shape(art, height, width)
    if art.hyperprior:
        sections = _encode_hyperprior(x, art, code / QUALITY_SCALE, h, w)
    else:
        symbols = torch.empty((1, m, h, w), dtype=torch.int32)
        with torch.inference_mode():
            tiled_apply(art.model.analyse, x, symbols, f, 1, TILE, MARGIN)
        sections = {"y": coding.encode(symbols[0].reshape(m, -1).numpy(), art.tables["y"])}
    return bitstream.write(header, sections)


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
        return torch.cat([index.double(), model.hyper_mean(features).double()], dim=1)

    out = torch.empty((1, 2 * m, z.shape[2] * k, z.shape[3] * k), dtype=torch.float64)
    with torch.inference_mode():
        tiled_apply(predict, z, out, 1, k, HYPER_TILE, HYPER_MARGIN)
    index = out[0, :m, :h, :w].to(torch.int32).numpy()
    return np.ascontiguousarray(index), out[:, m:, :h, :w].float()


def _encode_hyperprior(x: torch.Tensor, art: Artifact, quality: float, h: int, w: int) -> dict[str, bytes]:
    model = art.model
    m, f, k = model.config.M, model.downsampling_factor, model.hyper_factor
    q = torch.tensor([quality])
    y = torch.empty((1, m, h, w), dtype=torch.float32)
    with torch.inference_mode():
        tiled_apply(lambda t: model.analyse(t, q), x, y, f, 1, TILE, MARGIN)
        nz, hz, wz = hyper_shape(art, h, w)
        y_pad = F.pad(y, (0, wz * k - w, 0, hz * k - h), mode="replicate")
        z = torch.empty((1, nz, hz, wz), dtype=torch.int32)
        tiled_apply(model.hyper_analyse, y_pad, z, k, 1, HYPER_TILE, HYPER_MARGIN)
    index, mu = hyper_predict(art, z, h, w)
    symbols = torch.round(y - mu).to(torch.int32)
    return {"z": coding.encode(z[0].reshape(nz, -1).numpy(), art.tables["z"]),
            "y": coding.encode_indexed(symbols.reshape(-1).numpy(), index.reshape(-1), art.tables["y"])}


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
    header, sections = bitstream.read(data)
    art = find_model(header, model)
    if header.coder_id != coding.CODER_ID:
        raise BitstreamError(f"unknown entropy coder id {header.coder_id}")
    if header.precision != art.precision:
        raise BitstreamError("table precision in the file does not match the model's tables")
    expected = {"z", "y"} if art.hyperprior else {"y"}
    if set(sections) != expected:
        raise BitstreamError(f"file has sections {', '.join(sections)}; model {art.model_id} "
                             f"codes {', '.join(sorted(expected))}")
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

        def synthesise(t):
            return art.model.synthesise(t, q).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    else:
        symbols = coding.decode(_section(sections, "y"), art.tables["y"], h * w)
        y = torch.from_numpy(symbols).reshape(1, m, h, w)

        def synthesise(t):
            return art.model.synthesise(t).clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    f = art.model.downsampling_factor
    image = torch.empty((1, 3, h * f, w * f), dtype=torch.uint8)
    with torch.inference_mode():
        tiled_apply(synthesise, y, image, 1, f, TILE, MARGIN)
    out = image[0, :, : header.height, : header.width].permute(1, 2, 0).numpy()
    if header.channels == 1:
        out = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return np.ascontiguousarray(out)


def compress(image, model: str | Path | Artifact | None = None, quality: float | None = None,
             convert: bool = False) -> bytes:
    """Compresses a PIL image or uint8 numpy array into .lic bytes.

    ``model`` is a shipped model name, a path to exported weights, or None for the
    shipped model of ``quality`` (1..8). For a variable-rate (hyperprior) model,
    ``quality`` is any number in its range. ``convert=True`` accepts images that lose
    something in coding (alpha is dropped, 16-bit samples become 8-bit).
    """
    if model is not None:
        art = resolve_model(model)
        if not art.hyperprior and quality is not None:
            raise LicodecError(f"model {art.model_id} has one rate; quality applies to shipped names "
                               "or variable-rate models")
        return encode_array(to_array(image, convert=convert), art, quality)
    art = resolve_model(None, quality)
    return encode_array(to_array(image, convert=convert), art)


def decompress(data: bytes, model: str | Path | Artifact | None = None) -> Image.Image:
    """Decodes .lic bytes into a PIL image (mode L or RGB, as encoded)."""
    arr = decode_array(data, model)
    return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
