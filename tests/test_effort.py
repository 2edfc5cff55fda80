"""Encoder effort: optimised latents, never a worse file, the same decoder."""
import numpy as np
import pytest
import torch

from licodec import bitstream, coding, effort
from licodec.codec import decode_array, encode_array, rd_cost
from licodec.errors import LicodecError, ModelError
from licodec.zoo.artifact import load_artifact_bytes, save_artifact

from .conftest import smooth_image


@pytest.fixture(scope="module")
def tiny_with_lambda(tiny_artifact):
    return load_artifact_bytes(save_artifact(tiny_artifact.model, {"name": "tiny-lambda", "lmbda": 0.01}))


@pytest.mark.parametrize("shape", [(40, 56), (17, 33), (64, 80)])
def test_effort_never_gives_a_worse_file_and_decodes_with_the_plain_decoder(tiny_with_lambda, shape):
    img = smooth_image(*shape, seed=sum(shape))
    plain = encode_array(img, tiny_with_lambda)
    tried = encode_array(img, tiny_with_lambda, effort=1)
    assert rd_cost(img, tiny_with_lambda, tried, 0.01) <= rd_cost(img, tiny_with_lambda, plain, 0.01)
    # the decoder reads exactly the symbols the encoder wrote: coding them again gives the same bytes
    header, sections = bitstream.read(tried)
    m = tiny_with_lambda.model.config.M
    symbols = coding.decode(sections["y"], tiny_with_lambda.tables["y"], -(-shape[0] // 16) * -(-shape[1] // 16))
    assert coding.encode(symbols, tiny_with_lambda.tables["y"]) == sections["y"]
    with torch.no_grad():
        ref = tiny_with_lambda.model.synthesise(torch.from_numpy(symbols).reshape(1, m, -(-shape[0] // 16), -1))
    ref = ref[0, :, :shape[0], :shape[1]].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(decode_array(tried, tiny_with_lambda), ref)


def test_the_cheaper_of_the_plain_and_the_optimised_file_is_kept(tiny_with_lambda, monkeypatch):
    img = smooth_image(48, 64, seed=11)
    picked = []
    import licodec.codec as codec_module
    real = codec_module.cheaper

    def spy(arr, art, candidates, lmbda):
        costs = [rd_cost(arr, art, c, lmbda) for c in candidates]
        picked.append(costs)
        return real(arr, art, candidates, lmbda)
    monkeypatch.setattr(codec_module, "cheaper", spy)
    data = encode_array(img, tiny_with_lambda, effort=2)
    (plain_cost, refined_cost), = picked
    assert rd_cost(img, tiny_with_lambda, data, 0.01) == min(plain_cost, refined_cost)


def test_tiles_are_optimised_in_turn_on_larger_grids(tiny_with_lambda, monkeypatch):
    monkeypatch.setattr(effort, "WHOLE_LIMIT", 4)
    monkeypatch.setattr(effort, "TILE", 2)
    img = smooth_image(70, 90, seed=5)
    assert effort._window_count(5, 6) == 9
    data = encode_array(img, tiny_with_lambda, effort=1)
    plain = encode_array(img, tiny_with_lambda)
    assert rd_cost(img, tiny_with_lambda, data, 0.01) <= rd_cost(img, tiny_with_lambda, plain, 0.01)


def test_effort_on_a_hyperprior_model_optimises_y_and_z(tiny_hp_artifact):
    img = smooth_image(48, 64, seed=2)
    for q in (2.0, 7.5):
        plain = encode_array(img, tiny_hp_artifact, q)
        tried = encode_array(img, tiny_hp_artifact, q, effort=1)
        lmbda = float(tiny_hp_artifact.model.lmbda(q))
        assert rd_cost(img, tiny_hp_artifact, tried, lmbda) <= rd_cost(img, tiny_hp_artifact, plain, lmbda)
        assert decode_array(tried, tiny_hp_artifact).shape == img.shape


def test_bad_effort_and_a_model_without_lambda_are_clear_errors(tiny_artifact, tiny_with_lambda):
    img = smooth_image(16, 16)
    for bad in (-1, 5, 1.5, "2", True):
        with pytest.raises(LicodecError, match="effort"):
            encode_array(img, tiny_with_lambda, effort=bad)
    with pytest.raises(ModelError, match="lambda"):
        encode_array(img, tiny_artifact, effort=1)


def test_sga_rounding_tends_to_rounding_as_the_temperature_falls():
    torch.manual_seed(0)
    v = torch.tensor([0.1, 0.45, 0.55, 0.9, -1.2, 2.7]).repeat(2000, 1)
    cold = effort.sga_round(v, 0.02).mean(0)
    assert torch.allclose(cold, torch.round(v[0]), atol=0.05)
    warm = effort.sga_round(v, 1.0)
    assert ((warm >= torch.floor(v)) & (warm <= torch.ceil(v))).all()


def test_sga_rounding_draws_as_a_two_way_gumbel_softmax_does():
    # sga_round draws one logistic variate instead of two Gumbel ones: same distribution.
    torch.manual_seed(1)
    v = torch.tensor([0.2, 0.5, 0.8, 2.35, -0.7]).repeat(200_000, 1)
    low = torch.floor(v)
    frac = (v - low).clamp(1e-5, 1 - 1e-5)
    for tau in (0.5, 0.2):
        logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)], dim=-1) / tau
        reference = low + torch.nn.functional.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
        drawn = effort.sga_round(v, tau)
        assert torch.allclose(drawn.mean(0), reference.mean(0), atol=4e-3)
        assert torch.allclose(drawn.std(0), reference.std(0), atol=4e-3)


def test_a_large_hyperprior_image_is_optimised_window_by_window(tiny_hp_artifact, monkeypatch):
    monkeypatch.setattr(effort, "WHOLE_LIMIT", 4)
    monkeypatch.setattr(effort, "TILE", 8)  # windows of 2 x 2 z positions
    optimisations = []  # one optimiser per window
    learning_rate = effort.learning_rate
    monkeypatch.setattr(effort, "learning_rate", lambda steps: optimisations.append(steps) or learning_rate(steps))
    img = smooth_image(150, 180, seed=2)  # latents 10 x 12, z 3 x 3
    q = 4.0
    tried = encode_array(img, tiny_hp_artifact, q, effort=1)
    assert len(optimisations) == 4 == effort.total_steps(10, 12, 1, 4)
    covered = np.zeros((3, 3), int)
    for (t0, t1, l0, l1), _ in effort._hyper_windows(10, 12, 4):
        covered[t0:t1, l0:l1] += 1
    assert (covered == 1).all()
    plain = encode_array(img, tiny_hp_artifact, q)
    lmbda = float(tiny_hp_artifact.model.lmbda(q))
    assert rd_cost(img, tiny_hp_artifact, tried, lmbda) <= rd_cost(img, tiny_hp_artifact, plain, lmbda)
    assert decode_array(tried, tiny_hp_artifact).shape == img.shape
