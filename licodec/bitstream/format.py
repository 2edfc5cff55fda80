"""The .lic container, version 1 (spec: docs/FORMAT.md). Big-endian throughout.

    magic "\\x89LIC" | u8 version | u16 header length | header | u32 payload length |
    payload | u32 CRC-32 of everything before it

Header: u8 model-name length + ASCII name, 16 bytes of the model's sha256, u32 width,
u32 height, u8 channels (1 or 3), u8 bits per sample (8), u8 coder id, u8 table
precision, u8 quality (0 for a model given by path). The reader is strict: anything
else, including trailing bytes, is a BitstreamError.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from ..errors import BitstreamError

MAGIC = b"\x89LIC"
FORMAT_VERSION = 1
DIGEST_BYTES = 16
MAX_NAME_BYTES = 64
# Side and area limits: a forged header cannot make the decoder allocate more than a
# 2**28-pixel image (and its latents) however small the file.
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
MAX_PAYLOAD_BYTES = (1 << 31) - 1

_PREFIX = struct.Struct(">4sBH")
_FIXED = struct.Struct(">16sIIBBBBB")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Header:
    model_name: str
    model_digest: bytes  # first DIGEST_BYTES of the model's sha256
    width: int
    height: int
    channels: int
    bit_depth: int
    coder_id: int
    precision: int
    quality: int

    def validate(self) -> None:
        if not _NAME_RE.match(self.model_name):
            raise BitstreamError(f"invalid model name {self.model_name!r}")
        if len(self.model_digest) != DIGEST_BYTES:
            raise BitstreamError("model digest must be 16 bytes")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise BitstreamError(f"image size {self.width}x{self.height} outside 1..{MAX_SIDE}")
        if self.width * self.height > MAX_PIXELS:
            raise BitstreamError(f"image of {self.width}x{self.height} exceeds {MAX_PIXELS} pixels")
        if self.channels not in (1, 3):
            raise BitstreamError(f"channel count {self.channels} is not 1 or 3")
        if self.bit_depth != 8:
            raise BitstreamError(f"bit depth {self.bit_depth} is not supported")
        if not 8 <= self.precision <= 16:
            raise BitstreamError(f"table precision {self.precision} outside 8..16")
        if not 0 <= self.quality <= 255:
            raise BitstreamError(f"quality {self.quality} outside 0..255")


def write(header: Header, payload: bytes) -> bytes:
    header.validate()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BitstreamError("payload too large")
    name = header.model_name.encode("ascii")
    fields = (bytes([len(name)]) + name
              + _FIXED.pack(header.model_digest, header.width, header.height, header.channels,
                            header.bit_depth, header.coder_id, header.precision, header.quality))
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(fields)) + fields
    body += struct.pack(">I", len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def read(data: bytes) -> tuple[Header, bytes]:
    """Parses and checks a whole file; returns its header and entropy-coded payload."""
    data = bytes(data)
    if not data or not (data.startswith(MAGIC) or MAGIC.startswith(data)):
        raise BitstreamError("not a licodec file (wrong magic bytes)")
    if len(data) < _PREFIX.size:
        raise BitstreamError("file is truncated (incomplete header)")
    _, version, header_len = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported format version {version} (this licodec reads version "
                             f"{FORMAT_VERSION})")
    expected_fields = 1 + _FIXED.size
    if header_len < expected_fields or header_len > expected_fields + MAX_NAME_BYTES:
        raise BitstreamError(f"header length {header_len} is invalid")
    pos = _PREFIX.size
    if len(data) < pos + header_len + 4:
        raise BitstreamError("file is truncated (incomplete header)")
    name_len = data[pos]
    if 1 + name_len + _FIXED.size != header_len:
        raise BitstreamError("header length does not match its fields")
    name_bytes = data[pos + 1: pos + 1 + name_len]
    fixed = _FIXED.unpack_from(data, pos + 1 + name_len)
    pos += header_len
    (payload_len,) = struct.unpack_from(">I", data, pos)
    pos += 4
    if payload_len > MAX_PAYLOAD_BYTES:
        raise BitstreamError(f"payload length {payload_len} is invalid")
    if len(data) < pos + payload_len + 4:
        raise BitstreamError(f"file is truncated ({len(data)} bytes, header announces "
                             f"{pos + payload_len + 4})")
    if len(data) > pos + payload_len + 4:
        raise BitstreamError(f"{len(data) - pos - payload_len - 4} unexpected bytes after the end of the file")
    (crc,) = struct.unpack_from(">I", data, pos + payload_len)
    if zlib.crc32(data[: pos + payload_len]) != crc:
        raise BitstreamError("checksum mismatch: the file is corrupted")
    try:
        name = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("model name is not ASCII") from None
    header = Header(name, *fixed)
    header.validate()
    return header, data[pos: pos + payload_len]
