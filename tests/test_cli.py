"""The command line, end to end, with real files."""

import json
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile as sf
from conftest import GOLDEN, REPO, SHARED, golden_cases

from codetalker_blender.cli import main

VOCA = GOLDEN / "vocaset_s11"
BIWI = GOLDEN / "biwi_s23"


def _published(folder):
    return ["--config", str(folder / "config.yaml"), "--stage1", str(folder / "stage1.pth.tar"),
            "--stage2", str(folder / "stage2.pth.tar")]


def run_cli(args):
    """Run the installed entry point in a fresh process: (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "codetalker_blender.cli", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("folder,case", golden_cases())
def test_animate_reproduces_golden_cases(tmp_path, folder, case):
    styles = ["--style", case["style"]]
    if case["style2"]:
        w = case["weight_of_style"]
        styles = ["--style", f"{case['style']}={w}", "--style", f"{case['style2']}={1 - w}"]
    out = tmp_path / "anim.npy"
    rc = main(["animate", *_published(folder), "--audio", str(folder / "audio.wav"), "--no-silence-gate",
               "--template", str(folder / "template.npy"), *styles, "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    got = np.load(out)
    expected = np.load(folder / case["file"])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def test_blend_motion_mixes_the_styles_runs(tmp_path):
    from codetalker_blender.core import animate, load_model

    common = ["animate", *_published(VOCA), "--audio", str(VOCA / "audio.wav"), "--template", str(VOCA / "template.npy"),
              "--style", "S0=0.25", "--style", "S3=0.75", "--device", "cpu", "--quiet"]
    out = tmp_path / "mix.npz"
    assert main([*common, "--blend", "motion", "--out", str(out)]) == 0
    data = np.load(out)
    assert json.loads(str(data["metadata"]))["blend"] == "motion"
    model = load_model(config=VOCA / "config.yaml", stage1=VOCA / "stage1.pth.tar", stage2=VOCA / "stage2.pth.tar")
    template = np.load(VOCA / "template.npy")
    a, b = (animate(model, VOCA / "audio.wav", template, s, device="cpu").vertices for s in ("S0", "S3"))
    mixed = data["vertices"].reshape(a.shape)
    assert np.abs(mixed - (0.25 * a + 0.75 * b)).max() <= 1e-5


@pytest.mark.parametrize("clip,rate", [("one_two_three.wav", 44100), ("voca_test_sentence.wav", 22000)])
def test_animate_real_speech_to_npz(tmp_path, clip, rate):
    audio = SHARED / "audio" / clip
    assert sf.info(str(audio)).samplerate == rate
    out = tmp_path / "anim.npz"
    rc, _, err = run_cli(["animate", *_published(VOCA), "--audio", audio, "--template", VOCA / "template.npy",
                          "--style", "S2", "--out", out])
    assert rc == 0, err
    data = np.load(out)
    seconds = sf.info(str(audio)).duration
    assert float(data["fps"]) == 30.0
    frames = data["vertices"]
    assert frames.shape[1] == 120 and abs(frames.shape[0] - seconds * 30) <= 2
    meta = json.loads(str(data["metadata"]))
    assert meta["style"]["S2"] == 1.0 and meta["dataset"] == "vocaset"
    assert meta["blend"] == "model"
    assert np.isfinite(frames).all() and np.ptp(frames, axis=0).max() > 0  # it moves
    assert "frame" in err and "wrote" in err  # progress and summary on stderr


def test_silence_gate_holds_the_leading_room_noise_at_rest(tmp_path):
    """voca_test_sentence opens with half a second of room noise: the default gate keeps the face at rest there."""
    audio = SHARED / "audio" / "voca_test_sentence.wav"
    common = ["animate", *_published(VOCA), "--audio", str(audio), "--template", str(VOCA / "template.npy"),
              "--style", "S2", "--quiet"]
    gated, raw, strict = tmp_path / "gated.npz", tmp_path / "raw.npy", tmp_path / "strict.npy"
    assert main([*common, "--out", str(gated)]) == 0
    assert main([*common, "--no-silence-gate", "--out", str(raw)]) == 0
    assert main([*common, "--silence-gate", "-6", "--out", str(strict)]) == 0
    template = np.load(VOCA / "template.npy").reshape(1, -1)
    data = np.load(gated)
    frames, ungated = data["vertices"], np.load(raw)
    assert json.loads(str(data["metadata"]))["rest_seconds"] > 0.5
    head = slice(0, 10)  # the first 0.33 s
    assert np.array_equal(frames[head], np.repeat(template, 10, axis=0))
    assert np.abs(ungated[head] - template).max() > 1e-4  # the model alone moves there
    middle = slice(60, 90)  # speech: the gate changes nothing
    assert np.array_equal(frames[middle], ungated[middle])
    # a threshold 6 dB under the loudest frames holds more of the clip still
    assert np.count_nonzero(np.all(np.load(strict) == template, axis=1)) > np.count_nonzero(
        np.all(frames == template, axis=1))
    rc, _, err = run_cli([*common, "--silence-gate", "4", "--out", tmp_path / "x.npy"])
    assert rc == 2 and "threshold" in err


def test_biwi_model_from_the_yaml_stage1_default(tmp_path):
    out = tmp_path / "biwi.npy"
    rc = main(["animate", "--config", str(BIWI / "config.yaml"), "--stage2", str(BIWI / "stage2.pth.tar"),
               "--audio", str(SHARED / "audio" / "arctic_a0009.wav"), "--template", str(BIWI / "template.npy"),
               "--style", "M3=1", "--style", "F2=3", "--out", str(out), "--quiet"])
    assert rc == 0
    assert np.load(out).shape[0] == int(sf.info(str(SHARED / "audio" / "arctic_a0009.wav")).duration * 25)


def test_converted_model_gives_the_same_animation(tmp_path):
    model_path = tmp_path / "voca.safetensors"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), *_published(VOCA),
                           "--out", str(model_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "voca.json").is_file()
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    common = ["--audio", str(VOCA / "audio.wav"), "--template", str(VOCA / "template.npy"), "--style", "S1",
              "--quiet"]
    assert main(["animate", "--model", str(model_path), *common, "--out", str(a)]) == 0
    assert main(["animate", *_published(VOCA), *common, "--out", str(b)]) == 0
    # Same weights, same algorithm: equal up to float rounding (kernels may pick other SIMD paths).
    assert np.abs(np.load(a) - np.load(b)).max() < 1e-5
    rc, out, _ = run_cli(["info", model_path])
    assert rc == 0 and "S0 S1 S2 S3" in out


def test_info_describes_checkpoints_and_configs():
    rc, out, _ = run_cli(["info", "--json", BIWI / "stage2.pth.tar"])
    info = json.loads(out)
    assert rc == 0 and info["subjects"] == 6 and info["decoder_layers"] == 3 and "stage-2" in info["kind"]
    rc, out, _ = run_cli(["info", VOCA / "stage1.pth.tar"])
    assert rc == 0 and "stage-1" in out and "24 x 8" in out
    rc, out, _ = run_cli(["info", VOCA / "config.yaml"])
    assert rc == 0 and "vocaset" in out and "S0 S1 S2 S3" in out


# ----------------------------------------------------------------------------- bad input


def _truncated_wav(path):
    data = (SHARED / "audio" / "arctic_a0009.wav").read_bytes()
    path.write_bytes(data[:30])  # cut inside the header
    return path


def _text_as_wav(path):
    path.write_text("this is not audio, just some text\n" * 20)
    return path


def _empty_wav(path):
    path.write_bytes(b"")
    return path


def _zero_sample_wav(path):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    return path


@pytest.mark.parametrize("make_audio,words", [
    (_truncated_wav, "audio"),
    (_text_as_wav, "could not read audio"),
    (_empty_wav, "empty"),
    (_zero_sample_wav, "no samples"),
])
def test_bad_audio_is_one_line_and_exit_2(tmp_path, make_audio, words):
    bad = make_audio(tmp_path / "bad.wav")
    out = tmp_path / "out.npy"
    rc, stdout, err = run_cli(["animate", *_published(VOCA), "--audio", bad, "--template", VOCA / "template.npy",
                               "--out", out, "--quiet"])
    assert rc == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("codetalker: error:") and words in err.lower()
    assert not out.exists()


def test_wrong_vertex_count_template(tmp_path):
    tpl = tmp_path / "wrong.npy"
    np.save(tpl, np.zeros((39, 3), np.float32))
    rc, _, err = run_cli(["animate", *_published(VOCA), "--audio", VOCA / "audio.wav", "--template", tpl,
                          "--out", tmp_path / "o.npy"])
    assert rc == 2 and "Traceback" not in err
    assert "39 vertices" in err and "expects 40" in err and "5023" in err


def test_flame_ply_on_a_toy_model_names_the_topologies(tmp_path):
    rc, _, err = run_cli(["animate", *_published(VOCA), "--audio", VOCA / "audio.wav",
                          "--template", SHARED / "assets" / "flame" / "FLAME_sample.ply", "--out", tmp_path / "o.npy"])
    assert rc == 2 and "5023 vertices" in err and "Traceback" not in err


def test_stage2_file_given_as_stage1(tmp_path):
    rc, _, err = run_cli(["animate", "--config", VOCA / "config.yaml", "--stage1", VOCA / "stage2.pth.tar",
                          "--stage2", VOCA / "stage2.pth.tar", "--audio", VOCA / "audio.wav",
                          "--template", VOCA / "template.npy", "--out", tmp_path / "o.npy"])
    assert rc == 2 and "Traceback" not in err
    assert "stage-1" in err and "stage-2 (speech predictor) checkpoint" in err


@pytest.mark.parametrize("args,words", [
    (["--style", "NOBODY"], "unknown style"),
    (["--style", "S1=abc"], "bad style weight"),
    (["--style", "9"], "out of range"),
    (["--device", "tpu"], "unknown device"),
])
def test_user_mistakes(tmp_path, args, words):
    rc, _, err = run_cli(["animate", *_published(VOCA), "--audio", VOCA / "audio.wav",
                          "--template", VOCA / "template.npy", "--out", tmp_path / "o.npy", *args])
    assert rc == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_files_and_bad_outputs(tmp_path):
    base = ["animate", *_published(VOCA), "--template", VOCA / "template.npy"]
    rc, _, err = run_cli([*base, "--audio", tmp_path / "nope.wav", "--out", tmp_path / "o.npy"])
    assert rc == 2 and "not found" in err
    rc, _, err = run_cli([*base, "--audio", VOCA / "audio.wav", "--out", tmp_path / "o.mp4"])
    assert rc == 2 and ".npy or .npz" in err
    rc, _, err = run_cli([*base, "--audio", VOCA / "audio.wav", "--out", tmp_path / "missing" / "o.npy"])
    assert rc == 2 and "does not exist" in err
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((10, 3), np.float32))
    rc, _, err = run_cli(["animate", "--audio", VOCA / "audio.wav", "--template", odd, "--out", tmp_path / "o.npy"])
    assert rc == 2 and "no bundled model fits a template of 10 vertices" in err
    rc, _, err = run_cli(["info", tmp_path / "nothing.pth.tar"])
    assert rc == 2 and "not found" in err


def test_corrupt_checkpoint_and_pickled_objects_are_refused(tmp_path):
    import torch

    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    rc, _, err = run_cli(["info", junk])
    assert rc == 2 and "not a readable PyTorch checkpoint" in err

    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Exception("x")}, evil)
    rc, _, err = run_cli(["info", evil])
    assert rc == 2 and "refusing to load" in err


def test_silence_gives_a_still_template(tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 2, np.float32), 16000)
    out = tmp_path / "o.npy"
    assert main(["animate", *_published(VOCA), "--audio", str(silent), "--template", str(VOCA / "template.npy"),
                 "--out", str(out), "--quiet"]) == 0
    frames = np.load(out)
    assert frames.shape == (59, 120)
    assert np.array_equal(frames, np.repeat(np.load(VOCA / "template.npy")[None], 59, axis=0))


def test_binary_or_broken_files_in_place_of_configs_and_models(tmp_path):
    import torch

    rc, _, err = run_cli(["info", VOCA / "stage1.pth.tar"])
    assert rc == 0
    binary_yaml = tmp_path / "config.yaml"
    binary_yaml.write_bytes(bytes(range(256)) * 4)
    rc, _, err = run_cli(["animate", "--config", binary_yaml, "--stage2", VOCA / "stage2.pth.tar", "--audio",
                          VOCA / "audio.wav", "--template", VOCA / "template.npy", "--out", tmp_path / "o.npy"])
    assert rc == 2 and "Traceback" not in err and "not a text config" in err
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}      " + b"\x00" * 10)
    rc, _, err = run_cli(["animate", "--model", broken, "--audio", VOCA / "audio.wav", "--template",
                          VOCA / "template.npy", "--out", tmp_path / "o.npy"])
    assert rc == 2 and "Traceback" not in err and "not a safetensors file" in err
    lookalike = tmp_path / "faceformer.pth"
    torch.save({"state_dict": {"audio_encoder.x": torch.zeros(2), "vertice_map.weight": torch.zeros(4, 9)}}, lookalike)
    rc, out, err = run_cli(["info", lookalike])
    assert rc == 0 and "Traceback" not in err and "not a CodeTalker checkpoint" in out


def test_main_job_uses_the_bundled_model_for_the_templates_topology(tmp_path):
    out = tmp_path / "a.npz"
    rc, _, err = run_cli(["animate", "--audio", SHARED / "audio" / "one_two_three.wav",
                          "--template", SHARED / "assets" / "flame" / "FLAME_sample.ply",
                          "--mode", "fast", "--out", out, "--quiet"])
    assert rc == 0, err
    data = np.load(out)
    meta = json.loads(str(data["metadata"]))
    assert meta["model"].endswith("codetalker_flame_synth.safetensors")
    assert data["vertices"].shape[1] == 5023 * 3 and float(data["fps"]) == 30.0
