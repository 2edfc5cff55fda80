"""The training loop (loss in train/step.py): resumable, CPU-first, DDP-capable."""
from __future__ import annotations

import csv
import math
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import LicodecError
from ..eval.metrics import MS_SSIM_MIN_SIDE
from ..imageio import atomic_write
from ..models import build_from_config, build_model
from ..ops import native_bf16
from .data import CropDataset
from .config import TrainConfig
from .step import train_step

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.csv"
LOG_FIELDS = ["step", "wall_s", "lr", "loss", "bpp", "mse", "psnr", "ms_ssim", "aux", "mpix_s",
              "valid_bpp", "valid_psnr", "valid_ms_ssim"]


def lr_at(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    return cfg.lr * warm * (0.1 if step >= cfg.decay_at * cfg.steps else 1.0)


class _Distributed:
    def __init__(self):
        self.enabled = dist.is_available() and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and os.environ.get("LICODEC_BACKEND") != "gloo" else "gloo"
            dist.init_process_group(backend)
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def load_weights(model, state: dict, log=print) -> None:
    """Loads ``state`` into ``model``. A hyperprior model takes whatever tensors fit
    (a warm start from bls2017 weights: the transforms; from an earlier hyperprior
    design: all that kept their shapes), and says what it left at its initial values."""
    if type(model).__name__ != "MeanScaleHyperprior":
        model.load_state_dict(state)
        return
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith(("g_a.", "g_s.")) for k in fits):
        raise LicodecError("--init weights do not hold the transforms of this model")
    model.load_state_dict(fits, strict=False)
    fresh = sorted({k.split(".")[0] for k in own if k not in fits})
    log(f"warm start: {len(fits)} of {len(own)} tensors from the --init weights"
        + (f"; initial values for {', '.join(fresh)}" if fresh else ""))


def _init_path(path: str) -> str:
    from ..zoo.registry import SHIPPED, VARIABLE_RATE_MODEL, shipped_path
    if str(path) in SHIPPED.values() or str(path) == VARIABLE_RATE_MODEL:
        return str(shipped_path(str(path)))
    return str(path)


def init_widths(cfg: TrainConfig, config, log=print) -> tuple[int | None, int | None]:
    """--N and --M of a new run: the channel counts of the --init weights (``config``,
    a ModelConfig) where the options do not give them, for an architecture of the same
    family. A run started from a model continues it at its own width, rather than
    loading only the tensors that happen to fit a default width."""
    family = {"bls2017", "bls2017-hp"}
    if config.architecture != cfg.model and not {config.architecture, cfg.model} <= family:
        return cfg.N, cfg.M
    n = cfg.N if cfg.N is not None else config.N
    m = cfg.M if cfg.M is not None else (config.M if cfg.N is None or cfg.N == config.N else None)
    if (n, m) != (cfg.N, cfg.M):
        log(f"channels of the --init weights: N={n}, M={m if m is not None else n} (--N / --M to change them)")
    return n, m


def _read_init(path: str) -> tuple[dict, "ModelConfig", list[dict]]:
    """The weights to start from (a checkpoint, a model file or a shipped model's name):
    their state dict, their model config and their training history (see ``run_record``)."""
    from ..models import ModelConfig
    from ..zoo.artifact import load_artifact
    path = _init_path(path)
    if str(path).endswith(".pt"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        config = ModelConfig.from_dict(checkpoint_model_config(ckpt))
        return ckpt["model"], config, checkpoint_history(ckpt, name=Path(path).parent.name)
    art = load_artifact(path)
    return art.model.state_dict(), art.model.config, list(art.info.get("history", [])) + [run_record(art.info)]


def run_record(info: dict) -> dict:
    """One entry of a model's training history: the run that made ``info``'s weights."""
    return {k: info[k] for k in ("name", "lmbda", "metric", "quantizer", "steps", "wall_s", "changes")
            if info.get(k) not in (None, [])}


def init_history(ckpt: dict) -> list[dict]:
    """The runs a training checkpoint's initial weights came from, oldest first.

    Checkpoints record it; for one written before they did, whose --init was an
    exported model, that file's record is read, if it is still there.
    """
    if "history" in ckpt:
        return list(ckpt["history"])
    init = ckpt.get("config", {}).get("init")
    if init and str(init).endswith(".safetensors") and Path(init).is_file():
        from ..errors import ModelError
        from ..zoo.artifact import load_artifact
        try:
            info = load_artifact(init).info
        except ModelError:  # a record is not worth failing a resume or an export over
            return []
        return list(info.get("history", [])) + [run_record(info)]
    return []


def run_info(config: dict, step: int, wall_s: float, history: list[dict], changes: list[dict] = ()) -> dict:
    """The info an exported model carries about the run that trained it. ``changes``: the
    settings a resume changed, as ``{"until_step": s, setting: earlier value, ...}``."""
    return {"lmbda": config.get("lmbda"), "metric": config.get("metric"),
            "quantizer": config.get("quantizer", "noise"), "steps": int(step),
            "wall_s": round(float(wall_s), 1), "architecture": config.get("model"), "history": history,
            "changes": list(changes)}


def checkpoint_info(ckpt: dict) -> dict:
    return run_info(ckpt.get("config", {}), ckpt.get("step", 0), ckpt.get("wall_s", 0.0), init_history(ckpt),
                    ckpt.get("changes", []))


# Settings a resumed run may change; the model's record keeps their earlier values.
RESUMABLE_CHANGES = ("lmbda", "metric", "quantizer", "balance", "freeze")


def resume_changes(ckpt: dict, cfg: TrainConfig) -> tuple[list[dict], str]:
    """The checkpoint's record of changed settings, plus this resume's; and a message
    naming what changed ("" if nothing did)."""
    old = ckpt.get("config", {})
    if old:  # a setting newer than the checkpoint had its default value there
        old = {**{k: getattr(TrainConfig(data="", out=""), k) for k in RESUMABLE_CHANGES}, **old}
    diff = {k: old[k] for k in RESUMABLE_CHANGES if k in old and old[k] != getattr(cfg, k)}
    changes = list(ckpt.get("changes", []))
    if not diff:
        return changes, ""
    changes.append({"until_step": int(ckpt["step"]), **diff})
    return changes, ", ".join(f"{k} {v} -> {getattr(cfg, k)}" for k, v in diff.items())


def checkpoint_history(ckpt: dict, name: str) -> list[dict]:
    """The runs behind a training checkpoint, oldest first, ending with its own."""
    info = checkpoint_info(ckpt)
    return info["history"] + [run_record({**info, "name": name})]


# A variable-rate model is validated at these qualities (those inside its range); the
# log's valid_* columns hold the middle one.
VALID_QUALITIES = (1.0, 4.0, 7.0, 10.0)


def validation_points(model, folder: str, limit: int) -> list[dict]:
    """Mean bpp (real bytes), PSNR and MS-SSIM over the first ``limit`` images of folder, at
    each of VALID_QUALITIES inside a variable-rate model's range (quality None for a
    factorized model); what the training log's validation lines hold."""
    from ..codec import decode_array, encode_array
    from ..eval.metrics import ms_ssim, psnr
    from ..imageio import list_images, load_rgb
    from ..zoo.artifact import load_artifact_bytes, save_artifact

    art = load_artifact_bytes(save_artifact(model, {"name": "validation"}))  # a CPU copy
    if art.hyperprior:
        q_min, q_max = art.model.quality_range
        qualities = [q for q in VALID_QUALITIES if q_min <= q <= q_max] or [q_min]
    else:
        qualities = [None]
    images = [load_rgb(path) for path in list_images(folder)[:limit]]
    results = []
    for q in qualities:
        bpps, psnrs, msssims = [], [], []
        for img in images:
            data = encode_array(img, art, q)
            rec = decode_array(data, art)
            bpps.append(8.0 * len(data) / (img.shape[0] * img.shape[1]))
            psnrs.append(psnr(img, rec))
            msssims.append(ms_ssim(img, rec))
        results.append({"quality": q, "valid_bpp": float(np.mean(bpps)), "valid_psnr": float(np.mean(psnrs)),
                        "valid_ms_ssim": float(np.mean(msssims))})
    return results


def validation_line(step: int, points: list[dict]) -> str:
    return f"validation at step {step}: " + "; ".join(
        ("" if r["quality"] is None else f"q {r['quality']:g}: ") + f"{r['valid_bpp']:.4f} bpp, "
        f"{r['valid_psnr']:.2f} dB, MS-SSIM {r['valid_ms_ssim']:.4f}" for r in points)


def validate(model, folder: str, limit: int, log=None, step: int = 0) -> dict:
    """validation_points, logged as one line; returns the middle point's valid_* columns."""
    results = validation_points(model, folder, limit)
    if log is not None:
        log(validation_line(step, results))
    return {k: v for k, v in results[len(results) // 2].items() if k != "quality"}


def checkpoint_model_config(ckpt: dict) -> dict:
    """The model config a checkpoint was trained with (for one written before
    checkpoints recorded it: rebuilt from its run config and today's defaults)."""
    if "model_config" in ckpt:
        return dict(ckpt["model_config"])
    from ..models import build_model
    run = ckpt.get("config", {})
    options = {"gains": run.get("gains", "channel")} if run.get("model") == "bls2017-hp" else {}
    return build_model(run.get("model", "bls2017"), run.get("N"), run.get("M"), **options).config.to_dict()


def hyperprior_options(cfg: TrainConfig) -> dict:
    """The model options a run's settings give (bls2017-hp only)."""
    if cfg.model != "bls2017-hp":
        return {}
    options = {"gains": cfg.gains}
    if cfg.hyper_kernel != 3:  # 3 is the architecture's own (and stays out of the stored config)
        options["hyper_kernel"] = int(cfg.hyper_kernel)
    if cfg.qualities:
        options.update(quality_min=float(cfg.qualities[0]), quality_max=float(cfg.qualities[1]))
    if cfg.lmbdas:
        options.update(lmbda_min=float(cfg.lmbdas[0]), lmbda_max=float(cfg.lmbdas[1]))
    return options


def change_range(ckpt: dict, ckpt_path: Path, cfg: TrainConfig, log=print) -> dict:
    """A variable-rate run's checkpoint moved to the quality / lambda range of ``cfg``
    (unchanged if it has it already): the model's gain vectors and their Adam moments
    re-interpolated at the same lambdas (see MeanScaleHyperprior.reranged), its moving
    average (--ema) likewise, the change recorded, and written back, the checkpoint
    from before kept beside it."""
    from ..models import ModelConfig
    from ..models.hyperprior import interpolate_rows
    old = build_from_config(ModelConfig.from_dict(checkpoint_model_config(ckpt)))
    fields = {k: v for k, v in hyperprior_options(cfg).items() if k != "gains"}
    if all(getattr(old.config, k) == v for k, v in fields.items()):
        return ckpt
    old.load_state_dict(ckpt["model"])
    new = old.reranged(**fields)
    pos = old.anchor_positions(new.config)
    # Adam's state is keyed by position: the main group (minus the density), then the density's
    main = old.main_parameters()
    if len(ckpt["opt"]["param_groups"]) > 1:
        density = {id(p) for p in old.entropy_bottleneck.main_parameters()}
        main = [p for p in main if id(p) not in density] + [p for p in main if id(p) in density]
    state = ckpt["opt"]["state"]
    for name in ("log_gains", "log_inverse_gains"):
        moments = state.get(next(i for i, p in enumerate(main) if p is getattr(old, name)), {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:  # moments stay within their rows' values (the second one positive)
                moments[key] = interpolate_rows(moments[key], pos, extrapolate=False)
    before = ckpt_path.with_name(f"checkpoint-{int(ckpt['step'])}-before-range-change.pt")
    if not before.exists():
        shutil.copyfile(ckpt_path, before)
    was = {"qualities": list(old.quality_range), "lmbdas": [old.config.lmbda_min, old.config.lmbda_max]}
    ema = ckpt.get("ema")
    if ema:  # the moving average moves with the weights: its gains re-interpolated the same way
        old.load_state_dict({**ckpt["model"], **ema})
        moved = old.reranged(**fields).state_dict()
        ema = {k: moved[k].to(v.dtype) for k, v in ema.items()}
    ckpt = {**ckpt, "model": new.state_dict(), "model_config": new.config.to_dict(), "ema": ema,
            "changes": list(ckpt.get("changes", [])) + [{"until_step": int(ckpt["step"]), **was}]}
    tmp = ckpt_path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, ckpt_path)
    log(f"range changed on resuming: qualities {was['qualities'][0]:g}..{was['qualities'][1]:g} -> "
        f"{new.quality_range[0]:g}..{new.quality_range[1]:g}, lambda {was['lmbdas'][0]:g}..{was['lmbdas'][1]:g} -> "
        f"{new.config.lmbda_min:g}..{new.config.lmbda_max:g} (earlier checkpoint kept as {before.name})")
    return ckpt


def load_trained(path, raw: bool = False) -> tuple:
    """(model in float32 on the CPU, its run info) from a training checkpoint (.pt) or an
    exported model file; ModelError for a missing or foreign file. A checkpoint that keeps
    a moving average of its weights (``--ema``) gives the average, unless ``raw``."""
    from ..errors import ModelError
    from ..models import ModelConfig
    from ..zoo.artifact import load_artifact
    path = Path(path)
    if path.suffix == ".safetensors":
        art = load_artifact(path)
        return art.model, dict(art.info)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = build_from_config(ModelConfig.from_dict(checkpoint_model_config(ckpt)))
        state = ckpt["model"] if raw or not ckpt.get("ema") else {**ckpt["model"], **ckpt["ema"]}
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except FileNotFoundError:
        raise ModelError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise ModelError(f"{path}: not a licodec training checkpoint ({exc})") from None
    info = checkpoint_info(ckpt)
    if ckpt.get("ema") and not raw:
        info["ema"] = float(ckpt.get("config", {}).get("ema") or 0.0)
    return model, info


class WeightAverage:
    """An exponential moving average of a model's floating-point weights (Polyak
    averaging): after each step, avg += (1 - decay) * (w - avg). At a small learning rate
    the weights wander about a minimum with the noise of the gradients; their average
    lies nearer to it than any one of them."""

    def __init__(self, model, decay: float, state: dict | None = None):
        self.decay = float(decay)
        live = model.state_dict()
        self.names = [k for k, v in live.items() if v.is_floating_point()]
        self.live = [live[k] for k in self.names]
        fits = state and all(k in state and state[k].shape == t.shape for k, t in zip(self.names, self.live))
        start = state if fits else {}
        self.avg = [start[k].to(t.device, torch.float32).clone() if k in start else t.detach().float().clone()
                    for k, t in zip(self.names, self.live)]
        self.resumed = bool(start)

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.avg, [t.float() for t in self.live], 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in zip(self.names, self.avg)}

    def model(self, model):
        """A copy of ``model`` (same config and device) holding the averaged weights."""
        copy = build_from_config(model.config).to(self.avg[0].device)
        copy.load_state_dict({**model.state_dict(), **dict(zip(self.names, self.avg))})
        return copy


def split_density_group(opt, density: set[int], scale: float) -> None:
    """Moves the factorized density's parameters into their own group, at ``scale``
    times the learning rate (their Adam state moves with them). A density starts wide
    and, at the base rate, needs tens of thousands of steps to narrow: the z of a
    hyperprior then costs a constant 0.13 bpp for thousands of steps."""
    group = opt.param_groups[0]
    moved = [p for p in group["params"] if id(p) in density]
    group["params"] = [p for p in group["params"] if id(p) not in density]
    opt.add_param_group({"params": moved, "lr": group["lr"] * scale, "lr_scale": float(scale)})


def drop_log_rows_after(log_path: Path, step: int) -> None:
    """Removes the log rows of steps after ``step`` (written after the checkpoint a run
    resumes from: they are trained again, and would appear twice)."""
    with open(log_path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) != len(rows):
        tmp = log_path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(kept)
        os.replace(tmp, log_path)


def check_config(cfg: TrainConfig) -> None:
    if cfg.lmbda <= 0:
        raise LicodecError(f"--lmbda must be positive, got {cfg.lmbda}")
    if cfg.metric not in ("mse", "ms-ssim"):
        raise LicodecError(f"unknown metric {cfg.metric!r}")
    if cfg.quantizer not in ("noise", "mixed"):
        raise LicodecError(f"unknown quantizer {cfg.quantizer!r}")
    if cfg.metric == "ms-ssim" and cfg.crop < MS_SSIM_MIN_SIDE:
        raise LicodecError(f"--metric ms-ssim needs --crop >= {MS_SSIM_MIN_SIDE}")
    if cfg.crop < 16 or cfg.crop % 16:
        raise LicodecError(f"--crop must be a multiple of 16, got {cfg.crop}")
    if cfg.model == "bls2017-hp" and cfg.crop % 64:  # z lies 64 times below the image
        raise LicodecError(f"--crop must be a multiple of 64 for --model bls2017-hp, got {cfg.crop}")
    if (cfg.qualities or cfg.lmbdas) and cfg.model != "bls2017-hp":
        raise LicodecError("--qualities and --lmbdas are for --model bls2017-hp")
    if cfg.balance and cfg.model != "bls2017-hp":
        raise LicodecError("--balance is for --model bls2017-hp")
    if not 0 <= cfg.balance <= 1:
        raise LicodecError(f"--balance must lie in 0..1, got {cfg.balance:g}")
    if cfg.lmbdas and cfg.lmbdas[0] <= 0:
        raise LicodecError(f"--lmbdas must be positive, got {cfg.lmbdas[0]:g}:{cfg.lmbdas[1]:g}")
    if cfg.batch < 1 or cfg.steps < 1 or cfg.lr <= 0:
        raise LicodecError("--batch, --steps and --lr must be positive")
    if not 0 <= cfg.ema < 1:
        raise LicodecError(f"--ema must lie in 0..1 (a decay such as 0.9995; 0: off), got {cfg.ema:g}")
    parse_oversample(cfg.oversample)


def freeze_parameters(model: torch.nn.Module, text: str | None) -> list[str]:
    """Turns off the gradients of the parameters named in ``text`` ("g_a.0,g_a.1": names
    or module prefixes) and returns the names of those frozen. A name that matches
    nothing is an error (a typo would otherwise freeze nothing)."""
    prefixes = [t.strip() for t in (text or "").split(",") if t.strip()]
    params = dict(model.named_parameters())
    frozen = []
    for prefix in prefixes:
        hits = [n for n in params if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            modules = sorted({n.rsplit(".", 1)[0] for n in params})
            raise LicodecError(f"--freeze {prefix!r}: the model has no parameter of that name or prefix "
                               f"(its parameters: {', '.join(modules)})")
        frozen += [n for n in hits if n not in frozen]
    for name in frozen:
        params[name].requires_grad_(False)
    return frozen


def parse_oversample(text: str | None) -> dict[str, float]:
    """"photo-*=2,bsds-*=0.5" -> {"photo-*": 2.0, "bsds-*": 0.5}."""
    found = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        pattern, eq, factor = item.rpartition("=")
        try:
            value = float(factor)
        except ValueError:
            value = float("nan")
        if not eq or not pattern or not value > 0:
            raise LicodecError(f"--oversample takes GLOB=FACTOR with a positive factor, got {item!r}")
        found[pattern] = value
    return found


# Settings that belong to the machine, not to the run: a resume does not take them from
# the checkpoint (a run started on one machine may go on on another).
MACHINE_SETTINGS = ("bf16", "channels_last")


def machine_precision(cfg: TrainConfig, device: torch.device) -> tuple[bool, bool, str]:
    """(bf16, channels_last, a line saying why): float32 unless bf16 autocast is asked for,
    and channels-last with bf16 or on a GPU (oneDNN's float32 convolutions on the CPU
    measured slower in channels-last), unless given. A float32 run on a GPU also turns
    TF32 off, so that its convolutions keep float32's precision.

    float32 is the default on every machine because bf16 and float32 training lead to
    different weights: a model trained in one precision and resumed in the other spends
    its steps moving between them (benchmarks/bf16_gradients.py: on the 320-channel model
    after float32 training, the bf16 gradient pointed away from float32's), and every
    machine runs float32 at full speed, where bf16 without native support is tens of
    times slower."""
    bf16 = bool(cfg.bf16)
    channels_last = (bf16 or device.type == "cuda") if cfg.channels_last is None else bool(cfg.channels_last)
    layout = ", channels-last" if channels_last else ""
    if bf16:
        why = "as given" if native_bf16(device) else \
            "as given; this device has no native bf16, so it is emulated, tens of times slower"
        return bf16, channels_last, f"precision: bf16 autocast{layout} ({why})"
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        layout += ", TF32 off"
    why = "as given" if cfg.bf16 is not None else "the default; --bf16 for bf16 autocast"
    return bf16, channels_last, f"precision: float32{layout} ({why})"


def resume_config(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """On --resume: the run's own settings (its checkpoint's), except those given on the
    command line (``explicit``) and the machine's (MACHINE_SETTINGS), so that a resume
    keeps the run's schedule."""
    from dataclasses import fields
    ckpt_path = Path(cfg.out) / CHECKPOINT_NAME
    if not ckpt_path.exists():
        return cfg
    old = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("config", {})
    names = {f.name for f in fields(TrainConfig)}
    merged = {k: v for k, v in old.items() if k in names and k != "init" and k not in MACHINE_SETTINGS}
    merged.update({k: getattr(cfg, k) for k in explicit | {"data", "out", "resume"} if k in names})
    return TrainConfig(**merged)


def train(cfg: TrainConfig, log=print, explicit: set[str] | None = None) -> Path:
    """Runs (or, with cfg.resume, continues) a training run. ``explicit``: the settings
    the user gave; on a resume the others keep the run's values (None: use cfg as is)."""
    if cfg.resume and explicit is not None:
        cfg = resume_config(cfg, explicit)
    check_config(cfg)
    ddp = _Distributed()
    out = Path(cfg.out)
    created = not out.exists()
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
    try:
        return _train(cfg, log, ddp, out)
    except BaseException:
        # a run that failed before writing anything leaves no empty folder behind
        if ddp.main and created and out.is_dir() and not (out / CHECKPOINT_NAME).exists():
            for name in (LOG_NAME,):
                (out / name).unlink(missing_ok=True)
            try:
                out.rmdir()
            except OSError:
                pass
        raise


def _train(cfg: TrainConfig, log, ddp, out: Path) -> Path:
    device = torch.device(cfg.device)
    if device.type == "cuda" and ddp.enabled:
        device = torch.device("cuda", ddp.rank % torch.cuda.device_count())
    bf16, channels_last, why = machine_precision(cfg, device)
    cfg = replace(cfg, bf16=bf16, channels_last=channels_last)
    if ddp.main:
        log(why)
    torch.manual_seed(cfg.seed + ddp.rank)
    rng = np.random.default_rng([cfg.seed, ddp.rank])

    ckpt_path = out / CHECKPOINT_NAME
    if not cfg.resume and ckpt_path.exists():  # a new run would overwrite it in a few minutes
        raise FileExistsError(f"{out} already holds a run ({ckpt_path.name}); pass --resume to continue it, "
                              "or choose another --out")
    ckpt, init = None, None  # init: the --init weights of a new run (_read_init)
    if cfg.resume and ckpt_path.exists():  # the model the run was started with, whatever the flags say
        from ..models import ModelConfig
        if ddp.main and cfg.model == "bls2017-hp" and (cfg.qualities or cfg.lmbdas):
            change_range(torch.load(ckpt_path, map_location="cpu", weights_only=True), ckpt_path, cfg, log)
        if ddp.enabled:  # every rank reads the checkpoint once the main one has moved its range
            dist.barrier()
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model = build_from_config(ModelConfig.from_dict(checkpoint_model_config(ckpt)))
    else:
        init = _read_init(cfg.init) if cfg.init else None
        widths = init_widths(cfg, init[1], log) if init else (cfg.N, cfg.M)
        model = build_model(cfg.model, *widths, **hyperprior_options(cfg))
    start_step, wall0 = 0, 0.0
    history: list[dict] = []  # the runs the initial weights came from, oldest first
    changes: list[dict] = []  # settings changed by resumes (see resume_changes)
    if ckpt is None and init is not None:
        load_weights(model, init[0], log)
        history = init[2]
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    frozen = freeze_parameters(model, cfg.freeze)
    if frozen and ddp.main:
        fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        log(f"--freeze: {len(frozen)} parameters fixed ({fixed:,} values): {', '.join(frozen)}")
    opt = torch.optim.Adam(model.main_parameters(), lr=cfg.lr)
    aux_opt = torch.optim.Adam(model.aux_parameters(), lr=cfg.aux_lr)
    density = {id(p) for p in model.entropy_bottleneck.main_parameters()}
    if cfg.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        model.load_state_dict(ckpt["model"])
        if len(ckpt["opt"]["param_groups"]) == 1:
            opt.load_state_dict(ckpt["opt"])  # an older checkpoint of one group: split below
        else:
            split_density_group(opt, density, cfg.density_lr_scale)
            opt.load_state_dict(ckpt["opt"])
            opt.param_groups[1]["lr_scale"] = float(cfg.density_lr_scale)
        aux_opt.load_state_dict(ckpt["aux_opt"])
        start_step, wall0 = int(ckpt["step"]), float(ckpt["wall_s"])
        history = init_history(ckpt)
        changes, changed = resume_changes(ckpt, cfg)
        rng.bit_generator.state = ckpt["rng"][ddp.rank] if ddp.rank < len(ckpt["rng"]) else rng.bit_generator.state
        log(f"resumed from {ckpt_path} at step {start_step}")
        if changed:
            log(f"changed on resuming: {changed} (the model's record keeps the earlier values)")
        if cfg.init:
            log(f"--init {cfg.init} not used: the run continues from its checkpoint")
        was_bf16 = ckpt.get("config", {}).get("bf16")
        if was_bf16 is not None and bool(was_bf16) != cfg.bf16:
            names = {True: "bf16 autocast", False: "float32"}
            log(f"precision changed on resuming: {names[bool(was_bf16)]} -> {names[cfg.bf16]} (the weights first "
                "move between what the two precisions train to; --bf16 / --no-bf16 keep one)")

    if len(opt.param_groups) == 1:
        split_density_group(opt, density, cfg.density_lr_scale)

    net = model
    if ddp.enabled:
        # The tail quantiles get no gradient from the main loss: DDP must not wait for
        # them. Their own (aux) gradients are averaged by hand below.
        aux_names = [n for n, p in model.named_parameters() if any(p is q for q in model.aux_parameters())]
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, aux_names)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        for p in model.state_dict().values():  # every rank starts from rank 0's weights
            dist.broadcast(p, 0)
    fwd = torch.compile(net) if cfg.compile else net
    average = None
    if cfg.ema:
        average = WeightAverage(model, cfg.ema, ckpt.get("ema") if cfg.resume and ckpt else None)
        log(f"moving average of the weights (decay {cfg.ema:g}) "
            + ("continued from the checkpoint" if average.resumed else "started from the current weights"))

    variable_rate = hasattr(model, "quality_range")
    lmbda_mid = math.sqrt(model.config.lmbda_min * model.config.lmbda_max) if variable_rate else None
    data = CropDataset(cfg.data, cfg.crop, ddp.rank, ddp.world, warn=log if ddp.main else (lambda m: None),
                       sampling=cfg.sampling, oversample=parse_oversample(cfg.oversample))
    if ddp.main:
        log(f"{len(data)} training images per rank, {ddp.world} rank(s), model {cfg.model} "
            f"(N={model.config.N}, M={model.config.M}), "
            + (f"qualities {model.quality_range[0]:g}..{model.quality_range[1]:g}, lambda "
               f"{model.config.lmbda_min:g}..{model.config.lmbda_max:g}" if variable_rate else f"lambda {cfg.lmbda}")
            + (f" (losses weighted by (lambda_mid / lambda)^{cfg.balance:g})" if cfg.balance else "")
            + f", {cfg.metric}")
        for pattern, factor in parse_oversample(cfg.oversample).items():
            log(f"--oversample {pattern}={factor:g}: {data.share(pattern):.0%} of the crops from the images it matches")

    log_path = out / LOG_NAME
    if ddp.main and not log_path.exists():
        with open(log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(LOG_FIELDS)
    elif ddp.main and cfg.resume:
        drop_log_rows_after(log_path, start_step)

    def save_checkpoint(step: int, wall: float) -> None:
        if not ddp.main:
            return
        rngs = [rng.bit_generator.state]
        blob = {"model": model.state_dict(), "model_config": model.config.to_dict(),
                "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                "step": step, "wall_s": wall, "config": asdict(cfg), "rng": rngs, "history": history,
                "changes": changes}
        if average is not None:
            blob["ema"] = average.state_dict()
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, ckpt_path)

    bar = None
    if cfg.progress and ddp.main:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)

    def average_aux_grads():  # DDP leaves the aux parameters alone (see above)
        for p in model.aux_parameters():
            dist.all_reduce(p.grad)
            p.grad /= ddp.world

    import signal

    def on_term(signum, frame):  # a SIGTERM stops the run like Ctrl-C: checkpoint first
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, on_term) if ddp.main and _main_thread() else None

    t_start = time.time()
    last_ckpt = time.time()
    acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "aux": 0.0, "n": 0, "t": time.time()}
    log_every = 50
    step = start_step
    done = start_step
    try:
        for step in range(start_step, cfg.steps):
            lr = lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            batch = torch.from_numpy(data.batch(rng, cfg.batch)).to(device)
            x = batch.permute(0, 3, 1, 2).float().div_(255.0)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            quality, lmbda, weight = None, cfg.lmbda, None
            if variable_rate:  # one quality per image, uniform over the model's range
                quality = torch.from_numpy(rng.uniform(*model.quality_range, size=cfg.batch)).float().to(device)
                lmbda = model.lmbda(quality)
                if cfg.balance:
                    weight = (lmbda_mid / lmbda) ** cfg.balance

            r = train_step(model, x, lmbda, opt, aux_opt, metric=cfg.metric, bf16=cfg.bf16, clip=cfg.clip,
                           forward=fwd, quantizer=cfg.quantizer, quality=quality, weight=weight,
                           before_aux_step=average_aux_grads if ddp.enabled else None)
            loss, bpp, mse, aux = r.loss, r.bpp, r.mse, r.aux
            if average is not None:
                average.update()
            num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {float(loss)} at step {step}; lower --lr")

            acc["loss"] += loss.item(); acc["bpp"] += bpp.item(); acc["mse"] += mse.item()
            acc["aux"] += aux.item(); acc["n"] += 1
            if bar is not None:
                bar.update(1)
            done = step + 1
            validating = bool(cfg.valid) and (done % cfg.valid_every == 0 or done == cfg.steps)
            if ddp.main and (done % log_every == 0 or done == cfg.steps or validating):
                n = acc["n"]
                dt = time.time() - acc["t"]
                row = {"step": done, "wall_s": round(wall0 + time.time() - t_start, 1), "lr": lr,
                       "loss": acc["loss"] / n, "bpp": acc["bpp"] / n, "mse": acc["mse"] / n,
                       "psnr": 10 * math.log10(1.0 / max(1e-10, acc["mse"] / n)), "aux": acc["aux"] / n,
                       "mpix_s": n * num_pixels * ddp.world / dt / 1e6}
                if validating:
                    judged = average.model(model) if average is not None else model
                    judged.eval()
                    row.update(validate(judged, cfg.valid, cfg.valid_limit, log, done))
                    model.train()
                with open(log_path, "a", newline="") as fh:
                    csv.writer(fh).writerow([_fmt(row.get(k, "")) for k in LOG_FIELDS])
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.3f}", bpp=f"{row['bpp']:.3f}", psnr=f"{row['psnr']:.2f}")
                acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "aux": 0.0, "n": 0, "t": time.time()}
            if ddp.main and time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                save_checkpoint(done, wall0 + time.time() - t_start)
                last_ckpt = time.time()
    except KeyboardInterrupt:
        if ddp.main:
            save_checkpoint(done, wall0 + time.time() - t_start)
            log(f"interrupted: checkpoint at step {done} written to {ckpt_path}; continue with --resume")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if bar is not None:
        bar.close()
    final = out / "model.safetensors"
    if ddp.main:
        save_checkpoint(cfg.steps, wall0 + time.time() - t_start)
        from ..zoo.artifact import save_artifact
        cpu_model = build_from_config(model.config)
        state = model.state_dict() if average is None else {**model.state_dict(), **average.state_dict()}
        cpu_model.load_state_dict({k: v.float().cpu() for k, v in state.items()})
        info = {"name": out.name, **run_info(asdict(cfg), cfg.steps, wall0 + time.time() - t_start, history, changes)}
        atomic_write(final, save_artifact(cpu_model, info), force=True)
        log(f"exported {final}")
    if ddp.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return final


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v
