"""Integer frequency tables shared, bit for bit, by encoder and decoder."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

# Frequencies sum to 2**CDF_PRECISION; 16 bits keeps the smallest probability at 1.5e-5
# while leaving the range coder's 24-bit model precision room (CompressAI uses 16 too).
CDF_PRECISION = 16


def quantize_pmf(pmf: np.ndarray, precision: int = CDF_PRECISION) -> np.ndarray:
    """Integer frequencies >= 1 summing to exactly 2**precision, close to ``pmf``.

    Deterministic numpy float64 arithmetic; run once at export, never at coding time.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    total = 1 << precision
    n = pmf.size
    if n < 2 or n > total // 2:
        raise ValueError(f"a table needs 2 .. {total // 2} entries, got {n}")
    if not np.all(np.isfinite(pmf)) or np.any(pmf < 0) or pmf.sum() <= 0:
        raise ValueError("pmf must be finite, non-negative and not all zero")
    spare = total - n  # every entry gets 1 for free, the rest is shared out
    share = pmf / pmf.sum() * spare
    freq = np.floor(share).astype(np.int64)
    remainder = spare - int(freq.sum())
    if remainder > 0:  # largest remainders first, ties to the lower index
        order = np.argsort(-(share - freq), kind="stable")[:remainder]
        freq[order] += 1
    return (freq + 1).astype(np.int32)


@dataclass(frozen=True, eq=False)
class CodingTables:
    """One frequency row per channel; the last used entry of each row is the escape.

    freqs:   (C, L) int32, row c uses entries [0, lengths[c]) and is 0 beyond
    lengths: (C,) int32, >= 2
    offsets: (C,) int32, symbol value coded by entry 0 of row c
    precision: the rows sum to 2**precision
    """

    freqs: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    precision: int

    def __post_init__(self):
        freqs, lengths, offsets = self.freqs, self.lengths, self.offsets
        if not (isinstance(self.precision, int) and 8 <= self.precision <= 16):
            raise ModelError(f"coding tables: precision must be 8..16 bits, got {self.precision}")
        if freqs.ndim != 2 or lengths.shape != (freqs.shape[0],) or offsets.shape != lengths.shape:
            raise ModelError("coding tables: inconsistent shapes "
                             f"{freqs.shape}, {lengths.shape}, {offsets.shape}")
        for name, arr in (("freqs", freqs), ("lengths", lengths), ("offsets", offsets)):
            if arr.dtype != np.int32:
                raise ModelError(f"coding tables: {name} must be int32, got {arr.dtype}")
        if freqs.shape[0] == 0:
            raise ModelError("coding tables: no channels")
        if np.any(lengths < 2) or np.any(lengths > freqs.shape[1]):
            raise ModelError("coding tables: row lengths out of range")
        used = np.arange(freqs.shape[1])[None, :] < lengths[:, None]
        if np.any(freqs[used] < 1) or np.any(freqs[~used] != 0):
            raise ModelError("coding tables: frequencies must be >= 1 inside a row and 0 outside")
        if np.any(freqs.astype(np.int64).sum(axis=1) != (1 << self.precision)):
            raise ModelError(f"coding tables: rows must sum to 2**{self.precision}")
        if np.any(np.abs(offsets.astype(np.int64)) > 1 << 24):
            raise ModelError("coding tables: offsets out of range")
        for arr in (freqs, lengths, offsets):
            arr.setflags(write=False)

    @classmethod
    def from_rows(cls, rows: list[np.ndarray], offsets: np.ndarray, precision: int) -> "CodingTables":
        width = max(len(r) for r in rows)
        freqs = np.zeros((len(rows), width), dtype=np.int32)
        for c, row in enumerate(rows):
            freqs[c, : len(row)] = row
        return cls(freqs, np.array([len(r) for r in rows], dtype=np.int32),
                   np.asarray(offsets, dtype=np.int32), int(precision))

    @property
    def channels(self) -> int:
        return self.freqs.shape[0]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"freqs": self.freqs, "lengths": self.lengths, "offsets": self.offsets,
                "precision": np.array([self.precision], dtype=np.int32)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "CodingTables":
        try:
            precision = np.asarray(arrays["precision"]).reshape(-1)
            return cls(np.ascontiguousarray(arrays["freqs"]), np.ascontiguousarray(arrays["lengths"]),
                       np.ascontiguousarray(arrays["offsets"]), int(precision[0]))
        except (KeyError, IndexError) as exc:
            raise ModelError(f"coding tables: missing field {exc}") from None

    def digest(self) -> bytes:
        h = hashlib.sha256()
        for arr in (self.freqs, self.lengths, self.offsets):
            h.update(np.ascontiguousarray(arr, dtype="<i4").tobytes())
            h.update(np.array(arr.shape, dtype="<i8").tobytes())
        h.update(bytes([self.precision]))
        return h.digest()
