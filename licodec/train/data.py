"""Training crops from any folder of PNG / JPEG images, held in memory as uint8."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..imageio import list_images, load_rgb

# Smallest side kept: below this an image is padded up to the crop (reflect), since a
# crop that is mostly padding teaches little.
MIN_SIDE_FRACTION = 0.5


class CropDataset:
    """Random crops with horizontal / vertical flips, sampled with a numpy Generator,
    from images drawn uniformly (``sampling="image"``) or in proportion to their area.

    Images smaller than the crop are reflect-padded when both sides are at least half
    the crop and skipped otherwise; unreadable files are skipped with a warning. Each
    rank of a distributed run takes every world_size-th image (its own shard).

    ``oversample``: {glob: factor}; an image whose file name matches a glob is drawn
    ``factor`` times as often as its sampling alone would draw it (the factors of
    several matching globs multiply).
    """

    def __init__(self, folder: str | Path, crop: int = 256, rank: int = 0, world_size: int = 1,
                 warn=print, sampling: str = "image", oversample: dict[str, float] | None = None):
        if sampling not in ("image", "area"):
            raise ValueError(f"sampling must be 'image' or 'area', got {sampling!r}")
        oversample = dict(oversample or {})
        for pattern, factor in oversample.items():
            if not factor > 0:
                raise ValueError(f"oversampling factor of {pattern!r} must be positive, got {factor:g}")
        self.crop = int(crop)
        self.sampling = sampling
        self.images: list[np.ndarray] = []
        self.names: list[str] = []
        self.skipped: list[str] = []
        for path in list_images(folder)[rank::world_size]:
            try:
                img = load_rgb(path)
            except Exception as exc:  # one bad file must not stop a training run
                self.skipped.append(f"{path.name}: {exc}")
                continue
            h, w = img.shape[:2]
            if min(h, w) < self.crop * MIN_SIDE_FRACTION:
                self.skipped.append(f"{path.name}: {w}x{h} is too small for crop {self.crop}")
                continue
            if h < self.crop or w < self.crop:
                img = np.pad(img, ((0, max(0, self.crop - h)), (0, max(0, self.crop - w)), (0, 0)),
                             mode="reflect")
            self.images.append(img)
            self.names.append(path.name)
        for msg in self.skipped:
            warn(f"skipped {msg}")
        if not self.images:
            raise ImageError(f"no usable training images in {folder}")
        area = np.array([img.shape[0] * img.shape[1] for img in self.images], dtype=np.float64)
        # "image": every image equally often; "area": every pixel equally likely to be
        # in a crop, so that large photographs count for their size
        weights = np.ones_like(area) if sampling == "image" else area
        for pattern, factor in oversample.items():
            hits = np.array([fnmatch.fnmatch(n, pattern) for n in self.names])
            if not hits.any():
                warn(f"--oversample {pattern}: no training image matches")
            weights = np.where(hits, weights * factor, weights)
        self.weights = None if sampling == "image" and not oversample else weights / weights.sum()

    def share(self, pattern: str) -> float:
        """The fraction of crops drawn from the images whose file names match ``pattern``."""
        hits = [fnmatch.fnmatch(n, pattern) for n in self.names]
        if self.weights is None:
            return sum(hits) / len(hits)
        return float(sum(w for w, hit in zip(self.weights, hits) if hit))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """uint8 array (size, crop, crop, 3)."""
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        c = self.crop
        for i in range(size):
            k = rng.integers(len(self.images)) if self.weights is None else rng.choice(len(self.images), p=self.weights)
            img = self.images[k]
            top = rng.integers(img.shape[0] - c + 1)
            left = rng.integers(img.shape[1] - c + 1)
            patch = img[top: top + c, left: left + c]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return out
