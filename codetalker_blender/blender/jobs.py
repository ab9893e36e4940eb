"""Background bake jobs. Nothing in this module touches ``bpy``.

The operator builds a :class:`BakeSpec` from the scene on the main thread,
:class:`BakeJob` runs the model in a worker thread, and messages come back
through a queue that the main thread drains (modal timer, or a loop in tests)
with :meth:`BakeJob.poll`. Cancelling sets an event the inference checks
every frame.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from ..core.audio import SilenceGate


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: ``kind`` is 'FILE' (our safetensors) or 'PUBLISHED'."""

    kind: str
    model_path: str = ""
    config_path: str = ""
    stage1_path: str = ""
    stage2_path: str = ""
    dataset: str = ""  # published config to assume when no YAML is given

    def key(self) -> tuple:
        import os

        paths = (self.model_path, self.config_path, self.stage1_path, self.stage2_path)
        stamps = tuple(os.path.getmtime(p) if p and os.path.isfile(p) else 0.0 for p in paths)
        return (self.kind, *paths, self.dataset, *stamps)


@dataclass
class BakeSpec:
    model: ModelSource
    audio_path: str
    template: np.ndarray  # (V, 3) the mesh's rest positions
    style: np.ndarray | None  # weights over the subjects, or None for all equally
    blend: str = "model"  # core.style.BLENDS: one run with the blended style, or one per style mixed
    device: str = "auto"
    mode: str = "exact"
    gate: SilenceGate | None = SilenceGate()  # None: the model's motion in silences as it is
    scene_fps: float = 24.0
    compact: bool = True
    error_bound: float = 0.0  # mesh units; 0 picks core.motion.default_error_bound


@dataclass
class BakeResult:
    motion: np.ndarray  # (frames, V, 3) at the scene's frame rate
    model_fps: float
    model_frames: int
    basis: object | None  # core.motion.CompactBasis in compact mode
    error_bound: float
    seconds: float
    info: dict = field(default_factory=dict)


_MODEL_CACHE: dict = {}
_MODEL_LOCK = threading.Lock()


def load_model_cached(source: ModelSource):
    """Load (or reuse) the model; one model is kept in memory."""
    from ..core import load_model
    from ..core.config import published_config

    key = source.key()
    with _MODEL_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        _MODEL_CACHE.clear()
        if source.kind == "FILE":
            model = load_model(model=source.model_path)
        else:
            config = source.config_path or published_config(source.dataset or "vocaset")
            model = load_model(config=config, stage1=source.stage1_path or None, stage2=source.stage2_path or None)
        _MODEL_CACHE[key] = model
        return model


def run_bake(spec: BakeSpec, progress=None, cancel=None) -> BakeResult:
    """The whole computation of a bake, without Blender."""
    from ..core import animate
    from ..core.motion import compact_basis, default_error_bound, resample

    t0 = time.perf_counter()
    model = load_model_cached(spec.model)
    result = animate(model, spec.audio_path, spec.template, spec.style, device=spec.device, mode=spec.mode,
                     progress=progress, cancel=cancel, gate=spec.gate, blend=spec.blend)
    motion = resample(result.vertices, result.fps, spec.scene_fps)
    bound = spec.error_bound or default_error_bound(spec.template)
    basis = compact_basis(motion, spec.template, bound) if spec.compact else None
    return BakeResult(motion, result.fps, result.vertices.shape[0], basis, bound,
                      time.perf_counter() - t0, result.info)


class BakeJob:
    """A bake running in a worker thread."""

    def __init__(self, spec: BakeSpec):
        self.spec = spec
        self.messages: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.done_frames = 0
        self.total_frames = 0
        self.started = 0.0
        self.state = "new"  # running, finished, cancelled, failed
        self.result: BakeResult | None = None
        self.error = ""

    def start(self) -> None:
        self.started = time.perf_counter()
        self.state = "running"
        self.thread = threading.Thread(target=self._work, name="codetalker-bake", daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def _work(self) -> None:
        from ..core.errors import Cancelled, CodeTalkerError

        try:
            result = run_bake(self.spec, lambda d, t: self.messages.put(("progress", d, t)), self.cancel_event.is_set)
            if self.cancel_event.is_set():
                raise Cancelled("cancelled")
            self.messages.put(("finished", result))
        except Cancelled:
            self.messages.put(("cancelled",))
        except CodeTalkerError as exc:
            self.messages.put(("failed", str(exc)))
        except Exception as exc:  # report, never crash Blender; keep the trace for the console
            traceback.print_exc()
            self.messages.put(("failed", f"unexpected error: {type(exc).__name__}: {exc}"))

    def poll(self) -> str:
        """Drain the queue (main thread). Returns the state."""
        while True:
            try:
                msg = self.messages.get_nowait()
            except queue.Empty:
                return self.state
            if msg[0] == "progress":
                self.done_frames, self.total_frames = msg[1], msg[2]
            elif msg[0] == "finished":
                self.result, self.state = msg[1], "finished"
            elif msg[0] == "cancelled":
                self.state = "cancelled"
            else:
                self.error, self.state = msg[1], "failed"

    def wait(self, interval: float = 0.02) -> str:
        """Poll until the job ends (for scripts and tests; the UI uses a timer)."""
        while self.poll() == "running":
            time.sleep(interval)
        return self.state

    @property
    def busy(self) -> bool:
        """Still running: the worker is alive or its last messages are not drained yet."""
        return self.state == "running" and (self.thread is None or self.thread.is_alive()
                                            or not self.messages.empty())

    @property
    def fraction(self) -> float:
        return self.done_frames / self.total_frames if self.total_frames else 0.0

    @property
    def eta(self) -> float | None:
        if not self.done_frames or not self.total_frames:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed / self.done_frames * (self.total_frames - self.done_frames)
