"""Codecs under evaluation behind one interface, each set up for its best curve.

A codec is named by a spec string, "name" or "name:options" (e.g. "licodec:path/to/
weights.safetensors"), so that worker processes can rebuild it.
"""
from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

# Target bits per pixel swept by codecs that take a rate directly (JPEG 2000), and the
# band every sweep aims at (the paper's curves span it).
TARGET_BPPS = (0.05, 0.08, 0.12, 0.18, 0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)


class Codec(ABC):
    name: str = ""
    label: str = ""

    @property
    def key(self) -> str:
        """The name of this curve's files in a results folder."""
        return self.name

    setting_name = "setting"

    def describe_setting(self, setting) -> str:
        """A setting with its parameter's name and unit, e.g. "distance 6.93"."""
        value = f"{setting:.3g}" if isinstance(setting, float) else str(setting)
        return f"{self.setting_name} {value}"

    @abstractmethod
    def settings(self) -> list:
        """The sweep, from the lowest rate to the highest."""

    def fine_settings(self) -> list:
        """A denser grid, for landing close to a requested size (``licodec compare``)."""
        return self.settings()

    @abstractmethod
    def encode(self, img: np.ndarray, setting) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...

    @abstractmethod
    def describe(self) -> dict:
        """Library, version and fixed settings, recorded in the results."""


def _imagecodecs():
    from ..extras import require
    return require("imagecodecs", "eval", "AVIF and JPEG XL")


def _pil_save(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pil_load(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _pil_version(feature: str) -> str:
    from PIL import features
    import PIL
    return f"Pillow {PIL.__version__}, {feature} {features.version(feature)}"


class JPEG(Codec):
    name, label = "jpeg", "JPEG"
    setting_name = "quality"

    def settings(self):
        return [3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]

    def fine_settings(self):
        return list(range(1, 101))

    def encode(self, img, q):
        return _pil_save(img, "JPEG", quality=int(q), subsampling=2, optimize=True)

    def decode(self, data):
        return _pil_load(data)

    def describe(self):
        from PIL import features
        lib = "libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
        return {"library": f"{_pil_version('jpg')} ({lib})",
                "settings": "quality sweep, 4:2:0 chroma subsampling, optimized Huffman tables"}


class JPEG2000(Codec):
    name, label = "jpeg2000", "JPEG 2000"

    def describe_setting(self, setting) -> str:
        return f"target {float(setting):.3g} bpp"

    def settings(self):
        return list(TARGET_BPPS)

    def fine_settings(self):
        return list(np.geomspace(0.03, 3.0, 80))

    def encode(self, img, bpp):
        h, w = img.shape[:2]
        levels = max(1, min(6, int(math.log2(max(1, min(h, w)))) + 1))
        ratio = 24.0 / float(bpp)  # compression ratio against 24-bit RGB
        return _pil_save(img, "JPEG2000", quality_mode="rates", quality_layers=[ratio],
                         irreversible=True, mct=1, num_resolutions=levels)

    def decode(self, data):
        return _pil_load(data)

    def describe(self):
        return {"library": _pil_version("jpg_2000") + " (OpenJPEG)",
                "settings": "rate control (quality_mode='rates', one layer at the target bpp), "
                            "irreversible 9/7 wavelet, RGB->YCC colour transform (mct=1), "
                            "up to 6 resolution levels"}


class WebP(Codec):
    name, label = "webp", "WebP"
    setting_name = "quality"

    def settings(self):
        return [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]

    def fine_settings(self):
        return list(range(0, 101))

    def encode(self, img, q):
        return _pil_save(img, "WEBP", quality=int(q), method=6)

    def decode(self, data):
        return _pil_load(data)

    def describe(self):
        return {"library": _pil_version("webp"), "settings": "lossy, quality sweep, method 6 (slowest, best)"}


class AVIF(Codec):
    name, label = "avif", "AVIF"
    setting_name = "quality"
    speed = 4
    pixelformat = "yuv444"

    def settings(self):
        return [5, 15, 25, 35, 45, 55, 65, 75, 85, 92]

    def fine_settings(self):
        return list(range(0, 101, 2))

    def encode(self, img, q):
        imagecodecs = _imagecodecs()
        return imagecodecs.avif_encode(img, level=int(q), speed=self.speed, pixelformat=self.pixelformat,
                                       numthreads=1)

    def decode(self, data):
        imagecodecs = _imagecodecs()
        return np.asarray(imagecodecs.avif_decode(data))[:, :, :3]

    def describe(self):
        imagecodecs = _imagecodecs()
        return {"library": f"imagecodecs {imagecodecs.__version__}, libavif {imagecodecs.avif_version()}",
                "settings": f"quality sweep, encoder speed {self.speed}, "
                            f"{self.pixelformat.upper()} (no chroma subsampling), 8 bits"}


class JPEGXL(Codec):
    name, label = "jpegxl", "JPEG XL"
    setting_name = "distance"
    effort = 7

    def settings(self):
        return [25.0, 15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.8, 1.2, 0.8, 0.5]

    def fine_settings(self):
        return list(np.geomspace(25.0, 0.2, 80))

    def encode(self, img, distance):
        imagecodecs = _imagecodecs()
        return imagecodecs.jpegxl_encode(img, distance=float(distance), effort=self.effort, numthreads=1)

    def decode(self, data):
        imagecodecs = _imagecodecs()
        return np.asarray(imagecodecs.jpegxl_decode(data))[:, :, :3]

    def describe(self):
        imagecodecs = _imagecodecs()
        return {"library": f"imagecodecs {imagecodecs.__version__}, libjxl {imagecodecs.jpegxl_version()}",
                "settings": f"Butteraugli distance sweep, effort {self.effort}"}


class Licodec(Codec):
    """The default model's rate points, given weights: 'licodec:a.safetensors,b...'
    (one rate point per factorized model; one variable-rate model at every whole
    quality of its range), or 'licodec:bls2017', the eight shipped bls2017 models
    (the default ones until a variable-rate model is installed)."""

    name = "licodec"

    def __init__(self, paths: str = ""):
        self.paths = [p for p in paths.split(",") if p] if paths else []
        self.bls2017 = self.paths == ["bls2017"]
        if self.bls2017:
            self.paths = []
        self._arts = {}
        self.variable = None  # the variable-rate model evaluated at several qualities
        if len(self.paths) == 1 and self._art(self.paths[0]).hyperprior:
            self.variable = self._art(self.paths[0])
        elif not self.paths and not self.bls2017:
            from ..zoo.registry import default_model
            self.variable = default_model()
        if self.bls2017:
            self.label = "licodec bls2017"
        else:
            self.label = "licodec" if not self.paths else f"licodec ({self._art(self.paths[0]).model_id})"

    @property
    def key(self) -> str:
        """The name of this curve's files: licodec, licodec-bls2017, or
        licodec-<weights file name>."""
        if self.bls2017:
            return "licodec-bls2017"
        if not self.paths:
            return "licodec"
        more = f"-and-{len(self.paths) - 1}-more" if len(self.paths) > 1 else ""
        return f"licodec-{Path(self.paths[0]).stem}{more}"

    def settings(self):
        if self.variable is not None:
            q_min, q_max = self.variable.model.quality_range
            return [float(q) for q in range(math.ceil(q_min), math.floor(q_max) + 1)]
        if self.paths:
            return list(self.paths)
        from ..errors import ModelError
        from ..zoo.registry import available_qualities
        if not available_qualities():
            raise ModelError("no shipped licodec models are installed; evaluate weights with licodec:PATH")
        return available_qualities()

    def fine_settings(self):
        if self.variable is not None:  # qualities 0.1 apart: files about 5% apart in size
            q_min, q_max = self.variable.model.quality_range
            return [round(q_min + i / 10, 1) for i in range(int(round((q_max - q_min) * 10)) + 1)]
        return self.settings()

    def _art(self, setting):
        from ..zoo.registry import resolve_model
        if setting not in self._arts:
            self._arts[setting] = resolve_model(setting if isinstance(setting, str) else None,
                                                None if isinstance(setting, str) else int(setting))
        return self._arts[setting]

    def describe_setting(self, setting) -> str:
        if self.variable is not None:
            return f"quality {float(setting):g}"
        if isinstance(setting, str):
            return f"model {self._art(setting).model_id}"
        return f"quality {setting}"

    def encode(self, img, setting):
        from ..codec import encode_array
        if self.variable is not None:
            return encode_array(img, self.variable, float(setting))
        return encode_array(img, self._art(setting))

    def decode(self, data):
        # The weights that wrote the file, by digest: a fine-tuned copy of a shipped model
        # keeps the shipped name (and the quality in the header) but not its digest.
        from ..codec import decode_array, read_header
        from ..errors import ModelError
        header = read_header(data)
        if self.variable is not None and self.variable.digest.startswith(header.model_digest):
            return decode_array(data, self.variable)
        keys = [] if self.variable is not None else self.settings()
        key = next((s for s in keys if self._art(s).digest.startswith(header.model_digest)), None)
        if key is None:
            raise ModelError(f"file was written with {header.model_name} "
                             f"({header.model_digest.hex()[:12]}), which is not among the evaluated weights")
        return decode_array(data, self._art(key))

    def describe(self):
        from .. import __version__
        if self.variable is not None:
            from ..codec import allocation_rule
            models = f"model {self.variable.model_id} at qualities {', '.join(f'{q:g}' for q in self.settings())}"
            rule = allocation_rule(self.variable)
            if rule is not None:
                models += f", each image's quality moved by the model's allocation rule (slope {rule[2]:g})"
        else:
            models = "models " + ", ".join(self._art(s).model_id for s in self.settings())
        return {"library": f"licodec {__version__}", "settings": models}


CODECS = {c.name: c for c in (JPEG, JPEG2000, WebP, AVIF, JPEGXL, Licodec)}


def make_codec(spec: str) -> Codec:
    name, _, options = spec.partition(":")
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    return CODECS[name](options) if options else CODECS[name]()
