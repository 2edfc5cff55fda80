"""eval and compare."""
from __future__ import annotations

from pathlib import Path

from ..errors import LicodecError

DEFAULT_CODECS = "licodec,jpeg,jpeg2000,webp,avif,jpegxl"


def _specs(text: str) -> list[str]:
    from ..eval.codecs import CODECS
    specs = [s.strip() for s in text.split(";" if ";" in text else ",") if s.strip()]
    for s in specs:
        if s.partition(":")[0] not in CODECS:
            raise LicodecError(f"unknown codec {s!r}; choose from {', '.join(CODECS)}")
    return specs


def add_eval(p):
    p.add_argument("folder", type=Path, help="folder of images (PNG, JPEG, ...)")
    p.add_argument("--codecs", default=DEFAULT_CODECS,
                   help="comma-separated codecs; licodec:A.safetensors|B.safetensors evaluates given "
                        "weights (one rate point each; a variable-rate model at each whole quality), "
                        "written as licodec-A.json (separate codecs with ';' when a spec holds commas); "
                        "licodec:bls2017 evaluates the eight bls2017 models (licodec-bls2017.json)")
    p.add_argument("--out", type=Path, required=True, help="results folder")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    p.add_argument("--reference", action="append", default=[], help="published curve (CompressAI JSON)")
    p.add_argument("--anchor", default=None,
                   help="codec(s) the BD-rates are measured against, comma-separated; two tables each, "
                        "of the mean curves and image by image (default jpeg)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--force", "-f", action="store_true",
                   help="replace the curves of these codecs that an earlier run left in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run_eval(args) -> int:
    from ..eval.runner import evaluate
    specs = [s.replace("|", ",") for s in _specs(args.codecs)]
    if args.jobs < 1:
        raise LicodecError("--jobs must be at least 1")
    if not args.folder.is_dir():
        raise LicodecError(f"{args.folder}: not a folder")
    evaluate(args.folder, specs, args.out, jobs=args.jobs, progress=args.progress,
             references=args.reference, anchor=args.anchor, limit=args.limit, force=args.force)
    print((args.out / "bd-rate.md").read_text(), end="")
    print(f"results in {args.out}/ (JSON and CSV per codec, rd-psnr.png, rd-msssim.png, bd-rate.md)")
    return 0


def add_compare(p):
    p.add_argument("image", type=Path, help="the image to compress with every codec")
    p.add_argument("--bpp", type=float, default=0.25, help="target bits per pixel")
    p.add_argument("--codecs", default=DEFAULT_CODECS, help="codecs to compare, comma-separated")
    p.add_argument("--out", type=Path, required=True, help="output folder (mosaic.png, decoded images)")


def run_compare(args) -> int:
    from ..eval.compare import compare
    from ..imageio import load_rgb
    load_rgb(args.image)  # a clear error for an unreadable image, before any work
    if not 0 < args.bpp <= 24:
        raise LicodecError("--bpp must be in (0, 24]")
    import sys
    results = compare(args.image, args.bpp, [s.replace("|", ",") for s in _specs(args.codecs)], args.out,
                      warn=lambda m: print(f"licodec: warning: {m}", file=sys.stderr))
    for r in results:
        print(f"{r['codec']:>12}: {r['bpp']:.3f} bpp, PSNR {r['psnr']:.2f} dB, MS-SSIM {r['ms_ssim']:.4f}")
    print(f"mosaic: {args.out / 'mosaic.png'}")
    return 0
