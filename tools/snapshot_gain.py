"""What a stage's last epochs buy as one model, on a finished run's out-of-fold images.

    PYTHONPATH=src .venv/bin/python tools/snapshot_gain.py ../runs/cpu11/results

The run must have kept snapshots (config key `snapshots: K`). Re-predicts every fold's own images,
with the flip as predict_fold does, by: the stage's final model (model.pth: what the run predicted
with), the mean of the last k snapshots' probabilities (a snapshot ensemble: k predictions), and the
mean of the last k snapshots' weights with BatchNorm measured again on the fold's training images
(SWA, saltnet.training.snapshots: one prediction). Prints each variant's OOF competition score at threshold 0.5
and after the post-processing search (as rule postprocess), and the seconds it took here. Run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from saltnet.data.folds import fold_indices
from saltnet.data.pack import load_packed
from saltnet.evaluation.oof import load_oof, run_oof_files
from saltnet.evaluation.postprocess import raw_and_postprocessed
from saltnet.inference.predict import predict_probs
from saltnet.models import build_model, get_model_spec
from saltnet.models.modelfile import read_model_file
from saltnet.models.weights import load_state_dict_file
from saltnet.training.snapshots import average_weights, recompute_batchnorm, snapshot_files


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results",
                        help="a run's results/ folder (packed/, {stage}/, checkpoints/, predict/fold*/oof.npz)")
    parser.add_argument("--stage", default="finetune", choices=["train", "finetune"])
    parser.add_argument("--ensemble", type=int, nargs="*", default=[2, 3, 5], help="k of the snapshot ensembles")
    parser.add_argument("--swa", type=int, nargs="*", default=[2, 3, 5], help="k of the weight averages")
    parser.add_argument("--out", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    results = Path(args.results)
    oof_files = run_oof_files(results)
    packed, table = load_packed(results / "packed/train.npz"), pd.read_parquet(results / "folds.parquet")
    oof = load_oof(packed, oof_files, complete=True)
    folds = sorted(oof_files)
    # The architecture, size and batch from the stage's model file of the first fold (all folds share them).
    first = read_model_file(results / f"{args.stage}/fold{folds[0]}/model.pth")
    input_size = get_model_spec(first.model).input_size(first.size, oof.images.shape[-1])
    cpu = torch.device("cpu")

    def predict(state: dict, fold: int, desc: str, batchnorm: bool = False) -> np.ndarray:
        model = build_model(first.model, "none", first.size)
        model.load_state_dict(state)
        if batchnorm:  # the fold's training images in the order train_fold's swa measures them
            recompute_batchnorm(model, packed.images[fold_indices(table, packed.ids, fold)[0]], input_size,
                                first.settings["batch_size"])
        return predict_probs(model, oof.images[oof.fold == fold], input_size, cpu, 64, tta=True, desc=desc)

    variants: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}

    def timed(name: str, make) -> None:
        started = time.time()
        variants.setdefault(name, []).append(make())
        seconds[name] = seconds.get(name, 0.0) + time.time() - started

    for fold in folds:
        files = snapshot_files(results / f"checkpoints/{args.stage}/fold{fold}/snapshots")
        states = [load_state_dict_file(str(f)) for f in files]
        if max(args.ensemble + args.swa) > len(states):
            raise SystemExit(f"fold {fold}: {len(states)} snapshots kept, fewer than --ensemble/--swa ask")
        final = read_model_file(results / f"{args.stage}/fold{fold}/model.pth").state_dict
        timed("final", lambda: predict(final, fold, f"final fold {fold}"))
        single, took = [], []  # each snapshot's probabilities and prediction seconds, newest first
        for file, state in zip(reversed(files), reversed(states)):
            started = time.time()
            single.append(predict(state, fold, f"{file.stem} fold {fold}"))
            took.append(time.time() - started)
        for k in args.ensemble:
            variants.setdefault(f"ensemble_{k}", []).append(np.mean(single[:k], axis=0))
            seconds[f"ensemble_{k}"] = seconds.get(f"ensemble_{k}", 0.0) + sum(took[:k])
        for k in args.swa:
            timed(f"swa_{k}", lambda: predict(average_weights(states[-k:]), fold, f"swa {k} fold {fold}",
                                              batchnorm=True))
        print(f"fold {fold}: snapshots {[f.stem for f in files]}", flush=True)
    out = {}
    for name, parts in variants.items():
        out[name] = {**raw_and_postprocessed(np.concatenate(parts).astype(np.float32), oof.truth),
                     "seconds": round(seconds[name], 1)}
        print(name, json.dumps(out[name]), flush=True)
    out["run's own oof.npz"] = raw_and_postprocessed(oof.probs.astype(np.float32), oof.truth)
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
