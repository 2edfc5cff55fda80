"""The shipped models: one name per file in zoo/weights.

The default is the variable-rate model (VARIABLE_RATE_MODEL, any quality in its range)
when it is installed; the paper's models stay available by name, one per quality 1..8
(SHIPPED) or as one family (PAPER_FAMILY), and are the default where the variable-rate
model is not installed.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from .metadata import claimed_digest

if TYPE_CHECKING:
    from .artifact import Artifact

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Quality q (1 = smallest files) -> shipped model name.
SHIPPED = {q: f"bls2017-mse-q{q}" for q in range(1, 9)}
DEFAULT_QUALITY = 5
VARIABLE_RATE_MODEL = "bls2017-hp-mse"
# `--model bls2017`: the eight SHIPPED models as one family, --quality 1..8 picks one
# and a size or PSNR target searches over them
PAPER_FAMILY = "bls2017"


def default_model() -> Artifact | None:
    """The installed variable-rate model, or None."""
    path = shipped_path(VARIABLE_RATE_MODEL)
    return load_path(path) if path.is_file() else None


def select_model(model: str | Path | Artifact | None = None,
                 quality: float | None = None) -> tuple[Artifact, float | None]:
    """(model, quality to encode with) for a model name / path / artifact and a quality.

    With no model: the variable-rate model at ``quality``, or, where it is not
    installed, the shipped factorized model of that whole quality. A factorized model
    given by name or path has one rate and takes no quality.
    """
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, (int, float))):
        raise ModelError(f"quality must be a number, got {type(quality).__name__} {quality!r}")
    if is_paper_family(model):
        return _paper_model(quality), None
    if model is not None:
        art = resolve_model(model)
        if "z" in art.tables:
            return art, quality
        if quality is not None:
            raise ModelError(f"model {art.model_id} has one rate; --quality applies to variable-rate "
                             "models, or picks a shipped model when no --model is given")
        return art, None
    art = default_model()
    if art is not None:
        return art, quality
    return _paper_model(quality), None


def is_paper_family(model) -> bool:
    """Whether ``model`` names the eight bls2017 models as one family."""
    return isinstance(model, str) and model == PAPER_FAMILY


def _paper_model(quality: float | None) -> Artifact:
    if quality is not None and float(quality) != int(quality):
        raise ModelError(f"the bls2017 models take whole qualities 1..{len(SHIPPED)}, not {quality!r}")
    return resolve_model(None, None if quality is None else int(quality))


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def available_qualities() -> list[int]:
    return [q for q, name in SHIPPED.items() if shipped_path(name).is_file()]


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime: float) -> Artifact:
    from .artifact import load_artifact
    return load_artifact(path)


def load_path(path: str | Path) -> Artifact:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: model file not found")
    return _load_cached(str(p.resolve()), p.stat().st_mtime)


def resolve_model(model: str | Path | Artifact | None = None, quality: int | None = None) -> Artifact:
    """A model by artifact, file path, shipped name, or shipped quality."""
    if not isinstance(model, (str, Path, type(None))):
        from .artifact import Artifact
        if isinstance(model, Artifact):
            return model
        raise ModelError(f"model must be a name, a path or an Artifact, not {type(model).__name__}")
    if model is None:
        have = available_qualities()
        if quality is None:  # the default, or the installed quality nearest to it
            if not have:
                raise ModelError("no shipped models are installed; give --model PATH")
            quality = min(have, key=lambda q: (abs(q - DEFAULT_QUALITY), q))
        if quality not in SHIPPED:
            raise ModelError(f"quality must be 1..{len(SHIPPED)}, got {quality}")
        path = shipped_path(SHIPPED[quality])
        if not path.is_file():
            raise ModelError(f"shipped model for quality {quality} is not installed "
                             f"(installed qualities: {', '.join(map(str, have)) or 'none'}); "
                             "give --model PATH")
        return load_path(path)
    if str(model) in SHIPPED.values() or str(model) == VARIABLE_RATE_MODEL:
        path = shipped_path(str(model))
        if not path.is_file():
            raise ModelError(f"shipped model {model} is not installed; give --model PATH")
        return load_path(path)
    path = Path(model)
    if not path.is_file() and path.suffix != ".safetensors" and "/" not in str(model):
        names = installed_names()
        raise ModelError(f"unknown model {model!r}; installed: {', '.join(names) or 'none'} "
                         "(or give the path of a .safetensors file)")
    if path.suffix == ".pt":
        raise ModelError(f"{path}: a training checkpoint, not a model file; turn it into one with "
                         f"licodec export {path} OUT.safetensors --name NAME")
    return load_path(model)


def installed_names() -> list[str]:
    """The installed shipped models, the default first."""
    names = [VARIABLE_RATE_MODEL] if shipped_path(VARIABLE_RATE_MODEL).is_file() else []
    return names + [SHIPPED[q] for q in available_qualities()]


def find_shipped_path(digest_prefix: bytes) -> Path | None:
    """The shipped model file whose recorded sha256 starts with ``digest_prefix`` (from
    the files' headers: no weights are loaded, no torch is imported)."""
    for name in installed_names():
        digest = claimed_digest(shipped_path(name))
        if digest is not None and digest.startswith(digest_prefix):
            return shipped_path(name)
    return None


def find_by_digest(digest_prefix: bytes, name_hint: str | None = None) -> Artifact | None:
    """The shipped model whose digest starts with ``digest_prefix`` (loaded, and so
    checked against its recorded sha256)."""
    path = find_shipped_path(digest_prefix)
    if path is None:
        return None
    art = load_path(path)
    return art if art.digest.startswith(digest_prefix) else None
