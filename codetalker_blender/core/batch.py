"""Batch jobs for previs renders: reading job lists and writing summaries. No bpy.

A job list is a folder of audio files, a CSV file, or a JSON file. Each job
names its audio and, optionally, a mesh (``.ply``/``.obj``/``.npy`` template
or a ``.blend`` with ``object``), style weights, an output name and overlay
text. Missing fields take the batch defaults. Problems with one job (a
missing file, a bad style) are kept on that job, so that the batch can report
it and go on with the others.

CSV columns: ``audio, mesh, object, style, output, overlay``; ``style`` is
``NAME=W;NAME=W`` (or one name). JSON: a list of objects with the same keys
(``style`` may be an object ``{"F2": 0.7}``), or ``{"jobs": [...]}``.
Relative paths are relative to the job file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass

from .errors import CodeTalkerError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aiff", ".aif")
FIELDS = ("audio", "mesh", "object", "style", "output", "overlay")


@dataclass
class Job:
    audio: str
    output: str  # file stem of the movie (and .blend), unique within the batch
    mesh: str = ""
    object: str = ""
    style: dict[str, float] | None = None
    overlay: str = ""
    error: str = ""  # set when the job itself is malformed

    @property
    def name(self) -> str:
        return self.output


@dataclass
class JobResult:
    job: str
    audio: str
    status: str  # done, skipped, failed, cancelled
    clip_seconds: float = 0.0
    frames: int = 0
    bake_seconds: float = 0.0
    render_seconds: float = 0.0
    output: str = ""
    blend: str = ""
    error: str = ""


def _safe_stem(text: str) -> str:
    """A file-name stem from ``text``: letters (any script), digits, '.', '_' and '-' kept."""
    stem = re.sub(r"[^\w.-]+", "_", text).strip("._")
    return stem or "clip"


def parse_style(value) -> dict[str, float] | None:
    """'F2=0.7;M5=0.3', 'F2', {'F2': 0.7} or empty -> {name: weight} or None."""
    if value in (None, "", {}):
        return None
    if isinstance(value, dict):
        try:
            return {str(k): float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise CodeTalkerError(f"bad style weights {value!r}") from None
    out: dict[str, float] = {}
    for part in re.split(r"[;|]", str(value)):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise CodeTalkerError(f"bad style weight in {part!r}: expected NAME=NUMBER") from None
    return out or None


def _resolve(path: str, base: str) -> str:
    if not path:
        return ""
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _job_from_record(record: dict, base: str, index: int) -> Job:
    unknown = set(record) - set(FIELDS)
    audio = _resolve(str(record.get("audio") or "").strip(), base)
    output = str(record.get("output") or "").strip() or (
        os.path.splitext(os.path.basename(audio))[0] if audio else f"job{index + 1:03d}"
    )
    job = Job(audio=audio, output=_safe_stem(output), mesh=_resolve(str(record.get("mesh") or "").strip(), base),
              object=str(record.get("object") or "").strip(), overlay=str(record.get("overlay") or ""))
    try:
        job.style = parse_style(record.get("style"))
    except CodeTalkerError as exc:
        job.error = str(exc)
    if unknown:
        job.error = job.error or f"unknown column(s): {', '.join(sorted(unknown))}"
    if not audio:
        job.error = job.error or "the job names no audio"
    return job


def load_jobs(source: str) -> list[Job]:
    """Jobs from a folder of audio files, a .csv or a .json file."""
    source = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(AUDIO_EXTENSIONS))
        if not names:
            raise CodeTalkerError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {source}")
        jobs = [_job_from_record({"audio": n}, source, i) for i, n in enumerate(names)]
    elif not os.path.isfile(source):
        raise CodeTalkerError(f"job source not found: {source}")
    elif source.lower().endswith(".csv"):
        base = os.path.dirname(source)
        try:
            with open(source, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or "audio" not in [f.strip() for f in reader.fieldnames]:
                    raise CodeTalkerError(f"{source}: the CSV needs a header row with an 'audio' column")
                rows = [{(k or "").strip(): (v or "") for k, v in row.items() if k} for row in reader]
        except UnicodeDecodeError:
            raise CodeTalkerError(f"{source} is not UTF-8 text: save the job list as UTF-8 CSV") from None
        except (csv.Error, OSError) as exc:
            raise CodeTalkerError(f"cannot read {source}: {exc}") from None
        jobs = [_job_from_record(r, base, i) for i, r in enumerate(rows) if any(v.strip() for v in r.values())]
    elif source.lower().endswith(".json"):
        base = os.path.dirname(source)
        try:
            with open(source, encoding="utf-8") as fh:
                data = json.load(fh)
        except ValueError as exc:  # also UnicodeDecodeError
            raise CodeTalkerError(f"{source} is not valid UTF-8 JSON: {exc}") from None
        except OSError as exc:
            raise CodeTalkerError(f"cannot read {source}: {exc}") from None
        records = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise CodeTalkerError(f"{source}: expected a list of jobs or {{\"jobs\": [...]}}")
        jobs = []
        for i, rec in enumerate(records):
            if isinstance(rec, dict):
                jobs.append(_job_from_record(rec, base, i))
            else:
                jobs.append(Job(audio="", output=f"job{i + 1:03d}", error=f"job {i + 1} is not an object"))
    else:
        raise CodeTalkerError(f"unsupported job source {source}: use a folder, a .csv or a .json file")
    if not jobs:
        raise CodeTalkerError(f"{source} holds no jobs")
    taken: set[str] = set()
    for job in jobs:  # unique output names (case-insensitive, for case-insensitive file systems)
        name, n = job.output, 1
        while name.lower() in taken:
            n += 1
            name = f"{job.output}_{n}"
        job.output = name
        taken.add(name.lower())
    return jobs


def write_summary(results: list[JobResult], out_dir: str) -> tuple[str, str]:
    """summary.json and summary.csv in ``out_dir``."""
    rows = [asdict(r) for r in results]
    json_path = os.path.join(out_dir, "summary.json")
    csv_path = os.path.join(out_dir, "summary.csv")
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "cancelled")}
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump({"counts": counts, "jobs": rows}, fh, indent=2)
    columns = ["job", "audio", "status", "clip_seconds", "frames", "bake_seconds", "render_seconds", "output",
               "blend", "error"]
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()})
    return json_path, csv_path
