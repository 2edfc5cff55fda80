"""Wall time of a full ``licodec eval`` (all six codecs, every rate point) over 24 images
of 768x512, the size of the Kodak set the field reports on.

    python benchmarks/eval_speed.py --source ../shared/data/valid [--jobs 2]

The 24 images are 768x512 crops cut from the source folder's images that are at least
that large (several crops from one image where needed), written to a temporary folder.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from licodec.eval.runner import evaluate  # noqa: E402
from licodec.imageio import list_images  # noqa: E402

W, H, COUNT = 768, 512, 24
CODECS = ["licodec", "jpeg", "jpeg2000", "webp", "avif", "jpegxl"]


def crops(source: Path, dest: Path) -> int:
    boxes = []
    for path in list_images(source):
        with Image.open(path) as im:
            w, h = im.size
            if w < h:  # portrait: crop it as if turned
                w, h = h, w
            if w < W or h < H:
                continue
            boxes.append((path, im.size))
    if not boxes:
        raise SystemExit(f"no image of at least {W}x{H} in {source}")
    n = 0
    for k in range(COUNT):  # corner k // len(boxes) of image k % len(boxes)
        path, (w, h) = boxes[k % len(boxes)]
        cw, ch = (W, H) if w >= h else (H, W)
        corner = k // len(boxes)
        x0 = 0 if corner % 2 == 0 else w - cw
        y0 = 0 if corner < 2 else h - ch
        with Image.open(path) as im:
            piece = im.convert("RGB").crop((x0, y0, x0 + cw, y0 + ch))
        if piece.width < piece.height:
            piece = piece.transpose(Image.Transpose.ROTATE_90)
        piece.save(dest / f"crop{k:02d}.png")
        n += 1
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--codecs", default=",".join(CODECS))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        imgs, out = Path(tmp) / "images", Path(tmp) / "results"
        imgs.mkdir()
        n = crops(args.source, imgs)
        print(f"{n} crops of {W}x{H} from {args.source}; jobs {args.jobs}")
        total = 0.0
        for codec in args.codecs.split(","):
            t0 = time.perf_counter()
            res = evaluate(imgs, [codec], out, jobs=args.jobs, progress=False)
            dt = time.perf_counter() - t0
            total += dt
            points = len(res[codec]["results"]["bpp"])
            print(f"{codec:10s} {points:3d} rate points  {dt / 60:6.2f} min", flush=True)
        print(f"{'all':10s}                 {total / 60:6.2f} min")


if __name__ == "__main__":
    main()
