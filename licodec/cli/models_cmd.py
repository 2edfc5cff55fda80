"""models: the installed models, what they code and where they come from."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--verbose", "-v", action="store_true", help="also show each model's training record")


def describe(art) -> str:
    """What a model codes: one rate, or its quality range."""
    if art.hyperprior:
        q_min, q_max = art.model.quality_range
        return f"variable rate, quality {q_min:g}..{q_max:g}"
    lmbda = art.info.get("lmbda")
    return "one rate" + (f" (lambda {lmbda:g})" if isinstance(lmbda, (int, float)) else "")


def installed() -> list[tuple[str, str]]:
    """(name, how it is picked) of every installed shipped model, default first."""
    from ..zoo.registry import SHIPPED, VARIABLE_RATE_MODEL, available_qualities, shipped_path
    rows = []
    if shipped_path(VARIABLE_RATE_MODEL).is_file():
        rows.append((VARIABLE_RATE_MODEL, "default; --quality any number in its range"))
    for q in available_qualities():
        rows.append((SHIPPED[q], f"--quality {q}" if not rows or rows[0][0] != VARIABLE_RATE_MODEL
                     else f"--model {SHIPPED[q]}"))
    return rows


def run(args) -> int:
    from ..errors import ModelError
    from ..zoo.registry import load_path, shipped_path
    rows = installed()
    if not rows:
        raise ModelError("no shipped models are installed; encode with --model PATH")
    for name, picked in rows:
        path = shipped_path(name)
        art = load_path(path)
        size = path.stat().st_size / 1e6
        print(f"{name:<18} {describe(art):<34} {size:5.1f} MB  sha256 {art.digest.hex()[:12]}  {picked}")
        if args.verbose:
            steps, wall = art.info.get("steps"), art.info.get("wall_s")
            history = [h.get("name", "?") for h in art.info.get("history", [])]
            print(f"{'':<18} trained {steps} steps, {(wall or 0) / 3600:.1f} h in its last run"
                  + (f"; continued from {' <- '.join(reversed(history))}" if history else "") + f"; {path}")
    return 0
