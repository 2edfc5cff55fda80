"""Integer-only entropy coding: tables in, bytes out. Never imports torch."""
from .range_coder import CODER_ID, decode, encode
from .tables import CodingTables, quantize_pmf

__all__ = ["CODER_ID", "CodingTables", "quantize_pmf", "encode", "decode"]
