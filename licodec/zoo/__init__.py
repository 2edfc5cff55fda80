from .artifact import Artifact, load_artifact, save_artifact
from .registry import SHIPPED, resolve_model

__all__ = ["Artifact", "load_artifact", "save_artifact", "SHIPPED", "resolve_model"]
