"""What a pseudo-label rule would keep, and how good those labels are, measured on a finished run's
out-of-fold predictions: images its models never trained on, as fold k's finetune model never saw the
test images it labels (saltnet.training.pseudo.rule_quality).

    .venv/bin/python tools/pseudo_rules.py runs/cpu86 --rules 0.2/0.8/0.9 0.25/0.75/0.9 0.3/0.7/0.9

A rule low/high/share keeps an image when at least `share` of its pixels are below `low` or above
`high`. The run's OOF comes from its last stage's models, a little better than the finetune models
that label the test set, so read the table as an upper bound on label quality. Prints JSON rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saltnet.evaluation.oof import load_oof, run_oof_files
from saltnet.training.pseudo import rule_quality


def _rule(text: str) -> tuple[float, float, float]:
    try:
        low, high, share = (float(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a rule is low/high/share, e.g. 0.2/0.8/0.9 (got {text!r})") from None
    if not 0 <= low <= high <= 1 or not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"need 0 <= low <= high <= 1 and 0 <= share <= 1 (got {text!r})")
    return low, high, share


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a finished run's folder (its results/ holds predict/fold*/oof.npz)")
    p.add_argument("--rules", type=_rule, nargs="+", default=[(0.2, 0.8, 0.9), (0.25, 0.75, 0.9), (0.3, 0.7, 0.9)])
    args = p.parse_args(argv)
    results = args.run / "results"
    files = run_oof_files(results)
    if not files:
        p.error(f"{results}: no predict/fold*/oof.npz (is it a finished run's folder?)")
    oof = load_oof(results / "packed" / "train.npz", files)
    rows = rule_quality(oof.probs, oof.truth, args.rules)
    print(json.dumps({"run": str(args.run), "images": len(oof.ids), "rules": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
