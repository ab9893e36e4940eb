"""Lip-sync checks on real human speech, with phone timing from pocketsphinx forced alignment.

    .venv/bin/python tools/eval_real_speech.py --model models/codetalker_flame_synth.safetensors

For each clip in ``<shared>/audio`` (transcripts below) it animates the
template and measures the mouth opening (distance of a midline upper and lower
lip vertex, minus its rest value) at phone middles:

* closure: at /p b m/ the opening is under 25 % of the clip's 95th percentile;
* open vowels (/aa ae ao aw ay/): the opening is over 25 % of that percentile;
* rest: in the leading and trailing silence (100 ms next to speech excluded)
  the opening stays under 10 % of that percentile;
* the correlation of the opening with the speech envelope (RMS in dB), at lag
  0 and at the best lag within +-100 ms;
* fast mode against exact mode: max and mean vertex error, whole head and
  lips, per clip and on all clips joined into one (about 16 s, 0.4 s pauses),
  which is longer than fast mode's feedback window on every frame after the
  first second (``--feedback-windows`` compares other window lengths there).

``--per-style`` repeats the closure, open-vowel and rest checks for every
single style (training speaker) and the default blend, and also on
arctic_a0009 with its hand-made phone labels instead of the aligner's.

The checks run on exact mode's motion, or on fast mode's with ``--mode fast``,
with the default silence gate on the input as ``animate`` applies it, or
without it (the model alone) with ``--no-gate``.

``--extra-wav`` with ``--extra-rttm`` also checks rest outside the speaker
turns of a longer recording (see ``tools/eval_style.py`` for the 30 s
two-speaker one that pyannote.audio's wheel ships), animated as the product
does it (default style, auto mode).
Every figure is printed; ``--json`` also writes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.core.api import DEFAULT_GATE  # noqa: E402

TRANSCRIPTS = {
    "arctic_a0009.wav": "he turned sharply and faced gregson across the table",
    "arctic_a0007.wav": "and you always want to see it in the superlative degree",
    "voca_test_sentence.wav": "severe myopia contributed to ruth's inferiority complex",
    "one_two_three.wav": "one two three",
}
BILABIALS = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AO", "AW", "AY"}


def topology_rig(num_vertices: int, shared: str):
    from codetalker_blender.training.rig import rig_for_topology

    return rig_for_topology({5023: "flame", 23370: "biwi"}[num_vertices], shared)


def evaluate_clip(model, rig, path: str, text: str, style=None, modes=("exact", "fast"), phones=None,
                  gate=DEFAULT_GATE) -> dict:
    """The checks on one clip; ``phones``: its phone timing (default: forced alignment of ``text``).

    ``gate``: the silence gate the motion is made with (None: the audio as it is); the envelope is
    always that of the audio as recorded."""
    from codetalker_blender.core.api import animate
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.training.metrics import envelope, force_align, mouth_opening, opening_at

    samples = load_audio(path)
    phones = phones if phones is not None else force_align(samples, text)
    anims = {m: animate(model, samples, rig.template, style, device="cpu", mode=m, gate=gate) for m in modes}
    main = anims[modes[0]]
    fps = main.fps
    v = main.vertices
    opening = mouth_opening(v, rig.template, rig.upper_lip, rig.lower_lip)
    p95 = float(np.percentile(opening, 95))

    closures = [float(opening_at(opening, p.middle, fps)) for p in phones if p.name in BILABIALS]
    opens = [float(opening_at(opening, p.middle, fps)) for p in phones if p.name in OPEN_VOWELS]
    speech = [p for p in phones if p.name != "SIL"]
    rest_frames = []
    if speech:
        lead_end, tail_start = speech[0].start - 0.1, speech[-1].end + 0.1
        t = np.arange(len(opening)) / fps
        rest_frames = opening[(t < lead_end) | (t > tail_start)]
    env = envelope(samples, fps, len(opening))

    def corr(lag: int) -> float:
        a, b = (opening[lag:], env[: len(env) - lag]) if lag >= 0 else (opening[:lag], env[-lag:])
        return float(np.corrcoef(a, b)[0, 1])

    lags = range(-int(0.1 * fps), int(0.1 * fps) + 1)
    best = max(lags, key=corr)
    out = {
        "clip": os.path.basename(path),
        "seconds": samples.size / 16000,
        "frames": len(opening),
        "p95_opening_mm": p95 / rig.scale * 1000,
        "closure_hits": int(sum(c < 0.25 * p95 for c in closures)),
        "closure_total": len(closures),
        "closure_ratios": [round(c / p95, 3) for c in closures],
        "open_hits": int(sum(o > 0.25 * p95 for o in opens)),
        "open_total": len(opens),
        "rest_frames": len(rest_frames),
        "rest_max_ratio": float(np.max(np.abs(rest_frames)) / p95) if len(rest_frames) else None,
        "rest_max_mm": float(np.max(np.abs(rest_frames)) / rig.scale * 1000) if len(rest_frames) else None,
        "rest_ok": bool(len(rest_frames) == 0 or np.max(np.abs(rest_frames)) < 0.1 * p95),
        "envelope_corr_lag0": corr(0),
        "envelope_corr_best": corr(best),
        "envelope_best_lag_ms": best / fps * 1000,
    }
    if "exact" in anims and "fast" in anims:
        d = np.linalg.norm(anims["fast"].vertices - anims["exact"].vertices, axis=-1) / rig.scale * 1000
        lips = rig.lip_vertices
        out.update(fast_vs_exact_max_mm=float(d.max()), fast_vs_exact_mean_mm=float(d.mean()),
                   fast_vs_exact_lip_max_mm=float(d[:, lips].max()), fast_vs_exact_lip_mean_mm=float(d[:, lips].mean()))
    return out


def fast_vs_exact_joined(model, rig, folder: str, windows=(32,), gate=DEFAULT_GATE) -> dict:
    """Fast against exact mode on the clips joined with 0.4 s pauses: lip error per feedback window."""
    from codetalker_blender.core.api import animate
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.core.inference import DecodeOptions

    pause = np.zeros(int(0.4 * 16000), np.float32)
    parts = []
    for name in TRANSCRIPTS:
        parts += [load_audio(os.path.join(folder, name)), pause]
    samples = np.concatenate(parts[:-1])
    exact = animate(model, samples, rig.template, None, device="cpu", mode="exact", gate=gate).vertices
    out = {"seconds": samples.size / 16000, "frames": len(exact), "windows": {}}
    for w in windows:
        fast = dataclasses.replace(DecodeOptions.fast(), feedback_window=w)
        v = animate(model, samples, rig.template, None, device="cpu", mode=fast, gate=gate).vertices
        d = np.linalg.norm(v - exact, axis=-1) / rig.scale * 1000
        lips = d[:, rig.lip_vertices]
        out["windows"][str(w)] = {"max_mm": float(d.max()), "lip_max_mm": float(lips.max()),
                                  "lip_mean_mm": float(lips.mean()),
                                  "lip_p99_mm": float(np.percentile(lips.max(1), 99))}
    return out


def align_clips(folder: str) -> dict:
    """Phone timing of every clip by forced alignment of its transcript: {clip name: phones}."""
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.training.metrics import force_align

    return {n: force_align(load_audio(os.path.join(folder, n)), t) for n, t in TRANSCRIPTS.items()}


def per_style_checks(model, rig, shared: str, mode: str, gate=DEFAULT_GATE, phones: dict | None = None) -> dict:
    """Closures, open vowels and rest for the default blend and each single style, on the
    aligned clips (``phones``: their alignments, made here if not given) and on arctic_a0009
    with its hand-made labels."""
    from codetalker_blender.training.metrics import read_hts_labels

    folder = os.path.join(shared, "audio")
    phones = phones or align_clips(folder)
    hand = read_hts_labels(os.path.join(folder, "arctic_a0009_phone.lab"))
    out = {}
    print(f"per style ({mode} mode): aligned clips | arctic_a0009 with hand labels")
    for style in [None, *model.cfg.subjects]:
        rows = [evaluate_clip(model, rig, os.path.join(folder, n), t, style, (mode,), phones[n], gate)
                for n, t in TRANSCRIPTS.items()]
        h = evaluate_clip(model, rig, os.path.join(folder, "arctic_a0009.wav"), "", style, (mode,), hand, gate)
        r = {key: sum(x[key] for x in rows) for key in ("closure_hits", "closure_total", "open_hits", "open_total")}
        r.update(rest_ok_clips=sum(x["rest_ok"] for x in rows), clips=len(rows),
                 closure_ratios=[c for x in rows for c in x["closure_ratios"]],
                 hand_closure_hits=h["closure_hits"], hand_closure_total=h["closure_total"],
                 hand_closure_ratios=h["closure_ratios"], hand_rest_ok=h["rest_ok"], hand_rest_max_ratio=h["rest_max_ratio"],
                 rest_max_ratio={n: x["rest_max_ratio"] for n, x in zip(TRANSCRIPTS, rows)})
        restless = [f"{n} {x['rest_max_ratio']:.2f}" for n, x in zip(TRANSCRIPTS, rows) if not x["rest_ok"]]
        name = style or "default (all equally)"
        out[name] = r
        print(f"  {name:22s} closures {r['closure_hits']}/{r['closure_total']}, open vowels "
              f"{r['open_hits']}/{r['open_total']}, rest {r['rest_ok_clips']}/{r['clips']}"
              f"{' (not: ' + ', '.join(restless) + ' of p95)' if restless else ''} | closures "
              f"{h['closure_hits']}/{h['closure_total']} {h['closure_ratios']}, rest {'yes' if h['rest_ok'] else 'NO'}")
    singles = [out[s] for s in model.cfg.subjects]
    hits, total = sum(r["closure_hits"] for r in singles), sum(r["closure_total"] for r in singles)
    hhits, htotal = sum(r["hand_closure_hits"] for r in out.values()), sum(r["hand_closure_total"] for r in out.values())
    print(f"  single styles: closures {hits}/{total} = {hits / max(total, 1):.0%}; hand labels, all "
          f"{len(out)} style settings: {hhits}/{htotal}")
    return out


def add_recording_arguments(ap: argparse.ArgumentParser, use: str) -> None:
    """``--extra-wav``/``--extra-rttm``: a longer real recording and its speaker turns; ``use`` says what for."""
    ap.add_argument("--extra-wav", default=None, help=f"a longer recording with speaker turns: {use}")
    ap.add_argument("--extra-rttm", default=None, help="the speaker turns of --extra-wav (RTTM)")


def recording_arguments(ap: argparse.ArgumentParser, args) -> tuple[str, str] | None:
    """(wav, rttm) from ``add_recording_arguments``' options, None without them."""
    if bool(args.extra_wav) != bool(args.extra_rttm):
        ap.error("--extra-wav and --extra-rttm go together")
    return (args.extra_wav, args.extra_rttm) if args.extra_wav else None


def read_rttm(path: str) -> list[tuple[float, float]]:
    """Speaker turns (onset, duration) in seconds from an RTTM file's SPEAKER lines."""
    turns = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            f = line.split()
            if f and f[0] == "SPEAKER":
                turns.append((float(f[3]), float(f[4])))
    if not turns:
        raise SystemExit(f"{path}: no SPEAKER lines")
    return turns


def recording_rest(model, rig, wav: str, rttm: str, gate=DEFAULT_GATE) -> dict:
    """The mouth outside a recording's speaker turns (100 ms next to a turn excluded), default
    style and mode, as the product animates it: how far it opens there, against the
    95th-percentile opening in the turns."""
    from codetalker_blender.core.api import animate
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.training.metrics import mouth_opening

    turns = read_rttm(rttm)
    result = animate(model, load_audio(wav), rig.template, None, device="cpu", gate=gate)
    opening = mouth_opening(result.vertices, rig.template, rig.upper_lip, rig.lower_lip) / rig.scale * 1000
    t = np.arange(len(opening)) / result.fps
    speech = np.zeros(len(opening), dtype=bool)
    for onset, duration in turns:
        speech |= (t >= onset - 0.1) & (t <= onset + duration + 0.1)
    p95 = float(np.percentile(opening[speech], 95))
    rest = np.abs(opening[~speech])
    worst = int(np.flatnonzero(~speech)[np.argmax(rest)])
    lead = np.abs(opening[t < turns[0][0] - 0.1])
    lead_worst = int(np.argmax(lead)) if lead.size else 0
    return {"wav": os.path.basename(wav), "mode": result.info["mode"], "seconds": float(t[-1]), "turns": len(turns),
            "p95_opening_mm": p95, "rest_seconds": float(rest.size / result.fps), "rest_max_mm": float(rest.max()),
            "rest_max_ratio": float(rest.max() / p95), "rest_max_at_s": float(t[worst]),
            "rest_share_under_10pct": float(np.mean(rest < 0.1 * p95)),
            "lead_seconds": float(lead.size / result.fps), "lead_max_mm": float(lead.max()) if lead.size else 0.0,
            "lead_max_at_s": float(t[lead_worst])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--mode", default="exact", choices=["exact", "fast"],
                    help="the mode whose motion is checked (the other is compared with it)")
    ap.add_argument("--feedback-windows", type=int, nargs="+", default=[32],
                    help="fast-mode feedback windows (frames) to compare with exact mode on the joined clips")
    ap.add_argument("--per-style", action="store_true",
                    help="also check every single style, and arctic_a0009 with its hand-made labels")
    ap.add_argument("--no-gate", action="store_true",
                    help="feed the model the audio as it is, without the default silence gate (the model alone)")
    add_recording_arguments(ap, "also check rest outside its turns")
    args = ap.parse_args(argv)
    recording = recording_arguments(ap, args)
    gate = None if args.no_gate else DEFAULT_GATE

    from codetalker_blender.core.checkpoint import load_model_file

    model = load_model_file(args.model)
    rig = topology_rig(model.cfg.num_vertices, args.shared)
    modes = (args.mode, "fast" if args.mode == "exact" else "exact")
    phones = align_clips(os.path.join(args.shared, "audio"))
    rows = [evaluate_clip(model, rig, os.path.join(args.shared, "audio", name), text, modes=modes,
                          phones=phones[name], gate=gate)
            for name, text in TRANSCRIPTS.items()]
    print(f"model {args.model} ({model.cfg.num_vertices} vertices), default style, {args.mode} mode, "
          f"silence gate {gate or 'off'}; openings in FLAME-equivalent mm")
    print(f"{'clip':24s} {'p95 open':>8s} {'closures':>9s} {'open V':>7s} {'rest':>5s} {'(frames)':>5s} {'env r0':>7s} "
          f"{'env best':>9s} {'lag ms':>6s} {'fast-exact max/lip max/lip mean mm':>36s}")
    for r in rows:
        print(f"{r['clip']:24s} {r['p95_opening_mm']:8.2f} {r['closure_hits']:4d}/{r['closure_total']:<4d} "
              f"{r['open_hits']:3d}/{r['open_total']:<3d} {'yes' if r['rest_ok'] else 'NO':>5s} {r['rest_frames']:5d} "
              f"{r['envelope_corr_lag0']:7.2f} {r['envelope_corr_best']:9.2f} {r['envelope_best_lag_ms']:6.0f} "
              f"{r.get('fast_vs_exact_max_mm', float('nan')):12.3f} {r.get('fast_vs_exact_lip_max_mm', float('nan')):10.3f} "
              f"{r.get('fast_vs_exact_lip_mean_mm', float('nan')):10.4f}")
    hits = sum(r["closure_hits"] for r in rows)
    total = sum(r["closure_total"] for r in rows)
    ohits = sum(r["open_hits"] for r in rows)
    ototal = sum(r["open_total"] for r in rows)
    summary = {
        "closure_rate": hits / max(total, 1), "closure_cases": total,
        "open_vowel_rate": ohits / max(ototal, 1), "open_vowel_cases": ototal,
        "rest_ok_clips": sum(r["rest_ok"] for r in rows), "clips": len(rows),
        "mean_envelope_corr_lag0": float(np.mean([r["envelope_corr_lag0"] for r in rows])),
        "mean_envelope_corr_best": float(np.mean([r["envelope_corr_best"] for r in rows])),
        "fast_vs_exact_lip_max_mm": max(r.get("fast_vs_exact_lip_max_mm", 0.0) for r in rows),
    }
    print(f"bilabial closure: {hits}/{total} = {summary['closure_rate']:.0%} (target >= 80%); "
          f"open vowels open: {ohits}/{ototal} = {summary['open_vowel_rate']:.0%}; "
          f"rest in silence: {summary['rest_ok_clips']}/{len(rows)} clips; "
          f"envelope correlation: {summary['mean_envelope_corr_lag0']:.2f} (lag 0), "
          f"{summary['mean_envelope_corr_best']:.2f} (best lag); "
          f"fast vs exact, lips: max {summary['fast_vs_exact_lip_max_mm']:.3f} mm")
    joined = fast_vs_exact_joined(model, rig, os.path.join(args.shared, "audio"), args.feedback_windows, gate)
    for w, r in joined["windows"].items():
        print(f"fast (feedback window {w}) vs exact on the joined clips ({joined['seconds']:.1f} s, "
              f"{joined['frames']} frames): head max {r['max_mm']:.2f} mm; lips max {r['lip_max_mm']:.2f} mm, "
              f"99th percentile of per-frame max {r['lip_p99_mm']:.2f} mm, mean {r['lip_mean_mm']:.3f} mm")
    summary["joined_fast_vs_exact"] = joined
    if recording:
        r = recording_rest(model, rig, *recording, gate)
        print(f"{r['wav']} ({r['seconds']:.1f} s, {r['turns']} turns, {r['mode']} mode): outside the turns "
              f"({r['rest_seconds']:.1f} s) {r['rest_share_under_10pct']:.1%} of frames under 10 % of the turns' "
              f"p95 ({r['p95_opening_mm']:.2f} mm); largest {r['rest_max_mm']:.2f} mm = {r['rest_max_ratio']:.2f} "
              f"of p95, at {r['rest_max_at_s']:.2f} s; before the first turn ({r['lead_seconds']:.1f} s) largest "
              f"{r['lead_max_mm']:.2f} mm, at {r['lead_max_at_s']:.2f} s")
        summary["recording_rest"] = r
    if args.per_style:
        summary["per_style"] = per_style_checks(model, rig, args.shared, args.mode, gate, phones)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": args.model, "mode": args.mode, "gate": dataclasses.asdict(gate) if gate else None,
                       "clips": rows, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
