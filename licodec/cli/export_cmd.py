"""export: a training checkpoint (or artifact) -> a model file that encode/decode accept."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError


def add_arguments(p):
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt of a training run, or a .safetensors model")
    p.add_argument("output", type=Path, help="model file to write (.safetensors)")
    p.add_argument("--name", required=True, help="model name recorded in files, e.g. bls2017-mse-q4")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing output file")
    p.add_argument("--raw", action="store_true",
                   help="export the run's own weights, not their moving average (runs trained with --ema)")


def run(args) -> int:
    from ..bitstream.format import _NAME_RE
    from ..imageio import atomic_write
    from ..train.loop import load_trained
    from ..zoo.artifact import load_artifact_bytes, save_artifact
    if not _NAME_RE.match(args.name):
        raise ModelError(f"invalid model name {args.name!r} (letters, digits, . _ -, at most 64)")
    model, info = load_trained(args.checkpoint, raw=args.raw)
    info["name"] = args.name
    data = save_artifact(model, info)
    art = load_artifact_bytes(data)
    atomic_write(args.output, data, force=args.force)
    print(f"{args.output}: {len(data)} bytes, {art.model_id}, sha256 {art.digest.hex()[:16]}..., "
          f"steps {info.get('steps')}" + (f", moving average (decay {info['ema']:g})" if info.get("ema") else ""))
    return 0
