"""The frozen first stages of the analysis, computed once per training image.

When ``--freeze`` fixes the first stages of g_a (g_a.0 .. g_a.k-1: what a run that
trains only the latent layers does), every step would compute them again on its crops:
about a seventh of a step's work in the 320-channel line (benchmarks/RESULTS.md). FrontCache computes them once on
each whole image (and on each of its flips: the filters are not symmetric), keeps them
in float16, and hands the training step the piece under each crop. Crops then lie at
multiples of the stages' stride (CropDataset.draw's ``align``), so that the piece is
exactly the crop's features. Near a crop's edge the features see the image around the
crop instead of zero padding, as they do when a whole image is coded.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import LicodecError
from ..layers.gdn import GDN
from .data import Crop, CropDataset


def frozen_stages(g_a: nn.Sequential) -> int:
    """How many leading modules of ``g_a`` have parameters and none of them trainable."""
    k = 0
    for module in g_a:
        params = list(module.parameters())
        if not params or any(p.requires_grad for p in params):
            break
        k += 1
    return k


def stride_of(modules: nn.Sequential) -> int:
    s = 1
    for module in modules:
        if isinstance(module, nn.Conv2d):
            if module.stride[0] != module.stride[1]:
                raise LicodecError("--cache-front needs square strides")
            s *= module.stride[0]
        elif list(module.parameters()) and not isinstance(module, GDN):
            raise LicodecError(f"--cache-front cannot tell the stride of {type(module).__name__}")
    return s


class FrontCache:
    """g_a[:stages](image) of the training images, computed on first use."""

    def __init__(self, model: nn.Module, data: CropDataset, device: torch.device):
        g_a = getattr(model, "g_a", None)
        if not isinstance(g_a, nn.Sequential):
            raise LicodecError("--cache-front needs a model whose analysis is a sequence of layers")
        self.stages = frozen_stages(g_a)
        if not self.stages:
            raise LicodecError("--cache-front needs --freeze to fix the first stages of the analysis "
                               "(e.g. --freeze g_a.0,g_a.1,g_a.2,g_a.3); --no-cache-front turns it off")
        self.front = g_a[: self.stages]
        self.stride = stride_of(self.front)
        if data.crop % self.stride:
            raise LicodecError(f"--cache-front: the crop {data.crop} is not a multiple of the frozen "
                               f"stages' stride {self.stride}")
        self.data, self.device = data, device
        self._features: dict[tuple[int, bool, bool], Tensor] = {}

    @property
    def count(self) -> int:
        """How many (image, flips) have been computed."""
        return len(self._features)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._features.values())

    def image_features(self, image: int, flip_h: bool, flip_v: bool) -> Tensor:
        """(C, ceil(H / stride), ceil(W / stride)) float16 features of one image as flipped."""
        key = (image, flip_h, flip_v)
        found = self._features.get(key)
        if found is None:
            img = torch.from_numpy(self.data.images[image])
            dims = [d for d, flip in ((0, flip_v), (1, flip_h)) if flip]
            if dims:
                img = img.flip(dims)
            x = img.permute(2, 0, 1).unsqueeze(0).to(self.device).float().div_(255.0)
            with torch.no_grad():
                found = self.front(x)[0].to("cpu", torch.float16)
            self._features[key] = found
        return found

    def features(self, crops: list[Crop]) -> Tensor:
        """(len(crops), C, crop / stride, crop / stride) float32, on the cache's device:
        the frozen stages' output under each crop (drawn with align = stride)."""
        s, c = self.stride, self.data.crop // self.stride
        pieces = []
        for crop in crops:
            feats = self.image_features(crop.image, crop.flip_h, crop.flip_v)
            h, w = self.data.images[crop.image].shape[:2]
            top = h - self.data.crop - crop.top if crop.flip_v else crop.top
            left = w - self.data.crop - crop.left if crop.flip_h else crop.left
            if top % s or left % s:
                raise ValueError(f"crop at ({crop.top}, {crop.left}) is not aligned to {s} as flipped")
            pieces.append(feats[:, top // s: top // s + c, left // s: left // s + c])
        return torch.stack(pieces).to(self.device).float()
