"""Pins the exact bytes of the coder and the container (docs/FORMAT.md, Versioning).

A change of these bytes means old files no longer decode: bump the format version or
coder id, then regenerate with LICODEC_REGEN=1.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

from licodec import bitstream
from licodec.coding import CodingTables, encode, encode_indexed, quantize_pmf

GOLDEN = Path(__file__).parent / "golden"


def fixed_stream(version: int = 1) -> bytes:
    rows, offsets = [], []
    for c in range(6):
        half = 3 + 2 * c
        v = np.arange(-half, half + 1, dtype=np.float64)
        pmf = np.concatenate([np.exp(-np.abs(v) / (1 + c)), [1e-4]])
        rows.append(quantize_pmf(pmf, 16))
        offsets.append(-half)
    tables = CodingTables.from_rows(rows, np.array(offsets), 16)
    i = np.arange(6 * 300, dtype=np.int64).reshape(6, 300)
    symbols = (((i * 2654435761) % 97) - 48) // 6  # deterministic, with escapes
    symbols[2, :4] = [2**31 - 1, -(2**31), 70000, -70000]
    payload = encode(symbols.astype(np.int32), tables)
    header = bitstream.Header("golden-model", bytes(range(16)), 300, 200, 3, 8, 1, 16, 0)
    if version == 1:
        return bitstream.write_v1(header, payload)
    # version 2: the same symbols coded with per-symbol table indexes in a second section
    indexes = (np.arange(symbols.size) * 7919) % 6
    indexed = encode_indexed(symbols.reshape(-1).astype(np.int32), indexes, tables)
    return bitstream.write(header, {"z": payload, "y": indexed})


def check(name: str, data: bytes):
    path = GOLDEN / f"{name}.sha256"
    digest = hashlib.sha256(data).hexdigest()
    if os.environ.get("LICODEC_REGEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(digest + "\n")
    assert digest == path.read_text().strip(), f"{name}: bytes changed (see docs/FORMAT.md, Versioning)"


def test_coder_and_container_bytes_are_unchanged():
    check("stream-v1", fixed_stream(1))
    check("stream-v2", fixed_stream(2))
