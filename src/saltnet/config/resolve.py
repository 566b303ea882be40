"""The run's config: the schema's defaults, then the config files, then `--config`; one function for all.

`resolve_config` is what the Snakefile (workflow/rules/common.smk) calls on the config files the user
named (or, with none, `./config.yaml` where the working directory has one, else the demo preset) and
the `--config` entries; every tool, proxy, benchmark and gpu-check that needs a preset's settings calls
it too, so they all see the recipe a real run trains. The schema is the one place of every default.

Config values as a user types them on `snakemake --config`, turned into the types the schema asks for:

Snakemake 9 parses `--config key=value` with int(), float(), then only `True`/`False` as booleans,
then YAML's BaseLoader, which keeps every scalar a string: `bf16=false` arrives as 'false',
`folds={n: 3}` as {'n': '3'}, `gpu_slots=null` as 'null'. `coerce_config` walks the config next to
the JSON schema and re-reads such strings with `yaml.safe_load` where the schema expects something
else; a value that still does not fit is left as it was, so the schema's own error names it.
Imports only yaml: common.smk calls it on every `snakemake -n`.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import yaml

__all__ = ["REPO", "SCHEMA_PATH", "PRESETS", "DEMO_PRESET", "ConfigError", "load_schema", "schema_defaults",
           "coerce_config", "with_defaults", "complete_config", "INHERITED", "check_augment", "validate_config",
           "merge_config", "config_files", "resolve_config",
           "parse_overrides", "preset_path", "resolve_ref", "check_folds", "check_predict_stages", "predict_stages",
           "trained_stages", "run_folds", "nest", "stop"]

REPO = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
PRESETS = REPO / "workflow/presets"
DEMO_PRESET = PRESETS / "demo.yaml"
STAGES = ("train", "finetune", "pseudo")  # pseudo: null where the run has no pseudo-label stage


class ConfigError(ValueError):
    """A config that the schema refuses; the message names the key, the value and what was wrong."""


def stop(error) -> NoReturn:
    """A mistake in the config or the data paths, found by a Snakefile: its message alone on stderr, exit 1,
    before any job (no traceback: the message names the key or file, what was wrong and what to write)."""
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)

# JSON schema type name -> check; bool is not a number in JSON schema.
_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The config schema (YAML or JSON) as a dict, read once per process and file (callers do not modify it)."""
    return _read_schema(str(Path(path).resolve()))


@functools.lru_cache(maxsize=None)
def _read_schema(path: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"config schema {path} not found: saltnet reads it from its checkout (install it "
                                "with pip install -e, as make does, and run it from there)")
    with open(path) as handle:
        return yaml.safe_load(handle)


def schema_defaults(schema: dict | None = None, section: str | None = None) -> dict:
    """The keys that have a default in the schema, with it: the top level, or the properties of `section`
    (a top-level key such as 'augment', or a definition such as 'stage')."""
    schema = schema or load_schema()
    node = schema
    if section is not None:
        node = schema.get("definitions", {}).get(section) or resolve_ref(schema["properties"][section], schema)
    return {key: copy.deepcopy(spec["default"]) for key, spec in node.get("properties", {}).items()
            if "default" in spec}


def preset_path(name: str) -> Path:
    """workflow/presets/<name>.yaml, or `name` itself where it is a file."""
    path = PRESETS / f"{name}.yaml"
    if path.is_file():
        return path
    if Path(name).is_file():
        return Path(name)
    known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
    raise ConfigError(f"preset {name!r}: neither workflow/presets/{name}.yaml nor a file (presets: {known})")


def config_files(named: list, cwd: str | Path = ".") -> list[Path]:
    """The config files of a run: those named with --configfile; with none, ./config.yaml where the working
    directory holds one, else the demo preset. Never two of these merged: a preset inherits nothing."""
    if named:
        return [Path(f) for f in named]
    local = Path(cwd) / "config.yaml"
    return [local] if local.is_file() else [DEMO_PRESET]


def merge_config(base: dict, update: Mapping) -> dict:
    """`update` merged into `base`, nested mappings key by key (as Snakemake merges --configfile and
    --config); in place, returned."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return base


def _load_file(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: holds a {type(loaded).__name__}, not a mapping of config keys")
    return loaded


def resolve_config(files: list = (), overrides: Mapping | None = None, schema: dict | None = None) -> dict:
    """The config of a run: the schema's defaults, then each file in order, then `overrides` (the
    --config entries, as Snakemake delivers them or as the YAML types), coerced and validated.

    A stage's `loss` or `augment` not given is the top-level one, written into the stage, so that the
    result states every stage's recipe. Raises ConfigError naming the key and what was wrong.
    """
    schema = schema or load_schema()
    config: dict = {}
    for path in files:
        merge_config(config, _load_file(path))
    merge_config(config, overrides or {})
    try:
        coerce_config(config, schema)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    def check(filled: dict) -> None:
        validate_config(filled, schema)
        check_augment(filled)

    config = complete_config(config, schema, check)
    check_folds(config["folds"])
    config["predict"]["stages"] = check_predict_stages(config)
    return config


# A stage's keys that, not given, are the top-level key's value (written into the stage).
INHERITED = ("loss", "augment")


def complete_config(config: dict, schema: dict | None = None, check=None) -> dict:
    """A copy of a config (a run's config.yaml, written before a key existed, or a resolved one) as
    resolve_config completes it: the schema's defaults, then each stage's INHERITED keys where it states
    none. check(config), where given, runs in between (the stages' own keys checked, the copies of the
    top-level ones not yet there: a wrong top-level key is named once); so that two configs of one recipe
    compare equal."""
    schema = schema or load_schema()
    silent = {key: [stage for stage in STAGES if isinstance(config.get(stage), dict) and key not in config[stage]]
              for key in INHERITED}
    config = with_defaults(config, schema)
    for stage in STAGES:
        if isinstance(config.get(stage), dict):
            config[stage] = _fill(config[stage], schema["definitions"]["stage"], schema)  # pseudo's anyOf: not filled
    if check is not None:
        check(config)
    for key, stages in silent.items():
        for stage in stages:  # the defaults may have filled it with the key's own: the top-level one replaces them
            config[stage][key] = copy.deepcopy(config[key])
    return config


# The keys an affine map or brightness change needs; with augment.p 0 no image gets them.
_AUGMENT_BY_P = ("shift", "scale", "rotate", "brightness")


def check_augment(config: dict) -> None:
    """What the schema cannot say of key augment (top level or a stage's): a shift, scale, rotation or
    brightness with p 0 would be silently ignored."""
    for name, augment in [("augment", config.get("augment"))] + [
            (f"{stage}.augment", (config.get(stage) or {}).get("augment")) for stage in STAGES]:
        if augment and augment.get("p", 0) == 0:
            unused = [f"{k} {augment[k]}" for k in _AUGMENT_BY_P if augment.get(k, 0) > 0]
            if unused:
                raise ConfigError(f"config key {name}: {', '.join(unused)} would do nothing with p 0 (the chance "
                                  f"that an image gets them); set {name}.p above 0, or leave them out")


def check_folds(folds: dict) -> None:
    """What the schema cannot say of key folds: every fold of folds.run is one of the n folds."""
    outside = [k for k in folds.get("run") or [] if k >= folds["n"]]
    if outside:
        raise ConfigError(f"config key folds.run: fold {outside[0]} is not one of the folds.n = {folds['n']} "
                          f"folds (they are 0 to {folds['n'] - 1}); write e.g. folds={{n: {folds['n']}, run: [0]}}")


def check_predict_stages(config: dict) -> list[str]:
    """config predict.stages in training order, less the stages this run does not train (a preset's
    [finetune, pseudo] with pseudo: null is [finetune]), which the resolved config then states; what the schema
    cannot say: the last stage must be among them (its folds' predictions come after all training, as the time
    budget plans them)."""
    given, present = config["predict"].get("stages") or [], trained_stages(config)
    named = [stage for stage in present if stage in given]  # in training order
    if given and present[-1] not in named:
        raise ConfigError(f"config key predict.stages: {given} leaves out the last stage this run trains, "
                          f"{present[-1]!r}, which would then train for nothing; name it too (e.g. "
                          f"{[*named, present[-1]]}), or [] for its models alone")
    return named


def predict_stages(config: dict) -> list[str]:
    """The stages whose models predict, of a resolved config (its predict.stages, which check_predict_stages put
    in training order): [] is the last stage's."""
    return config["predict"]["stages"] or trained_stages(config)[-1:]


def trained_stages(config: dict) -> list[str]:
    """The stages a config trains, in order (pseudo: null trains none): the DAG's STAGES."""
    return [stage for stage in STAGES if config.get(stage)]


def run_folds(folds: dict) -> list[int]:
    """The folds a run trains and predicts: folds.run in ascending order, or all folds.n."""
    return sorted(folds.get("run") or range(folds["n"]))


def with_defaults(config: dict, schema: dict) -> dict:
    """A copy of `config` with every default of the schema filled in, nested objects included."""
    return _fill(copy.deepcopy(config), schema, schema)


def _fill(value, schema: dict, root: dict):
    schema = resolve_ref(schema, root)
    if isinstance(value, dict):
        required = schema.get("required", [])
        for key, spec in schema.get("properties", {}).items():
            spec = resolve_ref(spec, root)
            if key not in value and "default" in spec:
                value[key] = copy.deepcopy(spec["default"])
            elif key not in value and key not in required and "properties" in spec:
                value[key] = {}  # an optional section: its keys' own defaults fill it
            if key in value:
                value[key] = _fill(value[key], spec, root)
    return value


def validate_config(config: dict, schema: dict) -> None:
    """Raise ConfigError with a few lines naming each wrong key, its value and the rule it breaks."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        lines = [_error_line(error, schema) for error in errors[:5]]
        more = f"\n(and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ConfigError("\n".join(dict.fromkeys(lines)) + more)


def _error_line(error, schema: dict) -> str:
    if error.validator == "anyOf" and isinstance(error.instance, dict):  # pseudo: null or a stage; the stage's
        inner = [e for e in error.context if e.validator != "type"]        # own complaint names the key
        if inner:
            return _error_line(inner[0], schema)
    path = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties":
        allowed = sorted(resolve_ref(error.schema, schema).get("properties", {}))
        unknown = ", ".join(sorted(set(error.instance) - set(allowed)))
        where = f"in {path}: " if path else ""
        hint = ""
        if any(":" in str(key) for key in set(error.instance) - set(allowed)):  # YAML's {n:20} is one key 'n:20'
            hint = "; YAML needs a space after each colon: write {n: 20}, not {n:20}"
        return f"config key {where}{unknown}: unknown (known keys: {', '.join(allowed)}){hint}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        key = f"{path}.{missing}" if path else missing
        return f"config key {key}: missing (workflow/schemas/config.schema.yaml describes it)"
    about = resolve_ref(error.schema, schema).get("description", "") if isinstance(error.schema, dict) else ""
    about = f" ({about})" if about and len(about) <= 240 else ""
    return f"config key {path or '(top level)'}: {error.message}{about}"


def parse_overrides(entries: list[str]) -> dict:
    """`key=value` entries as `snakemake --config` takes them (values read as YAML), for tools that take
    the same overrides: ['folds={n: 2}', 'aux_weight=0.5'] -> {'folds': {'n': 2}, 'aux_weight': 0.5}."""
    overrides: dict = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {entry!r}: write key=value, e.g. aux_weight=0.5 or 'finetune={{lr: 2e-3}}'")
        merge_config(overrides, {key: yaml.safe_load(text) if text else None})
    return overrides


def coerce_config(config: dict, schema: dict) -> dict:
    """Parse the string values of `config` that the schema wants as another type; in place, returned.

    Raises ValueError for a dotted top-level key such as 'folds.n', which Snakemake does not nest.
    """
    for key in config:
        if "." in key:
            raise ValueError(_dotted_key_message(key, config[key]))
    return _coerce(config, schema, schema)


def nest(key: str, value):
    """'train.lr', 3e-3 -> {'train': {'lr': 3e-3}}; a key without dots -> value itself under it."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _dotted_key_message(key: str, value) -> str:
    head, _, rest = key.partition(".")
    flow = yaml.safe_dump(nest(rest, value), default_flow_style=True, width=1000).strip()
    return (f"config key {key!r}: Snakemake does not nest keys with dots; "
            f"write --config '{head}={flow}' (or {head}: {flow} in a config file)")


def resolve_ref(schema: dict, root: dict) -> dict:
    """`schema` with a local `$ref` ("#/definitions/stage") replaced by its target, siblings kept."""
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"config schema: only local $ref are supported, got {ref!r}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _coerce(value, schema: dict, root: dict):
    """`value` fitted to `schema`: strings re-read where needed, then objects and arrays entered."""
    schema = resolve_ref(schema, root)
    if "anyOf" in schema:  # e.g. pseudo: null or a stage; --config pseudo=null arrives as the string 'null'
        schema = _alternative(value, [resolve_ref(option, root) for option in schema["anyOf"]])
    if isinstance(value, str) and not _fits(value, schema):
        value = _parse(value, schema)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in value:
            if key in properties:
                value[key] = _coerce(value[key], properties[key], root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value[:] = [_coerce(item, schema["items"], root) for item in value]
    return value


def _alternative(value, options: list[dict]) -> dict:
    """The first of an anyOf's `options` that `value` fits as it is, else the first it fits once read as
    YAML, else the first (validation then names what was wrong)."""
    for option in options:
        if _fits(value, option):
            return option
    if isinstance(value, str):
        for option in options:
            if _parse(value, option) is not value:
                return option
    return options[0]


def _fits(value, schema: dict) -> bool:
    """Whether `value` has one of the schema's types and is in its enum (when it has them)."""
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPE_CHECKS[name](value) for name in types if name in _TYPE_CHECKS):
            return False
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return False  # e.g. threshold: number or 'auto' -> the string '0.4' is a number to parse
    if "enum" in schema:  # type() too: in Python True == 1, in JSON schema not
        return any(value == choice and type(value) is type(choice) for choice in schema["enum"])
    return True


def _parse(text: str, schema: dict):
    """`text` read as YAML if the result fits the schema, else `text` unchanged."""
    if "type" not in schema and "enum" not in schema:
        return text
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string; --config reads it as a number
        try:
            parsed = float(text) if math.isfinite(float(text)) else parsed
        except ValueError:
            pass
    return parsed if _fits(parsed, schema) else text
