"""``licodec compare``: every codec at the setting closest to a requested size, side by side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..imageio import load_rgb
from .codecs import make_codec
from .metrics import ms_ssim, psnr

PANEL_WIDTH = 384  # width of each whole-image panel in the mosaic
FONT_SIZE = 16  # label text, readable at the mosaic's own size
LINE = FONT_SIZE + 5
# A codec whose closest file is further than this from the requested size is reported.
OFF_TARGET = 0.15
CROP = 96  # side of the detail crop, shown enlarged
ZOOM = 4  # enlargement of the detail crop (nearest neighbour: shows the real pixels)


def closest_setting(codec, img: np.ndarray, target_bpp: float):
    """(setting, bytes) of the codec whose file size is nearest to target_bpp."""
    pixels = img.shape[0] * img.shape[1]
    best = None
    for s in codec.fine_settings():
        data = codec.encode(img, s)
        err = abs(8.0 * len(data) / pixels - target_bpp)
        if best is None or err < best[0]:
            best = (err, s, data)
    if best is None:
        raise ValueError(f"{codec.name} has no settings to choose from")
    return best[1], best[2]


def detail_box(img: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most edge energy."""
    h, w = img.shape[:2]
    size = min(size, h, w)
    g = img.astype(np.float32).mean(axis=2)
    energy = np.zeros_like(g)
    energy[1:, 1:] = np.abs(np.diff(g, axis=0))[:, 1:] + np.abs(np.diff(g, axis=1))[1:, :]
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left)


def _panel(img: np.ndarray, box: tuple[int, int], label: list[str]) -> Image.Image:
    h, w = img.shape[:2]
    scale = PANEL_WIDTH / w
    whole = Image.fromarray(img).resize((PANEL_WIDTH, max(1, round(h * scale))), Image.LANCZOS)
    size = min(CROP, h, w)
    t, l = box
    crop = Image.fromarray(img[t:t + size, l:l + size]).resize((size * ZOOM, size * ZOOM), Image.NEAREST)
    font = _font()
    text_h = LINE * len(label) + 6
    height = text_h + whole.height + 4 + crop.height
    panel = Image.new("RGB", (max(PANEL_WIDTH, crop.width), height), "white")
    draw = ImageDraw.Draw(panel)
    for i, line in enumerate(label):
        draw.text((4, 3 + LINE * i), line, fill="black", font=font)
    panel.paste(whole, (0, text_h))
    # mark the crop on the whole image
    draw.rectangle([l * scale, text_h + t * scale, (l + size) * scale, text_h + (t + size) * scale],
                   outline="red")
    panel.paste(crop, (0, text_h + whole.height + 4))
    return panel


def _font():
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow before 10.1: the small bitmap font only
        return ImageFont.load_default()


def compare(image: str | Path, target_bpp: float, specs: list[str], out: str | Path, warn=None) -> list[dict]:
    """Every codec at the setting whose file lands closest to ``target_bpp``; writes the
    decoded images, mosaic.png and compare.json. ``warn`` is called for a codec that
    cannot get within 15% of the requested size."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    img = load_rgb(image)
    h, w = img.shape[:2]
    box = detail_box(img)
    panels = [_panel(img, box, ["original", f"{w}x{h}, requested {target_bpp:g} bpp", ""])]
    results = []
    for spec in specs:
        codec = make_codec(spec)
        setting, data = closest_setting(codec, img, target_bpp)
        rec = codec.decode(data)
        r = {"codec": codec.label, "setting": setting if not isinstance(setting, float) else round(setting, 4),
             "setting_label": codec.describe_setting(setting),
             "bytes": len(data), "bpp": 8.0 * len(data) / (w * h), "psnr": psnr(img, rec),
             "ms_ssim": ms_ssim(img, rec)}
        r["off_target"] = abs(r["bpp"] / target_bpp - 1) > OFF_TARGET
        if r["off_target"] and warn is not None:
            warn(f"{codec.label} cannot get near {target_bpp:g} bpp on this image: its closest setting "
                 f"({r['setting_label']}) gives {r['bpp']:.3f} bpp")
        results.append(r)
        Image.fromarray(rec).save(out / f"{codec.key}.png")
        panels.append(_panel(rec, box, [f"{codec.label}, {r['setting_label']}",
                                        f"{r['bpp']:.3f} bpp, {r['bytes']} bytes",
                                        f"PSNR {r['psnr']:.2f} dB, MS-SSIM {r['ms_ssim']:.4f}"]))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    pw = max(p.width for p in panels)
    ph = max(p.height for p in panels)
    mosaic = Image.new("RGB", (cols * pw + (cols - 1) * 6, rows * ph + (rows - 1) * 6), "white")
    for i, p in enumerate(panels):
        mosaic.paste(p, ((i % cols) * (pw + 6), (i // cols) * (ph + 6)))
    mosaic.save(out / "mosaic.png")
    (out / "compare.json").write_text(json.dumps({"image": str(image), "target_bpp": target_bpp,
                                                  "results": results}, indent=2) + "\n")
    return results
