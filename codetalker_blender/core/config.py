"""Model configuration as plain dataclasses.

One :class:`ModelConfig` describes a complete CodeTalker model: the stage-1
VQ autoencoder (:class:`VQConfig`), the stage-2 predictor
(:class:`PredictorConfig`) and the timing that ties audio to motion
(:class:`TimingConfig`). Configs are passed explicitly; nothing here is global.

Two on-disk forms are read:

* the published YAML schema (``config/<dataset>/stage2.yaml`` / ``demo.yaml``,
  sections DATA, NETWORK, VQuantizer, PREDICTOR), see :func:`from_published_yaml`;
* our own JSON, written next to safetensors weights, see :func:`to_json` /
  :func:`from_json`.

The published schema does not spell out the differences between its two
datasets (frame rate, audio features per frame, the BIWI-only projections in
stage 1). :data:`DATASET_PRESETS` maps the dataset name to those fields once,
here; the model code only ever reads fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

FORMAT_TAG = "codetalker-blender/1"
CONFIG_METADATA_KEY = "codetalker_config"  # safetensors metadata entry holding the JSON config

# Audio features per second of the wav2vec2 convolutional front end (16 kHz / 320).
# Whisper's encoder has the same rate, so timing is shared by both front ends.
WAV2VEC2_FEATURE_RATE = 50.0
AUDIO_ENCODERS = ("wav2vec2", "whisper")


@dataclass(frozen=True)
class VQConfig:
    """Stage 1: the VQ autoencoder (discrete motion prior)."""

    vertice_dim: int  # V*3
    hidden_size: int = 1024
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 1536
    face_quan_num: int = 16  # codes per frame (fq)
    zquant_dim: int = 64  # code width (zd)
    n_embed: int = 256  # codebook entries
    neg: float = 0.2  # LeakyReLU slope
    instance_norm_affine: bool = False
    # BIWI: Linear(H, fq*zd) closes the encoder, Linear(fq*zd, H) opens the decoder.
    code_projection: bool = False
    # BIWI: the final Linear(H, V*3) of the decoder has no bias.
    output_bias: bool = True

    @property
    def code_dim(self) -> int:
        """Width of one frame's codes, fq * zd."""
        return self.face_quan_num * self.zquant_dim


@dataclass(frozen=True)
class PredictorConfig:
    """Stage 2: the speech-conditioned autoregressive predictor."""

    feature_dim: int = 1024
    num_layers: int = 6
    n_head: int = 4
    period: int = 30  # period of the PPE and of the temporal attention bias
    # Length the reference builds its masks and PPE table for. Longer clips use
    # the same formulas extended (see inference.py); the table length only
    # fixes the shape of the stored PPE buffer.
    max_seq_len: int = 600

    @property
    def ppe_length(self) -> int:
        return self.period * (self.max_seq_len // self.period + 1)


@dataclass(frozen=True)
class TimingConfig:
    """How audio time maps to motion frames."""

    fps: float = 30.0  # motion frames per second
    # Audio features the predictor's cross-attention sees per motion frame.
    feats_per_frame: int = 1

    @property
    def feature_rate(self) -> float:
        """Audio features per second the predictor consumes."""
        return self.fps * self.feats_per_frame

    @property
    def resamples_features(self) -> bool:
        """True when the 50 Hz wav2vec2 features are linearly resampled in time."""
        return self.feature_rate != WAV2VEC2_FEATURE_RATE


@dataclass(frozen=True)
class ModelConfig:
    """A complete CodeTalker model."""

    vq: VQConfig
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    subjects: tuple[str, ...] = ()
    dataset: str = "custom"  # a label: "vocaset", "BIWI", or anything else
    # Hugging Face Wav2Vec2Config fields; empty means wav2vec2-base-960h
    # (equal to transformers.Wav2Vec2Config() defaults).
    wav2vec2: dict[str, Any] = field(default_factory=dict)
    # Speech front end: "wav2vec2" (the published models) or "whisper" (the
    # bundled ones: the Whisper tiny.en encoder, frozen; fields of
    # whisper.WhisperEncoderConfig, empty means tiny).
    audio_encoder: str = "wav2vec2"
    whisper: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.vq.vertice_dim % 3:
            raise ConfigError(f"vertice_dim {self.vq.vertice_dim} is not a multiple of 3")
        if not self.subjects:
            raise ConfigError("the model config names no training subjects (style slots)")
        if self.audio_encoder not in AUDIO_ENCODERS:
            raise ConfigError(
                f"unknown audio encoder {self.audio_encoder!r}; expected {' or '.join(AUDIO_ENCODERS)}"
            )
        if len(set(self.subjects)) != len(self.subjects):
            raise ConfigError(f"training subjects are not unique: {' '.join(self.subjects)}")
        if self.predictor.feature_dim % self.predictor.n_head:
            raise ConfigError("PREDICTOR.feature_dim must be divisible by n_head")
        if self.vq.hidden_size % self.vq.num_attention_heads:
            raise ConfigError("NETWORK.hidden_size must be divisible by num_attention_heads")
        if not self.vq.code_projection and self.vq.code_dim != self.vq.hidden_size:
            raise ConfigError(
                f"face_quan_num * zquant_dim = {self.vq.code_dim} must equal hidden_size "
                f"{self.vq.hidden_size} unless the model has code projections"
            )

    @property
    def num_vertices(self) -> int:
        return self.vq.vertice_dim // 3

    @property
    def fps(self) -> float:
        return self.timing.fps


# Facts about the two published datasets that their YAML files leave implicit.
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "vocaset": dict(fps=30.0, feats_per_frame=1, code_projection=False, output_bias=True),
    "biwi": dict(fps=25.0, feats_per_frame=2, code_projection=True, output_bias=False),
}

# The published full-size models (CODETALKER_FACTS.md, "Published configurations").
_PUBLISHED: dict[str, dict[str, Any]] = {
    "vocaset": dict(
        dataset="vocaset",
        vq=dict(vertice_dim=5023 * 3, face_quan_num=16, zquant_dim=64),
        predictor=dict(num_layers=6, period=30),
        subjects=(
            "FaceTalk_170728_03272_TA FaceTalk_170904_00128_TA FaceTalk_170725_00137_TA "
            "FaceTalk_170915_00223_TA FaceTalk_170811_03274_TA FaceTalk_170913_03279_TA "
            "FaceTalk_170904_03276_TA FaceTalk_170912_03278_TA"
        ).split(),
    ),
    "biwi": dict(
        dataset="BIWI",
        vq=dict(vertice_dim=23370 * 3, face_quan_num=8, zquant_dim=128),
        predictor=dict(num_layers=12, period=25),
        subjects="F2 F3 F4 M3 M4 M5".split(),
    ),
}


def published_config(dataset: str, **overrides: Any) -> ModelConfig:
    """The published full-size configuration of ``vocaset`` or ``BIWI``.

    ``overrides`` replace VQConfig / PredictorConfig fields by name (plus
    ``subjects`` and ``wav2vec2``), which is handy for small random models.
    """
    key = dataset.lower()
    if key not in _PUBLISHED:
        raise ConfigError(f"unknown published dataset {dataset!r}; expected vocaset or BIWI")
    spec, preset = _PUBLISHED[key], DATASET_PRESETS[key]
    vq_kwargs = dict(spec["vq"], code_projection=preset["code_projection"], output_bias=preset["output_bias"])
    pred_kwargs = dict(spec["predictor"])
    subjects, wav2vec2 = tuple(spec["subjects"]), {}
    for name, value in overrides.items():
        if name == "subjects":
            subjects = tuple(value)
        elif name == "wav2vec2":
            wav2vec2 = dict(value)
        elif name in VQConfig.__dataclass_fields__:
            vq_kwargs[name] = value
        elif name in PredictorConfig.__dataclass_fields__:
            pred_kwargs[name] = value
        else:
            raise ConfigError(f"unknown config field {name!r}")
    return ModelConfig(
        vq=VQConfig(**vq_kwargs),
        predictor=PredictorConfig(**pred_kwargs),
        timing=TimingConfig(fps=preset["fps"], feats_per_frame=preset["feats_per_frame"]),
        subjects=subjects,
        dataset=spec["dataset"],
        wav2vec2=wav2vec2,
    )


# --------------------------------------------------------------------------- YAML


def _section(doc: dict, name: str) -> dict:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"the config has no {name} section")
    return value


def _get(section: dict, section_name: str, key: str, kind: type, default: Any = None) -> Any:
    if key not in section:
        if default is None:
            raise ConfigError(f"the config lacks {section_name}.{key}")
        return default
    value = section[key]
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes")
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{section_name}.{key} = {value!r} is not a valid {kind.__name__}") from None


def read_wav2vec2_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """Read a Hugging Face wav2vec2 ``config.json`` from a local folder or file.

    Anything else (a hub id such as ``facebook/wav2vec2-base-960h``, a missing
    folder, ``None``) gives ``{}``, meaning the wav2vec2-base-960h defaults.
    No hub is ever contacted.
    """
    if not path:
        return {}
    path = os.fspath(path)
    candidate = path if path.endswith(".json") else os.path.join(path, "config.json")
    if not os.path.isfile(candidate):
        return {}
    try:
        with open(candidate, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read wav2vec2 config {candidate}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"wav2vec2 config {candidate} is not a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def from_published_yaml(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, str]]:
    """Read a published ``stage2.yaml`` / ``demo.yaml`` style config.

    Returns the model config and the paths the YAML mentions
    (``vqvae_pretrained_path``, ``model_path`` ...), resolved against the
    YAML's folder, for callers that want defaults for the checkpoint files.
    """
    import yaml  # runtime dependency; imported here to keep module import light

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text config file (published YAML or our JSON)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a CodeTalker config (no DATA/NETWORK sections)")

    data = _section(doc, "DATA")
    net = _section(doc, "NETWORK")
    vqs = _section(doc, "VQuantizer")
    pred = _section(doc, "PREDICTOR")

    dataset = str(data.get("dataset", "custom"))
    preset = DATASET_PRESETS.get(dataset.lower())
    extra = doc.get("CODETALKER_BLENDER", {}) or {}  # optional explicit overrides
    if preset is None and not extra:
        raise ConfigError(
            f"dataset {dataset!r} is neither vocaset nor BIWI; add a CODETALKER_BLENDER "
            "section with fps, feats_per_frame, code_projection and output_bias"
        )
    preset = {**(preset or {}), **extra}
    for key in ("fps", "feats_per_frame", "code_projection", "output_bias"):
        if key not in preset:
            raise ConfigError(f"CODETALKER_BLENDER.{key} is required for dataset {dataset!r}")

    quant_factor = _get(net, "NETWORK", "quant_factor", int, 0)
    if quant_factor != 0:
        raise ConfigError(f"NETWORK.quant_factor = {quant_factor} is not supported (published models use 0)")

    subjects_raw = data.get("train_subjects")
    if not subjects_raw:
        raise ConfigError("the config lacks DATA.train_subjects")
    subjects = tuple(str(subjects_raw).split())

    vq = VQConfig(
        vertice_dim=_get(net, "NETWORK", "in_dim", int),
        hidden_size=_get(net, "NETWORK", "hidden_size", int),
        num_hidden_layers=_get(net, "NETWORK", "num_hidden_layers", int),
        num_attention_heads=_get(net, "NETWORK", "num_attention_heads", int),
        intermediate_size=_get(net, "NETWORK", "intermediate_size", int),
        face_quan_num=_get(net, "NETWORK", "face_quan_num", int),
        zquant_dim=_get(vqs, "VQuantizer", "zquant_dim", int),
        n_embed=_get(vqs, "VQuantizer", "n_embed", int),
        neg=_get(net, "NETWORK", "neg", float, 0.2),
        instance_norm_affine=_get(net, "NETWORK", "INaffine", bool, False),
        code_projection=bool(preset["code_projection"]),
        output_bias=bool(preset["output_bias"]),
    )
    if "vertice_dim" in pred and int(pred["vertice_dim"]) != vq.vertice_dim:
        raise ConfigError(
            f"PREDICTOR.vertice_dim {pred['vertice_dim']} differs from NETWORK.in_dim {vq.vertice_dim}"
        )
    predictor = PredictorConfig(
        feature_dim=_get(pred, "PREDICTOR", "feature_dim", int),
        num_layers=_get(pred, "PREDICTOR", "num_layers", int),
        n_head=_get(pred, "PREDICTOR", "n_head", int, 4),
        period=_get(pred, "PREDICTOR", "period", int),
    )
    base = os.path.dirname(os.path.abspath(path))

    def resolve(p: Any) -> str | None:
        if not p:
            return None
        p = os.path.expanduser(str(p))
        return p if os.path.isabs(p) else os.path.join(base, p)

    w2v_path = resolve(pred.get("wav2vec2model_path"))
    config = ModelConfig(
        vq=vq,
        predictor=predictor,
        timing=TimingConfig(fps=float(preset["fps"]), feats_per_frame=int(preset["feats_per_frame"])),
        subjects=subjects,
        dataset=dataset,
        wav2vec2=read_wav2vec2_config(w2v_path),
    )
    paths = {}
    for section in (pred, doc.get("DEMO") or {}):
        for key in ("vqvae_pretrained_path", "model_path"):
            if section.get(key):
                paths[key] = resolve(section[key])
    return config, paths


# --------------------------------------------------------------------------- JSON


def to_dict(config: ModelConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    out["subjects"] = list(config.subjects)
    out["format"] = FORMAT_TAG
    return out


def from_dict(data: dict[str, Any]) -> ModelConfig:
    if data.get("format") != FORMAT_TAG:
        raise ConfigError(f"not a {FORMAT_TAG} model config (format = {data.get('format')!r})")

    def build(cls, value):
        if not isinstance(value, dict):
            raise ConfigError(f"config entry for {cls.__name__} is not an object")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(f"bad {cls.__name__}: {exc}") from None

    try:
        return ModelConfig(
            vq=build(VQConfig, data["vq"]),
            predictor=build(PredictorConfig, data.get("predictor", {})),
            timing=build(TimingConfig, data.get("timing", {})),
            subjects=tuple(data["subjects"]),
            dataset=str(data.get("dataset", "custom")),
            wav2vec2=dict(data.get("wav2vec2") or {}),
            audio_encoder=str(data.get("audio_encoder", "wav2vec2")),
            whisper=dict(data.get("whisper") or {}),
        )
    except KeyError as exc:
        raise ConfigError(f"model config lacks {exc.args[0]!r}") from None


def to_json(config: ModelConfig) -> str:
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


def from_json(text: str) -> ModelConfig:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"model config is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("model config is not a JSON object")
    return from_dict(data)


def load_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, str]]:
    """Load a config from a published YAML or our JSON, chosen by content."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                return from_json(fh.read()), {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
    return from_published_yaml(path)


def sidecar_path(path: str | os.PathLike) -> str:
    """The JSON config written beside one of our safetensors models."""
    return os.path.splitext(os.fspath(path))[0] + ".json"


def config_from_model_file(path: str | os.PathLike) -> ModelConfig:
    """The config stored with one of our safetensors models: its metadata, else the sidecar JSON.

    Reads only the file header (no torch), so it is cheap enough for a UI thread.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"model file not found: {path}")
    text = read_safetensors_metadata(path).get(CONFIG_METADATA_KEY)
    sidecar = sidecar_path(path)
    if text is None and os.path.isfile(sidecar):
        with open(sidecar, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    if text is None:
        raise ConfigError(f"{path} carries no CodeTalker config (no metadata, no {sidecar})")
    try:
        return from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read without torch.

    The format starts with an 8-byte little-endian header length and a JSON
    header; its ``__metadata__`` maps strings to strings.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ConfigError(f"{path} is not a safetensors file (too short)")
            size = int.from_bytes(head, "little")
            if size <= 0 or size > 100_000_000:
                raise ConfigError(f"{path} is not a safetensors file (bad header size)")
            header = json.loads(fh.read(size))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{path} is not a safetensors file (bad header)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}
