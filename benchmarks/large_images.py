"""Peak memory and time of encoding and decoding large photos.

    python benchmarks/large_images.py [--mpix 1 8 24] [--model PATH]

Each size runs in a fresh subprocess, which reports its own peak resident memory
(ru_maxrss) after encoding and decoding matplotlib's sample photo resized to that many
megapixels (3:2 aspect). Without --model it uses the shipped quality-4 model, or a
randomly initialised bls2017 (N=192) when none is installed: memory and time do not
depend on the weights. Also reports PSNR near tile borders against the interior, to show
that tiling leaves no seams.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
from licodec.cli.demo_cmd import sample_photo_path
from licodec.codec import TILE, decode_array, encode_array
from licodec.zoo.registry import available_qualities, resolve_model
mpix, model = float(sys.argv[1]), sys.argv[2] or None
if model is None and not available_qualities():
    import torch
    from licodec.models import build_model
    from licodec.zoo.artifact import load_artifact_bytes, save_artifact
    torch.manual_seed(0)
    art = load_artifact_bytes(save_artifact(build_model("bls2017"), {"name": "random-init"}))
else:
    art = resolve_model(model)
w = int(round((mpix * 1e6 * 1.5) ** 0.5)); h = int(round(mpix * 1e6 / w))
img = np.asarray(Image.open(sample_photo_path()).convert("RGB").resize((w, h), Image.BICUBIC))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter(); data = encode_array(img, art); t1 = time.perf_counter()
rec = decode_array(data, art); t2 = time.perf_counter()
err = (rec.astype(np.float64) - img) ** 2
step = TILE * art.model.downsampling_factor
near = np.zeros(img.shape[:2], bool)
for k in range(step, h, step): near[max(0, k - 8):k + 8] = True
for k in range(step, w, step): near[:, max(0, k - 8):k + 8] = True
psnr = lambda m: float(10 * np.log10(255**2 / max(1e-12, err[m].mean()))) if m.any() else float("nan")
print(json.dumps({"mpix": w * h / 1e6, "size": f"{w}x{h}", "bytes": len(data),
                  "bpp": 8 * len(data) / (w * h), "enc_s": t1 - t0, "dec_s": t2 - t1,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "rss_before_gib": base / 2**20, "model": art.model_id,
                  "psnr_near_tile_borders": psnr(near), "psnr_interior": psnr(~near)}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mpix", type=float, nargs="+", default=[1, 8, 24])
    p.add_argument("--model", default="")
    args = p.parse_args()
    print(f"{'MP':>6} {'size':>11} {'bpp':>6} {'enc s':>7} {'dec s':>7} {'peak GiB':>9} "
          f"{'PSNR@borders':>13} {'PSNR inside':>12}")
    for mp in args.mpix:
        out = subprocess.run([sys.executable, "-c", CHILD, str(mp), args.model],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{mp:>6}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['mpix']:>6.1f} {r['size']:>11} {r['bpp']:>6.3f} {r['enc_s']:>7.1f} {r['dec_s']:>7.1f} "
              f"{r['peak_rss_gib']:>9.2f} {r['psnr_near_tile_borders']:>13.2f} {r['psnr_interior']:>12.2f}",
              flush=True)
    print(f"model: {r['model'] if 'r' in locals() else '?'}")


if __name__ == "__main__":
    main()
