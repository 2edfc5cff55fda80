"""encode, decode and info."""
from __future__ import annotations

import io
import os
from pathlib import Path

from ..errors import ImageError, LicodecError
from ..imageio import atomic_write, load_image

# Largest .lic file decode will read: far above any real file, and it bounds memory.
MAX_INPUT_BYTES = 1 << 31


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(src: Path, dst: Path, force: bool) -> None:
    if _same_file(src, dst) or src.resolve() == dst.resolve():
        raise LicodecError(f"{dst}: output would overwrite the input")
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; use --force to overwrite it")


def _read_lic(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise LicodecError(f"{path}: no such file") from None
    if path.is_dir():
        raise LicodecError(f"{path}: is a folder")
    if size > MAX_INPUT_BYTES:
        raise LicodecError(f"{path}: {size} bytes is too large for a .lic file")
    return path.read_bytes()


def add_encode(p):
    p.add_argument("input", type=Path, help="image file (PNG, JPEG, ...)")
    p.add_argument("output", type=Path, nargs="?", help="output .lic file (default: INPUT.lic)")
    p.add_argument("--model", help="shipped model name or path to exported weights (.safetensors)")
    p.add_argument("--quality", "-q", type=int, choices=range(1, 9), metavar="1..8",
                   help="shipped rate point, 1 = smallest files (default 5, or the installed one nearest to it)")
    p.add_argument("--convert", action="store_true",
                   help="accept images that lose something: drop alpha, reduce 16-bit to 8-bit, CMYK to RGB")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")


def run_encode(args) -> int:
    from ..codec import encode_array
    from ..zoo import resolve_model
    out = args.output or args.input.with_name(args.input.name + ".lic")
    _check_output(args.input, out, args.force)
    if args.model is not None and args.quality is not None:
        raise LicodecError("give either --model or --quality, not both")
    arr = load_image(args.input, convert=args.convert)
    art = resolve_model(args.model, args.quality)
    data = encode_array(arr, art)
    atomic_write(out, data, force=args.force)
    h, w = arr.shape[:2]
    print(f"{out}: {len(data)} bytes, {w}x{h}, {8 * len(data) / (w * h):.4f} bpp, model {art.model_id}")
    return 0


def add_decode(p):
    p.add_argument("input", type=Path, help=".lic file")
    p.add_argument("output", type=Path, nargs="?", help="output image, format from its suffix (default: INPUT.png)")
    p.add_argument("--model", help="weights the file was encoded with, if not a shipped model")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")


def run_decode(args) -> int:
    from PIL import Image

    from ..codec import decode_array
    if args.output is not None:
        out = args.output
    elif args.input.suffix == ".lic":
        out = args.input.with_suffix(".png")
    else:
        out = args.input.with_name(args.input.name + ".png")
    _check_output(args.input, out, args.force)
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None:
        raise LicodecError(f"{out}: unknown image format suffix {out.suffix!r} (use .png)")
    arr = decode_array(_read_lic(args.input), args.model)
    buf = io.BytesIO()
    try:
        Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB").save(buf, format=fmt)
    except (OSError, KeyError, ValueError) as exc:
        raise ImageError(f"{out}: cannot write {fmt} ({exc})") from None
    atomic_write(out, buf.getvalue(), force=args.force)
    print(f"{out}: {arr.shape[1]}x{arr.shape[0]} {'gray' if arr.ndim == 2 else 'RGB'}")
    return 0


def add_info(p):
    p.add_argument("input", type=Path, help=".lic file")


def run_info(args) -> int:
    from .. import bitstream
    from ..zoo.registry import find_by_digest
    data = _read_lic(args.input)
    header, payload = bitstream.read(data)
    art = None
    try:
        art = find_by_digest(header.model_digest, header.model_name)
    except LicodecError:
        pass
    pixels = header.width * header.height
    lines = [
        ("file", str(args.input)),
        ("format version", str(bitstream.FORMAT_VERSION)),
        ("size", f"{header.width}x{header.height}, {'gray' if header.channels == 1 else 'RGB'}, "
                 f"{header.bit_depth} bits per sample"),
        ("bytes", f"{len(data)} ({len(payload)} payload)"),
        ("bpp", f"{8 * len(data) / pixels:.4f}"),
        ("model", f"{header.model_name} (sha256 {header.model_digest.hex()}...)"),
        ("quality", str(header.quality) if header.quality else "custom model"),
        ("coder", f"id {header.coder_id}, {header.precision}-bit tables"),
        ("model installed", "yes" if art is not None else "no"),
    ]
    for k, v in lines:
        print(f"{k:>16}: {v}")
    return 0
