"""The table of shipped models: training record from each weights file, rate and
distortion from a ``licodec eval`` run over a folder (real encoding of every image), and
the gain over JPEG and JPEG 2000 at each model's own rate (their curves interpolated,
piecewise cubic in log-rate, from jpeg.json and jpeg2000.json beside the curve).

    python scripts/zoo_table.py results/valid/licodec-bls2017.json    # the eight bls2017 models
    python scripts/zoo_table.py results/valid/licodec.json            # the variable-rate model

For the variable-rate model: a row per quality, its lambda, and the gain over the
bls2017 models (licodec-bls2017.json) as well.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from licodec.eval.bdrate import pchip  # noqa: E402
from licodec.eval.metrics import ms_ssim_db  # noqa: E402
from licodec.zoo.artifact import load_artifact  # noqa: E402
from licodec.zoo.registry import SHIPPED, shipped_path  # noqa: E402
from train_zoo import PARENT  # noqa: E402


def at_rate(results: dict, key: str, bpp: float) -> float:
    """A curve's quality at ``bpp``, interpolated in log-rate (NaN outside the curve)."""
    x = np.log(np.asarray(results["bpp"]))
    y = np.asarray(results[key])
    order = np.argsort(x)
    x, y = x[order], y[order]
    if not x[0] <= np.log(bpp) <= x[-1]:
        return float("nan")
    return float(pchip(x, y, np.array([np.log(bpp)]))[0])


def origin(q: int, info: dict) -> str:
    """What the model's own last run started from: the model it continued (recorded in
    its history since fine-tunes record one), else the recipe's PARENT or the base run."""
    history = info.get("history") or []
    if history:
        prev = history[-1]
        return f"{prev['name']} ({prev['steps']:,} steps)"
    return f"q{PARENT[q]}" if q in PARENT else "base"


def lmbda(info: dict) -> str:
    """The model's lambda; a run resumed at another lambda names the earlier ones."""
    earlier = [f"{c['lmbda']:g} for its first {c['until_step']:,} steps"
               for c in info.get("changes", []) if "lmbda" in c]
    return f"{info['lmbda']:g}" + (f" ({'; '.join(earlier)})" if earlier else "")


def curves(folder: Path, names: dict[str, str]) -> dict[str, dict]:
    """{label: results} of the curves of ``names`` ({file stem: label}) found in folder."""
    found = {}
    for name, label in names.items():
        f = folder / f"{name}.json"
        if f.exists():
            found[label] = json.loads(f.read_text())["results"]
    return found


def header(columns: list[str], aligns: str, others: dict) -> list[str]:
    head = "| " + " | ".join(columns) + " |" + "".join(f" vs {n}: dB PSNR, dB MS-SSIM |" for n in others)
    return [head, "|" + "".join(f" {a} |" for a in aligns.split()) + " ---: |" * len(others)]


def gains(others: dict, bpp: float, psnr: float, msssim: float) -> str:
    """The cells of a row: the gain over each other curve at this rate."""
    cells = ""
    for r in others.values():
        dp = psnr - at_rate(r, "psnr-rgb", bpp)
        dm = ms_ssim_db(msssim) - at_rate(r, "ms-ssim-rgb-db", bpp)
        if np.isnan(dp):
            cells += f" ({'below' if bpp < min(r['bpp']) else 'above'} its rates) |"
        else:
            cells += f" {dp:+.2f}, {dm:+.2f} |"
    return cells


def variable_rate_table(results_path: Path, res: dict) -> str:
    """The markdown table of the variable-rate model, one row per quality evaluated."""
    from licodec.zoo.registry import default_model
    art = default_model()
    others = curves(results_path.parent, {"licodec-bls2017": "bls2017", "jpeg": "jpeg", "jpeg2000": "jpeg2000"})
    lines = header(["quality", "lambda", "bpp", "PSNR-RGB", "MS-SSIM-RGB"], "---: ---: ---: ---: ---:", others)
    r = res["results"]
    for q, bpp, psnr, msssim in zip(res["settings"], r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"]):
        lines.append(f"| {q:g} | {art.model.lmbda(float(q)):.3g} | {bpp:.3f} | {psnr:.2f} | {msssim:.4f} |"
                     + gains(others, bpp, psnr, msssim))
    return "\n".join(lines)


def table(results_path: Path) -> str:
    """The markdown table of the shipped models, as the README shows it."""
    res = json.loads(results_path.read_text())
    if "at qualities" in res.get("codec_settings", ""):
        return variable_rate_table(results_path, res)
    points = dict(zip(res["settings"], zip(res["results"]["bpp"], res["results"]["psnr-rgb"],
                                           res["results"]["ms-ssim-rgb"])))
    others = curves(results_path.parent, {"jpeg": "jpeg", "jpeg2000": "jpeg2000"})
    lines = header(["quality", "lambda", "continued from, steps, time of its last run", "bpp", "PSNR-RGB",
                    "MS-SSIM-RGB"], "---: ---: --- ---: ---: ---:", others)
    for q in sorted(SHIPPED):
        path = shipped_path(SHIPPED[q])
        if not path.exists() or q not in points:
            continue
        info = load_artifact(path).info
        trained = f"{origin(q, info)}, {info['steps']:,}, {info['wall_s'] / 60:.0f} min"
        bpp, psnr, msssim = points[q]
        lines.append(f"| {q} | {lmbda(info)} | {trained} | {bpp:.3f} | {psnr:.2f} | {msssim:.4f} |"
                     + gains(others, bpp, psnr, msssim))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="licodec.json written by licodec eval")
    args = p.parse_args()
    print(table(args.results))
    res = json.loads(args.results.read_text())
    print(f"\n{res['dataset']['images']} images of {res['dataset']['folder']}")
    if "at qualities" in res.get("codec_settings", ""):
        from licodec.zoo.registry import default_model
        art = default_model()
        runs = [*art.info.get("history", []), art.info]
        print(f"weights {art.model_id}, its runs (info[\"history\"]): "
              + ", ".join(f"{run.get('name')} {run.get('steps', 0):,} steps" for run in runs))


if __name__ == "__main__":
    main()
