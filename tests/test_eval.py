import json

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as reference_ms_ssim

from licodec.cli import main
from licodec.eval.bdrate import bd_rate
from licodec.codec import read_header
from licodec.eval.metrics import ms_ssim, psnr

from .conftest import smooth_image


def test_metrics_agree_with_references(rng):
    a = smooth_image(200, 240, seed=1)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert psnr(a, a) == float("inf")
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double()
    ref = float(reference_ms_ssim(t(a), t(b), data_range=255.0))
    assert ms_ssim(a, b) == pytest.approx(ref, abs=1e-5)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    small = smooth_image(20, 30)  # padded internally up to the 161-pixel minimum
    assert 0 < ms_ssim(small, small[::-1].copy()) < 1


def test_bd_rate_of_known_curves():
    bpp = np.array([0.2, 0.4, 0.8, 1.6])
    q = np.array([28.0, 31.0, 34.0, 37.0])
    assert bd_rate(bpp, q, bpp, q) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(bpp, q, bpp * 0.8, q) == pytest.approx(-20.0, abs=1e-6)  # 20% fewer bits
    assert bd_rate(bpp, q, bpp * 1.25, q) == pytest.approx(25.0, abs=1e-6)
    assert np.isnan(bd_rate(bpp, q, bpp, q + 100))  # no overlap
    # log-rate linear in quality: one dB more at every rate is exp(-slope) - 1 fewer bits
    slope = np.log(2.0) / 3.0
    assert bd_rate(bpp, q, bpp, q + 1.0) == pytest.approx((np.exp(-slope) - 1) * 100, abs=1e-6)


def test_bd_rate_of_differently_sampled_curves():
    """A concave RD curve sampled at 13 and at 6 rates, the second needing 30% fewer bits:
    the interpolation must recover -30% although the samples and spans differ."""
    quality = lambda r: 25.0 + 6.0 * np.log2(r / 0.05) - 0.35 * np.log2(r / 0.05) ** 2
    anchor = np.geomspace(0.05, 2.0, 13)
    test = np.geomspace(0.1, 1.5, 6)
    got = bd_rate(anchor, quality(anchor), test * 0.7, quality(test))
    assert got == pytest.approx(-30.0, abs=0.5)


def test_per_image_bd_rate_does_not_depend_on_how_settings_share_bits_between_images():
    from licodec.eval.runner import bd_table, bd_table_per_image, per_image_bd

    def curve(bpp, a, saving=1.0):
        """PSNR a + 5 log2(bpp / saving): ``saving`` times the bits of saving=1 at equal PSNR."""
        bpp = np.asarray(bpp, dtype=np.float64)
        return {"bpp": bpp, "psnr": a + 5 * np.log2(bpp / saving), "ms-ssim": a / 3 + 2 * np.log2(bpp / saving)}
    rates = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
    # the anchor gives an easy and a hard image the same bpp at each setting (a bitrate
    # target); the test codec needs 20% fewer bits on both, at settings that give the
    # easy image an eighth of the hard one's bits (a quality setting)
    anchor = {"easy": curve(rates, 40), "hard": curve(rates, 25)}
    test = {"easy": curve(0.8 * rates / 8, 40, 0.8), "hard": curve(0.8 * rates, 25, 0.8)}
    for metric in ("psnr", "ms-ssim"):
        mean, n, total = per_image_bd(anchor, test, metric)
        assert mean == pytest.approx(-20.0, abs=0.05) and (n, total) == (2, 2)

    def mean_curve(c):
        return {"bpp": (c["easy"]["bpp"] + c["hard"]["bpp"]) / 2, "psnr-rgb": (c["easy"]["psnr"] + c["hard"]["psnr"]) / 2,
                "ms-ssim-rgb-db": (c["easy"]["ms-ssim"] + c["hard"]["ms-ssim"]) / 2}
    curves = {"a": {"name": "A", "results": mean_curve(anchor)}, "t": {"name": "T", "results": mean_curve(test)}}
    # the mean curves charge the test codec for its allocation: +27% instead of -20%
    row = [line for line in bd_table(curves, "a").splitlines() if line.startswith("| T |")][0]
    assert float(row.split("|")[2].strip().rstrip("%")) == pytest.approx(27.3, abs=0.1)
    table = bd_table_per_image(curves, {"a": anchor, "t": test}, "a")
    assert "| A | +0.0% | +0.0% |" in table and "| T | -20.0% | -20.0% |" in table
    # an image only one curve holds is left out; one without a shared range is counted
    table = bd_table_per_image(curves, {"a": {**anchor, "extra": curve(rates, 30)}, "t": test}, "a")
    assert "| T | -20.0% | -20.0% |" in table
    far = {**test, "dark": curve(rates, 5)}
    table = bd_table_per_image(curves, {"a": {**anchor, "dark": curve(rates, 60)}, "t": far}, "a")
    assert "| T | -20.0% (2 of 3 images) | -20.0% (2 of 3 images) |" in table
    # a curve without per-image results (a published reference) says so
    table = bd_table_per_image(curves, {"a": anchor, "t": None}, "a")
    assert "| T | n/a (no per-image results for this curve) | n/a (no per-image results for this curve) |" in table


def test_pchip_interpolates_without_overshoot():
    from licodec.eval.bdrate import pchip
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 0.1, 0.2, 5.0, 5.1])  # a step that a cubic fit would ring around
    at = np.linspace(0, 4, 401)
    v = pchip(x, y, at)
    assert np.allclose(pchip(x, y, x), y)
    assert np.all(np.diff(v) >= -1e-12) and v.min() >= 0.0 and v.max() <= 5.1 + 1e-12


def test_eval_end_to_end_on_two_images(tmp_path, tiny_model_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(48, 64, seed=1)).save(folder / "a.png")
    Image.fromarray(smooth_image(40, 56, seed=2)).save(folder / "b.png")
    out = tmp_path / "res"
    code = main(["eval", str(folder), "--codecs", f"jpeg;licodec:{tiny_model_path}", "--out", str(out),
                 "--no-progress", "--jobs", "2"])
    assert code == 0
    jpeg = json.loads((out / "jpeg.json").read_text())
    assert jpeg["name"] == "JPEG" and "libjpeg" in jpeg["description"]
    r = jpeg["results"]
    assert len(r["bpp"]) == len(r["psnr-rgb"]) == len(r["ms-ssim-rgb"]) == len(jpeg["settings"]) == 13
    assert all(np.diff(r["bpp"]) > 0) and r["psnr-rgb"][-1] > r["psnr-rgb"][0]
    rows = (out / "jpeg-per-image.csv").read_text().splitlines()
    assert len(rows) == 1 + 13 * 2
    from licodec.eval.runner import read_per_image
    curves = read_per_image(out / "jpeg-per-image.csv")
    assert sorted(curves) == ["a.png", "b.png"]
    assert [float(s) for s in curves["a.png"]["setting"]] == [float(s) for s in jpeg["settings"]]
    assert len(curves["a.png"]["bpp"]) == 13
    lic = json.loads((out / "licodec-tiny.json").read_text())  # named after the weights
    assert lic["name"] == "licodec (tiny-test)"
    # bpp in the JSON is the mean of real file sizes
    sizes = [int(line.split(",")[5]) for line in (out / "licodec-tiny-per-image.csv").read_text().splitlines()[1:]]
    assert lic["results"]["bpp"][0] == pytest.approx(np.mean([8 * sizes[0] / (64 * 48), 8 * sizes[1] / (56 * 40)]))
    table = (out / "bd-rate.md").read_text()
    assert "| JPEG | +0.0% | +0.0% |" in table
    # the same against JPEG image by image, from the per-image CSVs
    per_image = table[table.index("BD-rate against JPEG, image by image"):]
    assert "| JPEG | +0.0% | +0.0% |" in per_image and "| licodec (tiny-test) |" in per_image
    assert (out / "rd-psnr.png").stat().st_size > 1000 and (out / "rd-msssim.png").exists()
    # a published curve can be added: a curve against itself is zero
    out2 = tmp_path / "res2"
    assert main(["eval", str(folder), "--codecs", "jpeg", "--out", str(out2), "--no-progress",
                 "--reference", str(out / "jpeg.json"), "--anchor", "jpeg"]) == 0
    table2 = (out2 / "bd-rate.md").read_text()
    assert table2.count("+0.0% | +0.0%") == 3  # JPEG and the reference; JPEG image by image
    assert "n/a (no per-image results for this curve)" in table2


def test_custom_weights_under_a_shipped_name_decode_with_themselves(tmp_path, tiny_artifact):
    from licodec.codec import decode_array
    from licodec.errors import ModelError
    from licodec.eval.codecs import Licodec
    from licodec.zoo.registry import SHIPPED, available_qualities
    from licodec.zoo.artifact import save_artifact
    from .conftest import train_tiny
    q = available_qualities()[0]
    path = tmp_path / "finetuned.safetensors"  # e.g. a run that continued shipped quality q
    path.write_bytes(save_artifact(tiny_artifact.model, {"name": SHIPPED[q]}))
    codec = Licodec(str(path))
    img = smooth_image(40, 48, seed=3)
    data = codec.encode(img, str(path))
    rec = codec.decode(data)  # with the given weights, not the shipped model of that name
    assert np.array_equal(rec, decode_array(data, path))
    other = tmp_path / "other.safetensors"
    other.write_bytes(save_artifact(train_tiny(steps=5, seed=1), {"name": SHIPPED[q]}))
    with pytest.raises(ModelError, match="not among the evaluated weights"):
        Licodec(str(other)).decode(data)


def test_compare_writes_a_labelled_mosaic(tmp_path, tiny_model_path):
    src = tmp_path / "x.png"
    Image.fromarray(smooth_image(64, 80, seed=4)).save(src)
    out = tmp_path / "cmp"
    assert main(["compare", str(src), "--bpp", "1.0", "--codecs", f"jpeg;licodec:{tiny_model_path}",
                 "--out", str(out)]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert [r["codec"] for r in data["results"]] == ["JPEG", "licodec (tiny-test)"]
    jpeg = data["results"][0]
    assert abs(jpeg["bpp"] - 1.0) < 0.3
    mosaic = Image.open(out / "mosaic.png")
    assert mosaic.width >= 3 * 384


def test_eval_errors_are_clear(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none"), "--codecs", "jpeg", "--out", str(tmp_path / "o")]) == 3
    assert "not a folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--codecs", "gif", "--out", str(tmp_path / "o")]) == 3
    assert "unknown codec" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["jpeg", "jpeg2000", "webp", "avif", "jpegxl"])
def test_classical_codecs_round_trip_and_rise_in_rate(name):
    from licodec.eval.codecs import make_codec
    codec = make_codec(name)
    img = smooth_image(48, 64, seed=7)
    lo, hi = codec.settings()[1], codec.settings()[-2]
    small, large = codec.encode(img, lo), codec.encode(img, hi)
    assert len(small) < len(large)
    rec = codec.decode(large)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    assert psnr(img, rec) > psnr(img, codec.decode(small))
    assert codec.describe()["library"]


def test_eval_adds_a_codec_to_an_earlier_results_folder(tmp_path, tiny_model_path, capsys, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(48, 64, seed=3)).save(folder / "a.png")
    out = tmp_path / "res"
    assert main(["eval", str(folder), "--codecs", "jpeg", "--out", str(out), "--no-progress"]) == 0
    jpeg_before = (out / "jpeg.json").read_bytes()
    # a curve from another folder in the same results folder must not be mixed in
    other = json.loads(jpeg_before)
    other["dataset"] = {"folder": "/elsewhere", "images": 1}
    other["name"] = "Stale"
    (out / "stale.json").write_text(json.dumps(other))
    capsys.readouterr()
    # the same folder spelled another way is still the same folder
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "./imgs/../imgs", "--codecs", f"licodec:{tiny_model_path}", "--out", str(out),
                 "--no-progress", "--anchor", "jpeg,licodec-tiny"]) == 0
    assert "earlier results" in capsys.readouterr().err
    assert (out / "jpeg.json").read_bytes() == jpeg_before  # not rerun, not rewritten
    table = (out / "bd-rate.md").read_text()
    assert "BD-rate against JPEG" in table and "| JPEG | +0.0% | +0.0% |" in table
    assert "| licodec (tiny-test)" in table and "Stale" not in table
    assert table.count("BD-rate against") == 4 and "BD-rate against licodec (tiny-test)" in table
    assert table.count(", image by image") == 2
    # a single rate point has no BD-rate, and the table says why
    assert "n/a (fewer than 2 points on the codec's curve)" in table
    assert "n/a (no image has one; a.png: fewer than 2 points on the codec's curve)" in table
    # an earlier curve is never replaced without --force
    before = (out / "licodec-tiny.json").read_bytes()
    assert main(["eval", str(folder), "--codecs", f"licodec:{tiny_model_path}", "--out", str(out),
                 "--no-progress"]) == 3
    assert "--force" in capsys.readouterr().err and (out / "licodec-tiny.json").read_bytes() == before
    assert main(["eval", str(folder), "--codecs", f"licodec:{tiny_model_path}", "--out", str(out),
                 "--no-progress", "--force"]) == 0
    # an anchor that is no curve is refused before anything runs
    capsys.readouterr()
    assert main(["eval", str(folder), "--codecs", "jpeg", "--out", str(out), "--no-progress",
                 "--anchor", "jpg"]) == 3
    assert "--anchor jpg is not among the curves" in capsys.readouterr().err


def test_eval_sweeps_a_variable_rate_model_over_its_qualities(tmp_path, tiny_hp_artifact_bytes):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(48, 64, seed=3)).save(folder / "a.png")
    model = tmp_path / "hp.safetensors"
    model.write_bytes(tiny_hp_artifact_bytes)
    out = tmp_path / "res"
    assert main(["eval", str(folder), "--codecs", f"jpeg;licodec:{model}", "--out", str(out),
                 "--no-progress", "--anchor", "jpeg"]) == 0
    curve = json.loads((out / "licodec-hp.json").read_text())
    assert curve["settings"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert len(curve["results"]["bpp"]) == 10 and "qualities 1, 2" in curve["description"]


def test_compare_names_each_setting_and_warns_when_a_codec_cannot_get_near(tmp_path, tiny_model_path, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(smooth_image(64, 80, seed=4)).save(src)
    out = tmp_path / "cmp"
    assert main(["compare", str(src), "--bpp", "0.01", "--codecs", f"jpeg;jpegxl;licodec:{tiny_model_path}",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: JPEG cannot get near 0.01 bpp" in err
    data = json.loads((out / "compare.json").read_text())
    labels = [r["setting_label"] for r in data["results"]]
    assert labels[0].startswith("quality ") and labels[1].startswith("distance ")
    assert labels[2] == f"model tiny-test"
    assert all(r["off_target"] for r in data["results"][:1])
    assert (out / "licodec-tiny.png").exists()


def test_licodec_bls2017_names_the_eight_paper_models_whatever_the_default(monkeypatch, tiny_hp_artifact):
    import licodec.zoo.registry as registry
    from licodec.eval.codecs import make_codec
    monkeypatch.setattr(registry, "default_model", lambda: tiny_hp_artifact)
    default = make_codec("licodec")
    assert default.key == "licodec" and default.variable is tiny_hp_artifact
    bls = make_codec("licodec:bls2017")
    assert bls.key == "licodec-bls2017" and bls.label == "licodec bls2017" and bls.variable is None
    assert bls.settings() == list(range(1, 9))
    img = smooth_image(32, 48, seed=1)
    data = bls.encode(img, 2)
    assert read_header(data).model_name == registry.SHIPPED[2]
    assert bls.decode(data).shape == img.shape


def test_compare_lands_a_variable_rate_model_between_its_whole_qualities(tmp_path, tiny_hp_artifact_bytes):
    """compare picks a variable-rate model's quality on a 0.1 grid, so its file lands
    close to the requested size rather than at the nearest whole quality."""
    from licodec.eval.codecs import Licodec
    from licodec.eval.compare import closest_setting
    path = tmp_path / "hp.safetensors"
    path.write_bytes(tiny_hp_artifact_bytes)
    codec = Licodec(str(path))
    q_min, q_max = codec.variable.model.quality_range
    grid = codec.fine_settings()
    assert grid[0] == q_min and grid[-1] == q_max and np.allclose(np.diff(grid), 0.1)
    img = smooth_image(128, 128, seed=5)
    pixels = img.shape[0] * img.shape[1]
    whole = [8 * len(codec.encode(img, float(q))) / pixels for q in range(int(q_min), int(q_max) + 1)]
    gap = int(np.argmax(np.diff(whole)))  # the two neighbouring whole qualities furthest apart
    low, high = whole[gap], whole[gap + 1]
    target = (low + high) / 2
    setting, data = closest_setting(codec, img, target)
    whole_error = min(abs(low - target), abs(high - target))
    assert abs(8 * len(data) / pixels - target) < whole_error
    assert data == codec.encode(img, setting)
