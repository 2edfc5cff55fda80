"""models: the installed models, what they code and where they come from."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--verbose", "-v", action="store_true", help="also show each model's training record")


def describe(config: dict, info: dict) -> str:
    """What a model codes: one rate, or its quality range."""
    if config.get("quality_max") is not None:
        return f"variable rate, quality {config['quality_min']:g}..{config['quality_max']:g}"
    lmbda = info.get("lmbda")
    return "one rate" + (f" (lambda {lmbda:g})" if isinstance(lmbda, (int, float)) else "")


def read_header(path) -> tuple[dict, dict, str]:
    """(config, info, recorded sha256) from a model file's header, without loading it."""
    import json

    from ..zoo.metadata import metadata
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        meta = metadata(n.to_bytes(8, "little") + fh.read(min(n, 100_000_000)))
    return json.loads(meta.get("config", "{}")), json.loads(meta.get("info", "{}")), meta.get("sha256", "")


def installed() -> list[tuple[str, str]]:
    """(name, how it is picked) of every installed shipped model, default first."""
    from ..zoo.registry import SHIPPED, VARIABLE_RATE_MODEL, available_qualities, shipped_path
    rows = []
    if shipped_path(VARIABLE_RATE_MODEL).is_file():
        rows.append((VARIABLE_RATE_MODEL, "default; --quality any number in its range"))
    for q in available_qualities():
        rows.append((SHIPPED[q], f"--quality {q}" if not rows or rows[0][0] != VARIABLE_RATE_MODEL
                     else f"--model bls2017 --quality {q} (or --model {SHIPPED[q]})"))
    return rows


def run(args) -> int:
    from ..errors import ModelError
    from ..zoo.registry import shipped_path
    rows = installed()
    if not rows:
        raise ModelError("no shipped models are installed; encode with --model PATH")
    for name, picked in rows:
        path = shipped_path(name)
        config, info, digest = read_header(path)
        size = path.stat().st_size / 1e6
        print(f"{name:<18} {describe(config, info):<34} {size:5.1f} MB  sha256 {digest[:12]}  {picked}")
        if args.verbose:
            steps, wall = info.get("steps"), info.get("wall_s")
            history = [h.get("name", "?") for h in info.get("history", [])]
            print(f"{'':<18} trained {steps} steps, {(wall or 0) / 3600:.1f} h in its last run"
                  + (f"; continued from {' <- '.join(reversed(history))}" if history else "") + f"; {path}")
            rule = info.get("allocation")
            if isinstance(rule, dict):
                print(f"{'':<18} quality moved per image by its allocation rule (slope {rule.get('slope')}, "
                      f"fitted on {rule.get('fitted_on', '?')}); --no-adapt keeps it")
    return 0
