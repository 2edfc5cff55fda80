"""The .lic container, versions 1 and 2 (spec: docs/FORMAT.md). Big-endian throughout.

Version 2 (written):
    magic "\\x89LIC" | u8 version | u16 header length | header | u8 section count |
    sections: u8 name length + ASCII name, u32 length, bytes | u32 CRC-32 of everything before it

Version 1 (read; written only by ``write_v1``):
    magic | u8 version | u16 header length | header | u32 payload length | payload | u32 CRC-32

Header: u8 model-name length + ASCII name, 16 bytes of the model's sha256, u32 width,
u32 height, u8 channels (1 or 3), u8 bits per sample (8), u8 coder id, u8 table
precision, then the quality: u16 in thousandths in version 2 (0 for none), u8 whole
qualities in version 1. A version 1 payload reads as the one section "y". The reader
is strict: anything else, including trailing bytes, is a BitstreamError.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from ..errors import BitstreamError

MAGIC = b"\x89LIC"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
DIGEST_BYTES = 16
MAX_NAME_BYTES = 64
# Side and area limits: a forged header cannot make the decoder allocate more than a
# 2**28-pixel image (and its latents) however small the file.
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
MAX_PAYLOAD_BYTES = (1 << 31) - 1

MAX_SECTIONS = 16
_PREFIX = struct.Struct(">4sBH")
_FIXED = {1: struct.Struct(">16sIIBBBBB"), 2: struct.Struct(">16sIIBBBBH")}
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECTION_RE = re.compile(r"^[a-z0-9_]{1,16}$")


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
    quality: int  # in thousandths (4000: quality 4); 0 for a model given by path

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
        if not 0 <= self.quality <= 0xFFFF:
            raise BitstreamError(f"quality code {self.quality} outside 0..65535")


def _header_fields(header: Header, version: int) -> bytes:
    header.validate()
    quality = header.quality
    if version == 1:
        if quality % 1000 or quality > 255_000:
            raise BitstreamError(f"version 1 holds whole qualities 0..255, not {quality / 1000:g}")
        quality //= 1000
    name = header.model_name.encode("ascii")
    return (bytes([len(name)]) + name
            + _FIXED[version].pack(header.model_digest, header.width, header.height, header.channels,
                                   header.bit_depth, header.coder_id, header.precision, quality))


def write(header: Header, sections: dict[str, bytes]) -> bytes:
    """A version 2 file: the header, then the named sections in the given order."""
    if not 1 <= len(sections) <= MAX_SECTIONS:
        raise BitstreamError(f"a file holds 1..{MAX_SECTIONS} sections, not {len(sections)}")
    fields = _header_fields(header, 2)
    body = _PREFIX.pack(MAGIC, 2, len(fields)) + fields + bytes([len(sections)])
    total = 0
    for name, data in sections.items():
        if not _SECTION_RE.match(name):
            raise BitstreamError(f"invalid section name {name!r}")
        total += len(data)
        if total > MAX_PAYLOAD_BYTES:
            raise BitstreamError("payload too large")
        body += bytes([len(name)]) + name.encode("ascii") + struct.pack(">I", len(data)) + bytes(data)
    return body + struct.pack(">I", zlib.crc32(body))


def write_v1(header: Header, payload: bytes) -> bytes:
    """A version 1 file (one payload, whole qualities): what licodec 0.1 wrote."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BitstreamError("payload too large")
    fields = _header_fields(header, 1)
    body = _PREFIX.pack(MAGIC, 1, len(fields)) + fields
    body += struct.pack(">I", len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _walk_sections(data: bytes, pos: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """(raw name, bytes) of the version 2 sections from pos, and where they end;
    refuses sections that run into the CRC."""
    limit = len(data) - 4
    count = data[pos]
    pos += 1
    if not 1 <= count <= MAX_SECTIONS:
        raise BitstreamError(f"section count {count} outside 1..{MAX_SECTIONS}")
    sections = []
    for _ in range(count):
        if pos + 1 > limit or pos + 1 + data[pos] + 4 > limit:
            raise BitstreamError("file is truncated (incomplete section header)")
        n = data[pos]
        name = data[pos + 1: pos + 1 + n]
        (length,) = struct.unpack_from(">I", data, pos + 1 + n)
        pos += 1 + n + 4
        if length > limit - pos:
            raise BitstreamError(f"file is truncated (a section of {length} bytes runs past its end)")
        sections.append((name, data[pos: pos + length]))
        pos += length
    return sections, pos


def _named(sections: list[tuple[bytes, bytes]]) -> dict[str, bytes]:
    named: dict[str, bytes] = {}
    for raw, payload in sections:
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            name = ""
        if not _SECTION_RE.match(name):
            raise BitstreamError(f"invalid section name {raw!r}")
        if name in named:
            raise BitstreamError(f"section {name!r} appears twice")
        named[name] = payload
    return named


def read(data: bytes) -> tuple[Header, dict[str, bytes]]:
    """Parses and checks a whole file; returns its header and its sections by name
    (a version 1 payload is the section "y")."""
    data = bytes(data)
    if not data or not (data.startswith(MAGIC) or MAGIC.startswith(data)):
        raise BitstreamError("not a licodec file (wrong magic bytes)")
    if len(data) < _PREFIX.size:
        raise BitstreamError("file is truncated (incomplete header)")
    _, version, header_len = _PREFIX.unpack_from(data)
    if version not in READ_VERSIONS:
        raise BitstreamError(f"unsupported format version {version} (this licodec reads versions "
                             f"{', '.join(map(str, READ_VERSIONS))})")
    fixed_struct = _FIXED[version]
    expected_fields = 1 + fixed_struct.size
    if header_len < expected_fields or header_len > expected_fields + MAX_NAME_BYTES:
        raise BitstreamError(f"header length {header_len} is invalid")
    pos = _PREFIX.size
    if len(data) < pos + header_len + (4 if version == 1 else 1) + 4:
        raise BitstreamError("file is truncated (incomplete header)")
    name_len = data[pos]
    if 1 + name_len + fixed_struct.size != header_len:
        raise BitstreamError("header length does not match its fields")
    name_bytes = data[pos + 1: pos + 1 + name_len]
    fixed = list(fixed_struct.unpack_from(data, pos + 1 + name_len))
    pos += header_len
    if version == 1:
        fixed[-1] *= 1000
        (payload_len,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if payload_len > MAX_PAYLOAD_BYTES:
            raise BitstreamError(f"payload length {payload_len} is invalid")
        if len(data) < pos + payload_len + 4:
            raise BitstreamError(f"file is truncated ({len(data)} bytes, header announces "
                                 f"{pos + payload_len + 4})")
        if len(data) > pos + payload_len + 4:
            raise BitstreamError(f"{len(data) - pos - payload_len - 4} unexpected bytes after the end of the file")
        end = pos + payload_len
    else:
        end = len(data) - 4
        crc_ok = zlib.crc32(data[:end]) == struct.unpack_from(">I", data, end)[0]
        try:
            raw_sections, walked = _walk_sections(data, pos)
        except BitstreamError as exc:
            # A damaged file: say "truncated" where the sections say so, else "checksum".
            if crc_ok or "truncated" in str(exc):
                raise
            raise BitstreamError("checksum mismatch: the file is corrupted") from None
        if walked < end and not crc_ok:
            raise BitstreamError(f"{end - walked} unexpected bytes after the end of the file")
        if walked != end:
            raise BitstreamError(f"{end - walked} bytes after the last section")
    (crc,) = struct.unpack_from(">I", data, end)
    if zlib.crc32(data[: end]) != crc:
        raise BitstreamError("checksum mismatch: the file is corrupted")
    try:
        name = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("model name is not ASCII") from None
    header = Header(name, *fixed)
    header.validate()
    sections = {"y": data[pos: end]} if version == 1 else _named(raw_sections)
    return header, sections
