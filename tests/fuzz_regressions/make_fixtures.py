"""Writes the hand-made nasty inputs of this folder (run: python tests/fuzz_regressions/make_fixtures.py).

Each file carries model name "fixture" and a zero digest; tests/test_fuzz.py stamps the
test model's digest in (and fixes the CRC when the file's CRC was valid) before decoding,
so the input reaches the entropy decoder instead of stopping at the model lookup.
"""
import struct
import zlib
from pathlib import Path

import constriction
import numpy as np

HERE = Path(__file__).parent


def container(width, height, payload, channels=3, crc_ok=True, header_len=None):
    name = b"fixture"
    fields = bytes([len(name)]) + name + struct.pack(">16sIIBBBBB", bytes(16), width, height, channels,
                                                     8, 1, 16, 0)
    body = struct.pack(">4sBH", b"\x89LIC", 1, header_len if header_len is not None else len(fields))
    body += fields + struct.pack(">I", len(payload)) + payload
    crc = zlib.crc32(body) if crc_ok else zlib.crc32(body) ^ 1
    return body + struct.pack(">I", crc)


def escape_overflow_payload(channels=8):
    """A stream of maximal escape prefixes (33 of 0..33): wherever the decoder meets an
    escape it reads a 33-bit extension, which may decode to a value outside int32."""
    enc = constriction.stream.queue.RangeEncoder()
    uniform = constriction.stream.model.Uniform()
    enc.encode(np.full(64, 33, dtype=np.int32), uniform, np.full(64, 34, dtype=np.int32))
    return enc.get_compressed().astype("<u4").tobytes()


def main():
    files = {
        # 2**28 pixels announced, a few bytes of payload, valid CRC: refused as too short
        "huge-dims-valid-crc.lic": container(65536, 4096, b"\0" * 8),
        "max-side-1xN-valid-crc.lic": container(65536, 1, b"\0" * 4),
        # header length disagrees with the name length
        "header-length-mismatch.lic": container(16, 16, b"\0" * 4, header_len=200),
        # payload not a whole number of 32-bit words
        "odd-payload-length.lic": container(16, 16, b"\x01\x02\x03"),
        # far more words than 16x16 pixels can use: data left over
        "leftover-words.lic": container(16, 16, b"\x55" * 4000),
        # a stream of 33-bit escape prefixes
        "escape-overflow.lic": container(16, 16, escape_overflow_payload()),
        # wrong CRC on an otherwise plausible file
        "bad-crc.lic": container(16, 16, b"\0" * 16, crc_ok=False),
    }
    for name, data in files.items():
        (HERE / name).write_bytes(data)
        print(name, len(data))


if __name__ == "__main__":
    main()
