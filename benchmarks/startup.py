"""Start-up time of the command line: the commands that run no model should not wait
for torch.

    python benchmarks/startup.py [--repeats 5]

Each command runs in a fresh process (the median of ``--repeats`` runs); ``python -c
"import torch"`` is the reference for what importing torch alone costs.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    cli = [sys.executable, "-m", "licodec"]
    with tempfile.TemporaryDirectory() as tmp:
        png, lic = Path(tmp) / "a.png", Path(tmp) / "a.lic"
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(png)
        subprocess.run(cli + ["encode", str(png), str(lic)], check=True, stdout=subprocess.DEVNULL)
        commands = [("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
                    ("licodec --version", cli + ["--version"]),
                    ("licodec --help", cli + ["--help"]),
                    ("licodec info a.lic", cli + ["info", str(lic)]),
                    ("licodec models", cli + ["models"]),
                    ("licodec decode a.lic (64x64)", cli + ["decode", str(lic), str(Path(tmp) / "b.png"), "-f"])]
        print(f"median of {args.repeats} runs, each in a new process")
        for name, cmd in commands:
            print(f"{name:<32} {timed(cmd, args.repeats):6.2f} s", flush=True)


if __name__ == "__main__":
    main()
