"""Encode and decode time of the variable-rate model against the paper's model, one image.

    python benchmarks/codec_speed.py [--image PHOTO] [--hp MODEL [MODEL ...]] [--repeats 7] [--stages]

The image is cut to 768x512 (the size of the Kodak images; matplotlib's sample photo,
resized, by default). The two models are timed alternately in one process, so that both
see the same machine load; each figure is the median of ``--repeats`` runs after one
warm-up. ``--hp`` defaults to the installed bls2017-hp-mse; the reference is the
shipped bls2017-mse-q5, or ``--reference``. ``--stages`` also times the encoder's stages
one by one (the analysis, the hyper-analysis, the exact hyper-synthesis up to the table
indexes, the means, the coders), at the middle quality: where a model's extra time goes.
With 4 or more repeats it also prints the quartiles of the ratios taken within each round,
how far the shared machine's load moves them. Where the CPU computes bf16 natively the
codec runs the hyper-analysis in bf16 (codec.HYPER_ANALYSIS_BF16); there each
variable-rate model is timed a second time with it in float32 ("h_a f32"), in the same
rounds, and the stages are timed as the codec runs them.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from licodec import codec, coding
from licodec.codec import decode_array, encode_array
from licodec.zoo.registry import VARIABLE_RATE_MODEL, resolve_model

W, H = 768, 512


def test_image(path: str | None) -> np.ndarray:
    if path is None:
        import matplotlib.cbook
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = max(W / im.width, H / im.height)
        im = im.resize((max(W, round(im.width * scale)), max(H, round(im.height * scale))), Image.LANCZOS)
        return np.asarray(im.crop((0, 0, W, H)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image")
    p.add_argument("--hp", nargs="+", default=[VARIABLE_RATE_MODEL],
                   help="variable-rate model(s) (names or paths), timed in the same rounds")
    p.add_argument("--reference", default="bls2017-mse-q5")
    p.add_argument("--qualities", default="2,5,8", help="qualities of the variable-rate model to time")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--stages", action="store_true", help="also time the encoder's stages one by one")
    args = p.parse_args()
    img = test_image(args.image)
    ref = resolve_model(args.reference)
    runs = [(f"{ref.model_id}", ref, None, False)]
    if len(set(args.hp)) < len(args.hp):
        p.error("--hp names a model twice")
    # where the hyper-analysis runs in bf16 (codec.HYPER_ANALYSIS_BF16), each model is
    # also timed with it in float32, in the same rounds: what bf16 saves
    precisions = [True, False] if codec.HYPER_ANALYSIS_BF16 else [False]
    for spec in args.hp:
        hp = resolve_model(spec)
        label = hp.model_id if len(args.hp) == 1 else f"{Path(spec).stem} M={hp.model.config.M}"
        for bf16 in precisions:
            tag = " h_a f32" if len(precisions) > 1 and not bf16 else ""
            runs += [(f"{label} q{q}{tag}", hp, float(q), bf16) for q in args.qualities.split(",")]
    times = {name: ([], []) for name, *_ in runs}
    sizes = {}
    for rep in range(args.repeats + 1):
        for name, art, q, bf16 in runs:
            codec.HYPER_ANALYSIS_BF16 = bf16
            t0 = time.perf_counter()
            data = encode_array(img, art, q)
            t1 = time.perf_counter()
            decode_array(data, art)
            t2 = time.perf_counter()
            sizes[name] = len(data)
            if rep:  # the first round warms up
                times[name][0].append(t1 - t0)
                times[name][1].append(t2 - t1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {W}x{H}, "
          f"median of {args.repeats}")
    width = max(26, *(len(name) for name, *_ in runs))
    print(f"{'model':<{width}} {'bpp':>6} {'enc s':>7} {'dec s':>7} {'enc ratio':>10} {'dec ratio':>10}")
    base_e, base_d = (statistics.median(t) for t in times[runs[0][0]])
    for name, *_ in runs:
        e, d = (statistics.median(t) for t in times[name])
        print(f"{name:<{width}} {8 * sizes[name] / (W * H):>6.3f} {e:>7.3f} {d:>7.3f} {e / base_e:>9.2f}x {d / base_d:>9.2f}x")
    if args.repeats >= 4:  # the machine's noise: the ratio within each round, which saw one load
        print(f"\nratios to the reference coded in the same round: quartiles of {args.repeats}")
        print(f"{'model':<{width}} {'encode':>20} {'decode':>20}")
        ref_e, ref_d = times[runs[0][0]]
        for name, *_ in runs[1:]:
            spans = []
            for mine, ref_t in zip(times[name], (ref_e, ref_d)):
                q1, q2, q3 = statistics.quantiles([a / b for a, b in zip(mine, ref_t)], n=4)
                spans.append(f"{q1:.2f} {q2:.2f} {q3:.2f}")
            print(f"{name:<{width}} {spans[0]:>20} {spans[1]:>20}")
    if args.stages:
        qualities = [float(q) for q in args.qualities.split(",")]
        arts = [(runs[0][0], ref, None)] + [(f"{Path(spec).stem} M={a.model.config.M}", a, qualities[len(qualities) // 2])
                                            for spec, a in ((s, resolve_model(s)) for s in args.hp)]
        print(f"\nencoder stages, ms (median of {args.repeats})")
        for label, art, q in arts:
            codec.HYPER_ANALYSIS_BF16 = precisions[0]
            parts = stage_times(img, art, q, args.repeats)
            print(f"{label:<{width}} " + "  ".join(f"{k} {v:.1f}" for k, v in parts.items())
                  + f"  sum {sum(parts.values()):.1f}")


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def stage_times(img: np.ndarray, art, quality: float | None, repeats: int) -> dict[str, float]:
    """Milliseconds of each stage of ``encode_array``, run one at a time on the inputs
    the stage before gives (whole image: 768x512 is one tile)."""
    model = art.model
    x = codec._padded_tensor(img, art)
    analysis = codec._analysis(model)
    with torch.inference_mode():
        parts = {"g_a": _median_ms(lambda: analysis(x), repeats)}
        y = analysis(x)
        if not art.hyperprior:
            sym = model.entropy_bottleneck.quantize(y)
            parts["coder"] = _median_ms(lambda: coding.encode(sym[0].reshape(y.shape[1], -1).numpy(),
                                                              art.tables["y"]), repeats)
            return parts
        y = y * model.gains(torch.tensor([quality]))
        hyper_analysis = codec._hyper_analysis(model)
        parts["h_a"] = _median_ms(lambda: hyper_analysis(y), repeats)
        z = model.entropy_bottleneck.quantize(hyper_analysis(y))
        parts["h_s index"] = _median_ms(lambda: model.hyper_index(z), repeats)
        index, features = model.hyper_index(z)
        parts["means"] = _median_ms(lambda: model.hyper_mean(features), repeats)
        mu = model.hyper_mean(features)
        sym = torch.round(y - mu).to(torch.int32).reshape(-1).numpy()
        flat = index.reshape(-1).numpy()
        parts["y coder"] = _median_ms(lambda: coding.encode_indexed(sym, flat, art.tables["y"]), repeats)
        parts["z coder"] = _median_ms(lambda: coding.encode(z[0].reshape(z.shape[1], -1).numpy(),
                                                            art.tables["z"]), repeats)
    return parts


if __name__ == "__main__":
    main()
