from .base import CompressionModel, ModelConfig, RDOutput, build_model, ARCHITECTURES

__all__ = ["CompressionModel", "ModelConfig", "RDOutput", "build_model", "ARCHITECTURES"]
