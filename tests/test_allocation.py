"""The per-image move of a variable-rate model's quality (codec.allocated_quality) and
the script that fits it (scripts/fit_allocation.py)."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import licodec
from licodec import bitstream
from licodec.codec import (ALLOCATION, MAX_MOVE, HyperpriorEncoder, allocated_quality, decode_array, encode_array,
                           nonzero_share)
from licodec.errors import ModelError
from licodec.zoo.artifact import load_artifact

from .conftest import smooth_image

ROOT = Path(__file__).resolve().parent.parent


def _flat(h=64, w=96):
    return np.full((h, w, 3), 120, np.uint8)


def _busy(h=64, w=96):
    return np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _share(art, img, q):
    return nonzero_share(art.model, HyperpriorEncoder(img, art).y, q)


def _with_rule(art, **rule):
    return dataclasses.replace(art, info={**art.info, ALLOCATION: rule})


@pytest.fixture(scope="module")
def ruled(tiny_hp_artifact):
    """The tiny model with a rule whose reference lies 0.5 above ln share of _busy() at quality 5."""
    art = tiny_hp_artifact
    level = math.log(_share(art, _busy(), 5.0)) + 0.5
    return _with_rule(art, qualities=[1.0, 5.0, 9.0, 10.0], reference=[level - 0.4, level, level + 0.4,
                                                                      level + 0.5], slope=-2.0)


def _coded_quality(data):
    return bitstream.read(data)[0].quality / 1000


def test_without_a_rule_the_quality_is_the_one_asked(tiny_hp_artifact):
    img = smooth_image(50, 70)
    assert encode_array(img, tiny_hp_artifact, 5.0) == encode_array(img, tiny_hp_artifact, 5.0, adapt=False)
    assert _coded_quality(encode_array(img, tiny_hp_artifact, 5.0)) == 5.0


def test_the_rule_moves_busy_images_down_and_easy_ones_up(tiny_hp_artifact):
    art = _with_rule(tiny_hp_artifact, qualities=[1.0, 10.0], reference=[math.log(1 / 16), math.log(1 / 4)],
                     slope=-0.5)
    m = art.model.config.M
    gain = art.model.gains(torch.tensor([5.0]))
    sparse = torch.zeros(1, m, 8, 8)
    sparse[:, :, 0, :2] = 0.6 / gain[:, :, 0, 0, None]  # 1/32 of the latents nonzero at quality 5
    dense = torch.full((1, m, 8, 8), 0.6) / gain  # all of them
    level = math.log(1 / 16) + 4 / 9 * (math.log(1 / 4) - math.log(1 / 16))
    up, down = allocated_quality(art, sparse, 5.0), allocated_quality(art, dense, 5.0)
    assert up == pytest.approx(5.0 - 0.5 * (math.log(1 / 32) - level), abs=1e-6)
    assert down == pytest.approx(5.0 - 0.5 * (0.0 - level), abs=1e-6)
    assert up > 5.0 > down


def test_the_encoder_codes_at_the_moved_quality(ruled):
    busy = _busy()
    data = encode_array(busy, ruled, 5.0)
    # ln share is 0.5 below the reference at 5: slope -2 moves it one quality up
    assert _coded_quality(data) == pytest.approx(6.0, abs=1e-3)
    assert _coded_quality(data) == round(allocated_quality(ruled, HyperpriorEncoder(busy, ruled).y, 5.0) * 1000) / 1000
    assert data == encode_array(busy, ruled, _coded_quality(data), adapt=False)
    # adapt=False codes at the quality asked, and the file decodes like any other
    assert _coded_quality(encode_array(busy, ruled, 5.0, adapt=False)) == 5.0
    assert decode_array(data, ruled).shape == busy.shape


def test_the_moved_quality_stays_in_the_models_range_and_moves_by_max_move_at_most(ruled):
    for slope, asked, coded in ((-50.0, 5.0, 5.0 + MAX_MOVE), (50.0, 5.0, 5.0 - MAX_MOVE),
                                (-50.0, 9.0, 10.0), (50.0, 2.0, 1.0)):
        steep = _with_rule(ruled, **{**ruled.info[ALLOCATION], "slope": slope})
        assert _coded_quality(encode_array(_busy(), steep, asked)) == coded


def test_searches_for_a_size_code_at_the_qualities_they_try(ruled):
    """A target search bisects over plain qualities (the rule would break its order)."""
    img = _busy()
    data = licodec.compress(img, ruled, size=len(encode_array(img, ruled, 6.0, adapt=False)))
    assert len(data) <= len(encode_array(img, ruled, 6.0, adapt=False))
    assert _coded_quality(data) >= 6.0


@pytest.mark.parametrize("rule", [{"qualities": [1, 2], "reference": [0.1], "slope": -1},
                                  {"qualities": [2, 1], "reference": [0.1, 0.2], "slope": -1},
                                  {"qualities": [1, 2], "reference": [0.1, "x"], "slope": -1},
                                  {"qualities": [1, 2], "reference": [0.1, 0.2]},
                                  {"qualities": [1, 2], "reference": [0.1, 0.2], "slope": float("nan")},
                                  "slope -1"])
def test_a_malformed_rule_is_refused_with_a_clear_message(tiny_hp_artifact, rule):
    art = dataclasses.replace(tiny_hp_artifact, info={**tiny_hp_artifact.info, ALLOCATION: rule})
    with pytest.raises(ModelError, match="malformed allocation rule"):
        encode_array(smooth_image(32, 32), art, 5.0)


def test_cli_reports_the_moved_quality_and_no_adapt_keeps_it(tmp_path, ruled):
    from licodec.zoo.artifact import save_artifact
    weights = tmp_path / "ruled.safetensors"
    weights.write_bytes(save_artifact(ruled.model, ruled.info))
    Image.fromarray(_busy()).save(tmp_path / "busy.png")
    def run(name, *extra):
        return subprocess.run([sys.executable, "-m", "licodec", "encode", str(tmp_path / "busy.png"),
                               str(tmp_path / name), "--model", str(weights), "-q", "5", *extra],
                              capture_output=True, text=True, check=True).stdout
    out = run("a.lic")
    assert "quality 6 (asked 5)" in out
    assert _coded_quality((tmp_path / "a.lic").read_bytes()) == pytest.approx(6.0, abs=1e-3)
    out = run("b.lic", "--no-adapt")
    assert out.rstrip().endswith("quality 5")
    assert _coded_quality((tmp_path / "b.lic").read_bytes()) == 5.0


def test_fit_script_records_a_rule_and_keeps_the_digest(tmp_path, tiny_hp_artifact_bytes):
    weights, out = tmp_path / "tiny.safetensors", tmp_path / "fitted.safetensors"
    weights.write_bytes(tiny_hp_artifact_bytes)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate([_flat(64, 64), _busy(64, 64), smooth_image(64, 80, seed=1)]):
        Image.fromarray(img).save(folder / f"{i}.png")
    cmd = [sys.executable, str(ROOT / "scripts" / "fit_allocation.py"), str(weights), "--folder", str(folder),
           "--limit", "3", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    before, after = load_artifact(weights), load_artifact(out)
    assert after.digest == before.digest
    rule = after.info[ALLOCATION]
    assert rule["qualities"] == [1.0 + 0.5 * i for i in range(19)] and len(rule["reference"]) == 19
    assert -3.0 <= rule["slope"] <= 0.0 and after.info["name"] == before.info["name"]
    # the reference is the mean ln share of the three images
    shares = [[_share(before, np.asarray(Image.open(p)), q) for q in (1.0, 10.0)] for p in sorted(folder.iterdir())]
    mean = np.log(np.maximum(np.array(shares), 1e-6)).mean(0)
    assert rule["reference"][0] == pytest.approx(mean[0], abs=1e-3)
    assert rule["reference"][-1] == pytest.approx(mean[1], abs=1e-3)
    # a file coded before the rule decodes with the new weights
    img = smooth_image(40, 60)
    assert np.array_equal(decode_array(encode_array(img, before, 4.0), after),
                          decode_array(encode_array(img, before, 4.0), before))
    # OUT is not overwritten without -f
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode != 0 and "exists" in res.stderr
