"""The mean-scale hyperprior model: exact table indexes, round trips, variable rate."""
import numpy as np
import pytest
import torch

from licodec import bitstream, coding
from licodec import codec as codec_module
from licodec.codec import decode_array, encode_array, hyper_predict, hyper_shape, latent_shape
from licodec.errors import BitstreamError, LicodecError
from licodec.eval.metrics import psnr
from licodec.layers.integer import ACT_BITS, ACT_MAX, IntegerConv
from licodec.zoo.artifact import load_artifact_bytes, save_artifact

from .conftest import smooth_image


def _int_conv(a: np.ndarray, layer: IntegerConv) -> np.ndarray:
    """Reference of IntegerConv.integer_forward in int64 numpy arithmetic (no floats)."""
    w, b = (t.numpy().astype(np.int64) for t in layer.integer_weights())
    k, p, s = layer.kernel, layer.kernel // 2, layer.stride
    if layer.transpose:  # zero-stuffed input, flipped kernel with in/out swapped
        n, c, h, wd = a.shape
        up = np.zeros((n, c, (h - 1) * s + 1, (wd - 1) * s + 1), dtype=np.int64)
        up[:, :, ::s, ::s] = a
        lo, hi = k - 1 - p, k - 1 - p + s - 1
        a = np.pad(up, ((0, 0), (0, 0), (lo, hi), (lo, hi)))
        w = np.flip(w, axis=(2, 3)).transpose(1, 0, 2, 3)
        s = 1
    else:
        a = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, wd = a.shape
    oh, ow = (h - k) // s + 1, (wd - k) // s + 1
    acc = np.zeros((n, w.shape[0], oh, ow), dtype=np.int64)
    for i in range(k):
        for j in range(k):
            patch = a[:, :, i: i + s * oh: s, j: j + s * ow: s]
            acc += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    acc += b[None, :, None, None]
    if not layer.activation:
        return acc
    shift = layer.acc_bits - ACT_BITS
    return np.clip((acc + (1 << (shift - 1))) >> shift, 0, ACT_MAX)


def _reference_index(model, z: np.ndarray) -> np.ndarray:
    medians = np.round(model.entropy_bottleneck.quantiles[:, 0, 1].detach().numpy()).astype(np.int64)
    assert np.any(medians != 0)  # the offset is exercised
    a = np.clip(z.astype(np.int64) + medians[None, :, None, None], -(1 << 15), 1 << 15)
    for layer in model.h_s_trunk:
        a = _int_conv(a, layer)
    acc = _int_conv(a, model.h_s_index)
    bits = model.h_s_index.acc_bits - 3  # the head's output is scaled by 8
    return np.clip((acc + (1 << (bits - 1))) >> bits, 0, model.gaussian.levels - 1)


def _z_symbols(seed: int, shape=(1, 8, 5, 7)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    z = rng.integers(-6, 7, shape)
    z.flat[:3] = [400, -(1 << 20), 1 << 20]  # far tails, clamped on the index path
    return torch.from_numpy(z.astype(np.int32))


def test_integer_hyper_synthesis_equals_an_int64_reference(tiny_hp_artifact):
    model = tiny_hp_artifact.model
    for seed in range(3):
        z = _z_symbols(seed)
        index, _ = model.hyper_index(z)
        ref = _reference_index(model, z.numpy())
        assert index.shape == (1, model.config.M, 20, 28)
        assert np.array_equal(index.numpy(), ref)
        assert len(np.unique(ref)) > 3  # the test exercises many tables, not one


def test_kept_integer_weights_follow_every_change_of_the_parameters(tiny_hp_artifact):
    import copy
    model = copy.deepcopy(tiny_hp_artifact.model)
    z = _z_symbols(5)
    before = model.hyper_index(z)[0]
    assert model.h_s_index.integer_weights()[0] is model.h_s_index.integer_weights()[0]  # kept
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["h_s_index.bias"] += 0.5  # half an index step of 8 units: every index moves
    model.load_state_dict(state)
    after = model.hyper_index(z)[0]
    assert np.array_equal(after.numpy(), _reference_index(model, z.numpy()))
    assert not torch.equal(after, before)
    with torch.no_grad():  # an in-place update, as an optimiser makes it
        model.h_s_trunk[0].weight.mul_(0.5)
    assert np.array_equal(model.hyper_index(z)[0].numpy(), _reference_index(model, z.numpy()))


def test_table_indexes_do_not_depend_on_the_thread_count(tiny_hp_artifact):
    model = tiny_hp_artifact.model
    z = _z_symbols(7, (1, 8, 23, 31))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.hyper_index(z)[0]
        torch.set_num_threads(2)
        two = model.hyper_index(z)[0]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_tiled_hyper_synthesis_gives_the_same_indexes(tiny_hp_artifact, monkeypatch):
    z = _z_symbols(3, (1, 8, 9, 11))
    whole, mu_whole = hyper_predict(tiny_hp_artifact, z, 33, 41)
    monkeypatch.setattr(codec_module, "HYPER_TILE", 2)
    tiled, mu_tiled = hyper_predict(tiny_hp_artifact, z, 33, 41)
    assert np.array_equal(whole, tiled)
    assert torch.allclose(mu_whole, mu_tiled, atol=1e-5)


def _decoded_symbols(data: bytes, art, shape):
    header, sections = bitstream.read(data)
    m, h, w = latent_shape(art, *shape)
    nz, hz, wz = hyper_shape(art, h, w)
    z = coding.decode(sections["z"], art.tables["z"], hz * wz)
    index, mu = hyper_predict(art, torch.from_numpy(z).reshape(1, nz, hz, wz), h, w)
    return coding.decode_indexed(sections["y"], index, art.tables["y"]), index, mu


def test_round_trip_decodes_the_encoder_symbols_and_quality_sets_the_rate(tiny_hp_artifact):
    img = smooth_image(45, 70)
    sizes = []
    for q in (1, 4.25, 9):
        data = encode_array(img, tiny_hp_artifact, q)
        header, sections = bitstream.read(data)
        assert data[4] == 2 and list(sections) == ["z", "y"] and header.quality == round(q * 1000)
        # the encoder's own symbols, recomputed from the image
        model = tiny_hp_artifact.model
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.pad(x, (0, 10, 0, 3), mode="replicate")
        y = model.analyse(x, torch.tensor([q]))
        symbols, index, mu = _decoded_symbols(data, tiny_hp_artifact, (45, 70))
        assert np.array_equal(symbols, torch.round(y - mu).to(torch.int32).numpy()[0])
        rec = decode_array(data, tiny_hp_artifact)
        assert rec.shape == img.shape and rec.dtype == np.uint8
        sizes.append(len(data))
    assert sizes[0] < sizes[2]  # (a model trained for 30 steps is not monotone in between)


def test_the_hyper_analysis_in_bf16_only_chooses_other_z_symbols(tiny_hp_artifact, monkeypatch):
    """Where the CPU computes bf16 natively the encoder runs h_a in bf16: it really runs
    in bf16, the file still decodes to the encoder's own symbols, z differs from the
    float32 choice in few elements, and the reconstruction is as good."""
    model, img = tiny_hp_artifact.model, smooth_image(256, 384, seed=4)
    y = model.analyse(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, torch.tensor([6.0]))
    z, psnrs = {}, {}
    for bf16 in (False, True):
        monkeypatch.setattr(codec_module, "HYPER_ANALYSIS_BF16", bf16)
        with torch.no_grad():
            z[bf16] = codec_module._hyper_analysis(model)(y)
        data = encode_array(img, tiny_hp_artifact, 6)
        symbols, _, mu = _decoded_symbols(data, tiny_hp_artifact, img.shape[:2])
        assert np.array_equal(symbols, torch.round(y - mu).to(torch.int32).numpy()[0])
        psnrs[bf16] = psnr(img, decode_array(data, tiny_hp_artifact))
    assert z[True].dtype == torch.float32 and not torch.equal(z[True], z[False])
    assert torch.allclose(z[True], z[False], rtol=0.03, atol=0.03 * float(z[False].abs().max()))
    assert (z[True].round() != z[False].round()).float().mean() < 0.05
    assert abs(psnrs[True] - psnrs[False]) < 0.1


def test_perturbing_the_float_path_changes_pixels_but_never_the_decoded_symbols(tiny_hp_artifact_bytes):
    art = load_artifact_bytes(tiny_hp_artifact_bytes)
    img = smooth_image(40, 52, seed=2)
    data = encode_array(img, art, 6)
    symbols, index, _ = _decoded_symbols(data, art, (40, 52))
    with torch.no_grad():  # every float input the decoder has besides the index path
        for module in (art.model.h_s_mean, art.model.g_s):
            for p in module.parameters():
                p.mul_(1 + 1e-3 * torch.randn_like(p))
        art.model.log_inverse_gains.add_(1e-3)
    symbols2, index2, _ = _decoded_symbols(data, art, (40, 52))
    assert np.array_equal(index, index2) and np.array_equal(symbols, symbols2)


def test_any_size_and_gray_round_trip(tiny_hp_artifact):
    for shape in [(1, 1, 3), (17, 300, 3), (70, 3, 3), (33, 47)]:
        img = smooth_image(shape[0], shape[1], channels=3 if len(shape) == 3 else 1)
        rec = decode_array(encode_array(img, tiny_hp_artifact), tiny_hp_artifact)
        assert rec.shape == img.shape


def test_quality_outside_the_range_or_not_a_number_is_refused(tiny_hp_artifact):
    img = smooth_image(16, 16)
    for bad in (0.5, 10.5, float("nan"), "4"):
        with pytest.raises(LicodecError, match="quality"):
            encode_array(img, tiny_hp_artifact, bad)


def test_forged_quality_in_a_file_is_refused(tiny_hp_artifact):
    data = encode_array(smooth_image(16, 16), tiny_hp_artifact, 3)
    header, sections = bitstream.read(data)
    forged = bitstream.write(bitstream.Header(**{**header.__dict__, "quality": 60000}), sections)
    with pytest.raises(BitstreamError, match="quality"):
        decode_array(forged, tiny_hp_artifact)
    with pytest.raises(BitstreamError, match="sections"):
        decode_array(bitstream.write(header, {"y": sections["y"]}), tiny_hp_artifact)


def test_the_exactness_bound_holds_for_any_stored_weights_and_is_checked(tiny_hp_artifact):
    import copy
    bad = copy.deepcopy(tiny_hp_artifact.model)
    with torch.no_grad():  # the largest weights a model file can hold (fp16 max), clamped
        for layer in (*bad.h_s_trunk, bad.h_s_index):
            layer.weight.fill_(65504.0)
            layer.bias.fill_(-65504.0)
    for layer in (*bad.h_s_trunk, bad.h_s_index):
        assert layer.accumulator_bound() < 2**52
    bad.check_exact()
    bad.h_s_trunk[1].in_max = 1 << 40  # an input range the float64 sums could not hold
    with pytest.raises(ValueError, match="exact"):
        bad.check_exact()


def test_light_hyper_transforms_are_rebuilt_from_the_file_and_round_trip():
    from licodec.models import build_model
    torch.manual_seed(0)
    model = build_model("bls2017-hp", N=8, M=12, hyper_channels=8, hyper_kernel=1).eval()
    assert model.h_a[0].kernel_size == (1, 1) and model.h_s_mean.kernel_size == (1, 1)
    art = load_artifact_bytes(save_artifact(model, {"name": "light"}))
    assert art.model.config.hyper_kernel == 1 and art.model.h_a[0].kernel_size == (1, 1)
    img = smooth_image(40, 56, seed=3)
    data = encode_array(img, art, 6.0)
    out = decode_array(data, art)
    assert out.shape == img.shape
    symbols, index, mu = _decoded_symbols(data, art, img.shape[:2])
    enc = codec_module.HyperpriorEncoder(img, art)
    y = enc.y * art.model.gains(torch.tensor([6.0]))
    assert np.array_equal(symbols, torch.round(y - mu).to(torch.int32).numpy()[0])
    # the default (3x3) stays out of the stored config: earlier files keep their digests
    assert "hyper_kernel" not in build_model("bls2017-hp", N=8).config.to_dict()
    with pytest.raises(ValueError, match="hyper_kernel"):
        build_model("bls2017-hp", N=8, hyper_kernel=5)


@pytest.fixture()
def hp_model_path(tmp_path, tiny_hp_artifact_bytes):
    path = tmp_path / "tiny-hp.safetensors"
    path.write_bytes(tiny_hp_artifact_bytes)
    return path


def test_targets_find_the_quality_by_real_encoding(tiny_hp_artifact):
    from licodec.codec import encode_to_target
    from licodec.eval.metrics import psnr
    img = smooth_image(64, 96, seed=4)
    sizes = {q: len(encode_array(img, tiny_hp_artifact, q)) for q in (1, 9)}
    limit = (sizes[1] + sizes[9]) // 2
    data, chosen = encode_to_target(img, tiny_hp_artifact, size=limit)
    q = bitstream.read(data)[0].quality / 1000
    assert len(data) <= limit and chosen == f"quality {q:g}"
    if q < 9:  # one step up the quality grid no longer fits
        assert len(encode_array(img, tiny_hp_artifact, q + 0.001)) > limit
    same, _ = encode_to_target(img, tiny_hp_artifact, target_bpp=8 * limit / (64 * 96))
    assert same == data
    # (bisection returns a setting that meets the target even where rate and quality are
    # not monotone, as in a model trained for 30 steps, once the top quality meets it)
    top = psnr(img, decode_array(encode_array(img, tiny_hp_artifact, 9), tiny_hp_artifact))
    data, _ = encode_to_target(img, tiny_hp_artifact, target_psnr=top - 0.01)
    assert psnr(img, decode_array(data, tiny_hp_artifact)) >= top - 0.01
    with pytest.raises(LicodecError, match="cannot fit"):
        encode_to_target(img, tiny_hp_artifact, size=10)
    with pytest.raises(LicodecError, match="cannot reach"):
        encode_to_target(img, tiny_hp_artifact, target_psnr=99)


def test_cli_takes_real_qualities_and_targets(tmp_path, hp_model_path, capsys):
    from PIL import Image

    from licodec.cli.main import main
    png = tmp_path / "a.png"
    Image.fromarray(smooth_image(48, 64, seed=5)).save(png)
    out = tmp_path / "a.lic"
    assert main(["encode", str(png), str(out), "--model", str(hp_model_path), "--quality", "9"]) == 0
    size = out.stat().st_size
    assert main(["encode", str(png), str(out), "--model", str(hp_model_path), "--quality", "6.5", "-f"]) == 0
    assert "quality 6.5" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "quality: 6.5" in info and "z: " in info and "y: " in info
    assert main(["decode", str(out), str(tmp_path / "b.png"), "--model", str(hp_model_path)]) == 0
    assert main(["encode", str(png), str(out), "--model", str(hp_model_path), "--size", str(size), "-f"]) == 0
    assert out.stat().st_size <= size
    capsys.readouterr()
    assert main(["encode", str(png), str(out), "--model", str(hp_model_path), "--quality", "12", "-f"]) == 3
    assert "quality must lie in 1..10" in capsys.readouterr().err
