"""encode, decode and info."""
from __future__ import annotations

import argparse
import io
import math
import os
import stat
import sys
from pathlib import Path

from ..errors import ImageError, LicodecError
from ..imageio import STDIO, load_image_icc, write_output

# Largest .lic file decode will read: far above any real file, and it bounds memory.
MAX_INPUT_BYTES = 1 << 31


# Decoding to these formats would re-encode the image lossily with the library's
# defaults; they need --output-quality (GIF cannot hold an RGB image at all).
LOSSY_FORMATS = {"JPEG", "WEBP", "MPO"}
UNFAITHFUL_FORMATS = {"GIF": "GIF holds at most 256 colours"}
# Formats that take the colour profile a file carries.
ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(src: Path, dst: Path, force: bool) -> None:
    """Refuses an output that is the input, or an existing file without --force;
    standard output, devices and FIFOs are never 'existing files'."""
    if str(dst) == STDIO:
        return
    if str(src) != STDIO and (_same_file(src, dst) or src.resolve() == dst.resolve()):
        raise LicodecError(f"{dst}: output would overwrite the input")
    try:
        mode = os.stat(dst).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return  # a device or a FIFO: written to, not replaced
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; use --force to overwrite it")


def _read_lic(path: Path) -> bytes:
    if str(path) == STDIO:
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise LicodecError(f"standard input: more than {MAX_INPUT_BYTES} bytes is too large for a .lic file")
        return data
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise LicodecError(f"{path}: no such file") from None
    if path.is_dir():
        raise LicodecError(f"{path}: is a folder")
    if size > MAX_INPUT_BYTES:
        raise LicodecError(f"{path}: {size} bytes is too large for a .lic file")
    return path.read_bytes()


def _image_format(path: Path) -> str | None:
    """The Pillow format of an image file name (None for .lic, licodec's own)."""
    from PIL import Image
    fmt = Image.registered_extensions().get(path.suffix.lower())
    return None if fmt == "LIC" else fmt


def _report(out: Path, text: str) -> None:
    """Reports on stdout, or on stderr when the data itself goes to stdout."""
    print(f"{out}: {text}", file=sys.stderr if str(out) == STDIO else sys.stdout)


def default_encode_output(src: Path) -> Path:
    """photo.png -> photo.lic; standard input -> standard output."""
    if str(src) == STDIO:
        return src
    return src.with_suffix(".lic") if src.suffix else src.with_name(src.name + ".lic")


def default_decode_output(src: Path) -> Path:
    """photo.lic -> photo.png; standard input -> standard output (PNG)."""
    if str(src) == STDIO:
        return src
    return src.with_suffix(".png") if src.suffix == ".lic" else src.with_name(src.name + ".png")


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


def _add_batch(p, what: str):
    p.add_argument("--out-dir", "-o", type=Path, metavar="OUTDIR",
                   help=f"{what} every INPUT (files or folders, searched recursively) into OUTDIR, "
                        "keeping folder structure; one failed file does not stop the others")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes for several inputs")


def add_encode(p):
    p.add_argument("paths", type=Path, nargs="+", metavar="INPUT [OUTPUT]",
                   help="image file (PNG, JPEG, ...) and the .lic file to write (default: INPUT with "
                        "suffix .lic; a folder: inside it); - is standard input or output. With "
                        "-o OUTDIR: any number of images and folders")
    p.add_argument("--model", help="shipped model name (licodec models), bls2017 for the paper's eight models "
                                   "(--quality 1..8 picks one), or the path of exported weights (.safetensors)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--quality", "-q", type=_positive(float), metavar="Q",
                        help="higher is better and larger: any number in the variable-rate model's range "
                             "(1..10, default 6), or 1..8 with --model bls2017 (default 5)")
    target.add_argument("--target-bpp", type=_positive(float), metavar="BPP",
                        help="the best quality whose file has at most BPP bits per pixel (searched)")
    target.add_argument("--size", type=_positive(int), metavar="BYTES",
                        help="the best quality whose file has at most BYTES bytes (searched)")
    target.add_argument("--target-psnr", type=_positive(float), metavar="DB",
                        help="the smallest file whose PSNR reaches DB decibels (searched)")
    p.add_argument("--effort", "-e", type=int, default=0, choices=range(0, 5), metavar="0..4",
                   help="encoder effort: 1..4 optimise the latents for this image (40, 100, 250, 500 "
                        "steps), for smaller files of the same quality; any decoder reads them")
    p.add_argument("--no-adapt", dest="adapt", action="store_false",
                   help="code at exactly --quality; by default the variable-rate model moves it for each "
                        "image (busy images down, easy ones up) where its weights carry an allocation rule")
    p.add_argument("--convert", action="store_true",
                   help="accept images that lose something: drop alpha, reduce 16-bit to 8-bit, CMYK to RGB, "
                        "code only the first frame of an animated or multi-page file")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")
    _add_batch(p, "encode")


def _single(args, default_output) -> tuple[Path, Path]:
    """(input, output) of a one-file command: INPUT [OUTPUT]; an OUTPUT that is a folder
    receives the default name."""
    if len(args.paths) > 2:
        raise LicodecError(f"{len(args.paths)} paths given: name an output folder with -o OUTDIR to "
                           "process several inputs")
    src = args.paths[0]
    out = args.paths[1] if len(args.paths) == 2 else default_output(src)
    if str(out) != STDIO and out.is_dir():
        out = out / default_output(Path(src.name)).name
    return src, out


def _run(kind: str, args, default_output, one) -> int:
    """One file (INPUT [OUTPUT]) or, with -o OUTDIR, a batch."""
    if args.out_dir is not None:
        return run_batch(kind, args)
    src, out = _single(args, default_output)
    _report(out, one(src, out, args))
    return 0


def run_encode(args) -> int:
    return _run("encode", args, default_encode_output, encode_file)


def encode_file(src: Path, out: Path, args) -> str:
    """Encodes one file; returns the report line."""
    from ..codec import default_quality, encode_array, encode_to_target, read_header
    from ..zoo.registry import select_model
    if str(out) != STDIO and _image_format(out) is not None:
        raise LicodecError(f"{out}: refusing to write licodec data under an image file name "
                           f"({out.suffix}); name the output .lic")
    _check_output(src, out, args.force)
    arr, icc = load_image_icc(src, convert=args.convert)
    if any(v is not None for v in (args.target_bpp, args.size, args.target_psnr)):
        if args.effort:
            raise LicodecError("--effort applies to a --quality, not to a size or PSNR target")
        data, chosen = encode_to_target(arr, args.model, target_bpp=args.target_bpp, size=args.size,
                                        target_psnr=args.target_psnr, icc=icc)
        model_id = read_header(data).model_name
    else:
        art, quality = select_model(args.model, args.quality)
        data = encode_array(arr, art, quality, icc, effort=args.effort,
                            progress=args.effort > 0 and args.out_dir is None, adapt=args.adapt)
        model_id, chosen = art.model_id, ""
        header = read_header(data)
        if art.hyperprior:
            chosen = f"quality {header.quality / 1000:g}"
            asked = default_quality(art) if quality is None else quality
            if abs(header.quality / 1000 - asked) > 5e-4:
                chosen += f" (asked {asked:g})"
    write_output(out, data, force=args.force)
    h, w = arr.shape[:2]
    return (f"{len(data)} bytes, {w}x{h}, {8 * len(data) / (w * h):.4f} bpp, model {model_id}"
            + (f", {chosen}" if chosen and not chosen.startswith("model") else ""))


def add_decode(p):
    p.add_argument("paths", type=Path, nargs="+", metavar="INPUT [OUTPUT]",
                   help=".lic file and the image to write, format from its suffix (default: INPUT with "
                        "suffix .png; a folder: inside it); - is standard input or output (PNG). With "
                        "-o OUTDIR: any number of .lic files and folders")
    p.add_argument("--model", help="weights the file was encoded with, if not a shipped model")
    p.add_argument("--output-quality", type=int, metavar="Q",
                   help="quality (1..100) for a lossy output format (.jpg, .webp): decoding to one "
                        "re-encodes the image, so it must be asked for")
    p.add_argument("--format", default="png", help="image format of the outputs with -o OUTDIR (a suffix)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")
    _add_batch(p, "decode")


def run_decode(args) -> int:
    return _run("decode", args, default_decode_output, decode_file)


def decode_file(src: Path, out: Path, args) -> str:
    """Decodes one file; returns the report line."""
    from PIL import Image

    from ..codec import decode_image
    _check_output(src, out, args.force)
    fmt = "PNG" if str(out) == STDIO else _image_format(out)
    if fmt is None:
        raise LicodecError(f"{out}: unknown image format suffix {out.suffix!r} (use .png)")
    if fmt in UNFAITHFUL_FORMATS:
        raise LicodecError(f"{out}: {UNFAITHFUL_FORMATS[fmt]}; write .png")
    options = {}
    if fmt in LOSSY_FORMATS:
        if args.output_quality is None:
            raise LicodecError(f"{out}: {fmt} would re-encode the decoded image lossily; write .png, or "
                               "give --output-quality")
        if not 1 <= args.output_quality <= 100:
            raise LicodecError(f"--output-quality must be 1..100, got {args.output_quality}")
        options["quality"] = args.output_quality
    elif args.output_quality is not None:
        raise LicodecError(f"--output-quality applies to lossy formats (.jpg, .webp), not {fmt}")
    arr, icc = decode_image(_read_lic(src), args.model)
    if icc and fmt in ICC_FORMATS:
        options["icc_profile"] = icc
    buf = io.BytesIO()
    try:
        Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB").save(buf, format=fmt, **options)
    except (OSError, KeyError, ValueError) as exc:
        raise ImageError(f"{out}: cannot write {fmt} ({exc})") from None
    write_output(out, buf.getvalue(), force=args.force)
    return f"{arr.shape[1]}x{arr.shape[0]} {'gray' if arr.ndim == 2 else 'RGB'}"


def batch_items(kind: str, args) -> list[tuple[Path, Path]]:
    """(input, output) pairs of a batch: files as given, folders searched recursively,
    outputs under OUTDIR with the folder structure kept."""
    from ..imageio import list_images
    suffix = ".lic" if kind == "encode" else "." + args.format.lower().lstrip(".")
    items = []
    for path in args.paths:
        if str(path) == STDIO:
            raise LicodecError("- (standard input) cannot be part of a batch")
        if path.is_dir():
            found = list_images(path) if kind == "encode" else sorted(path.rglob("*.lic"))
            items += [(f, args.out_dir / path.name / f.relative_to(path).with_suffix(suffix)) for f in found]
        else:
            items.append((path, args.out_dir / path.with_suffix(suffix).name))
    outputs = [out for _, out in items]
    clash = next((o for o in outputs if outputs.count(o) > 1), None)
    if clash is not None:
        raise LicodecError(f"two inputs would both be written to {clash}")
    if not items:
        raise LicodecError("no input files found")
    return items


def _batch_one(kind: str, src: Path, out: Path, args) -> tuple[bool, str]:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        report = (encode_file if kind == "encode" else decode_file)(src, out, args)
        return True, f"{out}: {report}"
    except (LicodecError, OSError) as exc:
        return False, f"{src}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one broken file must not stop the batch
        return False, f"{src}: internal error: {type(exc).__name__}: {exc}"


def _worker_init():
    import torch
    torch.set_num_threads(1)


def _highest_missing(folder: Path) -> Path | None:
    """The highest of folder and its parents that does not exist yet (None: it exists)."""
    folder = folder.absolute()
    if folder.exists():
        return None
    while not folder.parent.exists():
        folder = folder.parent
    return folder


def _remove_empty_folders(root: Path) -> None:
    """Removes root and the folders below it that hold no file (deepest first)."""
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # fails, as it should, on a folder that holds anything
        except OSError:
            pass


def run_batch(kind: str, args) -> int:
    """Processes every input, in ``--jobs`` worker processes, with a progress bar; prints
    one line per failure and a summary; exit status 3 if any file failed."""
    from tqdm import tqdm
    if args.jobs < 1:
        raise LicodecError("--jobs must be at least 1")
    items = batch_items(kind, args)
    created = {_highest_missing(out.parent) for _, out in items} - {None}  # the folders this call makes
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "run"})
    results = []
    bar = tqdm(total=len(items), unit="file", desc=kind, file=sys.stderr, dynamic_ncols=True,
               disable=not sys.stderr.isatty())
    if args.jobs > 1 and len(items) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(min(args.jobs, len(items)), initializer=_worker_init) as pool:
            futures = [pool.submit(_batch_one, kind, src, out, args) for src, out in items]
            for future in futures:
                results.append(future.result())
                bar.update(1)
    else:
        for src, out in items:
            results.append(_batch_one(kind, src, out, args))
            bar.update(1)
    bar.close()
    for folder in created:  # those made for files that failed are not left behind empty
        _remove_empty_folders(folder)
    failed = [msg for ok, msg in results if not ok]
    for msg in failed:
        print(f"licodec: {msg}", file=sys.stderr)
    done = len(results) - len(failed)
    print(f"{done} of {len(results)} files {kind}d into {args.out_dir}" + (f", {len(failed)} failed" if failed else ""))
    return 3 if failed else 0


def add_info(p):
    p.add_argument("input", type=Path, help=".lic file; - reads standard input")


def run_info(args) -> int:
    from .. import bitstream
    from ..zoo.registry import find_shipped_path
    data = _read_lic(args.input)
    header, sections = bitstream.read(data)
    installed = find_shipped_path(header.model_digest)
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
        ("model installed", f"yes ({installed.stem})" if installed is not None else "no"),
    ]
    for k, v in lines:
        print(f"{k:>16}: {v}")
    return 0
