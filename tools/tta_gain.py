"""What test-time views and a two-stage ensemble buy on a finished run's out-of-fold images.

    PYTHONPATH=src .venv/bin/python tools/tta_gain.py ../runs/cpu10/results

Re-predicts every fold's own images with that fold's models, one variant at a time: the finetuned model
with the flip alone (what predict_fold did), with the flip and pixel shifts (`predict.shifts`), the
first stage's model with the flip, and the mean of the two stages' probabilities. Each model is built
from what its model file says it is (saltnet.models.modelfile). Prints, per variant,
the OOF competition score at threshold 0.5 and after the post-processing search (threshold, min_area,
min_peak, as rule postprocess), and the seconds its predictions took here. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from saltnet.evaluation.oof import load_oof, run_oof_files
from saltnet.evaluation.postprocess import raw_and_postprocessed
from saltnet.inference.predict import predict_probs
from saltnet.models import get_model_spec
from saltnet.models.modelfile import read_model_file

# variant -> (stage whose model predicts, flip, shifts)
VARIANTS = {
    "finetune_flip": ("finetune", True, []),
    "finetune_flip_h8": ("finetune", True, [(0, 8), (0, -8)]),
    "finetune_flip_hv8": ("finetune", True, [(0, 8), (0, -8), (8, 0), (-8, 0)]),
    "finetune_flip_h16": ("finetune", True, [(0, 16), (0, -16)]),
    "train_flip": ("train", True, []),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a run's results/ folder (packed/, train/, finetune/, predict/fold*/oof.npz)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    results = Path(args.results)
    oof_files = run_oof_files(results)
    oof = load_oof(results / "packed/train.npz", oof_files, complete=True)  # fold by fold, as below
    folds = sorted(oof_files)
    probs, out = {}, {}
    for name in args.variants:
        stage, flip, shifts = VARIANTS[name]
        started, parts = time.time(), []
        for fold in folds:
            found = read_model_file(results / f"{stage}/fold{fold}/model.pth")
            model, input_size = found.build(), get_model_spec(found.model).input_size(found.size, oof.images.shape[-1])
            parts.append(predict_probs(model, oof.images[oof.fold == fold], input_size, torch.device("cpu"),
                                       args.batch_size, tta=flip, shifts=shifts, desc=f"{name} fold {fold}"))
        probs[name] = np.concatenate(parts).astype(np.float32)
        out[name] = {**raw_and_postprocessed(probs[name], oof.truth), "seconds": round(time.time() - started, 1)}
        print(name, json.dumps(out[name]), flush=True)
    if "train_flip" in probs:  # the two stages' models averaged, with each finetune variant
        for name in [n for n in probs if n.startswith("finetune")]:
            mixed = f"{name}+train_flip"
            out[mixed] = raw_and_postprocessed((probs[name] + probs["train_flip"]) / 2, oof.truth)
            print(mixed, json.dumps(out[mixed]), flush=True)
    out["run's own oof.npz"] = raw_and_postprocessed(oof.probs.astype(np.float32), oof.truth)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
