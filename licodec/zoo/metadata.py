"""The metadata of a model file, read without torch (safetensors keeps it in a JSON header)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError

FORMAT_NAME = "licodec-model"


def metadata(data: bytes) -> dict:
    # safetensors layout: u64 header length, then a JSON header holding __metadata__.
    if len(data) < 8:
        raise ModelError("weights file is truncated")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 100_000_000:
        raise ModelError("weights file is truncated or has a corrupt header")
    try:
        header = json.loads(data[8: 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError("weights file has a corrupt header") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelError("not a licodec model file (no licodec metadata)")
    return meta


def claimed_digest(path: str | Path) -> bytes | None:
    """The sha256 a model file records (checked only when the file is loaded), or None
    if the file cannot be read as one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            if not 0 < n <= 100_000_000:
                return None
            return bytes.fromhex(metadata(head + fh.read(n))["sha256"])
    except (OSError, ModelError, KeyError, ValueError):
        return None
