"""Shared fixtures: small deterministic images and a tiny model trained in-process."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from licodec.models import build_model
from licodec.train.step import train_step
from licodec.zoo.artifact import load_artifact_bytes, save_artifact


def smooth_image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A natural-ish uint8 image: smooth gradients, an edge and some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = []
    for c in range(channels):
        f = rng.uniform(0.02, 0.1, 2)
        plane = 128 + 60 * np.sin(f[0] * yy + c) * np.cos(f[1] * xx) + (xx > w / 2) * 30
        plane += rng.normal(0, 6, (h, w))
        base.append(plane)
    arr = np.clip(np.stack(base, axis=-1), 0, 255).astype(np.uint8)
    return arr[:, :, 0] if channels == 1 else arr


def _train_briefly(model, steps: int, **step_options):
    opt = torch.optim.Adam(model.main_parameters(), lr=1e-2)
    aux = torch.optim.Adam(model.aux_parameters(), lr=1e-1)
    x = torch.from_numpy(np.stack([smooth_image(64, 64, seed=s) for s in range(4)]))
    x = x.permute(0, 3, 1, 2).float() / 255
    for _ in range(steps):
        train_step(model, x, opt=opt, aux_opt=aux, **step_options)
    return model


def train_tiny(steps: int = 30, seed: int = 0, N: int = 8):
    """A bls2017 with N = M = 8 trained briefly on synthetic crops."""
    torch.manual_seed(seed)
    return _train_briefly(build_model("bls2017", N=N), steps, lmbda=0.01)


def train_tiny_hp(steps: int = 30, seed: int = 0, N: int = 8):
    """A bls2017-hp with N = M = 8 channels, trained briefly with a quality per image."""
    torch.manual_seed(seed)
    model = build_model("bls2017-hp", N=N, hyper_channels=N)
    q = torch.linspace(*model.quality_range, 4)
    return _train_briefly(model, steps, lmbda=model.lmbda(q), quantizer="mixed", quality=q)


@pytest.fixture(scope="session")
def tiny_hp_artifact_bytes() -> bytes:
    return save_artifact(train_tiny_hp(), {"name": "tiny-hp-test"})


@pytest.fixture(scope="session")
def tiny_hp_artifact(tiny_hp_artifact_bytes):
    return load_artifact_bytes(tiny_hp_artifact_bytes)


@pytest.fixture(scope="session")
def tiny_artifact_bytes() -> bytes:
    return save_artifact(train_tiny(), {"name": "tiny-test"})


@pytest.fixture(scope="session")
def tiny_artifact(tiny_artifact_bytes):
    return load_artifact_bytes(tiny_artifact_bytes)


@pytest.fixture()
def tiny_model_path(tmp_path, tiny_artifact_bytes):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(tiny_artifact_bytes)
    return path


@pytest.fixture()
def rng(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)
