"""An experiment file: a base preset, a proxy schedule, the variants to compare and the seeds to run
each with. `load_experiment` reads and checks it (every variant's config resolved against the schema
before anything runs) and expands it into runs: one per variant and seed, each an ordinary run folder
`runs/<experiment>/<variant>/seed<s>/` whose `config.yaml` is the whole config of that run.

    description: aux_weight of the deep supervision, on one fold of the CPU preset
    base: cpu                        # a preset of workflow/presets, or a config file
    proxy:                           # config entries every variant shares: the comparison's schedule
      folds: {run: [0]}
      budget_minutes: null
      train: {epochs: 8}
    seeds: [42, 43]                  # optional: each variant runs once per seed
    seed_keys: [seed]                # the config keys a seed sets (dotted: folds.seed); default [seed]
    variants:                        # name -> config entries, merged over base and proxy
      aux_0.1: {aux_weight: 0.1}
    vary:                            # or/and: key -> values; one variant per value (a grid for several keys)
      finetune.lr: [5.0e-4, 2.0e-3]
    baseline: base                   # the variant the others are compared with (default: base, the
                                     # base preset with the proxy and nothing changed, always run)
    analyses: [tta]                  # optional, costly: tta (test-time views), snapshots (needs snapshots: 2+)

Imports only yaml (and saltnet.config.resolve): the sweep Snakefile calls it on every dry run.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from saltnet.config.resolve import (
    ConfigError,
    complete_config,
    load_schema,
    merge_config,
    nest,
    preset_path,
    resolve_config,
)
from saltnet.evaluation.outputs import CHEAP_ANALYSES, COSTLY_ANALYSES, analysis_path

__all__ = ["BASE", "Experiment", "Run", "load_experiment", "flatten", "config_differences"]

BASE = "base"
KEYS = {"description", "base", "proxy", "seeds", "seed_keys", "variants", "vary", "baseline", "data_dir", "analyses"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Run:
    """One variant at one seed: its folder (relative to the sweep's working directory) and whole config."""

    variant: str
    seed: int | None
    folder: str
    config: dict = field(compare=False)


@dataclass
class Experiment:
    name: str
    path: Path
    description: str
    baseline: str
    variants: dict[str, dict]  # name -> the config entries it changes (over base and proxy)
    runs: list[Run]
    analyses: list[str] = field(default_factory=list)

    def run_outputs(self) -> list[str]:
        """What each run must end with, relative to its folder: scores, provenance, analyses."""
        return ["results/cv_score.json", "results/run_info.json",
                *map(analysis_path, (*CHEAP_ANALYSES, *self.analyses))]

    def runs_of(self, variant: str) -> list[Run]:
        return [run for run in self.runs if run.variant == variant]


def flatten(config: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 1}} -> {'train.lr': 1}; lists and scalars are leaves."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def with_schema_defaults(config: dict) -> dict:
    """`config` with the schema's defaults filled in: a config.yaml written before a key existed, or one that
    states a key at its default, compares equal to one that does not (each stage's loss and augment
    included, as resolve_config writes them)."""
    return complete_config(config, load_schema())


def config_differences(config: dict, baseline: dict, ignore: tuple = ()) -> dict:
    """{dotted key: value} of `config` where it differs from `baseline` (keys in `ignore` left out)."""
    mine, theirs = flatten(config), flatten(baseline)
    return {k: v for k, v in sorted(mine.items()) if k not in ignore and theirs.get(k, object()) != v}


def _fail(path: Path, message: str):
    raise ConfigError(f"experiment {path}: {message}")


def _mapping(path: Path, raw: dict, key: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        _fail(path, f"key {key}: write a mapping of config keys, not {type(value).__name__} {value!r}")
    return value


def _variant_name(key: str, value) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=1000)
    text = text.strip().removesuffix("...").strip()  # YAML's end-of-document mark after a scalar
    return f"{key}-{text.strip('[]{}')}"


def _variants(path: Path, raw: dict) -> dict[str, dict]:
    variants = {BASE: {}}
    for name, entries in _mapping(path, raw, "variants").items():
        if name in variants:
            _fail(path, f"variant {name!r}: the name {BASE!r} is the base preset with the proxy, name it otherwise")
        if not isinstance(entries, dict):
            _fail(path, f"variant {name!r}: write a mapping of config keys (e.g. {{aux_weight: 0.1}}), not {entries!r}")
        variants[str(name)] = entries
    vary = _mapping(path, raw, "vary")
    for key, values in vary.items():
        if not isinstance(values, list) or not values:
            _fail(path, f"vary key {key}: write a list of values, e.g. {key}: [0.1, 0.3]")
    for combo in itertools.product(*vary.values()) if vary else ():
        entries, names = {}, []
        for key, value in zip(vary, combo):
            merge_config(entries, nest(key, value))
            names.append(_variant_name(key, value))
        name = "_".join(names).replace(" ", "")
        if name in variants:
            _fail(path, f"variant {name!r} is both in variants and made by vary")
        variants[name] = entries
    for name in variants:
        if not NAME.match(name):
            _fail(path, f"variant {name!r}: a folder name of letters, digits and _ . + - only")
    return variants


def _seeds(path: Path, raw: dict) -> tuple[list, list[str]]:
    if "seeds" not in raw:
        return [None], ["seed"]  # each variant once, at the base's own seed
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                           for s in seeds):
        _fail(path, f"key seeds: write a list of integers at least 0, e.g. seeds: [42, 43], not {seeds!r}")
    if len(set(seeds)) != len(seeds):
        _fail(path, f"key seeds: {seeds} names a seed twice")
    keys = raw.get("seed_keys", ["seed"])
    if not isinstance(keys, list) or not keys or not all(k in ("seed", "folds.seed") for k in keys):
        _fail(path, f"key seed_keys: a list of seed and/or folds.seed, not {keys!r}")
    return seeds, keys


def load_experiment(path: str | Path, data_dir: str | None = None, runs_dir: str = "runs") -> Experiment:
    """Read experiment file `path` and expand it into runs; every run's config is resolved against the
    schema here, so a mistake in any variant stops the sweep before any job (ConfigError naming the file,
    the variant and the key). data_dir: overrides the file's (relative paths become absolute)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"experiment {path}: does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"experiment {path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        _fail(path, "write a mapping with keys base, proxy, variants or vary, seeds (see experiments/README.md)")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        _fail(path, f"key {unknown[0]}: unknown (known keys: {', '.join(sorted(KEYS))})")
    if "base" not in raw:
        _fail(path, "key base: missing; name a preset (demo, cpu, competition) or a config file")
    name = path.stem
    if not NAME.match(name):
        _fail(path, "the file's name is the experiment's folder under runs/: letters, digits and _ . + - only")
    base_file = preset_path(str(raw["base"]))
    base = yaml.safe_load(base_file.read_text()) or {}
    proxy = _mapping(path, raw, "proxy")
    variants = _variants(path, raw)
    baseline = str(raw.get("baseline", BASE))
    if baseline not in variants:
        _fail(path, f"key baseline: {baseline!r} is not a variant (variants: {', '.join(variants)})")
    seeds, seed_keys = _seeds(path, raw)
    analyses = raw.get("analyses", [])
    if not isinstance(analyses, list) or not set(analyses) <= set(COSTLY_ANALYSES):
        _fail(path, f"key analyses: a list of {', '.join(COSTLY_ANALYSES)} (the costly analyses each run makes), "
                    f"not {analyses!r}")
    data_dir = data_dir or raw.get("data_dir") or base.get("data_dir")
    if data_dir is None:
        _fail(path, "data_dir: not set; give it in the experiment file or as --config data_dir=/path/to/tgs")
    if data_dir != "demo":
        data_dir = str(Path(data_dir).expanduser().resolve())  # each run works in its own folder
    runs = []
    for variant, entries in variants.items():
        for seed in seeds:
            config = merge_config(merge_config(copy.deepcopy(base), proxy), entries)
            for key in seed_keys if seed is not None else ():
                merge_config(config, nest(key, seed))
            config["data_dir"] = data_dir
            where = f"variant {variant}" + (f", seed {seed}" if seed is not None else "")
            try:
                resolved = resolve_config([], config)
            except ConfigError as err:
                raise ConfigError(f"experiment {path}, {where}: {err}") from None
            if "snapshots" in analyses and resolved["snapshots"] < 2:
                _fail(path, f"{where}: analyses snapshots needs config key snapshots of at least 2 (the run keeps "
                            f"that many last epochs), it is {resolved['snapshots']}; add snapshots: 3 to the proxy")
            folder = f"{runs_dir}/{name}/{variant}" + (f"/seed{seed}" if seed is not None else "")
            runs.append(Run(variant, seed, folder, config))
    return Experiment(name, path, str(raw.get("description", "")), baseline, variants, runs, list(analyses))
