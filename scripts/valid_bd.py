"""BD-rates of a training run's in-run validation against a reference model measured the same way.

    python scripts/valid_bd.py RUN.log [MORE.log ...] --reference bls2017-hp-mse \
        --folder ../shared/data/valid-photo --limit 8

``licodec train --valid FOLDER --valid-limit N`` logs, every ``--valid-every`` steps, the
moving average's mean bpp (real bytes), PSNR and MS-SSIM at qualities 1, 4, 7 and 10 over
the first N images of FOLDER ("validation at step S: q 1: ...; q 4: ..."). This measures
the reference model (a zoo name or a model file; its allocation rule is not applied, as in
training) with the same code on the same images and prints, for each validation line, the
BD-rate (PSNR / MS-SSIM dB) of the run's four points against the reference's: negative
means fewer bits than the reference at equal quality. Four points span q1..q10, so the
figure follows the trend of a run; `scripts/rd_check.py` measures a model properly.
"""
from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from licodec.eval.bdrate import bd_rate
from licodec.eval.metrics import ms_ssim_db

LINE = re.compile(r"validation(?: at step (\d+))?: (.*)")
POINT = re.compile(r"(?:q ([0-9.]+): )?([0-9.]+) bpp, ([0-9.]+) dB, MS-SSIM ([0-9.]+)")


def parse_log(text: str) -> list[tuple[int | None, list[dict]]]:
    """(step or None for logs that did not name it, points) for each validation line."""
    found = []
    for line in text.splitlines():
        m = LINE.search(line)
        if not m:
            continue
        points = []
        for part in m.group(2).split(";"):
            pm = POINT.search(part)
            if pm:
                q = None if pm.group(1) is None else float(pm.group(1))
                points.append({"quality": q, "valid_bpp": float(pm.group(2)), "valid_psnr": float(pm.group(3)),
                               "valid_ms_ssim": float(pm.group(4))})
        if points:
            found.append((None if m.group(1) is None else int(m.group(1)), points))
    return found


def curve(points: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bpp = np.array([p["valid_bpp"] for p in points])
    return (bpp, np.array([p["valid_psnr"] for p in points]),
            np.array([ms_ssim_db(p["valid_ms_ssim"]) for p in points]))


def bd_against(points: list[dict], reference: list[dict]) -> tuple[float, float]:
    """BD-rate (PSNR, MS-SSIM dB) of points against reference, at the qualities both hold."""
    ref = {p["quality"]: p for p in reference}
    shared = [p for p in points if p["quality"] in ref]
    r_bpp, r_psnr, r_ms = curve([ref[p["quality"]] for p in shared])
    t_bpp, t_psnr, t_ms = curve(shared)
    return bd_rate(r_bpp, r_psnr, t_bpp, t_psnr), bd_rate(r_bpp, r_ms, t_bpp, t_ms)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="+", help="text logs of licodec train (its standard output)")
    p.add_argument("--reference", default="bls2017-hp-mse", help="zoo name or model file")
    p.add_argument("--folder", default="../shared/data/valid-photo", help="the run's --valid folder")
    p.add_argument("--limit", type=int, default=8, help="the run's --valid-limit")
    args = p.parse_args(argv)

    runs = []
    for path in args.logs:
        with open(path, encoding="utf-8", errors="replace") as fh:
            runs.append((path, parse_log(fh.read())))
    if not any(found for _, found in runs):
        print("no validation lines in " + ", ".join(args.logs), file=sys.stderr)
        return 1

    from licodec.train.loop import validation_points
    from licodec.zoo.registry import resolve_model
    reference = validation_points(resolve_model(args.reference).model, args.folder, args.limit)
    print(f"reference {args.reference}, first {args.limit} images of {args.folder}: " + "; ".join(
        f"q {r['quality']:g}: {r['valid_bpp']:.4f} bpp {r['valid_psnr']:.2f} dB" for r in reference))
    for path, found in runs:
        print(path)
        for i, (step, points) in enumerate(found):
            bd_psnr, bd_ms = bd_against(points, reference)
            where = f"step {step}" if step is not None else f"line {i + 1}"
            pts = "  ".join(f"{r['valid_bpp']:.3f}/{r['valid_psnr']:.2f}" for r in points)
            print(f"  {where:>14}  {pts}   BD {bd_psnr:+.1f}% / {bd_ms:+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
