"""licodec's error types. Every failure a user can cause ends in one of these."""


class LicodecError(Exception):
    """Base class of all errors licodec raises on purpose."""


class BitstreamError(LicodecError):
    """A .lic file is malformed, truncated, corrupted or of an unknown version."""


class ModelError(LicodecError):
    """Weights are missing, tampered with, or do not match the file being decoded."""


class ImageError(LicodecError):
    """An input image cannot be read, or cannot be coded without losing something."""
