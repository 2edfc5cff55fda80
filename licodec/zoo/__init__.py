"""Exported and shipped models. Importing this package does not import torch: the
names below load their modules on first use, so that `licodec info` starts fast."""
from __future__ import annotations

_LAZY = {"Artifact": "artifact", "load_artifact": "artifact", "save_artifact": "artifact",
         "SHIPPED": "registry", "resolve_model": "registry"}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
