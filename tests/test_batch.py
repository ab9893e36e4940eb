"""Batch previs renders: real headless renders at tiny resolution."""

import json
import os
import subprocess
import sys

import av
import bpy  # noqa: F401  (after conftest set BLENDER_USER_RESOURCES)
import numpy as np
import pytest
import soundfile as sf
from conftest import GOLDEN, REPO, SHARED

from codetalker_blender.blender import batch
from codetalker_blender.blender.jobs import ModelSource
from codetalker_blender.core.batch import load_jobs, parse_style
from codetalker_blender.core.errors import CodeTalkerError

VOCA = GOLDEN / "vocaset_s11"


def _head_obj(path):
    """The golden template (40 vertices) as an OBJ with triangles, so that it renders."""
    tpl = np.load(VOCA / "template.npy").reshape(-1, 3)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in tpl]
    lines += [f"f {i + 1} {i + 2} {i + 3}" for i in range(0, len(tpl) - 2, 3)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _clip(path, source, seconds):
    data, sr = sf.read(str(SHARED / "audio" / source))
    sf.write(str(path), data[: int(seconds * sr)], sr)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    folder = root / "clips"
    folder.mkdir()
    _clip(folder / "a_one.wav", "one_two_three.wav", 1.2)
    _clip(folder / "b_arctic.wav", "arctic_a0009.wav", 1.6)
    (folder / "c_corrupt.wav").write_text("this is not audio\n")
    return root, folder, _head_obj(root / "head.obj")


def _options(out, head, **kw):
    source = ModelSource("PUBLISHED", config_path=str(VOCA / "config.yaml"), stage1_path=str(VOCA / "stage1.pth.tar"),
                         stage2_path=str(VOCA / "stage2.pth.tar"))
    return batch.BatchOptions(model=source, out_dir=str(out), mesh=str(head), resolution=(128, 128), fps=24.0, **kw)


def _probe(path):
    with av.open(str(path)) as container:
        streams = [(s.type, s.codec_context.name) for s in container.streams]
        video = container.streams.video[0]
        duration = float(video.duration * video.time_base)
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    return streams, duration, frames


def test_folder_batch_renders_sound_synced_movies_and_reports_the_corrupt_job(clips):
    root, folder, head = clips
    out = root / "out"
    results = batch.run_batch(str(folder), _options(out, head, save_blend=True), log=lambda s: None)
    status = {r.job: r.status for r in results}
    assert status == {"a_one": "done", "b_arctic": "done", "c_corrupt": "failed"}
    failed = next(r for r in results if r.job == "c_corrupt")
    assert "could not read audio" in failed.error
    for name, source_seconds in (("a_one", 1.2), ("b_arctic", 1.6)):
        streams, duration, frames = _probe(out / f"{name}.mp4")
        assert sorted(streams) == [("audio", "aac"), ("video", "h264")]
        seconds = sf.info(str(folder / f"{name}.wav")).duration
        assert abs(seconds - source_seconds) < 0.01
        assert abs(duration - seconds) <= 1 / 24 + 1e-3, (duration, seconds)
        assert len(frames) == round(duration * 24)
        # the mouth (the whole toy head) moves: frames differ, the burn-in aside
        body = [f[24:-24].astype(np.int16) for f in frames]
        assert max(np.abs(body[i] - body[0]).mean() for i in range(1, len(body))) > 0.5
        assert (out / f"{name}.blend").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 1, "cancelled": 0}
    csv_text = (out / "summary.csv").read_text()
    assert csv_text.splitlines()[0].startswith("job,audio,status,clip_seconds")
    assert not [p for p in os.listdir(out) if "partial" in p]

    # a rerun skips what is finished and retries only the failure
    mtime = (out / "a_one.mp4").stat().st_mtime
    again = batch.run_batch(str(folder), _options(out, head, save_blend=True), log=lambda s: None)
    assert [r.status for r in again] == ["skipped", "skipped", "failed"]
    assert (out / "a_one.mp4").stat().st_mtime == mtime


def test_saved_shot_renders_by_itself(clips, tmp_path):
    root, folder, head = clips
    out = tmp_path / "out"
    results = batch.run_batch([job for job in load_jobs(str(folder)) if job.output == "a_one"],
                              _options(out, head, save_blend=True, burn_in=False), log=lambda s: None)
    assert results[0].status == "done"
    shot = out / "a_one.blend"
    (out / "a_one.mp4").unlink()
    # what `blender -b shot.blend -a` does, through the bpy module
    bpy.ops.wm.open_mainfile(filepath=str(shot))
    assert bpy.context.scene.render.filepath == "//a_one.mp4"
    sounds = [s for s in bpy.data.sounds]
    assert sounds and all(s.packed_file is not None for s in sounds)
    bpy.ops.render.render(animation=True)
    streams, duration, _ = _probe(out / "a_one.mp4")
    assert sorted(streams) == [("audio", "aac"), ("video", "h264")] and abs(duration - 1.2) <= 1 / 24 + 1e-3


def test_command_line_with_a_csv_job_list(clips, tmp_path):
    root, folder, head = clips
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("audio,style,output,overlay\n"
                    f"{folder / 'a_one.wav'},S1=0.5;S2=0.5,shot_010,take 3\n"
                    f"{folder / 'missing.wav'},,shot_020,\n")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "codetalker_blender" / "batch_render.py"), "--", "--jobs", str(jobs),
           "--out", str(out), "--config", str(VOCA / "config.yaml"), "--stage1", str(VOCA / "stage1.pth.tar"),
           "--stage2", str(VOCA / "stage2.pth.tar"), "--mesh", str(head), "--resolution", "TINY",
           "--camera", "THREE_QUARTER", "--frame-limit", "6"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one job failed
    assert "[1/2] shot_010: done" in proc.stdout and "[2/2] shot_020: FAILED: audio file not found" in proc.stdout
    streams, duration, frames = _probe(out / "shot_010.mp4")
    assert len(frames) == 6 and sorted(streams) == [("audio", "aac"), ("video", "h264")]
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[1].startswith("shot_010,") and ",done," in rows[1] and ",failed," in rows[2]
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((10, 3), np.float32))
    usage = subprocess.run([sys.executable, str(REPO / "codetalker_blender" / "batch_render.py"), "--jobs",
                            str(jobs), "--out", str(out), "--mesh", str(odd)], capture_output=True, text=True,
                           timeout=300)
    assert usage.returncode == 2 and "no bundled model fits the mesh" in usage.stderr


def test_job_lists(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    js = tmp_path / "jobs.json"
    js.write_text(json.dumps({"jobs": [
        {"audio": "x.wav", "style": {"F2": 0.7, "M5": 0.3}, "overlay": "hello"},
        {"audio": "x.wav", "output": "x"},
        {"style": "F2"},
        "nonsense",
        {"audio": "x.wav", "colour": "red"},
    ]}))
    jobs = load_jobs(str(js))
    assert [j.output for j in jobs] == ["x", "x_2", "job003", "job004", "x_3"]
    assert jobs[0].style == {"F2": 0.7, "M5": 0.3} and jobs[0].audio == str(tmp_path / "x.wav")
    assert jobs[2].error == "the job names no audio" and "not an object" in jobs[3].error
    assert "unknown column" in jobs[4].error
    assert parse_style("F2=0.7; M5=0.3") == {"F2": 0.7, "M5": 0.3} and parse_style("F3") == {"F3": 1.0}
    with pytest.raises(CodeTalkerError, match="bad style weight"):
        parse_style("F2=lots")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("clip,style\na.wav,\n")
    with pytest.raises(CodeTalkerError, match="'audio' column"):
        load_jobs(str(bad_csv))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CodeTalkerError, match="no audio files"):
        load_jobs(str(tmp_path / "empty_dir"))
    with pytest.raises(CodeTalkerError, match="not found"):
        load_jobs(str(tmp_path / "nope.csv"))


def test_panel_batch_operator_runs_in_process_without_a_blender_executable(clips, tmp_path):
    """The bpy module has no Blender executable to start: the Run button renders in-process."""
    import codetalker_blender
    from codetalker_blender.blender import ops, ui

    root, folder, head = clips
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"audio": str(folder / "b_arctic.wav"), "output": "panel_shot"}]))
    codetalker_blender.register()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        tpl = np.load(VOCA / "template.npy").reshape(-1, 3)
        ops.create_mesh_object(bpy.context, "head", tpl, [[i, i + 1, i + 2] for i in range(0, 38, 3)])
        s = bpy.context.scene.codetalker
        s.model_source = "PUBLISHED"
        s.stage1_path, s.stage2_path = str(VOCA / "stage1.pth.tar"), str(VOCA / "stage2.pth.tar")
        s.config_path = str(VOCA / "config.yaml")
        s.batch_jobs, s.batch_out = str(jobs), str(tmp_path / "out")
        bpy.ops.codetalker.refresh_styles()
        for item in s.styles:
            item.weight = 1.0 if item.name == "S3" else 0.0
        assert bpy.app.binary_path == ""
        assert bpy.ops.codetalker.batch_render("INVOKE_DEFAULT") == {"FINISHED"}
        streams, duration, _ = _probe(tmp_path / "out" / "panel_shot.mp4")
        assert sorted(streams) == [("audio", "aac"), ("video", "h264")]
        assert "head" in bpy.data.objects  # the user's scene is back
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["counts"]["done"] == 1

        class Host:
            layout = None

        from test_blender import _Layout

        host = Host()
        log = []
        host.layout = _Layout(log)
        ui.CODETALKER_PT_batch.draw(host, bpy.context)
        assert any(c[1][:1] == ("codetalker.batch_render",) for c in log)
    finally:
        codetalker_blender.unregister()


def test_silence_gate_options(tmp_path):
    from codetalker_blender.core.audio import SilenceGate

    base = ["--jobs", str(tmp_path), "--out", str(tmp_path / "out"), "--config", str(VOCA / "config.yaml"),
            "--stage1", str(VOCA / "stage1.pth.tar"), "--stage2", str(VOCA / "stage2.pth.tar")]
    assert batch.options_from_args(base)[0].gate == SilenceGate()
    assert batch.options_from_args([*base, "--silence-gate", "-30"])[0].gate == SilenceGate(threshold_db=-30.0)
    assert batch.options_from_args([*base, "--no-silence-gate"])[0].gate is None
    assert batch.options_from_args(base)[0].blend == "model"
    assert batch.options_from_args([*base, "--blend", "motion"])[0].blend == "motion"
    with pytest.raises(CodeTalkerError, match="threshold"):
        batch.options_from_args([*base, "--silence-gate", "3"])


def test_unicode_and_colliding_output_names(tmp_path):
    for name in ("été.wav", "日本語.wav", "a.wav", "A.WAV"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.csv").write_text("audio,output\na.wav,a_2\n", encoding="utf-8")
    names = [job.output for job in load_jobs(str(tmp_path))]
    assert names == ["A", "a_2", "été", "日本語"]
    (tmp_path / "cp1252.csv").write_bytes("audio,overlay\na.wav,caf\xe9\n".encode("cp1252"))
    with pytest.raises(CodeTalkerError, match="UTF-8"):
        load_jobs(str(tmp_path / "cp1252.csv"))
