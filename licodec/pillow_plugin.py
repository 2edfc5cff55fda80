"""Pillow support for .lic files, registered on ``import licodec``:

    Image.open("photo.lic")                 # decodes with the model the file names
    im.save("photo.lic", quality=4.5)       # or size=BYTES, target_bpp=, target_psnr=, model=, adapt=

Like pillow-heif and pillow-avif-plugin. Torch is imported only when pixels are needed.
"""
from __future__ import annotations

from PIL import Image, ImageFile

from .bitstream.format import MAGIC

FORMAT = "LIC"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class LicImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "licodec learned image codec"

    def _open(self):
        from . import bitstream
        from .errors import LicodecError
        data = self.fp.read()
        try:
            header = bitstream.read(data)[0]
        except LicodecError as exc:
            raise SyntaxError(str(exc)) from None
        self._data = data
        self._mode = "L" if header.channels == 1 else "RGB"
        self._size = (header.width, header.height)
        self.info["licodec_model"] = header.model_name
        if header.quality:
            self.info["quality"] = header.quality / 1000
        self.tile = []

    def load(self):
        if getattr(self, "_data", None) is not None:
            from .codec import decode_image
            arr, icc = decode_image(self._data)
            decoded = Image.fromarray(arr, mode=self.mode)
            self.im = decoded.im
            if icc:
                self.info["icc_profile"] = icc
            self._data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from .codec import compress
    opts = im.encoderinfo
    icc = opts.get("icc_profile", im.info.get("icc_profile"))
    image = im if not icc or im.info.get("icc_profile") == icc else _with_icc(im, icc)
    data = compress(image, model=opts.get("model"), quality=opts.get("quality"), convert=opts.get("convert", False),
                    target_bpp=opts.get("target_bpp"), size=opts.get("size"), target_psnr=opts.get("target_psnr"),
                    adapt=opts.get("adapt", True))
    fp.write(data)


def _with_icc(im: Image.Image, icc: bytes) -> Image.Image:
    im = im.copy()
    im.info["icc_profile"] = icc
    return im


def register() -> None:
    Image.register_open(FORMAT, LicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".lic")
    Image.register_mime(FORMAT, "image/x-licodec")
