"""Reading user images into arrays and writing decoded ones, with clear refusals.

Input rules: 8-bit gray (L) and 8-bit RGB are coded as they are; EXIF orientation is
applied the way viewers show it. Anything that would lose information (alpha, 16-bit
samples, CMYK, palette with transparency, the other frames of an animated or
multi-page file) is refused unless ``convert=True``.
"""
from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .bitstream.format import MAX_PIXELS
from .errors import ImageError

# img.info key set on an image whose file holds 16 bits per sample in an 8-bit mode
SIXTEEN_BIT = "licodec.16bit"
# img.info key: the frames of an animated or multi-page file (the copies that
# exif_transpose makes forget them)
FRAMES = "licodec.frames"
# Largest ICC profile a file carries along (real ones are a few kB to a few hundred).
MAX_ICC_BYTES = 1 << 22
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
# The container's limit (2**28 pixels) is checked from an image file's header before
# its pixels are decoded.


def _open(path, name: str | None = None) -> Image.Image:
    """Opens an image (a path or a file object called ``name``), refusing oversized ones
    from their header, before decoding pixels."""
    shown = path if name is None else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.format == "LIC":
                raise ImageError(f"{shown}: already a licodec file (decode it first)")
            # Pillow reads 16-bit RGB(A) PNGs as 8-bit modes, dropping the low bytes:
            # remember it, so that to_array refuses them like 16-bit gray ones
            if img.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in img.tile):
                img.info[SIXTEEN_BIT] = True
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{shown}: {width}x{height} is larger than {MAX_PIXELS} pixels")
            img.load()
            img.info[FRAMES] = getattr(img, "n_frames", 1)
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{shown}: is a folder, not an image") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{shown}: image too large to decode safely") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{shown}: not a readable image ({exc})") from None
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        return img


def to_array(image, convert: bool = False) -> np.ndarray:
    """uint8 array (H, W) for gray or (H, W, 3) for RGB from a PIL image or numpy array."""
    if isinstance(image, Image.Image):
        return _pil_to_array(image, convert)
    if isinstance(image, np.ndarray):
        return _numpy_to_array(image, convert)
    raise ImageError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


def icc_profile(image) -> bytes | None:
    """The embedded ICC profile of a PIL image (None for arrays and untagged images)."""
    icc = image.info.get("icc_profile") if isinstance(image, Image.Image) else None
    if not icc:
        return None
    if len(icc) > MAX_ICC_BYTES:
        raise ImageError(f"ICC profile of {len(icc)} bytes is larger than {MAX_ICC_BYTES}")
    return bytes(icc)


def _pil_to_array(img: Image.Image, convert: bool) -> np.ndarray:
    if img.getexif().get(0x0112, 1) != 1:  # EXIF orientation: shown turned, coded turned
        img = ImageOps.exif_transpose(img)
    frames = img.info.get(FRAMES, getattr(img, "n_frames", 1))
    if frames > 1 and not convert:
        raise ImageError(f"image has {frames} frames (animated or multi-page); licodec codes one picture, "
                         "use --convert (convert=True) to code the first frame")
    mode = img.mode
    if img.info.get(SIXTEEN_BIT) and not convert:
        raise ImageError("image has 16 bits per sample; licodec codes 8-bit gray or RGB exactly, "
                         "use --convert (convert=True) to reduce it to 8 bits")
    if mode in ("L", "RGB"):
        return np.asarray(img, dtype=np.uint8).copy()
    if mode == "P":
        if "transparency" in img.info and not convert:
            raise ImageError("palette image with transparency: use --convert to drop it")
        target = "RGB" if "transparency" not in img.info else "RGBA"
        img = img.convert(target)
        return _pil_to_array(img, convert)
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    lossy = {"RGBA": "has an alpha channel", "LA": "has an alpha channel", "PA": "has an alpha channel",
             "I;16": "has 16 bits per sample", "I;16B": "has 16 bits per sample",
             "I;16L": "has 16 bits per sample", "I": "has 32-bit integer samples",
             "F": "has floating-point samples", "CMYK": "is CMYK", "YCbCr": "is YCbCr",
             "LAB": "is Lab", "HSV": "is HSV", "RGBX": "has a fourth channel"}
    reason = lossy.get(mode, f"has mode {mode}")
    if not convert:
        raise ImageError(f"image {reason}; licodec codes 8-bit gray or RGB exactly, "
                         "use --convert (convert=True) to convert it")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if mode != "I" else max(1.0, float(arr.max()))
        return np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)
    if mode in ("LA", "La"):
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _numpy_to_array(arr: np.ndarray, convert: bool) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"array of shape {arr.shape} has no pixels")
    if arr.ndim == 3 and arr.shape[2] == 4:
        if not convert:
            raise ImageError("array has an alpha channel; use convert=True to drop it")
        arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        if not convert:
            raise ImageError("array has 16 bits per sample; use convert=True to reduce it to 8")
        return np.round(arr.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    raise ImageError(f"array of dtype {arr.dtype}: expected uint8 (or uint16 with convert=True)")


def list_images(folder: str | Path) -> list[Path]:
    """Image files below ``folder`` (by suffix), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


STDIO = "-"


def load_image(path: str | Path, convert: bool = False) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) array of an image file ("-": standard input),
    orientation applied."""
    return load_image_icc(path, convert)[0]


def load_image_icc(path: str | Path, convert: bool = False) -> tuple[np.ndarray, bytes | None]:
    """``load_image`` and the file's embedded ICC profile (None if it has none)."""
    if str(path) == STDIO:
        img = _open(io.BytesIO(sys.stdin.buffer.read()), name="standard input")
    else:
        img = _open(path)
    return to_array(img, convert), icc_profile(img)


def load_rgb(path: str | Path) -> np.ndarray:
    """Any readable image as 8-bit RGB (for training and evaluation data)."""
    img = _open(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def write_output(path: str | Path, data: bytes, force: bool = False) -> None:
    """Writes an output the way a user expects of a command-line tool:

    - "-": standard output;
    - a device or a FIFO (``/dev/null``, a pipe): written to directly, never replaced;
    - a symbolic link: written through to its target, atomically (the link stays);
    - a plain path: atomically (``atomic_write``).
    An existing file (or a link's existing target) is replaced only with ``force``.
    """
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OSError(f"{path}: {exc.strerror}") from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        with open(path, "wb") as fh:
            fh.write(data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    atomic_write(path, data, force=force)


def atomic_write(path: str | Path, data: bytes, force: bool = False) -> None:
    """Writes ``data`` to a temporary file beside ``path`` and renames it into place.

    Refuses to replace an existing file unless ``force``; a crash never leaves a
    half-written output.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; use --force to overwrite it")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs follow the umask like any file
        if not force and path.exists():
            raise FileExistsError(f"{path} exists; use --force to overwrite it")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
