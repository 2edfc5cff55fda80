"""Fuzzing the decoder: every input ends in a LicodecError or a correct-shape image, fast.

LICODEC_FUZZ_INPUTS (default 10000) inputs per run, seeded by LICODEC_FUZZ_SEED
(default: a fixed seed, so that CI runs replay exactly; LICODEC_FUZZ_SEED=date seeds
with today's date, for longer runs that explore: LICODEC_FUZZ_INPUTS=200000
LICODEC_FUZZ_SEED=date). The seed is printed. A failing input is written to
tests/fuzz_regressions/ when LICODEC_FUZZ_SAVE=1; the files there are replayed on every
run. The corpus holds files of both format versions and of both model kinds.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from licodec.codec import decode_array, encode_array
from licodec.errors import LicodecError, ModelError
from licodec.zoo.artifact import load_artifact_bytes

from .conftest import smooth_image

REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
N_INPUTS = int(os.environ.get("LICODEC_FUZZ_INPUTS", "10000"))
FIXED_SEED = 20261125
_seed = os.environ.get("LICODEC_FUZZ_SEED", str(FIXED_SEED))
SEED = int(datetime.date.today().strftime("%Y%m%d") if _seed == "date" else _seed)
# per input, in CPU seconds of the process (all its threads): a decoder that loops or works
# far too long uses CPU, while a machine busy with other work only delays it
TIME_LIMIT_S = 5.0
MEMORY_LIMIT_BYTES = 3 << 30  # peak resident memory of the whole test process
NAME_AT = 8  # offset of the model name in the header (docs/FORMAT.md)

INTERESTING_U32 = [0, 1, 2, 15, 16, 17, 255, 256, 4095, 65535, 65536, 65537, 1 << 24, (1 << 31) - 1,
                   1 << 31, (1 << 32) - 1]


def fix_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def peak_memory_bytes() -> int | None:
    """Peak resident memory of this process, or None where it cannot be read."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux kB


def mutate(rng: np.random.Generator, corpus: list[bytes]) -> bytes:
    data = bytearray(corpus[rng.integers(len(corpus))])
    kind = rng.integers(7)
    if kind == 0:  # truncation
        data = data[: rng.integers(len(data))]
    elif kind == 1:  # bit flips
        for _ in range(rng.integers(1, 9)):
            i = rng.integers(len(data))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == 2:  # insertion
        i = rng.integers(len(data) + 1)
        data[i:i] = rng.integers(0, 256, rng.integers(1, 17), dtype=np.uint8).tobytes()
    elif kind == 3:  # deletion
        i = rng.integers(len(data))
        del data[i: i + rng.integers(1, 17)]
    elif kind == 4:  # forged header field
        name_len = data[7]
        fixed = NAME_AT + name_len + 16  # width, height, channels, depth, coder, precision, quality
        # version 1: u8 quality, then the payload length; version 2: u16 quality, the
        # section count, then the first section's name and length
        length_at = fixed + 13 if data[4] == 1 else fixed + 15 + 1 + data[fixed + 15]
        field = rng.integers(9)
        if field in (0, 1):
            struct.pack_into(">I", data, fixed + 4 * field, int(rng.choice(INTERESTING_U32)))
        elif field == 2:
            struct.pack_into(">I", data, length_at, int(rng.choice(INTERESTING_U32)))  # payload length
        elif field == 3:
            data[4] = int(rng.integers(256))  # version
        elif field == 4:
            struct.pack_into(">H", data, 5, int(rng.integers(65536)))  # header length
        elif field == 5:
            data[7] = int(rng.integers(256))  # name length
        elif field == 6:
            data[NAME_AT + name_len + int(rng.integers(16))] ^= 0xFF  # model digest
        else:  # small fields: channels, depth, coder, precision, quality (and the section count)
            data[fixed + 8 + int(rng.integers(7))] = int(rng.integers(256))
    elif kind == 5:  # splice of two files
        other = corpus[rng.integers(len(corpus))]
        i = rng.integers(len(data))
        data = data[:i] + other[rng.integers(len(other)):]
    else:  # random bytes, sometimes behind the magic
        data = bytearray(rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes())
        if rng.random() < 0.5:
            data[:0] = b"\x89LIC\x01"
    data = bytes(data)
    return fix_crc(data) if rng.random() < 0.5 else data


def check_one(data: bytes, art) -> str:
    """Decodes with ``art`` (or, given several, the one whose digest the file names)."""
    if isinstance(art, (list, tuple)):
        digest = data[NAME_AT + data[7]: NAME_AT + data[7] + 16] if len(data) > 8 else b""
        art = next((a for a in art if a.digest.startswith(digest)), art[0]) if len(digest) == 16 else art[0]
    t0 = time.process_time()
    try:
        out = decode_array(data, art)
    except LicodecError:
        outcome = "error"
    else:
        assert out.dtype == np.uint8 and out.ndim in (2, 3)
        outcome = "decoded"
    assert time.process_time() - t0 < TIME_LIMIT_S
    return outcome


@pytest.fixture(scope="module")
def corpus(tiny_artifact, tiny_hp_artifact):
    from licodec import bitstream
    shapes = [(16, 16, 3), (33, 47, 3), (20, 20, 1), (1, 1, 3), (40, 3, 3), (70, 90, 3)]
    files = [encode_array(smooth_image(h, w, seed=i, channels=c), tiny_artifact)
             for i, (h, w, c) in enumerate(shapes)]
    files += [encode_array(smooth_image(h, w, seed=i, channels=c), tiny_hp_artifact, 1 + 1.5 * i)
              for i, (h, w, c) in enumerate(shapes)]
    files.append(encode_array(smooth_image(24, 24), tiny_hp_artifact, 5, icc=bytes(range(256)) * 4))
    for data in files[:3]:  # the same latents in a version 1 file
        header, sections = bitstream.read(data)
        files.append(bitstream.write_v1(header, sections["y"]))
    return files


def test_fuzz_decoder(corpus, tiny_artifact, tiny_hp_artifact):
    print(f"fuzz seed {SEED}, {N_INPUTS} inputs")
    rng = np.random.default_rng(SEED)
    counts = {"error": 0, "decoded": 0}
    for i in range(N_INPUTS):
        data = mutate(rng, corpus)
        try:
            counts[check_one(data, [tiny_artifact, tiny_hp_artifact])] += 1
        except BaseException:
            if os.environ.get("LICODEC_FUZZ_SAVE") == "1":
                REGRESSIONS.mkdir(exist_ok=True)
                (REGRESSIONS / f"{hashlib.sha256(data).hexdigest()[:16]}.lic").write_bytes(data)
            print(f"failing input #{i} of seed {SEED}: {data[:64].hex()}...")
            raise
    print(counts)
    assert counts["error"] > N_INPUTS // 2  # most mutations must be caught
    assert counts["decoded"] > 0  # and some reach the synthesis
    peak = peak_memory_bytes()
    if peak is None:
        print("peak memory not checked: no resource module on this platform")
    else:
        assert peak < MEMORY_LIMIT_BYTES


def stamp_model(data: bytes, art) -> bytes:
    """The same file as if written with ``art``: its digest, and its CRC fixed if it was valid."""
    if len(data) < 9 or data[:4] != b"\x89LIC":
        return data
    at = NAME_AT + data[7]
    stamped = data[:at] + art.digest[:16] + data[at + 16:]
    crc_was_valid = zlib.crc32(data[:-4]) == struct.unpack(">I", data[-4:])[0]
    return fix_crc(stamped) if crc_was_valid else stamped


def test_regression_fixtures_fail_cleanly(tiny_artifact):
    paths = sorted(REGRESSIONS.glob("*.lic"))
    assert len(paths) >= 7
    for path in paths:
        for data in (path.read_bytes(), stamp_model(path.read_bytes(), tiny_artifact)):
            assert check_one(data, tiny_artifact) == "error", path.name


def test_fuzz_weights_loader(tiny_artifact_bytes):
    rng = np.random.default_rng(SEED)
    base = tiny_artifact_bytes
    for _ in range(200):
        data = bytearray(base)
        kind = rng.integers(3)
        if kind == 0:
            data = data[: rng.integers(len(data))]
        elif kind == 1:
            for _ in range(rng.integers(1, 5)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        else:
            struct.pack_into("<Q", data, 0, int(rng.integers(1 << 62)))
        if bytes(data) == base:
            continue
        try:
            load_artifact_bytes(bytes(data))
        except ModelError:
            continue
        # a flip inside JSON whitespace-free metadata can leave the file valid only if
        # nothing hashed changed: then it must load to the same digest
        assert load_artifact_bytes(bytes(data)).digest == load_artifact_bytes(base).digest
