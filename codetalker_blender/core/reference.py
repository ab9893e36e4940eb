"""The published ``predict`` algorithm, transcribed step by step.

At every frame it reruns the predictor over the whole input so far and
decodes the whole code sequence, then feeds back the last decoded frame.
It is quadratic in clip length and kept only as an oracle: the tests check
:func:`inference.generate_motion` against it, and the benchmarks time it
as the baseline.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def reference_motion(model, audio_features: torch.Tensor, frames: int, style: torch.Tensor) -> torch.Tensor:
    """Same inputs and output as :func:`inference.generate_motion`: motion (frames, V*3)."""
    cfg = model.cfg
    ae = model.autoencoder
    fq, zd = cfg.vq.face_quan_num, cfg.vq.zquant_dim
    memory = model.audio_feature_map(audio_features)
    style = style.view(1, 1, -1)
    vertice_emb = style
    for i in range(frames):
        tokens = model.PPE(vertice_emb)
        feat = model.predictor_step_full(tokens, memory)  # (1, i+1, fq*zd)
        zq, _ = ae.quantize(feat.view(1, -1, fq, zd))
        if i == 0:
            decoded = ae.decode(torch.cat([zq, zq], dim=1))[:, :1]
        else:
            decoded = ae.decode(zq)
        if i != frames - 1:
            new = model.vertice_map(decoded[:, -1]).unsqueeze(1) + style
            vertice_emb = torch.cat([vertice_emb, new], dim=1)
    zq, _ = ae.quantize(feat.view(1, -1, fq, zd))
    return ae.decode(zq)[0]
