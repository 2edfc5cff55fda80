"""Integer-only entropy coding: tables in, bytes out. Never imports torch."""
from .range_coder import CODER_ID, decode, decode_indexed, encode, encode_indexed
from .tables import CodingTables, quantize_pmf

__all__ = ["CODER_ID", "CodingTables", "quantize_pmf", "encode", "decode", "encode_indexed", "decode_indexed"]
