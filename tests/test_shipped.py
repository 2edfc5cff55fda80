"""The shipped models: load, verify, and code matplotlib's sample photo well."""
import numpy as np
import pytest

import licodec
from licodec.cli.demo_cmd import sample_photo_path
from licodec.eval.metrics import psnr
from licodec.imageio import load_image
from licodec.zoo.registry import SHIPPED, available_qualities, resolve_model


def test_at_least_one_model_ships():
    assert available_qualities(), "no shipped weights in licodec/zoo/weights"


@pytest.mark.parametrize("quality", available_qualities())
def test_shipped_model_codes_the_sample_photo(quality):
    art = resolve_model(quality=quality)
    assert art.model_id == SHIPPED[quality]
    assert art.model.config.architecture == "bls2017" and art.model.config.M == 192
    img = load_image(sample_photo_path())
    data = licodec.compress(img, quality=quality)
    out = np.asarray(licodec.decompress(data))
    assert out.shape == img.shape
    bpp = 8 * len(data) / (img.shape[0] * img.shape[1])
    # a trained model, not noise: well under 24 bpp and a recognisable image
    assert 0.02 < bpp < 3.0
    assert psnr(img, out) > 26.0
    assert data == licodec.compress(img, quality=quality)  # deterministic bytes
