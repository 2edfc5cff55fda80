"""encode, decode and info."""
from __future__ import annotations

import argparse
import io
import math
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


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def add_encode(p):
    p.add_argument("input", type=Path, help="image file (PNG, JPEG, ...)")
    p.add_argument("output", type=Path, nargs="?", help="output .lic file (default: INPUT.lic)")
    p.add_argument("--model", help="shipped model name or path to exported weights (.safetensors)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--quality", "-q", type=_positive(float), metavar="Q",
                        help="higher is better and larger: any number in the variable-rate model's range "
                             "(1..9), or 1..8 to pick one of the paper's models (default 5)")
    target.add_argument("--target-bpp", type=_positive(float), metavar="BPP",
                        help="the best quality whose file has at most BPP bits per pixel (searched)")
    target.add_argument("--size", type=_positive(int), metavar="BYTES",
                        help="the best quality whose file has at most BYTES bytes (searched)")
    target.add_argument("--target-psnr", type=_positive(float), metavar="DB",
                        help="the smallest file whose PSNR reaches DB decibels (searched)")
    p.add_argument("--convert", action="store_true",
                   help="accept images that lose something: drop alpha, reduce 16-bit to 8-bit, CMYK to RGB")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")


def run_encode(args) -> int:
    from ..codec import encode_array, encode_to_target, read_header
    from ..zoo.registry import select_model
    out = args.output or args.input.with_name(args.input.name + ".lic")
    _check_output(args.input, out, args.force)
    arr = load_image(args.input, convert=args.convert)
    if any(v is not None for v in (args.target_bpp, args.size, args.target_psnr)):
        data, chosen = encode_to_target(arr, args.model, target_bpp=args.target_bpp, size=args.size,
                                        target_psnr=args.target_psnr)
        model_id = read_header(data).model_name
    else:
        art, quality = select_model(args.model, args.quality)
        data = encode_array(arr, art, quality)
        model_id, chosen = art.model_id, ""
        header = read_header(data)
        if art.hyperprior:
            chosen = f"quality {header.quality / 1000:g}"
    atomic_write(out, data, force=args.force)
    h, w = arr.shape[:2]
    print(f"{out}: {len(data)} bytes, {w}x{h}, {8 * len(data) / (w * h):.4f} bpp, model {model_id}"
          + (f", {chosen}" if chosen and not chosen.startswith("model") else ""))
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
    header, sections = bitstream.read(data)
    art = None
    try:
        art = find_by_digest(header.model_digest, header.model_name)
    except LicodecError:
        pass
    pixels = header.width * header.height
    lines = [
        ("file", str(args.input)),
        ("format version", str(data[4])),
        ("size", f"{header.width}x{header.height}, {'gray' if header.channels == 1 else 'RGB'}, "
                 f"{header.bit_depth} bits per sample"),
        ("bytes", f"{len(data)} (" + ", ".join(f"{name}: {len(b)}" for name, b in sections.items()) + ")"),
        ("bpp", f"{8 * len(data) / pixels:.4f}"),
        ("model", f"{header.model_name} (sha256 {header.model_digest.hex()}...)"),
        ("quality", f"{header.quality / 1000:g}" if header.quality else "custom model"),
        ("coder", f"id {header.coder_id}, {header.precision}-bit tables"),
        ("model installed", "yes" if art is not None else "no"),
    ]
    for k, v in lines:
        print(f"{k:>16}: {v}")
    return 0
