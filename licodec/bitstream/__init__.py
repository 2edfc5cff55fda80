"""The .lic container. Never imports torch."""
from .format import FORMAT_VERSION, MAGIC, MAX_PIXELS, MAX_SIDE, Header, read, write, write_v1

__all__ = ["FORMAT_VERSION", "MAGIC", "MAX_PIXELS", "MAX_SIDE", "Header", "read", "write", "write_v1"]
