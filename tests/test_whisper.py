"""The Whisper tiny.en front end: our torch port against CTranslate2 / faster-whisper, and its plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED

from codetalker_blender.core import config as config_mod
from codetalker_blender.core.audio import load_audio
from codetalker_blender.core.audio_encoder import Chunking, encode_audio, normalise, whisper_features
from codetalker_blender.core.whisper import WhisperEncoder, WhisperEncoderConfig, read_ctranslate2_encoder
from codetalker_blender.training.whisper_weights import default_ct2_path, load_whisper_encoder


@pytest.fixture(scope="module")
def ct2_dir():
    return default_ct2_path()


@pytest.fixture(scope="module")
def encoder(ct2_dir):
    return load_whisper_encoder(ct2_dir)


@pytest.fixture(scope="module")
def speech():
    return torch.from_numpy(load_audio(SHARED / "audio" / "arctic_a0009.wav"))


def test_log_mel_matches_faster_whisper(encoder, speech):
    from faster_whisper.feature_extractor import FeatureExtractor

    padded = np.zeros(480000, np.float32)
    padded[: speech.numel()] = speech.numpy()
    ref = FeatureExtractor(feature_size=80)(padded)[:, :3000]
    with torch.no_grad():
        ours = encoder.log_mel(speech)[0].numpy()
    assert ours.shape == ref.shape == (80, 3000)
    assert np.abs(ours - ref).max() < 1e-4


def test_encoder_matches_ctranslate2(encoder, ct2_dir, speech):
    import ctranslate2

    with torch.no_grad():
        mel = encoder.log_mel(speech)
        ours = encoder.forward_mel(mel).numpy()
    ct2 = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    assert ref.shape == ours.shape == (1, 1500, 384)
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_ctranslate2_reader_refuses_other_files(tmp_path):
    from codetalker_blender.core.errors import CheckpointError

    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x02\x00\x00\x00garbage")
    with pytest.raises(CheckpointError):
        read_ctranslate2_encoder(str(tmp_path))


def test_feature_counts_and_long_audio_windows(encoder):
    rng = np.random.default_rng(0)
    audio = normalise(torch.from_numpy(rng.normal(size=16000 * 41).astype(np.float32)))
    with torch.no_grad():
        feats = whisper_features(encoder, audio, Chunking(window=20.0, context=5.0))
        short = whisper_features(encoder, audio[: 16000 * 3])
    assert feats.shape == (1, 41 * 50, 384)
    assert short.shape == (1, 150, 384)
    # Each window is a full encoder pass: the first 20 s (plus context) agree with encoding 25 s.
    with torch.no_grad():
        first = whisper_features(encoder, audio[: 16000 * 25])
    assert torch.allclose(feats[:, :1000], first[:, :1000], atol=1e-4)


def test_fewer_layers_are_the_first_blocks_then_the_final_norm(encoder, ct2_dir, speech):
    three = load_whisper_encoder(ct2_dir, layers=3)
    assert three.cfg.layers == 3 and len(three.blocks) == 3
    mel = encoder.log_mel(speech[: 16000 * 2])
    with torch.no_grad():
        x = torch.nn.functional.gelu(encoder.conv1(mel))
        x = torch.nn.functional.gelu(encoder.conv2(x)).transpose(1, 2) + encoder.positional_embedding
        for block in encoder.blocks[:3]:
            x = block(x)
        want = encoder.ln_post(x)
        got = three.forward_mel(mel)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, encoder.forward_mel(mel), atol=1e-2)
    with pytest.raises(SystemExit, match="cannot keep 5"):
        load_whisper_encoder(ct2_dir, layers=5)


def test_last_block_for_the_audio_rows_only_equals_the_full_window(encoder, ct2_dir, speech):
    """encode_window runs the last block's queries and MLP for the audio's rows only: same features."""
    three = load_whisper_encoder(ct2_dir, layers=3)
    audio = speech[: 16000 * 3] * 0.05
    mel = three.log_mel(audio)
    with torch.no_grad():
        full = three.forward_mel(mel)  # (1, 1500, W)
        got = three.encode_window(audio)
    n = three.feature_count(audio.numel())
    assert got.shape == (1, n, 384) and n == 150
    assert torch.allclose(got, full[:, :n], atol=1e-5), (got - full[:, :n]).abs().max()
    with torch.no_grad():  # the padding still counts: its keys are in the last block too
        alone = three.forward_mel(mel[..., : 2 * n])
    assert not torch.allclose(got, alone, atol=1e-3)


def test_whisper_model_config_round_trips_and_builds():
    cfg = config_mod.published_config("vocaset", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=16, face_quan_num=2, zquant_dim=8, feature_dim=16,
                                      num_layers=1, subjects=("A", "B"))
    from dataclasses import replace

    cfg = replace(cfg, audio_encoder="whisper", whisper={"width": 32, "layers": 1, "heads": 2})
    back = config_mod.from_json(config_mod.to_json(cfg))
    assert back == cfg
    from codetalker_blender.core.checkpoint import build_empty

    model = build_empty(cfg)
    assert isinstance(model.audio_encoder, WhisperEncoder)
    assert model.audio_feature_map.in_features == 32
    keys = model.state_dict().keys()
    assert "audio_encoder.conv1.weight" in keys and "audio_encoder.positional_embedding" in keys
    with pytest.raises(config_mod.ConfigError):
        replace(cfg, audio_encoder="hubert")


def test_encode_audio_resamples_whisper_features_to_the_frame_rate():
    torch.manual_seed(0)
    enc = WhisperEncoder(WhisperEncoderConfig(width=16, layers=1, heads=2)).eval()
    timing = config_mod.TimingConfig(fps=30.0, feats_per_frame=1)
    audio = normalise(torch.randn(16000 * 2))
    with torch.no_grad():
        feats, frames = encode_audio(enc, audio, timing)
    assert frames == int(100 / 50 * 30) == 60 and feats.shape == (1, 60, 16)
    biwi = config_mod.TimingConfig(fps=25.0, feats_per_frame=2)
    with torch.no_grad():
        feats, frames = encode_audio(enc, audio, biwi)
    assert frames == 50 and feats.shape == (1, 100, 16)
