"""The training tools: rig, articulation, corpus layout, both training stages, metrics."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from conftest import SHARED

from codetalker_blender.core.config import ModelConfig, PredictorConfig, TimingConfig, VQConfig
from codetalker_blender.training import articulation as art
from codetalker_blender.training import metrics, rig, train
from codetalker_blender.training.data import DataConfig, clips, parse_name


@pytest.fixture(scope="module")
def flame_rig():
    return rig.rig_for_topology("flame", str(SHARED))


@pytest.fixture(scope="module")
def biwi_rig():
    return rig.rig_for_topology("biwi", str(SHARED))


def _opening(r, coeffs):
    v = (r.template.reshape(1, -1) + r.displacements(coeffs)).reshape(len(coeffs), -1, 3)
    return metrics.mouth_opening(v, r.template, r.upper_lip, r.lower_lip) / r.scale * 1000  # FLAME mm


@pytest.mark.parametrize("name", ["flame_rig", "biwi_rig"])
def test_rig_articulators_move_the_mouth_and_leave_the_rest(name, request):
    r = request.getfixturevalue(name)
    p = len(rig.FIELDS)
    assert r.fields.shape == (p, len(r.template), 3)
    assert np.allclose(r.displacements(np.zeros((1, p))), 0)
    jaw = np.zeros((1, p))
    a = art.JAW_MAX_RADIANS
    jaw[0, 0], jaw[0, 1] = np.cos(a) - 1, np.sin(a)
    assert _opening(r, jaw)[0] > 8.0  # the jaw opens the lips by centimetres, not millimetres
    press = np.zeros((1, p))
    press[0, rig.FIELDS.index("press")] = 1.0
    assert _opening(r, press)[0] < -0.5  # pressing brings the lips together
    # The jaw leaves the forehead and the back of the head alone.
    d = np.linalg.norm(r.displacements(jaw).reshape(-1, 3), axis=1)
    far = np.linalg.norm(r.template - r.mouth, axis=1) > 110e-3 * r.scale
    assert d[far].max() < 1e-6
    brow = np.zeros((1, p))
    brow[0, rig.FIELDS.index("brow")] = 1.0
    db = np.linalg.norm(r.displacements(brow).reshape(-1, 3), axis=1)
    assert db[r.upper_face_vertices].max() > 0.5e-3 * r.scale and db[r.lip_vertices].max() < 1e-3 * r.scale


def test_found_mouth_agrees_with_the_known_flame_lip_pair():
    from codetalker_blender.core.mesh import load_mesh

    v, _ = load_mesh(SHARED / "assets" / "flame" / "FLAME_sample.ply")
    mouth, upper, lower, _ = rig.find_mouth(v)
    known = 0.5 * (v[rig.FLAME_UPPER_LIP] + v[rig.FLAME_LOWER_LIP])
    assert np.linalg.norm(mouth - known) < 3e-3  # within 3 mm
    assert v[upper, 1] > v[lower, 1]


def test_alignment_symbols_become_segments():
    segs = art.segments_from_alignment(["^", "b", "ˈ", "ɑ", "ː", " ", "s", "$"], [0.05, 0.1, 0.05, 0.1, 0.05, 0.02, 0.1, 0.05])
    names = [s.symbol for s in segs]
    assert names == ["sil", "b", "ɑ", " ", "s", "sil"]
    a = segs[2]
    assert a.stressed and a.start == pytest.approx(0.15) and a.end == pytest.approx(0.35)
    assert segs[-1].end == pytest.approx(0.52)


def test_word_gap_before_a_stop_is_its_closure():
    # "ah pa, ma": the gaps before /p/ and /m/ go to them; a gap before a vowel stays
    segs = art.segments_from_alignment(["ɑ", " ", "p", "ɑ", " ", "m", "ɑ", " ", "ɑ"],
                                       [0.1, 0.06, 0.03, 0.1, 0.3, 0.05, 0.1, 0.05, 0.1])
    assert [s.symbol for s in segs] == ["ɑ", "p", "ɑ", "sil", "m", "ɑ", " ", "ɑ"]
    p, gap, m = segs[1], segs[3], segs[4]
    assert (p.start, p.end) == pytest.approx((0.1, 0.19))
    # a long gap is a pause: all but its last LONGEST_CLOSURE seconds are silence
    assert (gap.start, gap.end) == pytest.approx((0.29, 0.59 - art.LONGEST_CLOSURE))
    assert (m.start, m.end) == pytest.approx((0.59 - art.LONGEST_CLOSURE, 0.64))
    # merging again changes nothing, and the timeline has no holes
    assert art.gaps_to_closures(segs) == segs
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segs, segs[1:]))


def test_advancing_segments_clips_at_zero():
    from codetalker_blender.training.corpus import advance_segments

    segs = [art.Segment("sil", 0.0, 0.02), art.Segment("m", 0.02, 0.1), art.Segment("a", 0.1, 0.3, True)]
    moved = advance_segments(segs, 0.03)
    assert [s.symbol for s in moved] == ["m", "a"]  # the silence fell before time 0
    assert (moved[0].start, moved[0].end) == pytest.approx((0.0, 0.07))
    assert (moved[1].start, moved[1].end, moved[1].stressed) == pytest.approx((0.07, 0.27, True))


def test_utterances_get_short_and_long_silences_around_them():
    from codetalker_blender.training.corpus import LEAD_TAIL, LONG_PAUSE, silence_lengths

    rng = np.random.default_rng(0)
    sides = np.array([silence_lengths(rng) for _ in range(2000)]).ravel()
    assert sides.min() >= LEAD_TAIL[0] and sides.max() <= LEAD_TAIL[1] + LONG_PAUSE[1]
    long = sides > LEAD_TAIL[1]
    assert 0.4 < long.mean() < 0.6  # about half the sides: users' clips often start with seconds of silence
    assert (sides > 1.5).mean() > 0.1 and (sides < 0.5).mean() > 0.2


def test_piper_segments_agree_with_an_acoustic_aligner(tmp_path):
    """The corpus's Piper timing, lag corrected, sits where pocketsphinx hears the lip consonants."""
    import os

    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.training import corpus
    from tools.eval_label_timing import offsets

    speech = str(tmp_path / "speech")
    made = corpus.make_speech(speech, 6, seed=5, speakers=art.SPEAKERS[:1], log=lambda m: None)
    found = []
    for name, info in made["clips"].items():
        segs = corpus.read_segments(os.path.join(speech, "segments", name + ".json"))
        got = offsets(load_audio(os.path.join(speech, "wav", name + ".wav")), info["text"], segs)
        if got is not None:
            found += [x for v in got.values() for x in v]
    assert len(found) >= 20, f"only {len(found)} lip consonants aligned"
    # Piper's own labels are a median 27 ms late (corpus.PIPER_LABEL_LAG corrects it)
    assert abs(np.median(found)) < 0.015, f"median offset {np.median(found) * 1000:.0f} ms"


def test_espeak_events_become_piper_like_segments():
    from codetalker_blender.training.espeak import phones_to_segments, stop_closures

    events = [("m", 0.1), ("ˈaɪ", 0.2), ("", 0.4), ("p", 0.6), ("iː", 0.7), ("", 0.8)]
    segs = phones_to_segments(events, 1.0)
    assert [(s.symbol, s.stressed) for s in segs] == [("sil", False), ("m", False), ("a", True), ("ɪ", False),
                                                      ("sil", False), ("p", False), ("i", False), ("sil", False)]
    assert segs[2].start == pytest.approx(0.2) and segs[2].end == pytest.approx(0.3) == segs[3].start
    assert segs[-1].end == pytest.approx(1.0)
    assert [s.symbol for s in phones_to_segments([("t", 0.0), ("", 0.05), ("i", 0.1)], 0.2)] == ["t", " ", "i"]

    # A voiceless stop starts where its closure silence starts, not before the previous phoneme.
    sr = 16000
    audio = np.full(sr, 0.1, np.float32)
    audio[int(0.5 * sr): int(0.56 * sr)] = 0.0  # 60 ms closure before the burst at 0.56 s
    moved = stop_closures([("ɑ", 0.3), ("p", 0.56), ("ɑ", 0.6)], audio, sr)
    assert moved[1][0] == "p" and moved[1][1] == pytest.approx(0.5, abs=0.006)
    assert moved[0] == ("ɑ", 0.3) and moved[2] == ("ɑ", 0.6)
    audio[:] = 0.0
    assert stop_closures([("ɑ", 0.5), ("t", 0.56)], audio, sr)[1][1] >= 0.5


def test_espeak_speech_has_timed_bilabials():
    from codetalker_blender.training.espeak import Espeak

    engine = Espeak()
    audio, segs = engine.synthesize("Bob may pop a bubble.", "en-us+f2", 170, 50)
    total = audio.size / engine.sample_rate
    assert 1.0 < total < 4.0 and np.abs(audio).max() > 0.05
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(total)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segs, segs[1:]))
    assert [s.symbol for s in segs if s.symbol in "pbm" and len(s.symbol) == 1] == list("bbmppbb")

    def rms(s):
        x = audio[int(s.start * engine.sample_rate): int(s.end * engine.sample_rate)]
        return float(np.sqrt(np.mean(x**2)))

    vowels = [rms(s) for s in segs if s.symbol in "ɑeɪʌə"]
    stops = [rms(s) for s in segs if s.symbol in "pb"]
    assert np.median(stops) < 0.5 * np.median(vowels)  # the lips are shut for most of a stop: quiet
    with pytest.raises(ValueError, match="no voice"):
        engine.synthesize("hello", "xx-nothing", 170, 50)


def test_corpus_from_both_synthesisers_extends_without_remaking(tmp_path, flame_rig):
    import os

    from codetalker_blender.training import corpus

    speech, out = str(tmp_path / "speech"), str(tmp_path / "flame")
    speakers = art.SPEAKERS[:1]
    first = corpus.make_speech(speech, 1, seed=3, speakers=speakers, espeak_per_speaker=1, log=lambda m: None)
    names = sorted(first["clips"])
    assert names == ["Synth_broad_sentence001", "Synth_broad_sentence002"]
    assert "length_scale" in first["clips"][names[0]] and first["clips"][names[1]]["voice"].startswith("espeak-ng")
    corpus.make_motion(speech, out, flame_rig, 30.0, "flame", seed=3, log=lambda m: None)
    for name in names:
        segs = corpus.read_segments(os.path.join(speech, "segments", name + ".json"))
        seconds = first["clips"][name]["seconds"]
        assert segs[0].symbol == "sil" and segs[-1].end == pytest.approx(seconds, abs=1e-4)
        assert any(s.symbol in "pbm" for s in segs)  # the grammar is rich in bilabials
        v = np.load(os.path.join(out, "vertices_npy", name + ".npy"))
        assert v.shape == (round(seconds * 30), 5023 * 3)
    before = {n: os.path.getmtime(os.path.join(out, "vertices_npy", n + ".npy")) for n in names}
    wav_before = open(os.path.join(speech, "wav", names[0] + ".wav"), "rb").read()

    # One more espeak-ng clip: the others are kept as they were.
    second = corpus.make_speech(speech, 1, seed=3, speakers=speakers, espeak_per_speaker=2, log=lambda m: None)
    assert sorted(second["clips"]) == names + ["Synth_broad_sentence003"]
    assert open(os.path.join(speech, "wav", names[0] + ".wav"), "rb").read() == wav_before
    corpus.make_motion(speech, out, flame_rig, 30.0, "flame", seed=3, log=lambda m: None)
    assert {n: os.path.getmtime(os.path.join(out, "vertices_npy", n + ".npy")) for n in names} == before
    assert os.path.exists(os.path.join(out, "vertices_npy", "Synth_broad_sentence003.npy"))
    assert not [f for f in os.listdir(os.path.join(out, "vertices_npy")) if "part" in f]


def test_motion_of_any_blend_of_the_speakers(tmp_path, flame_rig):

    from codetalker_blender.training import corpus

    # A hand-made speech folder: two clips by two of three speakers, "ah ma pa ah".
    speech, out = tmp_path / "speech", tmp_path / "flame"
    (speech / "wav").mkdir(parents=True)
    (speech / "segments").mkdir()
    S = art.Segment
    segs = [S("sil", 0, 0.3), S("ɑ", 0.3, 0.5, True), S("m", 0.5, 0.6), S("ɑ", 0.6, 0.8), S("p", 0.8, 0.9),
            S("ɑ", 0.9, 1.1), S("sil", 1.1, 1.5)]
    speakers = art.SPEAKERS[:3]
    clips_info = {}
    for sp in speakers[:2]:
        name = corpus.clip_name(f"Synth_{sp.name}", 1)
        corpus.write_wav(str(speech / "wav" / f"{name}.wav"), np.zeros(24000, np.float32))
        (speech / "segments" / f"{name}.json").write_text(json.dumps([[x.symbol, x.start, x.end, x.stressed] for x in segs]))
        clips_info[name] = {"speaker": sp.name, "seconds": 1.5}
    (speech / "speech.json").write_text(json.dumps({"speakers": [dataclasses.asdict(x) for x in speakers],
                                                    "clips": clips_info}))
    corpus.make_motion(str(speech), str(out), flame_rig, 30.0, "flame", seed=5, log=lambda m: None)
    names = ["Synth_broad", "Synth_subtle", "Synth_jaw"]
    data = DataConfig(str(out), tuple(names[:2]), splits={"train": [1, 1]})
    broad, subtle = clips(data, "train")
    coeffs = np.load(out / "rig_coeffs" / f"{broad.name}.npy")
    assert coeffs.shape == (3, 45, len(rig.FIELDS)) and broad.rig is not None
    # The clip's own row is the published-layout motion, and the articulation of its speaker.
    stored = np.load(broad.vertices) - broad.template[None]
    assert np.allclose(broad.motion(), stored, atol=1e-6)
    own = art.field_coefficients(segs, 45, 30.0, speakers[0], np.random.default_rng([5, corpus.hash_name(broad.name)]))
    assert np.allclose(coeffs[0], own, atol=1e-6)

    def opening(m):
        v = (flame_rig.template.reshape(1, -1) + m).reshape(len(m), -1, 3)
        return metrics.mouth_opening(v, flame_rig.template, flame_rig.upper_lip, flame_rig.lower_lip)

    # Same timing and randomness for every speaker: the clip's other rows are its motion as
    # the other speakers would articulate it, and blends are linear in the weights.
    as_subtle = broad.motion({"Synth_subtle": 1.0})
    half = broad.motion({"Synth_broad": 0.5, "Synth_subtle": 0.5})
    assert np.allclose(half, 0.5 * (stored + as_subtle), atol=1e-6)
    peaks = [opening(m).max() for m in (stored, half, as_subtle)]
    assert peaks[0] > peaks[1] > peaks[2] > 0  # broad opens widest, subtle least
    assert np.allclose(subtle.motion(), np.load(subtle.vertices) - subtle.template[None], atol=1e-6)
    assert np.abs(broad.motion({"Synth_jaw": 1.0}) - stored).max() > 1e-3  # a third speaker, not in the recipe
    with pytest.raises(KeyError, match="Synth_nobody"):
        broad.motion({"Synth_nobody": 1.0})
    with pytest.raises(ValueError, match="sum to 1"):
        broad.motion({"Synth_broad": 0.5})


def test_style_draws_are_blends_of_the_subjects():
    subjects = tuple(f"S{i}" for i in range(6))
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert train.draw_style(subjects, "S2", 0.0, rng) == {"S2": 1.0}
    assert rng.bit_generator.state == state  # no mixing draws nothing: old runs stay reproducible
    draws = [train.draw_style(subjects, "S2", 0.5, rng) for _ in range(2000)]
    own = sum(d == {"S2": 1.0} for d in draws)
    assert 900 < own < 1200  # half the draws, plus the mixed ones that chose S2 alone
    for d in draws:
        assert set(d) <= set(subjects) and all(w >= 0 for w in d.values())
        assert sum(d.values()) == pytest.approx(1.0)
    sizes = {len(d) for d in draws}
    assert sizes == set(range(1, 7))
    near_equal = [d for d in draws if len(d) == 6 and max(d.values()) < 0.25]
    assert near_equal  # the default style (all six equally) is among the blends shown
    vec = train.style_vector(subjects, {"S1": 0.25, "S4": 0.75})
    assert vec.tolist() == [0, 0.25, 0, 0, 0.75, 0]


def test_coarticulation_closes_bilabials_opens_vowels_and_rests_in_silence():
    S = art.Segment
    segs = [S("sil", 0, 0.3), S("a", 0.3, 0.45), S("b", 0.45, 0.52), S("a", 0.52, 0.7), S("sil", 0.7, 1.2)]
    style = art.SPEAKERS[0]
    c = art.field_coefficients(segs, 36, 30.0, style, np.random.default_rng(0))
    angle = np.arctan2(c[:, 1], c[:, 0] + 1)
    f = lambda t: int(round(t * 30))  # noqa: E731
    assert angle[f(0.485)] < 0.25 * angle.max()  # the /b/ closes
    assert angle[f(0.375)] > 0.6 * angle.max() and angle[f(0.61)] > 0.6 * angle.max()  # vowels open
    assert abs(angle[: f(0.15)]).max() < 1e-3 and abs(angle[f(1.05):]).max() < 1e-3  # rest


def test_styles_order_the_amplitude():
    S = art.Segment
    segs = [S("sil", 0, 0.2), S("a", 0.2, 0.5), S("m", 0.5, 0.6), S("ɑ", 0.6, 0.9), S("sil", 0.9, 1.2)]
    amp = {s.name: np.abs(art.field_coefficients(segs, 36, 30.0, s, np.random.default_rng(1))[:, 1]).max()
           for s in art.SPEAKERS}
    assert max(amp, key=amp.get) == "broad" and min(amp, key=amp.get) == "subtle"


def test_clip_names_and_splits(tmp_path):
    assert parse_name("FaceTalk_170728_03272_TA_sentence01") == ("FaceTalk_170728_03272_TA", 1)
    assert parse_name("F2_40") == ("F2", 40)
    assert parse_name("Synth_broad_sentence123") == ("Synth_broad", 123)
    (tmp_path / "wav").mkdir()
    (tmp_path / "vertices_npy").mkdir()
    with open(tmp_path / "templates.pkl", "wb") as fh:
        pickle.dump({"A": np.zeros((2, 3)), "B": np.ones((2, 3))}, fh)
    for subj, n in [("A", 1), ("A", 2), ("A", 3), ("B", 1), ("C", 1)]:
        (tmp_path / "wav" / f"{subj}_sentence{n:02d}.wav").write_bytes(b"")
        np.save(tmp_path / "vertices_npy" / f"{subj}_sentence{n:02d}.npy", np.full((6, 6), n, np.float32))
    cfg = DataConfig(str(tmp_path), ("A", "B"), splits={"train": [1, 2], "val": [3, 3]}, vertices_stride=2)
    train_clips = clips(cfg, "train")
    assert [c.name for c in train_clips] == ["A_sentence01", "A_sentence02", "B_sentence01"]
    assert [c.name for c in clips(cfg, "val")] == ["A_sentence03"]
    several = DataConfig(str(tmp_path), ("A", "B"), splits={"train": [[1, 1], [3, 9]]})
    assert [c.name for c in clips(several, "train")] == ["A_sentence01", "A_sentence03", "B_sentence01"]
    m = train_clips[2].motion()
    assert m.shape == (3, 6) and np.allclose(m, 0.0)  # every second frame, minus B's template (ones)
    assert train_clips[2].rig is None
    with pytest.raises(ValueError, match="rig coefficients"):
        train_clips[0].motion({"B": 1.0})  # real data has no other speaker's articulation of a clip


def test_metrics_on_known_motion():
    t, v = 4, 5
    gt = np.zeros((t, v, 3))
    pred = gt.copy()
    pred[:, 0, 0] = 2.0  # vertex 0 off by 2 on every frame
    pred[1, 1, 1] = 3.0  # vertex 1 off by 3 on frame 1
    assert metrics.lve(pred, gt, np.array([0, 1])) == pytest.approx((4 * 3 + 9) / 4)
    assert metrics.lve(pred, gt, np.array([2, 3])) == 0.0
    moving = gt.copy()
    moving[::2, 4, 2] = 1.0  # squared displacement alternates 1, 0: std 0.5
    assert metrics.fdd(gt, moving, np.zeros((v, 3)), np.array([4])) == pytest.approx(0.5)
    assert metrics.fdd(moving, moving, np.zeros((v, 3)), np.array([4])) == 0.0


def _tiny_cfg(vertices: int, subjects) -> ModelConfig:
    return ModelConfig(
        vq=VQConfig(vertice_dim=vertices * 3, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, face_quan_num=2, zquant_dim=8, n_embed=16, code_projection=False),
        predictor=PredictorConfig(feature_dim=16, num_layers=1, n_head=4, period=30),
        timing=TimingConfig(fps=30.0, feats_per_frame=1),
        subjects=tuple(subjects),
        audio_encoder="whisper",
        whisper=dict(n_mels=80, width=16, layers=1, heads=2, n_ctx=1500),
    )


def _tiny_dataset(root, rng, subjects=("S1", "S2"), clips_per=3, vertices=20, with_rig=False):
    """Clips whose motion is (1 + speaker) * (sin, cos) on a random 2-field basis; ``with_rig``
    also writes that basis and every speaker's coefficients, as our synthetic corpus does."""
    import soundfile as sf

    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    (root / "features").mkdir()
    template = rng.normal(size=(vertices, 3)).astype(np.float32)
    basis = rng.normal(size=(2, vertices * 3)).astype(np.float32) * 1e-3
    for s_i, s in enumerate(subjects):
        for n in range(1, clips_per + 1):
            name = f"{s}_sentence{n:02d}"
            t = 45
            phase = np.linspace(0, 6, t)[:, None]
            motion = (1 + s_i) * (np.sin(phase) * basis[0] + np.cos(2 * phase) * basis[1])
            if with_rig:
                (root / "rig_coeffs").mkdir(exist_ok=True)
                sc = np.arange(1, len(subjects) + 1, dtype=np.float32)[:, None, None]
                np.save(root / "rig_coeffs" / f"{name}.npy", sc * np.concatenate([np.sin(phase), np.cos(2 * phase)], 1))
            np.save(root / "vertices_npy" / f"{name}.npy", template.reshape(1, -1) + motion)
            sf.write(root / "wav" / f"{name}.wav", rng.normal(size=24000).astype(np.float32) * 0.1, 16000)
            np.save(root / "features" / f"{name}.aug0.npy", rng.normal(size=(75, 16)).astype(np.float16))
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump({s: template for s in subjects}, fh)
    if with_rig:
        np.savez(root / "rig.npz", template=template, fields=basis.reshape(2, vertices, 3), speakers=np.array(subjects))
    return template


def test_both_stages_train_resume_and_export_exactly(tmp_path):
    rng = np.random.default_rng(0)
    template = _tiny_dataset(tmp_path / "data", rng)
    cfg = _tiny_cfg(20, ("S1", "S2"))
    data = DataConfig(str(tmp_path / "data"), ("S1", "S2"), splits={"train": [1, 3], "val": [1, 1]})
    run = str(tmp_path / "run")
    opts = train.StageOptions(epochs=2, lr=3e-3, feature_versions=1)
    s1 = train.train_stage1(cfg, data, opts, run)
    log = [json.loads(x) for x in open(tmp_path / "run" / "stage1_log.jsonl")]
    assert [r.get("epoch") for r in log if "epoch" in r and "event" not in r] == [1, 2]
    # Running again with more epochs resumes at epoch 2 instead of starting over.
    train.train_stage1(cfg, data, train.StageOptions(epochs=3, lr=3e-3), run)
    log = [json.loads(x) for x in open(tmp_path / "run" / "stage1_log.jsonl")]
    assert log[-2] == {**log[-2], "event": "start", "epoch": 2} and log[-1]["epoch"] == 3

    from codetalker_blender.core.predictor import CodeTalker

    torch.manual_seed(0)
    encoder_state = CodeTalker(cfg).audio_encoder.state_dict()
    s2 = train.train_stage2(cfg, data, opts, run, s1, encoder_state)
    ck = torch.load(s2, weights_only=True)
    model = CodeTalker(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    scale = ck["motion_scale"]
    # The encoder stayed frozen.
    assert all(torch.equal(model.audio_encoder.state_dict()[k], v) for k, v in encoder_state.items())

    # Folding the motion scale into the weights is exact: the same prediction in dataset units.
    m = torch.from_numpy(clips(data, "train")[0].motion())[None]
    feats = torch.randn(1, 75, 16)
    style = model.learnable_style_emb.weight[0]
    with torch.no_grad():
        before, _, _ = train.stage2_forward(model, m / scale, feats, style)
        train.fold_motion_scale(model, scale)
        after, _, _ = train.stage2_forward(model, m, feats, style)
    assert torch.allclose(after, before * scale, atol=1e-6 * float(scale), rtol=1e-4)
    assert template.shape == (20, 3)

    # Fine-tuning with scheduled sampling starts from the finished stage 2 and keeps its own files.
    ss = train.StageOptions(epochs=1, lr=1e-3, feature_versions=1, scheduled_sampling=0.5, warmup=1,
                            sampling_decode="prefix")
    tuned = train.train_stage2(cfg, data, ss, run, s1, encoder_state, init_from=s2, name="stage2_finetuned")
    assert tuned.endswith("stage2_finetuned.pt") and (tmp_path / "run" / "stage2_finetuned_log.jsonl").exists()
    tuned_state = torch.load(tuned, weights_only=True)["model"]
    start_state = torch.load(s2, weights_only=True)["model"]
    assert torch.equal(tuned_state["autoencoder.quantize.embedding.weight"],
                       start_state["autoencoder.quantize.embedding.weight"])
    assert not torch.equal(tuned_state["feat_map.weight"], start_state["feat_map.weight"])


def test_both_stages_train_with_style_mixing_on_a_corpus_with_a_rig(tmp_path):
    rng = np.random.default_rng(2)
    _tiny_dataset(tmp_path / "data", rng, with_rig=True)
    cfg = _tiny_cfg(20, ("S1", "S2"))
    data = DataConfig(str(tmp_path / "data"), ("S1", "S2"), splits={"train": [1, 3], "val": [1, 1]})
    c = clips(data, "train")[0]
    assert np.allclose(c.motion(), np.load(c.vertices) - c.template[None], atol=1e-7)  # the rig makes the same motion
    opts = train.StageOptions(epochs=1, lr=1e-3, feature_versions=1, style_mixing=1.0, warmup=1)
    s1 = train.train_stage1(cfg, data, opts, str(tmp_path / "run"))

    from codetalker_blender.core.predictor import CodeTalker

    encoder_state = CodeTalker(cfg).audio_encoder.state_dict()
    s2 = train.train_stage2(cfg, data, opts, str(tmp_path / "run"), s1, encoder_state)
    state = torch.load(s2, weights_only=True)["model"]
    assert torch.isfinite(state["learnable_style_emb.weight"]).all()
    # Fine-tuning on the model's own free-running frames (rollouts), with mixed styles.
    roll = train.StageOptions(epochs=1, lr=1e-3, feature_versions=1, style_mixing=1.0, warmup=1,
                              scheduled_sampling=1.0, sampling_decode="rollout")
    tuned = train.train_stage2(cfg, data, roll, str(tmp_path / "run"), s1, encoder_state, init_from=s2, name="ft")
    tuned_state = torch.load(tuned, weights_only=True)["model"]
    assert not torch.equal(tuned_state["feat_map.weight"], state["feat_map.weight"])
    with pytest.raises(ValueError, match="rollout"):
        train.StageOptions(sampling_decode="free")
    # Without rig coefficients there is nothing to blend: a clear refusal, not real data re-articulated.
    plain = tmp_path / "plain"
    _tiny_dataset(plain, np.random.default_rng(3))
    with pytest.raises(SystemExit, match="style_mixing needs a synthetic corpus"):
        train.train_stage1(cfg, DataConfig(str(plain), ("S1", "S2"), splits=data.splits), opts, str(tmp_path / "r2"))


def test_validation_on_held_out_speakers_uses_the_default_style(tmp_path):
    # Real-data recipes validate on speakers the model has no style slot for (vocaset_real.yaml).
    _tiny_dataset(tmp_path / "data", np.random.default_rng(4), subjects=("S1", "S2", "S3"), clips_per=2)
    cfg = _tiny_cfg(20, ("S1", "S2"))
    data = DataConfig(str(tmp_path / "data"), ("S1", "S2"), splits={"train": [1, 2], "val": [1, 2]},
                      split_subjects={"val": ["S3"]})
    assert {c.subject for c in clips(data, "val")} == {"S3"}
    opts = train.StageOptions(epochs=1, lr=1e-3, feature_versions=1, warmup=1)
    run = str(tmp_path / "run")
    s1 = train.train_stage1(cfg, data, opts, run)

    from codetalker_blender.core.predictor import CodeTalker

    train.train_stage2(cfg, data, opts, run, s1, CodeTalker(cfg).audio_encoder.state_dict())
    log = [json.loads(x) for x in open(tmp_path / "run" / "stage2_log.jsonl") if "val_motion_mse" in x]
    assert log and all(np.isfinite(r["val_motion_mse"]) and r["val_motion_mse"] > 0 for r in log)
    from codetalker_blender.core.errors import StyleError

    with pytest.raises(StyleError, match="S3"):
        train.style_vector(cfg.subjects, {"S3": 1.0})


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    # The clip order, crops and style draws go on where they stopped, not from the first epoch's.
    _tiny_dataset(tmp_path / "data", np.random.default_rng(5), with_rig=True)
    cfg = _tiny_cfg(20, ("S1", "S2"))
    data = DataConfig(str(tmp_path / "data"), ("S1", "S2"), splits={"train": [1, 3], "val": [1, 1]})
    opts = train.StageOptions(epochs=3, lr=1e-3, feature_versions=1, style_mixing=1.0, warmup=1)
    whole = torch.load(train.train_stage1(cfg, data, opts, str(tmp_path / "a")), weights_only=True)["vq"]

    real_eval, calls = train.evaluate_stage1, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # during epoch 2, after epoch 1 was saved
        return real_eval(*a, **k)

    monkeypatch.setattr(train, "evaluate_stage1", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train_stage1(cfg, data, opts, str(tmp_path / "b"))
    monkeypatch.setattr(train, "evaluate_stage1", real_eval)
    resumed = torch.load(train.train_stage1(cfg, data, opts, str(tmp_path / "b")), weights_only=True)["vq"]
    assert [json.loads(x).get("epoch") for x in open(tmp_path / "b" / "stage1_log.jsonl")][-3:] == [1, 2, 3]
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k


def test_stage1_learns_the_motion(tmp_path):
    rng = np.random.default_rng(1)
    _tiny_dataset(tmp_path / "data", rng, subjects=("S1",), clips_per=2)
    cfg = _tiny_cfg(20, ("S1",))
    data = DataConfig(str(tmp_path / "data"), ("S1",), splits={"train": [1, 2], "val": [1, 2]})
    train.train_stage1(cfg, data, train.StageOptions(epochs=60, lr=3e-3, lr_final=1e-4, warmup=10), str(tmp_path / "run"))
    log = [json.loads(x) for x in open(tmp_path / "run" / "stage1_log.jsonl") if "val_rec_l1" in x]
    assert log[-1]["val_rec_l1"] < 0.5 * log[0]["val_rec_l1"]


@pytest.mark.parametrize("name", ["bundled_flame", "bundled_flame_espeak", "bundled_biwi", "vocaset_real", "biwi_real"])
def test_recipes_make_valid_configs(name):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO))
    from tools.train import data_config, final_stage2, finetune_parts, load_recipe, model_config, stage_options

    recipe = load_recipe(str(REPO / "configs" / f"{name}.yaml"))
    cfg, data = model_config(recipe), data_config(recipe)
    assert cfg.audio_encoder == "whisper" and cfg.subjects == data.subjects
    assert cfg.num_vertices in (5023, 23370)
    assert set(data.splits) == {"train", "val", "test"}
    for key in ("stage1", "stage2", "stage2_finetune"):  # every stage section makes valid options
        if key in recipe:
            assert stage_options(recipe, key).epochs > 0 and stage_options(recipe, key, epochs=2).epochs == 2
    parts = finetune_parts(recipe)
    for k in range(len(parts)):  # fine-tuning in several parts: each part's options
        assert stage_options(recipe, "stage2_finetune", part=k).scheduled_sampling > 0
    assert final_stage2(recipe).endswith((parts[-1] if parts else "stage2") + ".pt")
    from codetalker_blender.core.checkpoint import build_empty

    model = build_empty(cfg)  # every size builds (on the meta device)
    assert model.audio_feature_map.in_features == 384


def test_fine_tuning_parts_chain_skip_and_refuse_stale_files(tmp_path):
    import os
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO))
    from tools.train import finetune

    run = tmp_path / "run"
    run.mkdir()
    recipe = {"run_dir": str(run), "stage2_finetune": [
        {"epochs": 2, "scheduled_sampling": 0.5, "sampling_decode": "prefix"},
        {"epochs": 1, "scheduled_sampling": 0.5, "sampling_decode": "rollout"}]}
    (run / "stage2.pt").write_text("s2")
    calls = []

    def fake(opts, init_from, name):  # writes the part's file, as train_stage2 does
        calls.append((opts.sampling_decode, opts.epochs, os.path.basename(init_from), name))
        out = run / f"{name}.pt"
        out.write_text(name)
        return str(out)

    assert finetune(recipe, fake).endswith("stage2_finetuned_2.pt")
    assert calls == [("prefix", 2, "stage2.pt", "stage2_finetuned"),
                     ("rollout", 1, "stage2_finetuned.pt", "stage2_finetuned_2")]
    # Run again: both parts exist and nothing is retrained; a lost last part is redone from the first.
    calls.clear()
    assert finetune(recipe, fake).endswith("stage2_finetuned_2.pt") and calls == []
    (run / "stage2_finetuned_2.pt").unlink()
    finetune(recipe, fake, epochs=5)
    assert calls == [("rollout", 5, "stage2_finetuned.pt", "stage2_finetuned_2")]
    # Stage 2 retrained after the parts were made: they are stale, and it says so instead of skipping.
    later = os.path.getmtime(run / "stage2_finetuned_2.pt") + 10
    os.utime(run / "stage2.pt", (later, later))
    with pytest.raises(SystemExit, match="older than"):
        finetune(recipe, fake)


def test_layer_probe_auc_and_fit():
    from tools.eval_speech_layers import auc, fit_probe

    y = np.array([0, 0, 1, 1, 0, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])) == 1.0
    assert auc(y, -np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])) == 0.0
    assert auc(y, np.zeros(6)) == 0.5  # ties count half
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    labels = x[:, 2] - 0.5 * x[:, 4] > 0.3
    score = fit_probe(x, labels)
    assert auc(labels, score(x)) > 0.99


def test_rttm_turns_cut_the_recording(tmp_path):
    from tools.eval_real_speech import read_rttm
    from tools.eval_style import rttm_turns

    rttm = tmp_path / "a.rttm"
    rttm.write_text("SPEAKER a 1 0.500 2.250 <NA> <NA> s1 <NA> <NA>\n"
                    "SPEAKER a 1 3.000 1.000 <NA> <NA> s2 <NA> <NA>\n"
                    "SPEAKER a 1 4.100 2.000 <NA> <NA> s1 <NA> <NA>\n", encoding="utf-8")
    assert read_rttm(str(rttm)) == [(0.5, 2.25), (3.0, 1.0), (4.1, 2.0)]
    samples = np.arange(7 * 16000, dtype=np.float32)
    turns = rttm_turns(samples, str(rttm))  # turns of 2 s or more
    assert [len(t) for t in turns] == [36000, 32000] and turns[0][0] == 8000 and turns[1][0] == 65600
    with pytest.raises(SystemExit, match="no speaker turn"):
        rttm_turns(samples, str(rttm), min_seconds=3.0)
