"""Inference benchmark: the published algorithm, our exact mode and our fast mode, side by side in one run.

    .venv/bin/python tools/bench.py                                  # vocaset, 5 and 20 s, CPU
    .venv/bin/python tools/bench.py --datasets vocaset BIWI --seconds 5 20 60 300 --devices cpu cuda

For every model, device and clip length it times, per stage: the audio
encoder, the predictor, the stage-1 feedback decode and the final decode, then
prints totals, real-time factor (time / audio length), peak memory and the
speed-up over the baseline. The baseline is the published predict()
(codetalker_blender/core/reference.py): whole-prefix recompute at every step.
It and exact mode are quadratic in length, so they run only up to
--baseline-max and --exact-max seconds. Models are the published sizes with
random weights; the bundled model from models/ is added when there is one.
Speech is real clips from the shared folder, repeated to length.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.core.audio import load_audio  # noqa: E402
from codetalker_blender.core.audio_encoder import encode_audio, normalise  # noqa: E402
from codetalker_blender.core.checkpoint import load_model_file  # noqa: E402
from codetalker_blender.core.config import published_config  # noqa: E402
from codetalker_blender.core.inference import DecodeOptions, generate_motion  # noqa: E402
from codetalker_blender.core.predictor import CodeTalker  # noqa: E402
from codetalker_blender.core.reference import reference_motion  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SPEECH_CLIPS = ("arctic_a0009.wav", "arctic_a0007.wav", "voca_test_sentence.wav", "one_two_three.wav")


def speech(seconds: float, shared: str) -> np.ndarray:
    """Real speech repeated to ``seconds``; ``shared`` may also be a .npy of 16 kHz samples."""
    if shared.endswith(".npy"):
        audio = np.load(shared)
    else:
        audio = np.concatenate([load_audio(os.path.join(shared, "audio", n)) for n in SPEECH_CLIPS])
    return np.tile(audio, int(np.ceil(seconds * 16000 / audio.size)))[: int(seconds * 16000)]


class Peak:
    """Peak memory of one measurement: resident set on the CPU, allocator peak on CUDA."""

    def __init__(self, device: torch.device):
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")  # resets VmHWM (Linux)
            except OSError:
                pass

    def read_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def stream_bandwidth(repeats: int = 5) -> float:
    """Bytes per second a CPU matrix-vector product reads, on a 256 MB float32 matrix (far beyond the caches)."""
    w, x = torch.randn(8192, 8192), torch.randn(8192)
    for _ in range(2):
        w @ x
    t0 = time.perf_counter()
    for _ in range(repeats):
        w @ x
    return repeats * w.numel() * w.element_size() / (time.perf_counter() - t0)


def predictor_bytes(model) -> int:
    """Weight bytes one cached predictor step reads (inference._CachedPredictor.step).

    Every decoder layer and the map to codes, less what is computed once per
    clip: the cross-attention keys and values of the audio, and with one audio
    feature per frame the whole cross-attention (its output is known then).
    """
    total = sum(p.numel() * p.element_size() for m in (model.transformer_decoder, model.feat_map) for p in m.parameters())
    f = model.cfg.predictor.feature_dim
    for layer in model.transformer_decoder.layers:
        mha = layer.multihead_attn
        per_row = mha.in_proj_weight.element_size() * (f + 1)  # a weight row and its bias
        unread = 2 * f * per_row  # keys and values of the audio
        if model.cfg.timing.feats_per_frame == 1:
            unread += f * per_row + sum(p.numel() * p.element_size() for p in mha.out_proj.parameters())
        total -= unread
    return total


def run_mode(model, audio, style, mode: str, device: torch.device, peak: Peak) -> dict:
    peak.reset()
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        feats, frames = encode_audio(model.audio_encoder, audio.to(device), model.cfg.timing)
        sync(device)
        t_audio = time.perf_counter() - t0
        stages: dict = {}
        if mode == "reference":
            motion = reference_motion(model, feats, frames, style)
        else:
            options = DecodeOptions.exact() if mode == "exact" else DecodeOptions.fast()
            motion = generate_motion(model, feats, frames, style, options, timings=stages)
        sync(device)
    total = time.perf_counter() - t0
    return dict(mode=mode, frames=frames, audio=t_audio, total=total, peak=peak.read_mib(), motion=motion.float().cpu(),
                **stages)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="*", default=["vocaset"], choices=("vocaset", "BIWI"),
                   help="published sizes to measure; give none (--datasets) for the bundled models only")
    p.add_argument("--bundled", default="*",
                   help="which bundled models to measure, a pattern of their file names (default: all; 'none' for "
                        "none). One at a time gives a peak memory free of the models measured before it")
    p.add_argument("--seconds", type=float, nargs="+", default=[5.0, 20.0])
    p.add_argument("--devices", nargs="+", default=["cpu"])
    p.add_argument("--baseline-max", type=float, default=20.0, help="longest clip for the published algorithm")
    p.add_argument("--exact-max", type=float, default=60.0, help="longest clip for exact mode")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="model precision on CUDA (the CPU always uses float32)")
    p.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", os.path.join(ROOT, "..", "shared")),
                   help="the shared folder (its audio/ clips), or a .npy of 16 kHz speech samples")
    p.add_argument("--save-speech", default="", help="write the concatenated speech clips to this .npy and stop")
    args = p.parse_args(argv)

    if args.save_speech:
        np.save(args.save_speech, np.concatenate([load_audio(os.path.join(args.shared, "audio", n))
                                                  for n in SPEECH_CLIPS]))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    models = []
    for dataset in args.datasets:
        torch.manual_seed(0)
        models.append((f"{dataset} (published size, random)", lambda d=dataset: CodeTalker(published_config(d)).eval()))
    bundled = sorted(glob.glob(os.path.join(ROOT, "models", f"{args.bundled}.safetensors")))
    for path in bundled:
        models.append((f"bundled {os.path.basename(path)}", lambda p=path: load_model_file(p)))
    if not bundled and args.bundled == "*":
        print("no bundled model in models/ yet: only the published sizes are measured")

    rows, floors = [], []
    for name, build in models:
        model = build()
        params = sum(x.numel() for x in model.parameters()) / 1e6
        floors.append((name, predictor_bytes(model)))
        for dev_name in args.devices:
            device = torch.device(dev_name)
            if device.type == "cuda" and not torch.cuda.is_available():
                print(f"{dev_name}: not available, skipped")
                continue
            dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
            model.to(device=device, dtype=dtype)
            peak = Peak(device)
            style = model.style_embedding(torch.ones(len(model.cfg.subjects), device=device, dtype=dtype))
            if device.type == "cuda":  # warm-up: kernels, allocator
                run_mode(model, normalise(torch.from_numpy(speech(2.0, args.shared))).to(dtype), style, "fast",
                         device, peak)
            for seconds in args.seconds:
                audio = normalise(torch.from_numpy(speech(seconds, args.shared))).to(dtype)
                results = {}
                for mode in ("reference", "exact", "fast"):
                    limit = {"reference": args.baseline_max, "exact": args.exact_max}.get(mode, float("inf"))
                    if seconds > limit:
                        continue
                    r = run_mode(model, audio, style, mode, device, peak)
                    results[mode] = r
                    ref = results.get("reference")
                    exact = results.get("exact")
                    row = dict(model=name, params=params, device=dev_name, dtype=str(dtype).replace("torch.", ""),
                               seconds=seconds, **{k: v for k, v in r.items() if k != "motion"})
                    row["rtf"] = r["total"] / seconds
                    row["speedup"] = ref["total"] / r["total"] if ref else None
                    base = exact if mode == "fast" and exact else (ref if mode == "exact" and ref else None)
                    row["err"] = float((r["motion"] - base["motion"]).abs().max()) if base else None
                    rows.append(row)
                    print(_fmt(row), flush=True)
            model.to(device="cpu", dtype=torch.float32)
        del model

    print("\n| model | device | clip | mode | frames | audio enc | predictor | feedback | final | total | RTF "
          "| vs published | peak memory | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(_fmt(row))
    print("\nmax abs diff: exact vs the published algorithm, fast vs exact (random weights: vertex units are "
          "arbitrary; fast mode must be judged on a trained model)")
    if "cpu" in args.devices:
        # Each frame depends on the one before, so the predictor's weights are read once per frame:
        # no batching across frames, and on the CPU one matrix-vector product per layer is memory-bound.
        bandwidth = stream_bandwidth()
        print(f"\nmemory floor of the predictor on this CPU ({bandwidth / 1e9:.1f} GB/s measured by a "
              "matrix-vector product over 256 MB, float32):")
        for name, nbytes in floors:
            print(f"  {name}: {nbytes / 1e6:.0f} MB of weights per frame -> at least "
                  f"{1000 * nbytes / bandwidth:.1f} ms per frame, {300 * nbytes / bandwidth:.2f} s per 300 frames")
    return 0


def _fmt(r: dict) -> str:
    def sec(key):
        return f"{r[key]:.2f} s" if key in r else "-"

    predictor = f"{r['loop']:.2f} s (both, one graph per frame)" if "loop" in r else sec("predictor")
    return (f"| {r['model']} | {r['device']} {r['dtype']} | {r['seconds']:g} s | {r['mode']} | {r['frames']} | "
            f"{sec('audio')} | {predictor} | {sec('feedback')} | {sec('final')} | {r['total']:.2f} s | "
            f"{r['rtf']:.3f} | " + (f"{r['speedup']:.1f}x" if r['speedup'] else "-") + f" | {r['peak']:.0f} MiB | "
            + (f"{r['err']:.2g}" if r['err'] is not None else "-") + " |")


if __name__ == "__main__":
    sys.exit(main())
