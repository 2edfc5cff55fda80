from .base import ARCHITECTURES, CompressionModel, ModelConfig, RDOutput, build_from_config, build_model

__all__ = ["CompressionModel", "ModelConfig", "RDOutput", "build_model", "build_from_config", "ARCHITECTURES"]
