import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from licodec import bitstream
from licodec.errors import BitstreamError


def header(**kw):
    base = dict(model_name="bls2017-mse-q4", model_digest=bytes(range(16)), width=33, height=47,
                channels=3, bit_depth=8, coder_id=1, precision=16, quality=4000)
    base.update(kw)
    return bitstream.Header(**base)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(width=st.integers(1, bitstream.MAX_SIDE), height=st.integers(1, 4096),
       channels=st.sampled_from([1, 3]), payload=st.binary(max_size=200),
       name=st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True), quality=st.integers(0, 65))
def test_read_inverts_write_v1(width, height, channels, payload, name, quality):
    h = header(width=width, height=height, channels=channels, model_name=name, quality=1000 * quality)
    assert bitstream.read(bitstream.write_v1(h, payload)) == (h, {"y": payload})


@settings(max_examples=100, deadline=None, derandomize=True)
@given(width=st.integers(1, bitstream.MAX_SIDE), quality=st.integers(0, 65535),
       sections=st.dictionaries(st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True), st.binary(max_size=100),
                                min_size=1, max_size=16))
def test_read_inverts_write_v2(width, quality, sections):
    h = header(width=width, quality=quality)
    data = bitstream.write(h, sections)
    assert data[4] == 2
    got_header, got = bitstream.read(data)
    assert got_header == h and got == sections and list(got) == list(sections)


def test_v2_sections_are_validated():
    with pytest.raises(BitstreamError, match="sections"):
        bitstream.write(header(), {})
    with pytest.raises(BitstreamError, match="section name"):
        bitstream.write(header(), {"Bad name": b""})
    with pytest.raises(BitstreamError, match="whole qualities"):
        bitstream.write_v1(header(quality=4500), b"")
    data = bitstream.write(header(), {"z": b"ab", "y": b"cd"})
    forged = data[:-4].replace(b"\x01z\x00\x00\x00\x02", b"\x01y\x00\x00\x00\x02")
    with pytest.raises(BitstreamError, match="twice"):
        bitstream.read(forged + struct.pack(">I", zlib.crc32(forged)))


@pytest.mark.parametrize("version", [1, 2])
def test_bad_magic_version_truncation_trailing_and_flips_are_refused(version):
    data = (bitstream.write_v1(header(), b"payload-bytes") if version == 1
            else bitstream.write(header(), {"z": b"hyper", "y": b"payload-bytes"}))
    with pytest.raises(BitstreamError, match="magic"):
        bitstream.read(b"PNG!" + data[4:])
    with pytest.raises(BitstreamError, match="magic"):
        bitstream.read(b"")
    with pytest.raises(BitstreamError, match="version 9"):
        bitstream.read(data[:4] + bytes([9]) + data[5:])
    for cut in range(1, len(data)):
        with pytest.raises(BitstreamError):
            bitstream.read(data[:cut])
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        bitstream.read(data + b"\0")
    for i in range(len(data)):
        for bit in (0, 7):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                bitstream.read(bytes(flipped))


def _forge(h_fields: bytes, payload: bytes = b"") -> bytes:
    body = struct.pack(">4sBH", bitstream.MAGIC, 1, len(h_fields)) + h_fields
    body += struct.pack(">I", len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_forged_huge_dimensions_are_refused_even_with_a_valid_checksum():
    name = b"m"
    for w, h in [(2**32 - 1, 1), (70000, 10), (65536, 65536), (0, 5)]:
        fields = bytes([1]) + name + struct.pack(">16sIIBBBBB", bytes(16), w, h, 3, 8, 1, 16, 1)
        with pytest.raises(BitstreamError, match="size|exceeds"):
            bitstream.read(_forge(fields))


def test_forged_payload_length_is_refused_without_allocation():
    data = bytearray(bitstream.write_v1(header(), b"abc"))
    pos = 4 + 1 + 2 + 1 + len("bls2017-mse-q4") + 29
    struct.pack_into(">I", data, pos, 2**31 - 2)
    with pytest.raises(BitstreamError, match="truncated"):
        bitstream.read(bytes(data))
    data = bytearray(bitstream.write(header(), {"y": b"abc"}))
    pos = 4 + 1 + 2 + 1 + len("bls2017-mse-q4") + 30 + 1 + 2
    struct.pack_into(">I", data, pos, 2**32 - 1)
    with pytest.raises(BitstreamError, match="truncated"):
        bitstream.read(bytes(data))


def test_header_values_are_validated_on_write():
    with pytest.raises(BitstreamError):
        bitstream.write(header(channels=4), {"y": b""})
    with pytest.raises(BitstreamError):
        bitstream.write(header(model_name="bad name!"), {"y": b""})
