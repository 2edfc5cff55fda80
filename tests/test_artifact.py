import pytest
import torch

from licodec.errors import ModelError
from licodec.zoo.artifact import load_artifact, load_artifact_bytes


def test_saved_weights_load_back_identically(tiny_artifact, tiny_artifact_bytes):
    again = load_artifact_bytes(tiny_artifact_bytes)
    assert again.digest == tiny_artifact.digest
    for (k, a), (_, b) in zip(tiny_artifact.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert again.tables["y"].digest() == tiny_artifact.tables["y"].digest()


def test_tampered_truncated_or_foreign_weights_are_refused(tmp_path, tiny_artifact_bytes):
    data = bytearray(tiny_artifact_bytes)
    data[-10] ^= 0x40  # a weight byte
    with pytest.raises(ModelError, match="sha256"):
        load_artifact_bytes(bytes(data))
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelError):
            load_artifact_bytes(tiny_artifact_bytes[:cut])
    with pytest.raises(ModelError, match="not found"):
        load_artifact(tmp_path / "missing.safetensors")
    from safetensors.numpy import save
    import numpy as np
    with pytest.raises(ModelError, match="not a licodec model"):
        load_artifact_bytes(save({"w": np.zeros(3, np.float32)}))
    with pytest.raises(ModelError, match="corrupt header"):  # a pickle is never unpickled
        load_artifact_bytes(b"\x80\x04pickle" + bytes(64))


def test_saving_leaves_the_callers_model_untouched():
    from licodec.zoo.artifact import save_artifact
    from .conftest import train_tiny
    model = train_tiny(steps=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    art = load_artifact_bytes(save_artifact(model, {"name": "x"}))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # the artifact holds the fp16-rounded weights
    w = art.model.state_dict()["g_a.0.weight"]
    assert torch.equal(w, before["g_a.0.weight"].half().float())


def test_a_channels_last_model_exports_and_loads():
    from licodec.zoo.artifact import save_artifact
    from .conftest import train_tiny
    model = train_tiny(steps=1).to(memory_format=torch.channels_last)
    art = load_artifact_bytes(save_artifact(model, {"name": "cl"}))
    torch.testing.assert_close(art.model.state_dict()["g_s.1.weight"],
                               model.state_dict()["g_s.1.weight"].half().float())
