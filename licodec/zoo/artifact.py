"""Exported models: weights (fp16), coding tables and config in one safetensors file.

The export step is the only place tables are built. Its content digest (sha256 over
every tensor and the config) identifies the model in bitstreams; loading recomputes it
and refuses a file whose digest does not match what it claims (tampering, truncation).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as st_load_bytes
from safetensors.numpy import save as st_save_bytes

from ..coding.tables import CDF_PRECISION, CodingTables
from ..errors import ModelError
from ..models import CompressionModel, ModelConfig, build_from_config
from .metadata import FORMAT_NAME, metadata as _metadata

FORMAT_VERSION = 1
TABLE_PREFIX = "tables."
# A factorized model's tables are stored as tables.freqs, ... (what licodec 0.1 wrote);
# a model with several coded latents stores tables.<section>.freqs, ...
# An artifact larger than this is refused before reading (shipped ones are ~10 MB).
MAX_ARTIFACT_BYTES = 1 << 30


@dataclass
class Artifact:
    model: CompressionModel
    tables: dict[str, CodingTables]  # by bitstream section: "y" (and "z" for a hyperprior)
    digest: bytes  # sha256 of tensors + config
    info: dict = field(default_factory=dict)  # lmbda, metric, steps, ... (not hashed)

    @property
    def model_id(self) -> str:
        return str(self.info.get("name", self.model.config.architecture))

    @property
    def hyperprior(self) -> bool:
        return "z" in self.tables

    @property
    def precision(self) -> int:
        return self.tables["y"].precision


def _digest(arrays: dict[str, np.ndarray], config: dict) -> bytes:
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True).encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + b"\0" + str(arr.dtype).encode() + b"\0")
        h.update(np.array(arr.shape, dtype="<i8").tobytes())
        h.update(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return h.digest()


def build_tables(model, precision: int = CDF_PRECISION) -> dict[str, CodingTables]:
    """The coding tables of every coded latent of ``model``, by section name."""
    if hasattr(model, "gaussian"):
        return {"z": model.entropy_bottleneck.build_tables(precision),
                "y": model.gaussian.build_tables(precision)}
    return {"y": model.entropy_bottleneck.build_tables(precision)}


def _table_arrays(tables: dict[str, CodingTables]) -> dict[str, np.ndarray]:
    if set(tables) == {"y"}:
        return {TABLE_PREFIX + k: v for k, v in tables["y"].to_arrays().items()}
    return {f"{TABLE_PREFIX}{name}.{k}": v for name, t in tables.items() for k, v in t.to_arrays().items()}


def _tables_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, CodingTables]:
    keys = [k[len(TABLE_PREFIX):] for k in arrays if k.startswith(TABLE_PREFIX)]
    if not any("." in k for k in keys):
        return {"y": CodingTables.from_arrays({k: arrays[TABLE_PREFIX + k] for k in keys})}
    names = sorted({k.split(".", 1)[0] for k in keys})
    return {name: CodingTables.from_arrays({k.split(".", 1)[1]: arrays[TABLE_PREFIX + k]
                                            for k in keys if k.startswith(name + ".")}) for name in names}


def export_arrays(model: CompressionModel, precision: int = CDF_PRECISION) -> tuple[dict, dict[str, CodingTables]]:
    """Rounds the weights to fp16, loads them back and builds tables from exactly those.

    The tail quantiles are set by bisection first, so the tables cover the density
    whatever state the auxiliary optimiser reached.
    """
    model.entropy_bottleneck.update_quantiles()
    # contiguous: a channels_last model's tensors are strided, and safetensors stores raw memory
    state = {k: v.detach().float().cpu().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    tables = build_tables(model, precision)
    arrays = {k: v.numpy() for k, v in state.items()}
    arrays.update(_table_arrays(tables))
    return arrays, tables


def save_artifact(model: CompressionModel, info: dict | None = None,
                  precision: int = CDF_PRECISION) -> bytes:
    """The bytes of an exported model (write them with imageio.atomic_write).

    Works on a copy: the caller's model keeps its float32 weights and quantiles.
    """
    model = copy.deepcopy(model).cpu().eval()
    arrays, _ = export_arrays(model, precision)
    config = model.config.to_dict()
    meta = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION),
            "config": json.dumps(config, sort_keys=True),
            "info": json.dumps(info or {}, sort_keys=True),
            "sha256": _digest(arrays, config).hex()}
    return st_save_bytes(arrays, metadata=meta)


def load_artifact_bytes(data: bytes, source: str = "weights") -> Artifact:
    meta = _metadata(data)
    if meta.get("version") != str(FORMAT_VERSION):
        raise ModelError(f"{source}: model format version {meta.get('version')} is not supported")
    try:
        arrays = st_load_bytes(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ModelError(f"{source}: corrupt weights file ({exc})") from None
    try:
        config = json.loads(meta["config"])
        info = json.loads(meta.get("info", "{}"))
        claimed = bytes.fromhex(meta["sha256"])
    except (KeyError, ValueError, json.JSONDecodeError):
        raise ModelError(f"{source}: corrupt model metadata") from None
    digest = _digest(arrays, config)
    if digest != claimed:
        raise ModelError(f"{source}: weights do not match their recorded sha256 (tampered or corrupt)")
    try:
        if not isinstance(config, dict):
            raise ValueError("config is not a mapping")
        model = build_from_config(ModelConfig.from_dict(config))
        tables = _tables_from_arrays(arrays)
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()
                 if not k.startswith(TABLE_PREFIX)}
        model.load_state_dict(state, strict=True)
        if hasattr(model, "check_exact"):
            model.check_exact()
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"{source}: weights do not fit the model they describe ({exc})") from None
    expected = ({"z": model.entropy_bottleneck.channels, "y": model.gaussian.levels} if hasattr(model, "gaussian")
                else {"y": model.config.M})
    if set(tables) != set(expected):
        raise ModelError(f"{source}: coding tables for {sorted(tables)}, the model codes {sorted(expected)}")
    for name, rows in expected.items():
        if tables[name].channels != rows:
            raise ModelError(f"{source}: {tables[name].channels} coding tables for {name}, the model needs {rows}")
    return Artifact(model.eval(), tables, digest, info)


def load_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_ARTIFACT_BYTES:
            raise ModelError(f"{path}: {size} bytes is too large for a model file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a model file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror})") from None
    return load_artifact_bytes(data, source=str(path))
