"""``licodec eval``: rate-distortion sweeps of several codecs over a folder of images.

Every point is real: each image is encoded to bytes, the bytes are counted and decoded,
and the metrics compare the decoded 8-bit RGB image with the original.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import LicodecError
from ..imageio import list_images, load_rgb
from .bdrate import bd_rate
from .codecs import make_codec
from .metrics import ms_ssim, ms_ssim_db, psnr

CSV_FIELDS = ["codec", "setting", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim",
              "enc_s", "dec_s"]
_CODECS: dict = {}


def _worker_init():
    import torch
    torch.set_num_threads(1)


def _codec(spec: str):
    if spec not in _CODECS:
        _CODECS[spec] = make_codec(spec)
    return _CODECS[spec]


def run_one(spec: str, setting, path: str) -> dict:
    """Encode, decode and measure one image at one setting."""
    codec = _codec(spec)
    img = load_rgb(path)
    t0 = time.perf_counter()
    data = codec.encode(img, setting)
    t1 = time.perf_counter()
    rec = codec.decode(data)
    t2 = time.perf_counter()
    if rec.shape != img.shape:
        raise RuntimeError(f"{spec} decoded {path} to shape {rec.shape}, expected {img.shape}")
    h, w = img.shape[:2]
    return {"codec": spec, "setting": setting, "image": Path(path).name, "width": w, "height": h,
            "bytes": len(data), "bpp": 8.0 * len(data) / (w * h), "psnr": psnr(img, rec),
            "ms_ssim": ms_ssim(img, rec), "enc_s": t1 - t0, "dec_s": t2 - t1}


def _summarise(spec: str, rows: list[dict], folder: str, n_images: int) -> dict:
    from .. import __version__
    codec = _codec(spec)
    desc = codec.describe()
    settings = codec.settings()
    res = {k: [] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db", "encoding_time",
                           "decoding_time")}
    used = []
    for s in settings:
        sel = [r for r in rows if r["setting"] == s]
        if not sel:
            continue
        used.append(s)
        res["bpp"].append(float(np.mean([r["bpp"] for r in sel])))
        res["psnr-rgb"].append(float(np.mean([r["psnr"] for r in sel])))
        m = float(np.mean([r["ms_ssim"] for r in sel]))
        res["ms-ssim-rgb"].append(m)
        res["ms-ssim-rgb-db"].append(ms_ssim_db(m))
        res["encoding_time"].append(float(np.mean([r["enc_s"] for r in sel])))
        res["decoding_time"].append(float(np.mean([r["dec_s"] for r in sel])))
    return {"name": codec.label, "description": f"{desc['library']}; {desc['settings']}",
            "codec": spec, "library": desc["library"], "codec_settings": desc["settings"],
            "licodec_version": __version__, "mode": "coded",
            "dataset": {"folder": str(folder), "path": str(Path(folder).resolve()), "images": n_images},
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}",
            "settings": [s if not isinstance(s, float) else round(s, 4) for s in used], "results": res}


def evaluate(folder: str | Path, specs: list[str], out: str | Path, jobs: int = 1,
             progress: bool = True, references: list[str] = (), anchor: str | None = None,
             limit: int | None = None, force: bool = False) -> dict[str, dict]:
    """Sweeps every codec of ``specs`` over the folder's images; each curve is written to
    OUT/<key>.json and OUT/<key>-per-image.csv (key: the codec's name, or licodec-<weights>
    for given weights), which an earlier run's files never silently replace (``force``)."""
    images = list_images(folder)[:limit] if limit else list_images(folder)
    if not images:
        raise FileNotFoundError(f"no images in {folder}")
    out = Path(out)
    names = [_codec(spec).key for spec in specs]
    if len(set(names)) != len(names):
        raise LicodecError(f"two codecs would write the same curve files ({', '.join(names)})")
    # curves this run does not compute: an earlier run's in ``out``, published references
    earlier = {k: v for k, v in earlier_curves(out, folder, len(images)).items() if k not in names}
    refs = {}
    for ref in references:
        data = json.loads(Path(ref).read_text())
        refs[f"ref:{data.get('name', Path(ref).stem)}"] = data
    anchors = anchor.split(",") if anchor else []
    known = set(names) | set(earlier) | set(refs)
    unknown = [a for a in anchors if a not in known]
    if unknown:  # refuse now, not after the sweep
        raise LicodecError(f"--anchor {','.join(unknown)} is not among the curves ({', '.join(sorted(known))})")
    existing = [f"{out / n}.json" for n in names if (out / f"{n}.json").exists()]
    existing += [f"{out / n}-per-image.csv" for n in names if (out / f"{n}-per-image.csv").exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists (an earlier run's curve); use --force to replace it, "
                              "or --out another folder")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(spec, s, str(p)) for spec in specs for s in _codec(spec).settings() for p in images]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), unit="encode", desc="images x settings", dynamic_ncols=True)
    rows = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_worker_init) as pool:
            futures = [pool.submit(run_one, *t) for t in tasks]
            for f in futures:
                rows.append(f.result())
                if bar:
                    bar.update(1)
    else:
        for t in tasks:
            rows.append(run_one(*t))
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    results = {}
    for spec, name in zip(specs, names):
        sel = [r for r in rows if r["codec"] == spec]
        summary = _summarise(spec, sel, str(folder), len(images))
        results[name] = summary
        (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        with open(out / f"{name}-per-image.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, CSV_FIELDS)
            wr.writeheader()
            for r in sel:
                wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    if earlier:
        print(f"also plotting the earlier results in {out}: {', '.join(earlier)} "
              "(remove their JSON files to leave them out)", file=sys.stderr)
    curves = {**results, **earlier, **refs}
    plot_curves(curves, out, title=f"{Path(folder).name}, {len(images)} images")
    anchors = anchors or ["jpeg" if "jpeg" in curves else next(iter(curves))]
    per_image = {key: read_per_image(out / f"{key}-per-image.csv") for key in curves}
    (out / "bd-rate.md").write_text("\n".join(bd_table(curves, a) + "\n" + bd_table_per_image(curves, per_image, a)
                                             for a in anchors))
    return results


def earlier_curves(out: Path, folder, n_images: int) -> dict[str, dict]:
    """Curves an earlier ``licodec eval`` left in ``out`` for the same folder (however it
    was spelled: paths are compared resolved) and number of images, so a codec can be
    added to a results folder without running the others again."""
    found = {}
    here = Path(folder).resolve()
    for path in sorted(out.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not (isinstance(data, dict) and data.get("mode") == "coded" and "results" in data):
            continue
        dataset = data.get("dataset") or {}
        where = dataset.get("path") or str(Path(str(dataset.get("folder", ""))).resolve())
        if Path(where) == here and dataset.get("images") == n_images:
            found[path.stem] = data
    return found


def _curve(data: dict, metric: str):
    r = data["results"]
    bpp = np.asarray(r["bpp"], dtype=np.float64)
    if metric == "psnr":
        return bpp, np.asarray(r["psnr-rgb"], dtype=np.float64)
    if "ms-ssim-rgb-db" in r:
        return bpp, np.asarray(r["ms-ssim-rgb-db"], dtype=np.float64)
    return bpp, np.array([ms_ssim_db(v) for v in r["ms-ssim-rgb"]])


def bd_table(curves: dict[str, dict], anchor: str) -> str:
    if anchor not in curves:
        raise ValueError(f"anchor {anchor!r} is not among the curves ({', '.join(curves)})")
    lines = [f"BD-rate against {curves[anchor]['name']} (negative: fewer bits at equal quality)", "",
             "| codec | BD-rate PSNR-RGB | BD-rate MS-SSIM-RGB (dB) |", "| --- | ---: | ---: |"]
    for key, data in curves.items():
        vals = []
        for metric in ("psnr", "ms-ssim"):
            a, t = _curve(curves[anchor], metric), _curve(data, metric)
            v = bd_rate(*a, *t)
            if math.isnan(v):
                why = na_reason(a, t, metric)
                vals.append(f"n/a ({why})")
            else:
                vals.append(f"{v:+.1f}%")
        lines.append(f"| {data['name']} | {vals[0]} | {vals[1]} |")
    return "\n".join(lines) + "\n"


def read_per_image(path: Path) -> dict[str, dict[str, np.ndarray]] | None:
    """An eval's per-image CSV as {image: {"bpp", "psnr", "ms-ssim": arrays over the
    settings, "setting": the settings as written}}; None if there is none (a published
    reference curve) or it is unreadable."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        found: dict[str, list] = {}
        settings: dict[str, list[str]] = {}
        for r in rows:
            found.setdefault(r["image"], []).append((float(r["bpp"]), float(r["psnr"]), float(r["ms_ssim"])))
            settings.setdefault(r["image"], []).append(r["setting"])
    except (OSError, KeyError, ValueError):
        return None
    out = {}
    for image, points in found.items():
        a = np.array(points, dtype=np.float64)
        out[image] = {"bpp": a[:, 0], "psnr": a[:, 1], "ms-ssim": np.array([ms_ssim_db(v) for v in a[:, 2]]),
                      "setting": settings[image]}
    return out


def per_image_bd(anchor: dict, test: dict, metric: str) -> tuple[float, int, int]:
    """Each image's own BD-rate of ``test`` against ``anchor`` (both read_per_image
    results), averaged over the images as rate ratios (the geometric mean of 1 + BD, so
    that A against B is the mirror of B against A and one image's +900% does not swamp
    the rest): (mean %, images with a BD-rate, images both curves hold).

    Unlike the BD-rate of the mean curves, it does not depend on how a codec's settings
    share bits between easy and hard images: a bitrate setting (JPEG 2000's here) gives
    every image the same bpp, a quality setting gives easy images far fewer, and mean
    curves charge the second for it although it needs no more bits on any image."""
    images = sorted(set(anchor) & set(test))
    vals = [bd_rate(anchor[i]["bpp"], anchor[i][metric], test[i]["bpp"], test[i][metric]) for i in images]
    logs = [math.log1p(v / 100.0) for v in vals if not math.isnan(v)]
    mean = (math.expm1(float(np.mean(logs))) * 100.0) if logs else float("nan")
    return mean, len(logs), len(images)


def bd_table_per_image(curves: dict[str, dict], per_image: dict[str, dict | None], anchor: str) -> str:
    """The BD-rates of every curve against ``anchor`` image by image, averaged."""
    lines = [f"BD-rate against {curves[anchor]['name']}, image by image (each image's BD-rate, averaged as a "
             "geometric mean of the rate ratios; negative: fewer bits at equal quality)", "",
             "| codec | BD-rate PSNR-RGB | BD-rate MS-SSIM-RGB (dB) |", "| --- | ---: | ---: |"]
    ref = per_image.get(anchor)
    for key, data in curves.items():
        vals = []
        for metric in ("psnr", "ms-ssim"):
            if ref is None or per_image.get(key) is None:
                who = "the anchor" if ref is None else "this curve"
                vals.append(f"n/a (no per-image results for {who})")
                continue
            mean, n, total = per_image_bd(ref, per_image[key], metric)
            if math.isnan(mean) and not total:
                vals.append("n/a (no image in common)")
            elif math.isnan(mean):
                first = min(set(ref) & set(per_image[key]))
                a, t = ((c[first]["bpp"], c[first][metric]) for c in (ref, per_image[key]))
                vals.append(f"n/a (no image has one; {first}: {na_reason(a, t, metric)})")
            else:
                vals.append(f"{mean:+.1f}%" + ("" if n == total else f" ({n} of {total} images)"))
        lines.append(f"| {data['name']} | {vals[0]} | {vals[1]} |")
    return "\n".join(lines) + "\n"


def na_reason(anchor: tuple, test: tuple, metric: str) -> str:
    """Why a BD-rate cannot be computed: too few points, or no common quality range."""
    label = "PSNR" if metric == "psnr" else "MS-SSIM"
    for (bpp, q), who in ((anchor, "anchor"), (test, "codec")):
        if np.isfinite(q).sum() < 2:
            return f"fewer than 2 points on the {who}'s curve"
    return f"the curves share no {label} range"


def plot_curves(curves: dict[str, dict], out: Path, title: str = "") -> None:
    from ..extras import require
    matplotlib = require("matplotlib", "eval", "plotting the curves")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for metric, ylabel, fname in (("psnr", "PSNR-RGB (dB)", "rd-psnr.png"),
                                  ("ms-ssim", "MS-SSIM-RGB (dB)", "rd-msssim.png")):
        fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
        for key, data in curves.items():
            bpp, q = _curve(data, metric)
            style = "--" if key.startswith("ref:") else "-"
            ax.plot(bpp, q, style, marker="o", markersize=3, label=data["name"])
        ax.set_xlabel("bits per pixel (from file sizes)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        if title:
            ax.set_title(title)
        rates = np.concatenate([_curve(d, metric)[0] for d in curves.values()])
        ax.set_xlim(0, 1.05 * float(np.nanmax(rates)) if rates.size else 1.0)
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)
