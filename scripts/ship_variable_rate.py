"""Install trained bls2017-hp weights as the shipped variable-rate (default) model.

    python scripts/ship_variable_rate.py WEIGHTS [--default-quality 6] [--results results/valid ...]

1. Writes WEIGHTS (a checkpoint.pt or an exported .safetensors) to
   licodec/zoo/weights/bls2017-hp-mse.safetensors, named bls2017-hp-mse, with the
   default quality recorded (the one `licodec encode` uses when none is given).
2. In each results folder, moves the curve of the eight bls2017 models from licodec.*
   to licodec-bls2017.* (codec licodec:bls2017): once the variable-rate model is
   installed, `licodec eval --codecs licodec` means it, and both curves share the folder.
3. Prints the commands that evaluate the new default on each folder and make its table.

New weights need their own allocation rule (scripts/fit_allocation.py) before they are
evaluated: without one, every image is coded at the quality asked.

Ship only weights that beat every bls2017 model at its rate on both validation sets
(`scripts/rd_check.py ... --per-rate licodec-bls2017`, or `licodec` before step 2).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from licodec.imageio import atomic_write  # noqa: E402
from licodec.train.loop import load_trained  # noqa: E402
from licodec.zoo.artifact import save_artifact  # noqa: E402
from licodec.zoo.registry import VARIABLE_RATE_MODEL, shipped_path  # noqa: E402


def move_bls2017_curve(folder: Path) -> None:
    src, table = folder / "licodec.json", folder / "licodec-per-image.csv"
    if not src.exists():
        return
    data = json.loads(src.read_text())
    if "bls2017-mse-q1" not in data.get("codec_settings", ""):
        print(f"{src}: not the bls2017 models' curve; left as it is")
        return
    data["name"], data["codec"] = "licodec bls2017", "licodec:bls2017"
    (folder / "licodec-bls2017.json").write_text(json.dumps(data, indent=2) + "\n")
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["codec"] = "licodec:bls2017"
    with open(folder / "licodec-bls2017-per-image.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    src.unlink()
    table.unlink()
    print(f"{folder}: the bls2017 curve is now licodec-bls2017 ({len(rows)} rows)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("--default-quality", type=float, default=6.0)
    p.add_argument("--results", nargs="*", default=["results/valid", "results/valid-photo"])
    args = p.parse_args()
    model, info = load_trained(args.weights)
    if not hasattr(model, "quality_range"):
        p.error(f"{args.weights} is not a variable-rate model")
    q_min, q_max = model.quality_range
    if not q_min <= args.default_quality <= q_max:
        p.error(f"--default-quality must lie in {q_min:g}..{q_max:g}")
    info = {**info, "name": VARIABLE_RATE_MODEL, "default_quality": args.default_quality}
    out = shipped_path(VARIABLE_RATE_MODEL)
    atomic_write(out, save_artifact(model, info), force=True)
    print(f"{out}: {out.stat().st_size:,} bytes, {info.get('steps', 0):,} steps, default quality "
          f"{args.default_quality:g}")
    for folder in map(Path, args.results):
        move_bls2017_curve(folder)
        print(f"  licodec eval {folder.name and '../shared/data/' + folder.name} --codecs licodec --out {folder} "
              f"--jobs 2 --anchor jpeg,jpeg2000,licodec-bls2017\n"
              f"  python scripts/zoo_table.py {folder}/licodec.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
