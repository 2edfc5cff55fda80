"""demo: encode and decode the built-in sample photo with every installed model."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import atomic_write, load_image


def sample_photo_path() -> Path:
    """matplotlib's sample photo of Grace Hopper (512x600 JPEG; the demo extra installs it)."""
    from ..extras import require
    cbook = require("matplotlib.cbook", "demo", "the sample photo")
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def add_arguments(p):
    p.add_argument("image", type=Path, nargs="?", help="image to use instead of the sample photo")
    p.add_argument("--out", type=Path, help="folder to keep the .lic files and decoded PNGs in")
    p.add_argument("--force", "-f", action="store_true", help="overwrite files in --out")


def quick_model(image: np.ndarray, steps: int = 300, log=print):
    """A small bls2017 (N=48) trained for a few steps on crops of ``image`` alone."""
    import torch

    from ..models import build_model
    from ..ops import native_bf16
    from ..train.step import train_step
    from ..zoo.artifact import load_artifact_bytes, save_artifact
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("bls2017", N=48)
    opt = torch.optim.Adam(model.main_parameters(), lr=1e-3)
    aux = torch.optim.Adam(model.aux_parameters(), lr=1e-2)
    img = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    crop = min(128, img.shape[0] // 16 * 16, img.shape[1] // 16 * 16)
    bf16 = native_bf16("cpu")  # a few steps from scratch: bf16 where it is fast, never emulated
    for _ in range(steps):
        tops = rng.integers(0, img.shape[0] - crop + 1, 8)
        lefts = rng.integers(0, img.shape[1] - crop + 1, 8)
        x = torch.from_numpy(np.stack([img[t:t + crop, l:l + crop] for t, l in zip(tops, lefts)]))
        x = x.permute(0, 3, 1, 2).float() / 255
        train_step(model, x, 0.01, opt, aux, bf16=bf16)
    return load_artifact_bytes(save_artifact(model, {"name": "demo-on-the-fly"}))


def run(args) -> int:
    from ..codec import decode_array, encode_array
    from ..eval.metrics import ms_ssim, psnr
    from ..zoo.registry import SHIPPED, available_qualities, default_model, load_path, shipped_path
    path = args.image or sample_photo_path()
    img = load_image(path)
    h, w = img.shape[:2]
    print(f"image: {path} ({w}x{h})")
    qualities = available_qualities()
    models = []
    variable = default_model()
    if variable is not None:  # the default: the variable-rate model at each whole quality
        q_min, q_max = variable.model.quality_range
        models += [(f"hp q{q}", variable, float(q)) for q in range(int(q_min), int(q_max) + 1)]
    models += [(f"bls2017 q{q}", load_path(shipped_path(SHIPPED[q])), None) for q in qualities]
    if not models:
        print("no shipped weights are installed: training a small model on the fly "
              "for a few steps (this is NOT a trained codec; files are large and blurry)")
        models = [("on-the-fly", quick_model(img), None)]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'model':>10} {'bytes':>8} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8} {'enc s':>6} {'dec s':>6}")
    for label, art, quality in models:
        t0 = time.perf_counter()
        data = encode_array(img, art, quality)
        t1 = time.perf_counter()
        rec = decode_array(data, art)
        t2 = time.perf_counter()
        assert rec.shape == img.shape
        print(f"{label:>10} {len(data):>8} {8 * len(data) / (w * h):>7.4f} {psnr(img, rec):>7.2f} "
              f"{ms_ssim(img, rec):>8.4f} {t1 - t0:>6.2f} {t2 - t1:>6.2f}")
        if args.out:
            atomic_write(args.out / f"{Path(path).stem}-{label}.lic", data, force=args.force)
            buf = io.BytesIO()
            Image.fromarray(rec).save(buf, format="PNG")
            atomic_write(args.out / f"{Path(path).stem}-{label}.png", buf.getvalue(), force=args.force)
    return 0
