from .factorized import EntropyBottleneck

__all__ = ["EntropyBottleneck"]
