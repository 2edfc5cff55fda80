"""Range coding of integer symbols with per-channel frequency tables (constriction).

Stream layout, channel by channel:
  1. the channel's n symbols, each coded by its table index; values outside the table
     take the row's last entry, the escape;
  2. for each escape in that channel, in order, a prefix k = bit_length(u + 1) - 1 in
     [0, ESCAPE_MAX_BITS) (uniform), where u >= 0 folds the out-of-range value
     (2v above the table, 2v + 1 below it, v its distance from the table's edge);
  3. the k low bits of u + 1, in uniform chunks of at most CHUNK_BITS bits.
Every int32 value is codable; nothing is clamped.
"""
from __future__ import annotations

import numpy as np
import constriction

from ..errors import BitstreamError
from .tables import CodingTables

# Identifies this coder and its stream layout in the file header.
CODER_ID = 1
# u + 1 < 2**33 for any int32 value folded as above.
ESCAPE_MAX_BITS = 34
# constriction's uniform model takes alphabets below 2**24; 16-bit chunks stay clear of it.
CHUNK_BITS = 16

_UNIFORM = constriction.stream.model.Uniform()


def _models(tables: CodingTables):
    scale = float(1 << tables.precision)
    for c in range(tables.channels):
        row = tables.freqs[c, : tables.lengths[c]].astype(np.float64) / scale
        yield constriction.stream.model.Categorical(row, perfect=False)


def _chunk_sizes(bits: np.ndarray) -> np.ndarray:
    """Alphabet sizes of the uniform chunks that carry ``bits`` low bits per escape."""
    sizes = []
    for k in bits.tolist():
        while k > 0:
            step = min(k, CHUNK_BITS)
            sizes.append(1 << step)
            k -= step
    return np.array(sizes, dtype=np.int32)


def _split_chunks(values: np.ndarray, bits: np.ndarray) -> np.ndarray:
    out = []
    for v, k in zip(values.tolist(), bits.tolist()):
        while k > 0:
            step = min(k, CHUNK_BITS)
            k -= step
            out.append((v >> k) & ((1 << step) - 1))
    return np.array(out, dtype=np.int32)


def _join_chunks(chunks: np.ndarray, bits: np.ndarray) -> np.ndarray:
    out, pos = [], 0
    for k in bits.tolist():
        v = 1
        while k > 0:
            step = min(k, CHUNK_BITS)
            v = (v << step) | int(chunks[pos])
            pos += 1
            k -= step
        out.append(v)
    return np.array(out, dtype=np.int64)


def encode(symbols: np.ndarray, tables: CodingTables) -> bytes:
    """Codes int32 ``symbols`` of shape (C, n), row c with table row c."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 2 or symbols.shape[0] != tables.channels:
        raise ValueError(f"symbols must have shape ({tables.channels}, n), got {symbols.shape}")
    if symbols.dtype != np.int32:
        raise ValueError(f"symbols must be int32, got {symbols.dtype}")
    encoder = constriction.stream.queue.RangeEncoder()
    for c, model in enumerate(_models(tables)):
        escape = int(tables.lengths[c]) - 1
        index = symbols[c].astype(np.int64) - int(tables.offsets[c])
        outside = (index < 0) | (index >= escape)
        encoder.encode(np.where(outside, escape, index).astype(np.int32), model)
        if outside.any():
            idx = index[outside]
            u = np.where(idx >= escape, 2 * (idx - escape), 2 * (-idx - 1) + 1) + 1
            bits = np.array([int(v).bit_length() - 1 for v in u.tolist()], dtype=np.int32)
            encoder.encode(bits, _UNIFORM, np.full(bits.size, ESCAPE_MAX_BITS, dtype=np.int32))
            if bits.sum() > 0:
                encoder.encode(_split_chunks(u, bits), _UNIFORM, _chunk_sizes(bits))
    return encoder.get_compressed().astype("<u4").tobytes()


def min_payload_bits(tables: CodingTables, count: int) -> float:
    """A lower bound on the coded size of ``count`` symbols per channel, in bits.

    No symbol can cost less than -log2 of its channel's most probable entry; the range
    coder's own 24-bit models may round that probability up a little, hence the 0.9.
    """
    top = tables.freqs.max(axis=1).astype(np.float64) / float(1 << tables.precision)
    return 0.9 * count * float(-np.log2(top).sum())


def decode(data: bytes, tables: CodingTables, count: int) -> np.ndarray:
    """Inverse of :func:`encode`: int32 array of shape (C, count).

    Raises BitstreamError on data that cannot come from ``encode`` with these tables:
    a length that is not whole words, a decoded value outside int32, or leftover words.
    """
    if len(data) % 4:
        raise BitstreamError("entropy-coded payload is not a whole number of 32-bit words")
    if 8 * len(data) + 64 < min_payload_bits(tables, count):
        raise BitstreamError(f"payload of {len(data)} bytes is too short for the image size in the "
                             "header (forged or corrupt header)")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    out = np.empty((tables.channels, count), dtype=np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for c, model in enumerate(_models(tables)):
            escape = int(tables.lengths[c]) - 1
            index = decoder.decode(model, count).astype(np.int64)
            outside = index == escape
            n_escapes = int(outside.sum())
            if n_escapes:
                bits = decoder.decode(_UNIFORM, np.full(n_escapes, ESCAPE_MAX_BITS, dtype=np.int32))
                bits = bits.astype(np.int32)
                sizes = _chunk_sizes(bits)
                chunks = decoder.decode(_UNIFORM, sizes) if sizes.size else sizes
                u = _join_chunks(chunks, bits) - 1
                folded = np.where(u % 2 == 0, escape + u // 2, -(u // 2) - 1)
                index[outside] = folded
            values = index + int(tables.offsets[c])
            if values.size and (values.min() < np.iinfo(np.int32).min or values.max() > np.iinfo(np.int32).max):
                raise BitstreamError("entropy-coded payload decodes to values outside int32")
            out[c] = values
        if not decoder.maybe_exhausted():
            raise BitstreamError("entropy-coded payload has data left over after the last symbol")
    except BitstreamError:
        raise
    except Exception as exc:  # constriction reports malformed streams as generic errors
        raise BitstreamError(f"entropy-coded payload is corrupt ({exc})") from None
    return out
