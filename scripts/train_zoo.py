"""The recipe of the shipped bls2017 MSE models (licodec/zoo/weights/bls2017-mse-q1..q8).

    python scripts/train_zoo.py --runs runs [--steps 1000] [--only 3 4] [--ship]

1. A base model at lambda 0.013 (runs/base-l0130), trained with
   licodec train --lmbda 0.013 --lr 2e-4 (resumable with --resume).
2. Each quality fine-tuned at its own lambda, lr 2e-4 with a 10x decay for the last 30%
   of the steps, from the base checkpoint or, for the rates far from it, from the
   neighbouring quality's run (PARENT): q2 from q3, q1 from q2, q8 from q7. Every run is
   resumable: a second call continues where a stopped one left off (raise --steps to
   train longer).
3. --ship exports each run's latest checkpoint into licodec/zoo/weights/.

The shipped set was made by these calls, in this order (--runs /work/runs):
    --only 3 4 6 7 --steps 1000
    --only 2 1 8 --steps 3000                  (q2 from q3 at step 1000; q8 at lambda 0.15)
    --only 7 --steps 3000 --quantizer mixed
    --only 8 --steps 5000 --quantizer mixed    (lambda 0.10 from step 3000)
    --only 3 --steps 3000 --quantizer mixed
    --only 2 1 --steps 4500 --quantizer mixed
    --only 4 6 --steps 2000 --quantizer mixed
    --only 5 --steps 1000 --quantizer mixed    (from the base run's 19,000 steps)
    --no-train --ship
and then continued from those shipped weights in new runs (shipped in e9c3a1a, 2026-11-24; two runs at a
time, each with OMP_NUM_THREADS=1: 1.05 MP/s of crops each by their log.csv, 2.1 in all,
against 1.8 for one run on both cores):
    --only 8 --steps 8000 --quantizer mixed --from-shipped --valid-every 2000   (lambda 0.075)
    --only 7 --steps 6000 --quantizer mixed --from-shipped --valid-every 2000
    --only 5 --steps 5000 --quantizer mixed --from-shipped --valid-every 2500
    --only 8 --steps 14000 --lr 1e-4 --quantizer mixed --valid-every 2000       (lambda 0.06 from step 8000)
    --only 3 --steps 3500 --quantizer mixed --from-shipped
    --only 3 5 7 8 --no-train --ship
and then (03cae9b), again from the shipped weights, q7 at lambda 0.038 (was 0.045) and q8
at 0.05 (was 0.06), to bring their rates back down to about 1.25 and 1.5 bpp:
    --only 7 8 --steps 14000 --lr 1e-4 --quantizer mixed --from-shipped --valid-every 7000
    --only 7 8 --no-train --ship
Each model file records the runs it came from (info["history"], shown by zoo_table.py).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# Around the base model's 0.013 (quality 5), aiming at about 0.1 to 1.5 bpp on
# ../shared/data/valid. bpp grows more slowly with lambda at high rates, so the ends are
# spaced wider.
# q8 ran at 0.15 (1.62 bpp, beyond where this 192-channel model beats JPEG), then 0.10,
# 0.075, 0.06 and 0.05: with the mixed quantizer the rate at a given lambda creeps up as
# training goes on (q7 at 0.045: 1.19 -> 1.32 bpp on 24 valid images over 6,000 steps).
LAMBDAS = {1: 0.0005, 2: 0.0016, 3: 0.0043, 4: 0.0075, 5: 0.013, 6: 0.024, 7: 0.038, 8: 0.05}
# Qualities fine-tuned from another quality's run instead of the base.
PARENT = {2: 3, 1: 2, 8: 7}
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def licodec(*args: str) -> None:
    cmd = [sys.executable, "-m", "licodec", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=ROOT / "runs")
    p.add_argument("--base", type=Path, help="checkpoint to fine-tune from (default RUNS/base-l0130)")
    p.add_argument("--steps", type=int, default=1000, help="total steps of each fine-tune")
    p.add_argument("--only", type=int, nargs="*", help="qualities to train (default all)")
    p.add_argument("--ship", action="store_true", help="export the runs into the package")
    p.add_argument("--no-train", dest="train", action="store_false")
    p.add_argument("--quantizer", default="noise", choices=["noise", "mixed"],
                   help="what the synthesis sees in training (licodec train --quantizer)")
    p.add_argument("--from-shipped", action="store_true",
                   help="a new run starts from the quality's shipped weights, not from the base or PARENT")
    p.add_argument("--lr", default="2e-4", help="learning rate before the 10x decay")
    p.add_argument("--valid-every", type=int, help="steps between validations (default: at the end)")
    args = p.parse_args()
    base = args.base or args.runs / "base-l0130" / "checkpoint.pt"
    qualities = args.only or sorted(LAMBDAS)
    for q in qualities:
        out = args.runs / f"bls2017-mse-q{q}"
        if args.train:
            start = args.runs / f"bls2017-mse-q{PARENT[q]}" / "checkpoint.pt" if q in PARENT else base
            if args.from_shipped:
                start = ROOT / "licodec" / "zoo" / "weights" / f"bls2017-mse-q{q}.safetensors"
            resume = ["--resume"] if (out / "checkpoint.pt").exists() else ["--init", str(start)]
            licodec("train", "--data", str(DATA / "train"), "--valid", str(DATA / "valid"),
                    "--lmbda", str(LAMBDAS[q]), "--steps", str(args.steps), "--lr", args.lr,
                    "--decay-at", "0.7", "--warmup", "50", "--valid-every", str(args.valid_every or args.steps),
                    "--valid-limit", "24", "--quantizer", args.quantizer, "--compile", "--no-progress",
                    "--out", str(out), *resume)
        if args.ship:
            licodec("export", str(out / "checkpoint.pt"),
                    str(ROOT / "licodec" / "zoo" / "weights" / f"bls2017-mse-q{q}.safetensors"),
                    "--name", f"bls2017-mse-q{q}", "--force")


if __name__ == "__main__":
    main()
