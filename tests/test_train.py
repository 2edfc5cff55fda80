import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from licodec.cli import main
from licodec.zoo.artifact import load_artifact

from .conftest import smooth_image


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(smooth_image(70 + 7 * i, 90, seed=i)).save(folder / f"a{i}.png")
    Image.fromarray(smooth_image(60, 50, seed=9)).save(folder / "sub" / "small.jpg")  # padded
    Image.fromarray(smooth_image(10, 12, seed=8)).save(folder / "tiny.png")  # skipped
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # skipped
    Image.fromarray(smooth_image(64, 64, channels=1)).save(folder / "gray.png")
    Image.fromarray(smooth_image(180, 200, seed=5)).save(folder / "big.png")
    return folder


def read_log(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_train_cli_runs_validates_exports_and_resumes(tmp_path, image_folder):
    out = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "64",
            "--batch", "2", "--steps", "20", "--lr", "1e-3", "--valid", str(image_folder),
            "--valid-every", "20", "--valid-limit", "2", "--no-progress", "--warmup", "5"]
    assert main(args) == 0
    rows = read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == [20]
    assert 0 < float(rows[-1]["valid_bpp"]) < 24 and float(rows[-1]["valid_psnr"]) > 5
    art = load_artifact(out / "model.safetensors")
    assert art.model.config.N == 8 and art.info["steps"] == 20
    before = {k: v.clone() for k, v in art.model.state_dict().items()}
    args[args.index("--steps") + 1] = "40"
    assert main(args + ["--resume"]) == 0
    rows = read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == [20, 40]
    after = load_artifact(out / "model.safetensors").model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # a checkpoint exports to a model file that the codec accepts, under the given name
    exported = tmp_path / "q.safetensors"
    assert main(["export", str(out / "checkpoint.pt"), str(exported), "--name", "mine-q1"]) == 0
    art = load_artifact(exported)
    assert art.model_id == "mine-q1" and art.info["steps"] == 40
    assert main(["encode", str(image_folder / "a0.png"), str(tmp_path / "a.lic"), "--model", str(exported)]) == 0
    assert main(["export", str(out / "log.csv"), str(tmp_path / "bad.safetensors"), "--name", "x"]) == 3


def test_models_record_the_runs_they_were_fine_tuned_from(tmp_path, image_folder):
    def train(out, steps, *extra):
        assert main(["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "64",
                     "--batch", "1", "--steps", str(steps), "--no-progress", *extra]) == 0

    train(tmp_path / "first", 3, "--lmbda", "0.02")
    first = tmp_path / "first.safetensors"
    assert main(["export", str(tmp_path / "first" / "checkpoint.pt"), str(first), "--name", "m-first"]) == 0
    assert load_artifact(first).info["history"] == []
    # from an exported model, stopped and resumed, then exported: one earlier run on record
    train(tmp_path / "second", 2, "--init", str(first), "--quantizer", "mixed")
    train(tmp_path / "second", 4, "--resume", "--quantizer", "mixed", "--lmbda", "0.03")
    second = tmp_path / "second.safetensors"
    assert main(["export", str(tmp_path / "second" / "checkpoint.pt"), str(second), "--name", "m-second"]) == 0
    info = load_artifact(second).info
    assert info["steps"] == 4 and info["quantizer"] == "mixed" and info["lmbda"] == 0.03
    # the resume changed lambda: the record keeps the one of the first 2 steps
    assert info["changes"] == [{"until_step": 2, "lmbda": 0.013}]
    assert [(h["name"], h["steps"], h["lmbda"]) for h in info["history"]] == [("m-first", 3, 0.02)]
    # a checkpoint from before runs were recorded: the history comes from its --init file
    ckpt_path = tmp_path / "second" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    del ckpt["history"]
    ckpt["config"]["init"] = str(first)  # as a run started with --init first.safetensors saves it
    torch.save(ckpt, tmp_path / "legacy.pt")
    assert main(["export", str(tmp_path / "legacy.pt"), str(tmp_path / "legacy.safetensors"), "--name", "m-l"]) == 0
    assert [h["name"] for h in load_artifact(tmp_path / "legacy.safetensors").info["history"]] == ["m-first"]
    # from a checkpoint: the chain grows by that run, named by its folder
    train(tmp_path / "third", 1, "--init", str(tmp_path / "second" / "checkpoint.pt"))
    info = load_artifact(tmp_path / "third" / "model.safetensors").info
    assert [(h["name"], h["steps"]) for h in info["history"]] == [("m-first", 3), ("second", 4)]
    assert info["history"][1]["changes"] == [{"until_step": 2, "lmbda": 0.013}]


def test_a_new_run_never_overwrites_an_earlier_one(tmp_path, image_folder, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "64",
            "--batch", "1", "--no-progress"]
    assert main([*args, "--steps", "2"]) == 0
    before = (out / "checkpoint.pt").read_bytes(), (out / "log.csv").read_bytes()
    capsys.readouterr()
    assert main([*args, "--steps", "3", "--lmbda", "0.5"]) == 3
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "Traceback" not in err
    assert ((out / "checkpoint.pt").read_bytes(), (out / "log.csv").read_bytes()) == before


def test_ms_ssim_metric_trains(tmp_path, image_folder):
    out = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "176",
                 "--batch", "1", "--steps", "3", "--metric", "ms-ssim", "--lmbda", "10",
                 "--no-progress", "--no-bf16"]) == 0
    assert np.isfinite(float(read_log(out / "log.csv")[-1]["loss"]))


def test_mixed_quantizer_decodes_rounded_latents_and_passes_gradients(tmp_path, image_folder):
    from licodec.models import build_model
    torch.manual_seed(0)
    model = build_model("bls2017", N=8, M=8)
    with torch.no_grad():  # latents spread over many integers, medians off zero
        model.entropy_bottleneck.quantiles[:, 0, 1] = torch.linspace(-0.4, 0.3, 8)
    x = torch.rand(2, 3, 64, 64)
    mixed = model(x, training=True, quantizer="mixed")
    noisy = model(x, training=True, quantizer="noise")
    hard = model(x, training=False)
    # the synthesis sees exactly what the decoder will; the rate stays the noisy one
    assert torch.allclose(mixed.x_hat, hard.x_hat, atol=1e-6)
    assert not torch.allclose(noisy.x_hat, hard.x_hat, atol=1e-3)
    assert not torch.allclose(mixed.likelihoods, hard.likelihoods)
    # the distortion alone reaches the analysis transform through the rounding
    torch.mean((mixed.x_hat - x) ** 2).backward()
    g = model.g_a[0].weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    out = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "64",
                 "--batch", "2", "--steps", "3", "--quantizer", "mixed", "--no-progress"]) == 0
    assert np.isfinite(float(read_log(out / "log.csv")[-1]["loss"]))


def test_bad_training_setups_are_clear_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--steps", "1"])
    assert code == 3 and "no usable training images" in capsys.readouterr().err
    code = main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                 "--metric", "ms-ssim", "--crop", "128"])
    assert code == 3 and "--crop >= 161" in capsys.readouterr().err
    code = main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--resume"])
    assert code == 3 and "no checkpoint" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_data_parallel_on_cpu_with_gloo(tmp_path, image_folder):
    out = tmp_path / "ddp"
    env = dict(os.environ, LICODEC_BACKEND="gloo", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "licodec", "train", "--data", str(image_folder), "--out", str(out), "--N", "8",
           "--crop", "64", "--batch", "2", "--steps", "20", "--no-progress", "--no-bf16",
           "--no-channels-last"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode and "terminate called without an active exception" in proc.stderr:
        # A rank of the gloo launch sometimes aborts (std::terminate in a worker thread,
        # about 1 run in 4 with the other core busy; not yet understood): one retry.
        shutil.rmtree(out, ignore_errors=True)
        cmd[cmd.index("--master-port") + 1] = str(_free_port())
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_log(out / "log.csv")
    assert int(rows[-1]["step"]) == 20
    assert load_artifact(out / "model.safetensors").info["steps"] == 20
    assert proc.stdout.count("exported") == 1  # only rank 0 writes
    assert "2 rank(s)" in proc.stdout


def test_area_sampling_draws_crops_in_proportion_to_image_area(image_folder):
    from licodec.train.data import CropDataset
    data = CropDataset(image_folder, crop=32, sampling="area", warn=lambda m: None)
    areas = np.array([img.shape[0] * img.shape[1] for img in data.images], dtype=float)
    assert np.allclose(data.weights, areas / areas.sum())
    rng = np.random.default_rng(0)
    big = int(np.argmax(areas))
    hits = sum(int(rng.choice(len(areas), p=data.weights) == big) for _ in range(4000))
    assert abs(hits / 4000 - data.weights[big]) < 0.03
    assert CropDataset(image_folder, crop=32, warn=lambda m: None).weights is None
    with pytest.raises(ValueError, match="sampling"):
        CropDataset(image_folder, crop=32, sampling="pixels")


def test_oversample_draws_matching_images_more_often(image_folder, tmp_path, capsys):
    from licodec.train.data import CropDataset
    from licodec.train.loop import parse_oversample
    warnings = []
    plain = CropDataset(image_folder, crop=32, sampling="area", warn=lambda m: None)
    data = CropDataset(image_folder, crop=32, sampling="area", warn=warnings.append,
                       oversample={"a*.png": 3.0, "none-*": 2.0})
    assert data.names == plain.names and "a0.png" in data.names
    hit = np.array([n.startswith("a") for n in data.names])
    ratio = (data.weights / plain.weights) / (data.weights / plain.weights)[~hit][0]
    assert np.allclose(ratio[hit], 3.0) and np.allclose(ratio[~hit], 1.0)
    assert data.weights.sum() == pytest.approx(1.0)
    assert [w for w in warnings if w.startswith("--oversample")] == ["--oversample none-*: no training image matches"]
    uniform = CropDataset(image_folder, crop=32, warn=lambda m: None, oversample={"big.png": 4})
    assert uniform.weights[uniform.names.index("big.png")] == pytest.approx(4 / (len(uniform.names) + 3))
    assert parse_oversample("photo-*=2, bsds-*=0.5") == {"photo-*": 2.0, "bsds-*": 0.5}
    assert parse_oversample(None) == {} and parse_oversample("") == {}
    for bad in ("photo-*", "photo-*=0", "=2", "photo-*=x"):
        code = main(["train", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--oversample", bad])
        assert code != 0
        assert "--oversample takes GLOB=FACTOR" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
    # a run says what share of its crops the glob gets, and a resume keeps the setting
    args = ["train", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--N", "8", "--crop", "32",
            "--batch", "2", "--steps", "2", "--no-progress", "--sampling", "area"]
    assert main(args + ["--oversample", "big.png=3"]) == 0
    area = {n: img.shape[0] * img.shape[1] for n, img in zip(plain.names, plain.images)}
    share = 3 * area["big.png"] / (sum(area.values()) + 2 * area["big.png"])
    assert f"--oversample big.png=3: {share:.0%} of the crops" in capsys.readouterr().out
    args[args.index("--steps") + 1] = "3"
    assert main(args + ["--resume"]) == 0
    assert "--oversample big.png=3" in capsys.readouterr().out


def test_hyperprior_trains_from_bls2017_weights_exports_and_codes(tmp_path, image_folder):
    from licodec.models import build_model
    from licodec.zoo.artifact import save_artifact
    init = tmp_path / "init.safetensors"
    init.write_bytes(save_artifact(build_model("bls2017", N=8), {"name": "init"}))
    out = tmp_path / "hp"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--model", "bls2017-hp", "--N", "8",
            "--crop", "64", "--batch", "2", "--steps", "6", "--quantizer", "mixed", "--sampling", "area",
            "--init", str(init), "--valid", str(image_folder), "--valid-every", "6", "--valid-limit", "1",
            "--no-progress", "--warmup", "2"]
    assert main(args) == 0
    art = load_artifact(out / "model.safetensors")
    assert art.hyperprior and art.model.config.quality_max == 10
    rows = read_log(out / "log.csv")
    assert rows[-1]["valid_bpp"] != ""
    # a resume rebuilds the model from the checkpoint's config, whatever the flags say
    args[args.index("--steps") + 1] = "8"
    args[args.index("--model") + 1] = "bls2017"
    assert main(args + ["--resume"]) == 0
    assert load_artifact(out / "model.safetensors").hyperprior
    assert main(["encode", str(image_folder / "a0.png"), str(tmp_path / "a.lic"), "--model",
                 str(out / "model.safetensors"), "--quality", "2.5"]) == 0


def test_the_validation_lines_name_their_step_and_valid_bd_reads_them(tmp_path, image_folder, capsys):
    """The run's log names each validation's step; scripts/valid_bd.py measures a reference
    the same way: the run's own exported weights give its last line back (BD-rate 0 but for
    the log's rounding), and logs of either line format are read."""
    out = tmp_path / "hp"
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--model", "bls2017-hp", "--N", "8",
                 "--crop", "64", "--batch", "2", "--steps", "4", "--valid", str(image_folder), "--valid-every", "2",
                 "--valid-limit", "2", "--no-progress", "--warmup", "1"]) == 0
    log = tmp_path / "run.log"
    log.write_text(capsys.readouterr().out)
    lines = [line for line in log.read_text().splitlines() if line.startswith("validation")]
    assert [line.split(":")[0] for line in lines] == ["validation at step 2", "validation at step 4"]
    assert [part.split(":")[0].strip() for part in lines[-1].split(": ", 1)[1].split(";")] == \
        ["q 1", "q 4", "q 7", "q 10"]
    old = tmp_path / "old.log"  # the format before the lines named their step
    old.write_text(lines[-1].replace(" at step 4", "") + "\n")
    cmd = [sys.executable, str(Path(__file__).resolve().parent.parent / "scripts" / "valid_bd.py"), str(log), str(old),
           "--reference", str(out / "model.safetensors"), "--folder", str(image_folder), "--limit", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if "BD" in line]
    assert [r[:2] for r in rows] == [["step", "2"], ["step", "4"], ["line", "1"]]
    for r in rows[1:]:
        bd_psnr, bd_ms = float(r[-3].rstrip("%")), float(r[-1].rstrip("%"))
        assert abs(bd_psnr) < 1.0 and abs(bd_ms) < 1.0
    empty = tmp_path / "empty.log"
    empty.write_text("no validation here\n")
    res = subprocess.run(cmd[:2] + [str(empty)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "no validation lines" in res.stderr


def test_a_run_from_a_model_keeps_its_channel_counts_unless_told_otherwise(tmp_path, image_folder, capsys):
    from licodec.models import build_model
    from licodec.zoo.artifact import save_artifact
    init = tmp_path / "init.safetensors"
    init.write_bytes(save_artifact(build_model("bls2017-hp", N=8, M=12), {"name": "init"}))

    def run(name, *extra):
        assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / name), "--model", "bls2017-hp",
                     "--crop", "64", "--batch", "1", "--steps", "1", "--quantizer", "mixed", "--init", str(init),
                     "--no-progress", *extra]) == 0
        return load_artifact(tmp_path / name / "model.safetensors").model.config, capsys.readouterr().out

    config, out = run("same")
    assert (config.N, config.M) == (8, 12)
    assert "N=8, M=12" in out and "warm start: 52 of 52 tensors" in out
    config, out = run("wider", "--M", "16")  # the latent layers start anew, the rest is loaded
    assert (config.N, config.M) == (8, 16)
    assert "initial values for g_a, g_s, h_a, h_s_index, h_s_mean, log_gains" in out
    config, out = run("light", "--hyper-kernel", "1")  # 1x1 layers: those two start anew
    assert (config.N, config.M, config.hyper_kernel) == (8, 12, 1)
    assert "initial values for h_a, h_s_mean" in out


def test_a_reranged_hyperprior_keeps_its_gains_at_the_same_lambdas():
    from licodec.models import build_model
    torch.manual_seed(0)
    model = build_model("bls2017-hp", N=8, quality_min=1, quality_max=5, lmbda_min=0.001, lmbda_max=0.016)
    with torch.no_grad():
        model.log_gains.normal_()
        model.log_inverse_gains.normal_()
    # lambda still doubles per step: new quality q + 1 is old quality q
    new = model.reranged(quality_max=7, lmbda_min=0.0005, lmbda_max=0.032)
    assert new.quality_range == (1.0, 7.0) and new.lmbda(4.0) == pytest.approx(model.lmbda(3.0))
    for name in ("log_gains", "log_inverse_gains"):
        old_t, new_t = getattr(model, name).detach(), getattr(new, name).detach()
        assert torch.allclose(new_t[1:6], old_t, atol=1e-6)
        assert torch.allclose(new_t[0], 2 * old_t[0] - old_t[1], atol=1e-6)  # extrapolated
        assert torch.allclose(new_t[6], 2 * old_t[4] - old_t[3], atol=1e-6)
    q = torch.tensor([2.3, 4.75])
    assert torch.allclose(new.gains(q + 1), model.gains(q), rtol=1e-5)
    assert torch.allclose(new.inverse_gains(q + 1), model.inverse_gains(q), rtol=1e-5)
    rest = [k for k in model.state_dict() if not k.startswith("log_")]
    assert all(torch.equal(model.state_dict()[k], new.state_dict()[k]) for k in rest)
    with pytest.raises(ValueError, match="takes no field"):
        model.reranged(N=16)
    with pytest.raises(ValueError, match="lmbda_max > lmbda_min"):
        model.reranged(lmbda_min=0.1)


def test_a_widened_hyperprior_computes_what_it_did_and_its_new_channels_train():
    from licodec.codec import decode_array, encode_array
    from licodec.models import build_model
    from licodec.zoo.artifact import load_artifact_bytes, save_artifact
    torch.manual_seed(0)
    model = build_model("bls2017-hp", N=8, M=8, quality_min=1, quality_max=5, lmbda_min=0.001, lmbda_max=0.016)
    with torch.no_grad():  # trained-looking GDNs: channels normalised by each other
        for gdn in (model.g_a[5], model.g_s[0]):
            gdn.gamma_reparam.add_(0.1 * torch.rand_like(gdn.gamma_reparam))
        model.log_gains.normal_(0, 0.3)
    new = model.widened(12, torch.Generator().manual_seed(1))
    assert new.config.M == 12 and new.log_gains.shape == (5, 12)
    new.check_exact()
    model.eval(), new.eval()
    x = torch.rand(1, 3, 64, 64)
    q = torch.tensor([3.5])
    with torch.no_grad():
        y_old, y_new = model.analyse(x, q), new.analyse(x, q)
        assert torch.allclose(y_new[:, :8], y_old, atol=1e-6) and y_new[:, 8:].abs().max() > 0
        # whatever the new channels hold, the synthesis reads the old ones only
        filled = torch.cat([y_old, 50 * torch.randn_like(y_new[:, 8:])], 1)
        assert torch.allclose(new.synthesise(filled, q), model.synthesise(y_old, q), atol=1e-5)
        out_old, out_new = model(x, q, training=False), new(x, q, training=False)
    assert torch.allclose(out_new.likelihoods[:, :8], out_old.likelihoods, atol=1e-5)
    assert torch.allclose(out_new.x_hat, out_old.x_hat, atol=1e-5)
    # real coding: the old channels' symbols, so the same image up to float rounding
    img = smooth_image(64, 96, seed=3)
    a_old, a_new = (load_artifact_bytes(save_artifact(m, {"name": "t"})) for m in (model, new))
    dec_old = decode_array(encode_array(img, a_old, 3.5), a_old)
    dec_new = decode_array(encode_array(img, a_new, 3.5), a_new)
    assert np.abs(dec_old.astype(int) - dec_new.astype(int)).max() <= 1
    # the rate term reaches the new analysis filters at once
    new.train()
    out = new(x, torch.tensor([5.0]), training=True)
    (-torch.log2(out.likelihoods).sum()).backward()
    assert new.g_a[4].weight.grad[8:].abs().sum() > 0
    with pytest.raises(ValueError, match="grows the latents"):
        model.widened(8)


def test_a_resume_with_another_quality_range_moves_the_run_and_keeps_the_earlier_checkpoint(
        tmp_path, image_folder, capsys):
    out = tmp_path / "hp"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--model", "bls2017-hp", "--N", "8",
            "--crop", "64", "--batch", "2", "--steps", "3", "--quantizer", "mixed", "--no-progress",
            "--warmup", "1", "--qualities", "1:5", "--lmbdas", "0.001:0.016", "--ema", "0.5"]
    assert main(args) == 0
    assert load_artifact(out / "model.safetensors").model.quality_range == (1.0, 5.0)
    before = torch.load(out / "checkpoint.pt", weights_only=True)
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--steps", "3", "--resume",
                 "--qualities", "1:7", "--lmbdas", "0.0005:0.032"]) == 0
    from licodec.models import ModelConfig
    from licodec.train.loop import build_from_config, checkpoint_model_config
    printed = capsys.readouterr().out
    assert "qualities 1..5 -> 1..7, lambda 0.001..0.016 -> 0.0005..0.032" in printed
    # the moving average moved with the weights rather than starting again from them
    assert "moving average of the weights (decay 0.5) continued from the checkpoint" in printed
    kept = out / "checkpoint-3-before-range-change.pt"
    assert torch.equal(torch.load(kept, weights_only=True)["model"]["log_gains"], before["model"]["log_gains"])
    moved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert moved["step"] == 3 and not torch.equal(moved["ema"]["g_a.0.weight"], moved["model"]["g_a.0.weight"])
    for key in ("model", "ema"):
        from_before = build_from_config(ModelConfig.from_dict(checkpoint_model_config(before)))
        from_before.load_state_dict({**before["model"], **(before[key] if key == "ema" else {})})
        expected = from_before.reranged(quality_max=7, lmbda_min=0.0005, lmbda_max=0.032)
        for name in ("log_gains", "log_inverse_gains", "g_s.1.weight"):
            assert torch.allclose(moved[key][name], expected.state_dict()[name]), (key, name)
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--steps", "5", "--resume"]) == 0
    art = load_artifact(out / "model.safetensors")
    assert art.model.quality_range == (1.0, 7.0) and art.model.log_gains.shape[0] == 7
    assert art.info["changes"][-1] == {"until_step": 3, "qualities": [1.0, 5.0], "lmbdas": [0.001, 0.016]}
    after = torch.load(out / "checkpoint.pt", weights_only=True)
    assert after["step"] == 5 and all(v["exp_avg_sq"].min() >= 0 for v in after["opt"]["state"].values())
    # a later resume that does not name a range keeps the run's (no second change)
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--steps", "6", "--resume"]) == 0
    assert "range changed" not in capsys.readouterr().out
    assert load_artifact(out / "model.safetensors").model.quality_range == (1.0, 7.0)
    assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / "f"), "--N", "8",
                 "--qualities", "1:5"]) == 3
    assert "--qualities and --lmbdas are for --model bls2017-hp" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(image_folder), "--out", str(out), "--lmbdas", "0.1"])
    assert exc.value.code == 2 and "expected LO:HI" in capsys.readouterr().err


def test_balance_weights_each_images_loss_by_its_lambda(tmp_path, image_folder, capsys):
    import copy

    from licodec.models import build_model
    from licodec.train.step import train_step
    model = build_model("bls2017-hp", N=8)
    x = torch.rand(2, 3, 64, 64)
    quality = torch.tensor([1.0, 10.0])
    lmbda = model.lmbda(quality)
    losses = []
    for weight in (None, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([3.0, 0.5])):
        m = copy.deepcopy(model)
        opt = torch.optim.Adam(m.main_parameters(), lr=1e-4)
        aux_opt = torch.optim.Adam(m.aux_parameters(), lr=1e-3)
        torch.manual_seed(0)  # the same noise every time
        losses.append(float(train_step(m, x, lmbda, opt, aux_opt, quality=quality, quantizer="mixed",
                                       weight=weight).loss))
    plain, first, second, mixed = losses
    assert plain == pytest.approx((first + second))  # mean of two: (l1 + l2) / 2 = l1 / 2 + l2 / 2
    assert mixed == pytest.approx(3.0 * first + 0.5 * second, rel=1e-5)
    out = tmp_path / "hp"
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--model", "bls2017-hp", "--N", "8",
                 "--crop", "64", "--batch", "2", "--steps", "2", "--no-progress", "--warmup", "1",
                 "--balance", "0.5"]) == 0
    assert "losses weighted by (lambda_mid / lambda)^0.5" in capsys.readouterr().out
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--steps", "3", "--resume",
                 "--balance", "0"]) == 0
    assert "changed on resuming: balance 0.5 -> 0.0" in capsys.readouterr().out
    # a checkpoint from before the setting existed had the default
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["balance"]
    torch.save(ckpt, out / "checkpoint.pt")
    assert main(["train", "--data", str(image_folder), "--out", str(out), "--steps", "4", "--resume",
                 "--balance", "0.25"]) == 0
    assert "changed on resuming: balance 0.0 -> 0.25" in capsys.readouterr().out
    assert load_artifact(out / "model.safetensors").info["changes"][-1] == {"until_step": 3, "balance": 0.0}
    assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / "f"), "--N", "8",
                 "--balance", "0.5"]) == 3
    assert "--balance is for --model bls2017-hp" in capsys.readouterr().err


def test_freeze_keeps_the_named_parameters_fixed_and_a_resume_can_free_them(tmp_path, image_folder, capsys):
    out = tmp_path / "hp"
    base = ["train", "--data", str(image_folder), "--out", str(out), "--crop", "64", "--batch", "1",
            "--no-progress"]
    assert main(base[:5] + ["--crop", "32", "--model", "bls2017-hp", "--no-progress"]) == 3
    assert "--crop must be a multiple of 64 for --model bls2017-hp, got 32" in capsys.readouterr().err
    assert main(base + ["--model", "bls2017-hp", "--N", "8", "--steps", "2", "--warmup", "1"]) == 0

    def weights():
        return torch.load(out / "checkpoint.pt", weights_only=True)["model"]

    before = weights()
    assert main(base + ["--steps", "4", "--resume", "--freeze", "g_a.0, g_s.5,h_a.0.bias"]) == 0
    text = capsys.readouterr().out
    assert "--freeze: 5 parameters fixed" in text and "changed on resuming: freeze None -> g_a.0, g_s.5,h_a.0.bias" in text
    after = weights()
    for name in ("g_a.0.weight", "g_a.0.bias", "g_s.5.weight", "g_s.5.bias", "h_a.0.bias"):
        assert torch.equal(before[name], after[name]), name
    for name in ("g_a.2.weight", "g_s.3.weight", "h_a.0.weight", "g_a.1.gamma_reparam"):
        assert not torch.equal(before[name], after[name]), name
    assert main(base + ["--steps", "6", "--resume"]) == 0  # the run keeps its list
    assert torch.equal(after["g_a.0.weight"], weights()["g_a.0.weight"])
    assert main(base + ["--steps", "8", "--resume", "--freeze", ""]) == 0  # and frees them
    assert not torch.equal(after["g_a.0.weight"], weights()["g_a.0.weight"])
    capsys.readouterr()
    assert main(base + ["--steps", "9", "--resume", "--freeze", "g_a.00"]) == 3
    err = capsys.readouterr().err
    assert "--freeze 'g_a.00': the model has no parameter of that name or prefix" in err and "g_s.5" in err


def test_a_resume_keeps_the_runs_schedule_and_the_log_has_no_duplicate_rows(tmp_path, image_folder):
    out = tmp_path / "run"
    base = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "32",
            "--batch", "1", "--no-progress", "--warmup", "1"]
    assert main(base + ["--steps", "50", "--lr", "2e-3", "--decay-at", "0.9"]) == 0
    # a log row that a crash after the last checkpoint would leave behind
    with open(out / "log.csv", "a") as fh:
        fh.write("100,1,0.1,1,1,1,1,,1,1,,,\n")
    assert main(base + ["--steps", "150", "--resume"]) == 0  # lr and decay-at not given: the run's own
    rows = read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == [50, 100, 150]
    assert float(rows[1]["lr"]) == pytest.approx(2e-3) and float(rows[2]["lr"]) == pytest.approx(2e-4)
    assert load_artifact(out / "model.safetensors").model.config.N == 8


def test_sigterm_writes_a_checkpoint_and_a_failed_start_leaves_no_folder(tmp_path, image_folder):
    import signal
    import time
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "licodec", "train", "--data", str(image_folder), "--out", str(out), "--N", "8",
           "--crop", "32", "--batch", "1", "--steps", "100000", "--no-progress", "--checkpoint-minutes", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.csv").exists():
        time.sleep(0.2)
    while time.time() < deadline and len(read_log(out / "log.csv")) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    assert "checkpoint at step" in text
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] >= 50 and ckpt["config"]["steps"] == 100000
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "never"
    assert main(["train", "--data", str(empty), "--out", str(bad), "--no-progress"]) == 3
    assert not bad.exists()


def test_the_density_trains_at_its_own_learning_rate_and_old_checkpoints_resume(tmp_path, image_folder):
    out = tmp_path / "run"
    base = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "32",
            "--batch", "1", "--no-progress", "--warmup", "1", "--lr", "1e-3"]
    assert main(base + ["--steps", "2", "--density-lr-scale", "10"]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    groups = ckpt["opt"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    # a checkpoint from before the split (one group) resumes, and is split
    from licodec.models import build_model
    model = build_model("bls2017", N=8)
    one = torch.optim.Adam(model.main_parameters(), lr=1e-3)
    ckpt["opt"] = one.state_dict()
    torch.save(ckpt, out / "checkpoint.pt")
    assert main(base + ["--steps", "4", "--resume", "--density-lr-scale", "5"]) == 0
    groups = torch.load(out / "checkpoint.pt", weights_only=True)["opt"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(5 * groups[0]["lr"])


def test_weight_average_follows_its_recursion_and_is_what_a_run_validates_and_exports(tmp_path, image_folder, capsys):
    from licodec.models import build_model
    from licodec.train.loop import WeightAverage, load_trained
    model = build_model("bls2017", 8, 8)
    avg = WeightAverage(model, 0.75)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    avg.update()
    for k, v in avg.state_dict().items():  # avg = 0.75 avg + 0.25 w
        torch.testing.assert_close(v, start[k] + 0.25, rtol=0, atol=1e-6)

    out = tmp_path / "run"
    base = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "32",
            "--batch", "1", "--no-progress", "--warmup", "1", "--lr", "1e-2", "--ema", "0.9"]
    assert main(base + ["--steps", "30", "--valid", str(image_folder), "--valid-every", "30", "--valid-limit", "1"]) == 0
    assert "started from the current weights" in capsys.readouterr().out
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(ckpt["ema"]) == set(ckpt["model"])
    key = "g_a.0.weight"
    raw, ema = ckpt["model"][key], ckpt["ema"][key]
    assert (raw - ema).abs().max() > 1e-3  # 30 steps at 1e-2: the average lags the weights

    def dist(path, ref):
        got = load_trained(path)[0].state_dict()[key] if str(path).endswith(".safetensors") else path
        return float((got - ref).abs().max())
    exported = out / "model.safetensors"
    assert dist(exported, ema) < 1e-2 * dist(exported, raw)
    assert main(["export", str(out / "checkpoint.pt"), str(tmp_path / "avg.safetensors"), "--name", "avg"]) == 0
    assert "moving average (decay 0.9)" in capsys.readouterr().out
    assert main(["export", str(out / "checkpoint.pt"), str(tmp_path / "raw.safetensors"), "--name", "raw", "--raw"]) == 0
    assert dist(tmp_path / "avg.safetensors", ema) < 1e-2 * dist(tmp_path / "avg.safetensors", raw)
    assert dist(tmp_path / "raw.safetensors", raw) < 1e-2 * dist(tmp_path / "raw.safetensors", ema)

    assert main(base + ["--steps", "40", "--resume"]) == 0
    assert "continued from the checkpoint" in capsys.readouterr().out
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)["ema"][key]
    assert 0 < float((resumed - ema).abs().max())  # the average went on updating after the resume
    assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / "bad"), "--ema", "1.5",
                 "--no-progress"]) == 3
    assert "--ema must lie in 0..1" in capsys.readouterr().err


def test_training_is_float32_unless_bf16_is_asked_for_and_a_resume_says_when_it_changes(
        tmp_path, image_folder, capsys, monkeypatch):
    from licodec.train import loop
    from licodec.train.config import TrainConfig

    seen = []
    real_step = loop.train_step

    def spy(*args, **kw):
        seen.append(kw["bf16"])
        return real_step(*args, **kw)
    monkeypatch.setattr(loop, "train_step", spy)
    out = tmp_path / "run"
    base = ["train", "--data", str(image_folder), "--out", str(out), "--N", "8", "--crop", "32",
            "--batch", "1", "--no-progress"]
    # float32 even on a machine with native bf16 (AVX512-BF16 / AMX)
    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    assert main(base + ["--steps", "2"]) == 0
    assert seen == [False, False]
    assert "precision: float32 (the default; --bf16 for bf16 autocast)" in capsys.readouterr().out
    # asked for there: bf16 autocast, channels-last; the resume names the change
    assert main(base + ["--steps", "4", "--resume", "--bf16"]) == 0
    assert seen[2:] == [True, True]
    text = capsys.readouterr().out
    assert "precision: bf16 autocast, channels-last (as given)" in text
    assert "precision changed on resuming: float32 -> bf16 autocast" in text
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["bf16"] is True and ckpt["config"]["channels_last"] is True
    # on a machine without it (AVX2) --bf16 is emulated, and the line says so
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    assert main(base + ["--steps", "5", "--resume", "--bf16"]) == 0
    text = capsys.readouterr().out
    assert "precision: bf16 autocast, channels-last (as given; this device has no native bf16" in text
    assert "precision changed" not in text
    # a resume without --bf16 is float32 again, whatever the checkpoint says
    assert main(base + ["--steps", "6", "--resume"]) == 0
    assert seen[4:] == [True, False]
    assert "precision changed on resuming: bf16 autocast -> float32" in capsys.readouterr().out
    cpu = torch.device("cpu")
    assert loop.machine_precision(TrainConfig(data="", out="", bf16=False, channels_last=True), cpu)[:2] == \
        (False, True)
    assert loop.machine_precision(TrainConfig(data="", out=""), cpu)[:2] == (False, False)
    # a float32 run on a GPU turns TF32 off (no GPU needed to set the flags)
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        bf16, channels_last, line = loop.machine_precision(TrainConfig(data="", out=""), torch.device("cuda"))
        assert (bf16, channels_last) == (False, True) and "TF32 off" in line
        assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
