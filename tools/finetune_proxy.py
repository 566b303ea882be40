"""Second-stage proxy: fine-tune one fold from a finished run's first-stage weights with other settings.

The 5 + 2-epoch proxy of `saltnet.performance.ablate` says little about the Lovasz stage (2 epochs of it); this
one starts where a full CPU-preset run's first stage ended (`RUN/results/train/fold{F}/model.pth`),
fine-tunes fold F with the preset's finetune settings, built as the rules build them (the preset resolved
with the schema's defaults, then `--config` overrides as snakemake takes them), predicts the fold's
out-of-fold images with flip TTA and scores them, raw (threshold 0.5) and post-processed (threshold,
min_area and min_peak searched on those images, as rule postprocess does). The baseline is the same
command with no override (or the run's own predict/fold{F}/oof.npz, trained with its thread count).

    .venv/bin/python tools/finetune_proxy.py --run ../runs/cpu6 --fold 0 --epochs 11 --config loss=symmetric_lovasz_elu

One process with all the cores: never run two at once, or time anything beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from saltnet.config.resolve import parse_overrides, preset_path, resolve_config
from saltnet.config.settings import TrainSettings, settings_of
from saltnet.data.folds import fold_indices
from saltnet.data.pack import load_packed
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.postprocess import choose_postprocess
from saltnet.inference.predict import predict_probs
from saltnet.models.registry import build_model, get_model_spec
from saltnet.training.fold import train_fold


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="folder of a finished CPU-preset run (holds results/)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, required=True, help="finetune epochs")
    parser.add_argument("--preset", default="cpu", help="the preset the run used (name or config file)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides as snakemake --config takes them, e.g. 'finetune={lr: 2e-3}' aux_weight=0.5")
    parser.add_argument("--workdir", default="finetune_proxy", help="checkpoints and results go here")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> TrainSettings:
    """The preset's finetune stage with the overrides, as rule finetune_fold builds it (settings_of), for
    --epochs epochs."""
    config = resolve_config([preset_path(args.preset)], parse_overrides(args.config))
    return settings_of(config, "finetune", epochs=args.epochs)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results, work = Path(args.run) / "results", Path(args.workdir)
    data, folds = load_packed(results / "packed/train.npz"), pd.read_parquet(results / "folds.parquet")
    stage = settings(args)
    start = time.time()
    trained = train_fold(data, folds, args.fold, stage, work / "checkpoints", torch.device("cpu"),
                         init_weights=str(results / f"train/fold{args.fold}/model.pth"))
    seconds = time.time() - start
    model = build_model(stage.model, "none", stage.size)
    model.load_state_dict(trained.state_dict)  # the weights in memory: no model file is written here
    _, valid_idx = fold_indices(folds, data.ids, args.fold)
    input_size = get_model_spec(stage.model).input_size(stage.size, data.images.shape[-1])
    probs = predict_probs(model, data.images[valid_idx], input_size, torch.device("cpu"), 64, tta=True)
    truth = data.masks[valid_idx] > 0
    chosen = choose_postprocess(probs, truth)
    out = {"run": str(args.run), "fold": args.fold, "settings": dataclasses.asdict(stage),
           "raw": float(image_scores(probs.astype(np.float32) > 0.5, truth).mean()),
           "postprocessed": chosen["after"], "train_seconds": round(seconds, 1), "threads": args.threads,
           "history": trained.history.round(4).to_dict(orient="list")}
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "history"}))
    return out


if __name__ == "__main__":
    main()
