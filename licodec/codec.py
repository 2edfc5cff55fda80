"""The only module that wires model, tables, entropy coder and container together.

    image -> [0,1] float, padded -> g_a -> symbols -> coding.encode -> bitstream.write
    bytes -> bitstream.read -> coding.decode -> g_s -> crop, round -> image
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream, coding
from .errors import BitstreamError, ModelError
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


def encode_array(arr: np.ndarray, art: Artifact) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> .lic bytes."""
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else 3
    header = bitstream.Header(art.model_id, art.digest[: bitstream.format.DIGEST_BYTES], width, height,
                              channels, 8, coding.CODER_ID, art.tables.precision, _quality_of(art))
    header.validate()  # refuse oversize images before any work
    x = _to_tensor(arr)
    pad_h, pad_w = pad_amounts(height, width, art.model.downsampling_factor)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    f = art.model.downsampling_factor
    m, h, w = latent_shape(art, height, width)
    symbols = torch.empty((1, m, h, w), dtype=torch.int32)
    with torch.inference_mode():
        tiled_apply(art.model.analyse, x, symbols, f, 1, TILE, MARGIN)
    symbols = symbols[0]
    payload = coding.encode(symbols.reshape(symbols.shape[0], -1).numpy(), art.tables)
    return bitstream.write(header, payload)


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


def decode_array(data: bytes, model=None) -> np.ndarray:
    """.lic bytes -> uint8 (H, W) or (H, W, 3) array."""
    header, payload = bitstream.read(data)
    art = find_model(header, model)
    if header.coder_id != coding.CODER_ID:
        raise BitstreamError(f"unknown entropy coder id {header.coder_id}")
    if header.precision != art.tables.precision:
        raise BitstreamError("table precision in the file does not match the model's tables")
    m, h, w = latent_shape(art, header.height, header.width)
    symbols = coding.decode(payload, art.tables, h * w)
    f = art.model.downsampling_factor

    def synthesise(y):
        return art.model.synthesise(y).clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    image = torch.empty((1, 3, h * f, w * f), dtype=torch.uint8)
    with torch.inference_mode():
        y = torch.from_numpy(symbols).reshape(1, m, h, w)
        tiled_apply(synthesise, y, image, 1, f, TILE, MARGIN)
    out = image[0, :, : header.height, : header.width].permute(1, 2, 0).numpy()
    if header.channels == 1:
        out = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return np.ascontiguousarray(out)


def compress(image, model: str | Path | Artifact | None = None, quality: int | None = None,
             convert: bool = False) -> bytes:
    """Compresses a PIL image or uint8 numpy array into .lic bytes.

    ``model`` is a shipped model name, a path to exported weights, or None for the
    shipped model of ``quality`` (1..8). ``convert=True`` accepts images that lose
    something in coding (alpha is dropped, 16-bit samples become 8-bit).
    """
    art = resolve_model(model, quality)
    return encode_array(to_array(image, convert=convert), art)


def decompress(data: bytes, model: str | Path | Artifact | None = None) -> Image.Image:
    """Decodes .lic bytes into a PIL image (mode L or RGB, as encoded)."""
    arr = decode_array(data, model)
    return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
