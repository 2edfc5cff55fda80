"""licodec: a learned image codec (Balle, Laparra, Simoncelli 2017, and beyond)."""
from .errors import BitstreamError, ImageError, LicodecError, ModelError
from .pillow_plugin import register as _register_pillow_plugin

__version__ = "0.1.0"
__all__ = ["compress", "decompress", "LicodecError", "BitstreamError", "ModelError", "ImageError",
           "__version__"]


_register_pillow_plugin()  # Image.open("x.lic") and im.save("x.lic", quality=...)


def compress(image, model=None, quality=None, convert=False, *, target_bpp=None, size=None,
             target_psnr=None, effort=0, progress=False, adapt=True) -> bytes:
    from .codec import compress as _compress
    return _compress(image, model=model, quality=quality, convert=convert, target_bpp=target_bpp,
                     size=size, target_psnr=target_psnr, effort=effort, progress=progress, adapt=adapt)


compress.__doc__ = """Compress a PIL image, a uint8 numpy array or an image file's path into .lic bytes
(see licodec.codec.compress)."""


def decompress(data: bytes, model=None):
    from .codec import decompress as _decompress
    return _decompress(data, model=model)


decompress.__doc__ = """Decode .lic bytes or a .lic file's path into a PIL image (see licodec.codec.decompress)."""
