"""Continue a training run on another machine (a rented GPU) for a fixed time.

Here, pack what the other machine needs into one folder (kept small enough to copy):

    python scripts/remote_train.py pack --init runs/hp-main/checkpoint.pt \
        --data ../shared/data/train --budget-mb 44 --wheels

    -> .remote/init.safetensors (the weights, float16), .remote/data/ (a random subset of
       the training images, drawn in proportion to their area, within --budget-mb; with
       --region 448, a random 448x448 part of each, so that about three times as many
       images fit),
       .remote/wheels/ (licodec's dependencies that a PyTorch image lacks, for Python 3.12)

There, from a copy of this repository with .remote/ in it:

    python3 scripts/remote_train.py run --minutes 8 --batch 16 --out OUTDIR

trains bls2017-hp from .remote/init.safetensors on .remote/data (CUDA if there is one)
for --minutes, stops it as Ctrl-C would (a checkpoint is written), and exports the
weights to OUTDIR/model.safetensors (float16, under 17 MB) with OUTDIR/log.csv. Back
here, continue on the CPU from them in a new run folder:

    licodec train --init OUTDIR/model.safetensors --model bls2017-hp --out runs/hp-next ...

Adam's state does not travel (each side starts it afresh, with --warmup steps of warm-up).
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / ".remote"
# the run's settings: those of the main bls2017-hp run (see README, "bls2017-hp")
TRAIN_ARGS = ["--model", "bls2017-hp", "--quantizer", "mixed", "--sampling", "area", "--density-lr-scale", "10",
              "--balance", "0.75", "--steps", "10000000", "--no-progress", "--checkpoint-minutes", "1000"]


def pack(args) -> int:
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from licodec.imageio import atomic_write, list_images
    from licodec.train.loop import load_trained, parse_oversample
    from licodec.zoo.artifact import save_artifact

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    model, info = load_trained(args.init)
    if str(args.init).endswith(".pt"):
        info["name"] = Path(args.init).parent.name
    atomic_write(out / "init.safetensors", save_artifact(model, info), force=True)

    paths = list_images(args.data)
    sizes = [Image.open(p).size for p in paths]
    region = args.region
    # what each image may put in: its area, or the part of it a region crop keeps
    areas = np.array([min(w, region or w) * min(h, region or h) for w, h in sizes], dtype=float)
    weights = areas.copy()
    for pattern, factor in parse_oversample(args.oversample).items():  # licodec train's syntax
        weights *= np.array([factor if fnmatch.fnmatch(p.name, pattern) else 1.0 for p in paths])
    rng = np.random.default_rng(args.seed)
    order = rng.choice(len(paths), size=len(paths), replace=False, p=weights / weights.sum())
    budget, used, taken = args.budget_mb * 1e6, 0, 0
    for i in order:
        (w, h), target = sizes[i], out / "data" / (paths[i].stem + ".webp")
        if region and (w > region or h > region):  # a random region, stored losslessly
            left, top = rng.integers(w - min(w, region) + 1), rng.integers(h - min(h, region) + 1)
            with Image.open(paths[i]) as im:
                crop = im.convert("RGB").crop((left, top, left + min(w, region), top + min(h, region)))
            crop.save(target, lossless=True, method=4)
        else:
            shutil.copyfile(paths[i], target.with_suffix(paths[i].suffix))
            target = target.with_suffix(paths[i].suffix)
        if used + target.stat().st_size > budget:
            target.unlink()
            continue
        used += target.stat().st_size
        taken += 1
    if args.wheels:
        pins = ["constriction==" + _version("constriction"), "pytorch-msssim==" + _version("pytorch-msssim")]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                        "-d", str(out / "wheels"), *pins], check=True)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {taken} of {len(paths)} images ({used / 1e6:.1f} MB), init weights of step "
          f"{info.get('steps')}, {total / 2**20:.1f} MiB in all")
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


def run(args) -> int:
    pack_dir = Path(args.pack)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    wheels = sorted((pack_dir / "wheels").glob("*.whl"))
    if wheels:
        site = Path("/tmp/licodec-site")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{site}"
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run_dir = Path(args.run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [sys.executable, "-m", "licodec", "train", "--data", str(pack_dir / "data"), "--out", str(run_dir),
           "--init", str(pack_dir / "init.safetensors"), "--device", device, "--batch", str(args.batch),
           "--lr", str(args.lr), "--warmup", str(args.warmup), *TRAIN_ARGS, *args.extra]
    print(" ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env)
    try:
        proc.wait(timeout=args.minutes * 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the run writes its checkpoint and stops
        proc.wait(timeout=300)
    print(f"trained for {(time.time() - t0) / 60:.1f} minutes on {device}", flush=True)
    if not (run_dir / "checkpoint.pt").exists():
        print("no checkpoint was written", file=sys.stderr)
        return 1
    subprocess.run([sys.executable, "-m", "licodec", "export", str(run_dir / "checkpoint.pt"),
                    str(out / "model.safetensors"), "--name", args.name, "-f"], env=env, check=True)
    shutil.copyfile(run_dir / "log.csv", out / "log.csv")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="here: weights, a data subset and wheels into one folder")
    a.add_argument("--init", required=True, help="checkpoint.pt or model .safetensors to continue from")
    a.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    a.add_argument("--budget-mb", type=float, default=44.0, help="size of the data subset")
    a.add_argument("--wheels", action="store_true", help="also download constriction and pytorch-msssim")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--region", type=int, default=0,
                   help="keep a random REGION x REGION part of each larger image (lossless WebP), so that "
                        "the budget holds more images (0: whole images)")
    a.add_argument("--oversample", help="GLOB=FACTOR,...: draw matching images FACTOR times as often "
                                        "into the subset (pass the same to run after --)")
    a.add_argument("--out", default=str(PACK))
    b = sub.add_parser("run", help="there: train for --minutes, export to --out")
    b.add_argument("--pack", default=str(PACK))
    b.add_argument("--minutes", type=float, default=8.0)
    b.add_argument("--batch", type=int, default=16)
    b.add_argument("--lr", type=float, default=1e-4)
    b.add_argument("--warmup", type=int, default=200)
    b.add_argument("--run-dir", default="/tmp/licodec-remote-run", help="checkpoint and log (large)")
    b.add_argument("--name", default="bls2017-hp-remote")
    b.add_argument("--out", required=True, help="where model.safetensors and log.csv go")
    b.add_argument("extra", nargs="*", help="more licodec train options (after --)")
    args = p.parse_args(argv)
    return pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    sys.exit(main())
