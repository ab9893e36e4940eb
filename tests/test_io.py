"""Audio and template readers."""

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from codetalker_blender.core.audio import (
    SAMPLE_RATE,
    SilenceGate,
    is_silent,
    load_audio,
    rest_gain,
    speech_spans,
    to_mono_16k,
)
from codetalker_blender.core.errors import AudioError, TemplateError
from codetalker_blender.core.mesh import check_vertex_count, load_template


def _tone(sr, seconds=1.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.5 * np.sin(2 * np.pi * 220 * t)
    return np.stack([mono * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", None)])
def test_formats_rates_and_channels(tmp_path, fmt, subtype):
    if fmt.upper() not in sf.available_formats():
        pytest.fail(f"this libsndfile cannot write {fmt}; CI must install a soundfile build with it")
    path = tmp_path / f"tone.{fmt}"
    sf.write(path, _tone(44100, 1.0, channels=2), 44100, subtype=subtype, format=fmt.upper())
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - SAMPLE_RATE) < 0.01 * SAMPLE_RATE + 1200  # mp3 adds encoder padding
    # mono mix of (x, 2x)/2 = 0.75 * 0.5 peak
    assert 0.3 < np.abs(samples).max() < 0.45


def test_real_clips_resample_to_16k():
    for name, seconds in [("one_two_three.wav", 2.745), ("voca_test_sentence.wav", 5.095)]:
        samples = load_audio(SHARED / "audio" / name)
        assert abs(samples.size / SAMPLE_RATE - seconds) < 0.01


def test_array_input_validation():
    with pytest.raises(AudioError, match="no samples"):
        to_mono_16k(np.zeros(0), 16000)
    with pytest.raises(AudioError, match="NaN"):
        to_mono_16k(np.array([0.0, np.nan]), 16000)
    assert is_silent(np.zeros(100)) and not is_silent(_tone(16000)[:, 0])


def test_missing_audio_and_folder(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)


def _segments(*parts, seed=0):
    """Concatenated (seconds, dB under full scale) stretches of noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    out = [10 ** (db / 20) * rng.standard_normal(int(sec * SAMPLE_RATE)) for sec, db in parts]
    return np.concatenate(out).astype(np.float32)


def test_silence_gate_finds_pauses_and_keeps_weak_consonants_and_short_gaps():
    gate = SilenceGate(threshold_db=-22.0, hold=0.2)
    # 1 s of room noise at -50 dB, speech at -10 dB with a 0.25 s dip to -40 dB inside it,
    # a weak consonant (-30 dB, 20 dB under the speech) just before the last word, then 1.5 s of noise;
    # spans are exact to a 25 ms analysis frame
    audio = _segments((1.0, -50), (1.0, -10), (0.25, -40), (0.8, -10), (1.0, -50),
                      (0.1, -30), (0.5, -10), (1.5, -50))
    spans = speech_spans(audio, gate)
    assert spans.shape == (2, 2)
    (a0, a1), (b0, b1) = spans
    assert a0 == pytest.approx(1.0 - 0.2, abs=0.03) and a1 == pytest.approx(3.05 + 0.2, abs=0.03)  # dip bridged
    assert b0 == pytest.approx(4.05 - 0.2, abs=0.03)  # held from the weak consonant, not the word
    assert b1 == pytest.approx(4.65 + 0.2, abs=0.03)
    # the threshold is relative: the same clip 30 dB quieter gives the same spans
    assert np.allclose(speech_spans(audio * 10 ** (-30 / 20), gate), spans)
    # a stricter threshold drops the weak consonant from the second span
    assert speech_spans(audio, SilenceGate(threshold_db=-15.0))[1, 0] == pytest.approx(4.15 - 0.2, abs=0.03)


def test_rest_gain_is_one_in_speech_zero_in_silence_and_smooth_between():
    gate = SilenceGate(threshold_db=-22.0, hold=0.2, fade=0.12)
    audio = _segments((2.0, -60), (1.0, -12), (2.0, -60))
    fps = 30.0
    (start, stop), = speech_spans(audio, gate)
    assert start == pytest.approx(1.8, abs=0.03) and stop == pytest.approx(3.2, abs=0.03)
    gain = rest_gain(audio, gate, 150, fps)
    t = np.arange(150) / fps
    assert gain.dtype == np.float32 and gain.shape == (150,)
    assert np.all(gain[(t >= start) & (t <= stop)] == 1.0)
    assert np.all(gain[(t < start - 0.12) | (t > stop + 0.12)] == 0.0)
    ramp_in = gain[(t > start - 0.12) & (t < start)]
    assert ramp_in.size >= 3 and np.all(np.diff(ramp_in) > 0) and 0 < ramp_in.min() and ramp_in.max() < 1
    assert np.abs(np.diff(gain)).max() < 0.6  # no jump from rest to full motion in one frame
    # speech throughout: nothing held
    assert np.all(rest_gain(_segments((3.0, -12)), gate, 90, fps) == 1.0)


def test_silence_gate_settings_are_checked():
    with pytest.raises(AudioError, match="threshold"):
        SilenceGate(threshold_db=6.0)
    with pytest.raises(AudioError, match="negative"):
        SilenceGate(hold=-0.1)


def test_flame_and_biwi_ply_templates():
    flame = load_template(SHARED / "assets" / "flame" / "FLAME_sample.ply")
    biwi = load_template(SHARED / "assets" / "biwi" / "BIWI.ply")
    assert flame.shape == (5023, 3) and biwi.shape == (23370, 3)
    assert 0.05 < np.abs(flame).max() < 0.3  # metres
    # the midline lip vertices sit 3.9 mm apart vertically
    assert abs((flame[3546, 1] - flame[3504, 1]) - 0.0039) < 1e-4


def test_obj_ascii_ply_and_npy_agree(tmp_path):
    verts = load_template(SHARED / "assets" / "flame" / "FLAME_sample.ply")[:50]
    obj = tmp_path / "m.obj"
    obj.write_text("# test\n" + "".join(f"v {x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts) + "f 1 2 3\n")
    ply = tmp_path / "m.ply"
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 50\nproperty float x\nproperty float y\nproperty float z\n"
                   "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
                   + "".join(f"{x:.7f} {y:.7f} {z:.7f}\n" for x, y, z in verts))
    npy = tmp_path / "m.npy"
    np.save(npy, verts.reshape(-1))
    for path in (obj, ply, npy):
        assert np.allclose(load_template(path), verts, atol=1e-6), path


def test_template_errors(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        load_template(tmp_path / "none.ply")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(10))
    with pytest.raises(TemplateError, match="shape"):
        load_template(bad)
    txt = tmp_path / "m.stl"
    txt.write_text("solid")
    with pytest.raises(TemplateError, match="unsupported"):
        load_template(txt)
    trunc = tmp_path / "t.ply"
    trunc.write_bytes((SHARED / "assets" / "flame" / "FLAME_sample.ply").read_bytes()[:2000])
    with pytest.raises(TemplateError, match="truncated"):
        load_template(trunc)
    with pytest.raises(TemplateError, match="5023"):
        check_vertex_count(np.zeros((100, 3), np.float32), 5023)
