"""Range coding of integer symbols, each with the frequency table its index names (constriction).

Every symbol has a table index (the latent channel for a factorized model, an index
predicted from the hyper-latents for a hyperprior model). Stream layout, table by table
in increasing index, for the tables that code at least one symbol:
  1. the symbols of that table in increasing position, each coded by its table entry;
     values outside the table take the row's last entry, the escape;
  2. for each escape among them, in order, a prefix k = bit_length(u + 1) - 1 in
     [0, ESCAPE_MAX_BITS) (uniform), where u >= 0 folds the out-of-range value
     (2v above the table, 2v + 1 below it, v its distance from the table's edge);
  3. the k low bits of u + 1, in uniform chunks of at most CHUNK_BITS bits.
Every int32 value is codable; nothing is clamped.
"""
from __future__ import annotations

import weakref

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


# constriction's model of each table row, built on first use and kept with the tables
# (they are immutable, and building one costs more than coding a few hundred symbols).
_MODELS: "weakref.WeakKeyDictionary[CodingTables, list]" = weakref.WeakKeyDictionary()


def _model(tables: CodingTables, row: int):
    models = _MODELS.get(tables)
    if models is None:
        models = _MODELS[tables] = [None] * tables.channels
    model = models[row]
    if model is None:
        freqs = tables.freqs[row, : tables.lengths[row]].astype(np.float64) / float(1 << tables.precision)
        model = models[row] = constriction.stream.model.Categorical(freqs, perfect=False)
    return model


def _groups(indexes: np.ndarray, n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): the positions of the symbols of table k, in increasing order,
    are order[bounds[k]:bounds[k + 1]]."""
    # a stable sort gives the one order whatever the algorithm; on 8- or 16-bit keys
    # numpy's is a radix sort, 6x faster than on int64 for a 768x512 image's latents
    key = indexes.astype(np.uint8 if n_tables <= 1 << 8 else np.uint16 if n_tables <= 1 << 16 else np.int64)
    order = np.argsort(key, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(indexes, minlength=n_tables))])
    return order, bounds


def _check_indexes(indexes: np.ndarray, n: int, tables: CodingTables) -> np.ndarray:
    indexes = np.asarray(indexes)
    if indexes.shape != (n,) or indexes.dtype.kind not in "iu":
        raise ValueError(f"indexes must be {n} integers, got {indexes.dtype} {indexes.shape}")
    if n and (indexes.min() < 0 or indexes.max() >= tables.channels):
        raise ValueError(f"table indexes must lie in 0..{tables.channels - 1}")
    return indexes.astype(np.int64)


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


# Symbols prepared at once (table order): runs of whole tables of at most this many
# symbols, or one larger table; bounds the coder's working memory on large images.
BLOCK_SYMBOLS = 1 << 20


def _blocks(bounds: np.ndarray):
    """(first, end) table ranges of ``_groups``' bounds, each holding at most
    BLOCK_SYMBOLS symbols or a single table."""
    n = bounds.size - 1
    first = 0
    while first < n:
        end = int(np.searchsorted(bounds, bounds[first] + BLOCK_SYMBOLS, side="right")) - 1
        end = min(max(end, first + 1), n)
        yield first, end
        first = end


def _per_symbol(row_values: np.ndarray, bounds: np.ndarray, first: int, end: int):
    """A per-table value for every symbol of tables first..end-1 (int64; a scalar for
    one table)."""
    if end - first == 1:
        return np.int64(row_values[first])
    return np.repeat(row_values[first:end].astype(np.int64), np.diff(bounds[first: end + 1]))


def encode_indexed(symbols: np.ndarray, indexes: np.ndarray, tables: CodingTables) -> bytes:
    """Codes int32 ``symbols`` (1-D), symbol i with table row ``indexes[i]``.

    Table by table (rows 0, 1, ...), the symbols of that table in increasing position,
    then that table's escapes (module docstring). The decoder needs the same indexes.
    """
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or symbols.dtype != np.int32:
        raise ValueError(f"symbols must be a 1-D int32 array, got {symbols.dtype} {symbols.shape}")
    indexes = _check_indexes(indexes, symbols.size, tables)
    order, bounds = _groups(indexes, tables.channels)
    encoder = constriction.stream.queue.RangeEncoder()
    for first, end in _blocks(bounds):
        base = int(bounds[first])
        # each symbol's entry in its row; those outside the row are coded as its escape
        entry = symbols[order[base: bounds[end]]].astype(np.int64) - _per_symbol(tables.offsets, bounds, first, end)
        top = _per_symbol(tables.lengths, bounds, first, end) - 1
        outside = (entry < 0) | (entry >= top)
        coded = np.where(outside, top, entry).astype(np.int32)
        used = [k for k in range(first, end) if bounds[k] < bounds[k + 1]]
        escapes = np.add.reduceat(outside, bounds[used] - base, dtype=np.int64) if used else []
        for k, n_escapes in zip(used, escapes):
            lo, hi = int(bounds[k]) - base, int(bounds[k + 1]) - base
            encoder.encode(coded[lo:hi], _model(tables, k))
            if n_escapes:
                row_top = int(tables.lengths[k]) - 1
                idx = entry[lo:hi][outside[lo:hi]]
                u = np.where(idx >= row_top, 2 * (idx - row_top), 2 * (-idx - 1) + 1) + 1
                bits = np.array([int(v).bit_length() - 1 for v in u.tolist()], dtype=np.int32)
                encoder.encode(bits, _UNIFORM, np.full(bits.size, ESCAPE_MAX_BITS, dtype=np.int32))
                if bits.sum() > 0:
                    encoder.encode(_split_chunks(u, bits), _UNIFORM, _chunk_sizes(bits))
    return encoder.get_compressed().astype("<u4").tobytes()


def encode(symbols: np.ndarray, tables: CodingTables) -> bytes:
    """Codes int32 ``symbols`` of shape (C, n), row c with table row c."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 2 or symbols.shape[0] != tables.channels:
        raise ValueError(f"symbols must have shape ({tables.channels}, n), got {symbols.shape}")
    if symbols.dtype != np.int32:
        raise ValueError(f"symbols must be int32, got {symbols.dtype}")
    return encode_indexed(symbols.reshape(-1), _channel_indexes(*symbols.shape), tables)


def _channel_indexes(channels: int, count: int) -> np.ndarray:
    return np.repeat(np.arange(channels, dtype=np.int32), count)


def min_payload_bits(tables: CodingTables, indexes: np.ndarray) -> float:
    """A lower bound on the coded size of symbols coded with these table indexes, in bits.

    No symbol can cost less than -log2 of its table's most probable entry; the range
    coder's own 24-bit models may round that probability up a little, hence the 0.9.
    """
    top = tables.freqs.max(axis=1).astype(np.float64) / float(1 << tables.precision)
    counts = np.bincount(np.asarray(indexes, dtype=np.int64), minlength=tables.channels)
    return 0.9 * float((counts * -np.log2(top)).sum())


def decode_indexed(data: bytes, indexes: np.ndarray, tables: CodingTables) -> np.ndarray:
    """Inverse of :func:`encode_indexed`: int32 array shaped like ``indexes``.

    Raises BitstreamError on data that cannot come from ``encode_indexed`` with these
    tables and indexes: a length that is not whole words, a decoded value outside int32,
    or leftover words.
    """
    shape = np.asarray(indexes).shape
    indexes = _check_indexes(np.asarray(indexes).reshape(-1), int(np.prod(shape)), tables)
    if len(data) % 4:
        raise BitstreamError("entropy-coded payload is not a whole number of 32-bit words")
    if 8 * len(data) + 64 < min_payload_bits(tables, indexes):
        raise BitstreamError(f"payload of {len(data)} bytes is too short for the image size in the "
                             "header (forged or corrupt header)")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    out = np.empty(indexes.size, dtype=np.int32)
    order, bounds = _groups(indexes, tables.channels)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for first, end in _blocks(bounds):
            base = int(bounds[first])
            entry = np.empty(int(bounds[end]) - base, dtype=np.int64)
            for k in range(first, end):
                lo, hi = int(bounds[k]) - base, int(bounds[k + 1]) - base
                if lo == hi:
                    continue
                got = decoder.decode(_model(tables, k), hi - lo).astype(np.int64)
                row_top = int(tables.lengths[k]) - 1
                outside = got == row_top
                n_escapes = int(np.count_nonzero(outside))
                if n_escapes:
                    bits = decoder.decode(_UNIFORM, np.full(n_escapes, ESCAPE_MAX_BITS, dtype=np.int32))
                    bits = bits.astype(np.int32)
                    sizes = _chunk_sizes(bits)
                    chunks = decoder.decode(_UNIFORM, sizes) if sizes.size else sizes
                    u = _join_chunks(chunks, bits) - 1
                    got[outside] = np.where(u % 2 == 0, row_top + u // 2, -(u // 2) - 1)
                entry[lo:hi] = got
            entry += _per_symbol(tables.offsets, bounds, first, end)
            if entry.size and (entry.min() < np.iinfo(np.int32).min or entry.max() > np.iinfo(np.int32).max):
                raise BitstreamError("entropy-coded payload decodes to values outside int32")
            out[order[base: bounds[end]]] = entry
        if not decoder.maybe_exhausted():
            raise BitstreamError("entropy-coded payload has data left over after the last symbol")
    except BitstreamError:
        raise
    except Exception as exc:  # constriction reports malformed streams as generic errors
        raise BitstreamError(f"entropy-coded payload is corrupt ({exc})") from None
    return out.reshape(shape)


def decode(data: bytes, tables: CodingTables, count: int) -> np.ndarray:
    """Inverse of :func:`encode`: int32 array of shape (C, count)."""
    return decode_indexed(data, _channel_indexes(tables.channels, count), tables).reshape(tables.channels, count)
