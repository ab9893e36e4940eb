"""Invariants on small random models."""

import numpy as np
import pytest
import torch
from conftest import random_speechlike, tiny_model

from codetalker_blender.core.audio_encoder import Chunking, encode_audio, frame_count, normalise
from codetalker_blender.core.config import TimingConfig
from codetalker_blender.core.inference import DecodeOptions, decode_windowed, generate_motion
from codetalker_blender.core.predictor import alibi_slopes, alignment_mask, temporal_bias
from codetalker_blender.core.reference import reference_motion
from codetalker_blender.core.vqvae import VectorQuantizer


def test_quantiser_picks_nearest_code():
    torch.manual_seed(1)
    vq = VectorQuantizer(50, 6)
    vq.embedding.weight.data.normal_()
    z = torch.randn(3, 40, 6)
    idx = vq.indices(z)
    brute = torch.cdist(z.reshape(-1, 6), vq.embedding.weight).argmin(dim=1).view(3, 40)
    assert torch.equal(idx, brute)
    zq, idx2 = vq(z)
    assert torch.allclose(zq, vq.embedding.weight[idx2], atol=1e-6)


def test_quantiser_breaks_ties_by_first_index():
    vq = VectorQuantizer(4, 2)
    vq.embedding.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    assert vq.indices(torch.tensor([[0.9, 0.0]])).item() == 0
    assert vq.indices(torch.tensor([[0.5, 0.5]])).item() == 0  # equidistant to 0 and 1


def test_alibi_slopes_for_four_heads():
    assert alibi_slopes(4) == [0.25, 0.0625, 0.015625, 0.00390625]


@pytest.mark.parametrize("period", [25, 30])
def test_temporal_bias_formula_and_causality(period):
    n = 70
    mask = temporal_bias(4, period, torch.arange(n), n)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(0, n, 7):
            for j in range(n):
                value = mask[h, i, j].item()
                if j > i:
                    assert value == float("-inf")
                else:
                    assert value == pytest.approx(-slopes[h] * ((i - j) // period))


def test_temporal_bias_matches_the_tabulated_600_frame_mask():
    """Built as the reference tabulates it, then compared, including past 600 rows as an extension."""
    period, max_len = 30, 600
    steps = torch.arange(0, max_len, period).unsqueeze(1).repeat(1, period).view(-1) // period
    steps = -torch.flip(steps, dims=[0])
    table = torch.zeros(max_len, max_len)
    for i in range(max_len):
        table[i, : i + 1] = steps[-(i + 1) :]
    slopes = torch.tensor(alibi_slopes(4)).view(4, 1, 1)
    causal = torch.tril(torch.ones(max_len, max_len)) == 1
    reference = torch.zeros(max_len, max_len).masked_fill(~causal, float("-inf")).unsqueeze(0) + slopes * table
    ours = temporal_bias(4, period, torch.arange(max_len), max_len)
    assert torch.equal(ours, reference)
    longer = temporal_bias(4, period, torch.arange(900), 900)
    assert torch.equal(longer[:, :max_len, :max_len], reference)


def test_alignment_mask():
    m = alignment_mask(3, 6, 2)
    allowed = (~m).nonzero().tolist()
    assert allowed == [[0, 0], [0, 1], [1, 2], [1, 3], [2, 4], [2, 5]]
    assert torch.equal(~alignment_mask(4, 4, 1), torch.eye(4, dtype=torch.bool))


def test_periodic_positional_encoding_is_periodic_beyond_its_table():
    model = tiny_model("vocaset")
    ppe = model.PPE
    period = model.cfg.predictor.period
    length = ppe.pe.shape[1]
    assert length == period * (600 // period + 1)
    rows = ppe.rows(torch.arange(3 * length))
    assert torch.equal(rows[:length], ppe.pe[0])
    assert torch.equal(rows[period : period + length], rows[:length])
    assert torch.allclose(ppe.pe[0, 0, 1::2], torch.ones(ppe.pe.shape[-1] // 2))  # cos 0
    assert torch.equal(ppe.pe[0, 0, 0::2], torch.zeros(ppe.pe.shape[-1] // 2))  # sin 0


def test_stage1_positional_encoding_quirk_adds_row_b_to_batch_b():
    model = tiny_model("vocaset")
    pe = model.autoencoder.decoder.decoder_pos_embedding.eval()
    x = torch.zeros(3, 5, pe.pe.shape[-1])
    out = pe(x)
    for b in range(3):
        assert torch.equal(out[b], pe.pe[b].expand(5, -1))


def _features(model, seconds=2.0, seed=0):
    audio = normalise(torch.from_numpy(random_speechlike(seconds, seed)))
    return encode_audio(model.audio_encoder, audio, model.cfg.timing)


@pytest.mark.parametrize("dataset", ["vocaset", "BIWI"])
def test_cached_predictor_equals_full_recompute(dataset):
    model = tiny_model(dataset, seed=3)
    feats, frames = _features(model, seconds=2.6)
    assert frames > model.cfg.predictor.period  # the temporal bias steps at least once
    style = model.style_embedding(torch.tensor([0.2, 0.8] + [0.0] * (len(model.cfg.subjects) - 2)))
    with torch.no_grad():
        ours = generate_motion(model, feats, frames, style)
        ref = reference_motion(model, feats, frames, style)
    assert ours.shape == (frames, model.cfg.vq.vertice_dim)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()
    # non-trivial: frames differ from each other
    assert (ours[1:] - ours[:-1]).abs().max() > 1e-3


def test_windows_larger_than_the_clip_change_nothing():
    model = tiny_model("vocaset", seed=4)
    feats, frames = _features(model, seconds=1.5)
    style = model.style_embedding(torch.ones(len(model.cfg.subjects)))
    with torch.no_grad():
        exact = generate_motion(model, feats, frames, style)
        wide = generate_motion(model, feats, frames, style,
                               DecodeOptions(feedback_window=frames + 5, attention_window=frames + 5))
    assert torch.allclose(exact, wide, atol=1e-6)


def test_attention_window_ring_buffer_matches_masked_full_attention():
    """A windowed cache attends to exactly the last W frames."""
    model = tiny_model("vocaset", seed=5)
    feats, frames = _features(model, seconds=1.2)
    style = model.style_embedding(torch.ones(len(model.cfg.subjects)))
    w = 7
    with torch.no_grad():
        windowed = generate_motion(model, feats, frames, style, DecodeOptions(attention_window=w))
        exact = generate_motion(model, feats, frames, style)
    assert windowed.shape == exact.shape
    assert not torch.allclose(windowed, exact)  # the window does cut context here
    assert torch.isfinite(windowed).all()


def test_decode_windowed_is_exact_within_a_window_and_smooth_beyond():
    model = tiny_model("vocaset", seed=6)
    codes = model.autoencoder.quantize.lookup(torch.randint(0, 32, (1, 50, 2)))
    with torch.no_grad():
        whole = model.autoencoder.decode(codes)
        same = decode_windowed(model.autoencoder, codes, window=50, overlap=10)
        windowed = decode_windowed(model.autoencoder, codes, window=20, overlap=6)
    assert torch.equal(whole, same)
    assert windowed.shape == whole.shape and torch.isfinite(windowed).all()


def test_frame_counts_follow_the_reference_rounding():
    vocaset = TimingConfig(fps=30.0, feats_per_frame=1)
    biwi = TimingConfig(fps=25.0, feats_per_frame=2)
    # int(n / 50 * 30) in floating point, as the reference computes it: 205 features
    # give 122 frames, not 123 = 205 * 30 // 50.
    assert frame_count(205, vocaset) == int(205 / 50 * 30) == 122
    assert frame_count(100, vocaset) == 60
    assert frame_count(101, biwi) == 50 and frame_count(100, biwi) == 50


def test_chunked_audio_encoding_is_exact_for_short_clips_and_close_for_long_ones():
    model = tiny_model("vocaset", seed=7)
    audio = normalise(torch.from_numpy(random_speechlike(6.0, seed=2)))
    with torch.no_grad():
        whole, frames = encode_audio(model.audio_encoder, audio, model.cfg.timing, Chunking(window=60.0))
        chunked, frames2 = encode_audio(model.audio_encoder, audio, model.cfg.timing, Chunking(window=2.0, context=1.0))
    assert frames == frames2 and whole.shape == chunked.shape
    rel = ((whole - chunked).norm(dim=-1) / whole.norm(dim=-1)).mean()
    assert rel < 0.2, rel


def test_style_embedding_is_l1_normalised_and_interpolates_like_the_reference():
    model = tiny_model("BIWI")
    emb = model.learnable_style_emb.weight
    a, b, w = 1, 4, 0.3
    s = torch.zeros(len(model.cfg.subjects))
    s[a], s[b] = w, 1 - w
    assert torch.allclose(model.style_embedding(s), w * emb[a] + (1 - w) * emb[b], atol=1e-6)
    assert torch.allclose(model.style_embedding(5 * s), model.style_embedding(s), atol=1e-6)
    one_hot = torch.zeros(len(model.cfg.subjects))
    one_hot[2] = 1
    assert torch.equal(model.style_embedding(one_hot), emb[2])
    with torch.no_grad():
        assert torch.allclose(model.style_embedding(torch.ones(6)), emb.mean(0), atol=1e-6)


def test_progress_every_frame_and_cancel_within_one_frame():
    from codetalker_blender.core.errors import Cancelled

    model = tiny_model("vocaset", seed=8)
    feats, frames = _features(model, seconds=1.0)
    style = model.style_embedding(torch.ones(len(model.cfg.subjects)))
    seen = []
    with torch.no_grad():
        generate_motion(model, feats, frames, style, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, frames) for i in range(1, frames + 1)]
    seen.clear()
    with pytest.raises(Cancelled), torch.no_grad():
        generate_motion(model, feats, frames, style, progress=lambda d, t: seen.append(d),
                        cancel=lambda: len(seen) >= 5)
    assert seen[-1] == 5


def test_motion_blend_mixes_single_style_runs_by_weight():
    from codetalker_blender.core import animate
    from codetalker_blender.core.errors import Cancelled, StyleError

    model = tiny_model("BIWI", seed=4)
    template = np.random.default_rng(1).standard_normal((12, 3)).astype(np.float32)
    speech = random_speechlike(1.5, seed=2)
    run = lambda style, **kw: animate(model, speech, template, style, device="cpu", mode="exact", gate=None, **kw)  # noqa: E731
    a, b = run(1).vertices - template, run(4).vertices - template
    seen = []
    mixed = run({1: 0.3, 4: 0.7}, blend="motion", progress=lambda d, t: seen.append((d, t)))
    assert mixed.info["blend"] == "motion"
    np.testing.assert_allclose(mixed.vertices - template, 0.3 * a + 0.7 * b, atol=1e-5)
    frames = len(a)
    assert seen == [(i, 2 * frames) for i in range(1, 2 * frames + 1)]  # one progress bar over both runs
    # the model's own blend is one run, and differs from the mix
    in_model = run({1: 0.3, 4: 0.7})
    assert in_model.info["blend"] == "model" and np.abs(in_model.vertices - mixed.vertices).max() > 1e-4
    # one style: the same motion either way
    np.testing.assert_array_equal(run(2, blend="motion").vertices, run(2).vertices)
    # the mix is linear in the weight, so every vertex moves monotonically from one end to the other
    steps = [run({1: 1 - w, 4: w}, blend="motion").vertices - template for w in (0.25, 0.5, 0.75)]
    for w, v in zip((0.25, 0.5, 0.75), steps):
        np.testing.assert_allclose(v, (1 - w) * a + w * b, atol=1e-5)
    with pytest.raises(Cancelled):  # cancel reaches the second run
        run({1: 0.5, 4: 0.5}, blend="motion", cancel=lambda: len(seen) > 2 * frames + frames + 3,
            progress=lambda d, t: seen.append((d, t)))
    with pytest.raises(StyleError, match="blend"):
        run(1, blend="outputs")


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_clips_past_the_600_frame_tables(mode):
    """25 s at 30 fps: 749 frames (1249 wav2vec2 features), beyond the reference's 600-frame tables."""
    from codetalker_blender.core import animate

    model = tiny_model("vocaset", seed=9)
    template = np.zeros((12, 3), np.float32)
    result = animate(model, random_speechlike(25.0, seed=3), template, 0, device="cpu", mode=mode)
    assert result.vertices.shape == (749, 12, 3)
    assert np.isfinite(result.vertices).all()
    assert np.abs(np.diff(result.vertices[590:620], axis=0)).max() < 10 * np.abs(np.diff(result.vertices[:600], axis=0)).max() + 1e-6


def test_silence_gate_rests_the_face_in_pauses_and_leaves_speech_alone():
    from codetalker_blender.core import animate
    from codetalker_blender.core.audio import SilenceGate

    model = tiny_model("vocaset", seed=9)
    template = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
    rng = np.random.default_rng(5)
    hiss = (1e-3 * rng.standard_normal(16000)).astype(np.float32)  # 1 s of room noise, about -60 dB
    speech = np.concatenate([hiss, random_speechlike(2.0, seed=6), hiss])
    gated = animate(model, speech, template, 0, device="cpu", mode="exact")
    raw = animate(model, speech, template, 0, device="cpu", mode="exact", gate=None)
    assert gated.info["rest_seconds"] > 1.0 and "rest_seconds" not in raw.info
    assert np.array_equal(gated.vertices[:18], np.repeat(template[None], 18, axis=0))  # t < 0.6 s
    assert np.array_equal(gated.vertices[-18:], np.repeat(template[None], 18, axis=0))
    assert np.abs(raw.vertices[:18] - template).max() > 1e-3  # the model alone moves in the noise
    assert np.array_equal(gated.vertices[35:85], raw.vertices[35:85])  # 1.17-2.83 s: speech and its holds
    weights = np.abs(gated.vertices - template).max(axis=(1, 2)) / np.maximum(np.abs(raw.vertices - template).max(axis=(1, 2)), 1e-9)
    assert np.all(weights <= 1 + 1e-6)  # the gate only ever scales the motion down
    off = animate(model, speech, template, 0, device="cpu", mode="exact", gate=SilenceGate(threshold_db=-90.0))
    assert np.array_equal(off.vertices, raw.vertices)  # a threshold under the noise finds no silence


def test_auto_mode_is_exact_up_to_600_frames_and_fast_beyond():
    from codetalker_blender.core import animate
    from codetalker_blender.core.api import AUTO_EXACT_FRAMES, decode_options
    from codetalker_blender.core.errors import ConfigError

    assert decode_options("auto", AUTO_EXACT_FRAMES) == DecodeOptions.exact()
    assert decode_options("auto", AUTO_EXACT_FRAMES + 1) == DecodeOptions.fast()
    with pytest.raises(ConfigError, match="auto, exact or fast"):
        decode_options("quick", 10)
    model = tiny_model("vocaset", seed=9)
    template = np.zeros((12, 3), np.float32)
    for seconds, expected in ((4.0, "exact"), (21.0, "fast")):  # 119 and 629 frames
        speech = random_speechlike(seconds, seed=4)
        auto = animate(model, speech, template, 0, device="cpu", mode="auto")
        same = animate(model, speech, template, 0, device="cpu", mode=expected)
        other = animate(model, speech, template, 0, device="cpu", mode={"exact": "fast", "fast": "exact"}[expected])
        assert auto.info["mode"] == expected
        assert np.array_equal(auto.vertices, same.vertices)
        assert not np.allclose(auto.vertices, other.vertices, atol=1e-6)


def test_transformer_last_frame_equals_the_whole_pass_and_masks_padding():
    from codetalker_blender.core.vqvae import Transformer

    torch.manual_seed(5)
    tr = Transformer(16, num_layers=2, heads=4, mlp_dim=32).eval()
    x = torch.randn(12, 16)
    with torch.no_grad():
        got = tr.last_frame(x)
        want = tr(x[None])[0, -1:]
        # the first 5 frames hidden as padding: the same as the last 7 frames alone
        bias = torch.cat([torch.full((5,), float("-inf")), torch.zeros(7)])
        masked = tr.last_frame(x, bias)
        alone = tr(x[None, 5:])[0, -1:]
    assert got.shape == (1, 16)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert torch.allclose(masked, alone, atol=1e-5), (masked - alone).abs().max()
    assert not torch.allclose(masked, got, atol=1e-3)


@pytest.mark.parametrize("dataset,affine", [("vocaset", False), ("BIWI", False), ("vocaset", True)])
def test_incremental_feedback_decoder_equals_whole_prefix_decode(dataset, affine):
    from codetalker_blender.core.inference import _FeedbackDecoder

    model = tiny_model(dataset, seed=10, instance_norm_affine=affine)
    dec = model.autoencoder.decoder
    if affine:
        with torch.no_grad():
            dec.expander[0][2].weight.uniform_(0.5, 1.5)
            dec.expander[0][2].bias.uniform_(-0.5, 0.5)
    codes = model.autoencoder.quantize.lookup(torch.randint(0, 32, (1, 40, 2))).flatten(2)  # (1, T, fq*zd)
    inc = _FeedbackDecoder(dec, 40, None, codes.device, codes.dtype)
    with torch.no_grad():
        for i in range(40):
            got = inc.push(i, codes[0, i])
            prefix = codes[:, : i + 1] if i else torch.cat([codes[:, :1], codes[:, :1]], dim=1)
            want = dec.hidden(prefix)[:, -1]
            assert torch.allclose(got, want, atol=1e-5), (i, (got - want).abs().max())


def test_prefix_decodes_are_what_the_loop_feeds_back():
    from codetalker_blender.core.inference import prefix_decodes

    model = tiny_model("vocaset", seed=11)
    ae = model.autoencoder
    codes = ae.quantize.lookup(torch.randint(0, 32, (1, 30, 2)))  # (1, T, fq, zd)
    with torch.no_grad():
        got = prefix_decodes(ae, codes)
        whole = ae.decode(codes)
        for i in (1, 2, 7, 29):
            want = ae.decode(codes[:, : i + 1])[:, -1]
            assert torch.allclose(got[:, i], want, atol=1e-5), (i, (got[:, i] - want).abs().max())
    assert got.shape == whole.shape
    # a short prefix decodes differently from the same frame of the whole clip
    assert not torch.allclose(got[:, 2], whole[:, 2], atol=1e-3)


@pytest.mark.parametrize("dataset", ["vocaset", "BIWI"])
def test_rollout_feeds_back_the_free_running_loops_own_frames(dataset):
    """Training's rollouts: what exact inference feeds back, i.e. its own codes decoded prefix by prefix."""
    from codetalker_blender.core.inference import _autoregressive_loop, prefix_decodes, rollout_feedback

    model = tiny_model(dataset, seed=12)
    feats, frames = _features(model, seconds=1.2)
    style = model.style_embedding(torch.tensor([0.3, 0.7] + [0.0] * (len(model.cfg.subjects) - 2)))
    with torch.no_grad():
        fed = rollout_feedback(model, feats, frames, style)
        codes, _ = _autoregressive_loop(model, model.audio_feature_map(feats), frames, style, DecodeOptions.exact())
        want = prefix_decodes(model.autoencoder, codes)
        motion = generate_motion(model, feats, frames, style)
    assert fed.shape == (1, frames, model.cfg.vq.vertice_dim)
    assert torch.allclose(fed, want, atol=1e-5), (fed - want).abs().max()
    # the same run as inference: its codes decode to generate_motion's output
    assert torch.allclose(model.autoencoder.decode(codes)[0], motion, atol=1e-5)


@pytest.mark.parametrize("dataset", ["vocaset", "BIWI"])
def test_teacher_forcing_on_a_rollout_predicts_the_free_runs_codes(dataset, monkeypatch):
    """Training fed the rollout (train.predict_codes, one pass over the whole clip) sees what the
    free-running loop saw at every step: it predicts the same codes, so the loss is on inference's own path."""
    from codetalker_blender.core.inference import _autoregressive_loop, rollout_feedback
    from codetalker_blender.training import train

    model = tiny_model(dataset, seed=13).eval()
    feats, frames = _features(model, seconds=1.2)
    style = model.style_embedding(torch.tensor([0.6, 0.4] + [0.0] * (len(model.cfg.subjects) - 2)))
    # predict_codes resamples 50 Hz features to the motion rate; these already are at that rate
    monkeypatch.setattr(train, "frame_features", lambda f, t, cfg: f)
    with torch.no_grad():
        fed = rollout_feedback(model, feats, frames, style)
        codes, _ = _autoregressive_loop(model, model.audio_feature_map(feats), frames, style, DecodeOptions.exact())
        pred = train.predict_codes(model, torch.zeros_like(fed), feats, style, inputs=fed)
        zq, _ = model.autoencoder.quantize(pred)
    assert zq.shape == codes.shape
    assert torch.allclose(zq, codes, atol=1e-5), (zq - codes).abs().max()


@pytest.mark.parametrize("dataset", ["vocaset", "BIWI"])
def test_static_fast_step_equals_the_dynamic_fast_loop(dataset):
    """The fixed-shape step that CUDA graphs replay computes fast mode (here on the CPU)."""
    model = tiny_model(dataset, seed=11)
    feats, frames = _features(model, seconds=2.4)
    style = model.style_embedding(torch.ones(len(model.cfg.subjects)))
    windows = dict(feedback_window=9, attention_window=40)  # both shorter than the clip
    assert frames > 40
    with torch.no_grad():
        dynamic = generate_motion(model, feats, frames, style, DecodeOptions(**windows, static=False))
        static = generate_motion(model, feats, frames, style, DecodeOptions(**windows, static=True))
    assert torch.allclose(static, dynamic, atol=1e-4), (static - dynamic).abs().max()
