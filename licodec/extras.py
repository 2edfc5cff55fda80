"""Optional dependencies: what needs which extra, and a clear message when it is missing.

The base install codes images (encode, decode, info, models). The extras add:
  demo   matplotlib (the sample photo), pytorch-msssim (MS-SSIM)      licodec demo
  eval   the above and imagecodecs (AVIF, JPEG XL)                     licodec eval / compare
  train  pytorch-msssim (validation, --metric ms-ssim)                 licodec train
"""
from __future__ import annotations

import importlib

from .errors import LicodecError

PACKAGES = {"matplotlib": "matplotlib", "pytorch_msssim": "pytorch-msssim", "imagecodecs": "imagecodecs"}


def require(module: str, extra: str, what: str):
    """The module, or a LicodecError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LicodecError(f"{what} needs {PACKAGES.get(module, module)}, which is not installed: "
                           f"pip install 'licodec[{extra}]' (in a checkout: pip install -e '.[{extra}]')") from None
