"""Config values as a user types them on `snakemake --config`, turned into the types the schema asks for.

Snakemake 9 parses `--config key=value` with int(), float(), then only `True`/`False` as booleans,
then YAML's BaseLoader, which keeps every scalar a string: `bf16=false` arrives as 'false',
`folds={n: 3}` as {'n': '3'}, `gpu_slots=null` as 'null'. `coerce_config` walks the config next to
the JSON schema and re-reads such strings with `yaml.safe_load` where the schema expects something
else; a value that still does not fit is left as it was, so the schema's own error names it.
Imports only yaml: common.smk calls it on every `snakemake -n`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

__all__ = ["load_schema", "schema_defaults", "coerce_config"]

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


def load_schema(path: str | Path) -> dict:
    """The config schema (YAML or JSON) as a dict."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def schema_defaults(schema: dict) -> dict:
    """The top-level keys that have a default, with it (what Snakemake's validate fills in)."""
    return {key: spec["default"] for key, spec in schema.get("properties", {}).items() if "default" in spec}


def coerce_config(config: dict, schema: dict) -> dict:
    """Parse the string values of `config` that the schema wants as another type; in place, returned.

    Raises ValueError for a dotted top-level key such as 'folds.n', which Snakemake does not nest.
    """
    for key in config:
        if "." in key:
            raise ValueError(_dotted_key_message(key, config[key]))
    return _coerce(config, schema, schema)


def _dotted_key_message(key: str, value) -> str:
    head, *rest = key.split(".")
    nested = value
    for part in reversed(rest):
        nested = {part: nested}
    flow = yaml.safe_dump(nested, default_flow_style=True, width=1000).strip()
    return (f"config key {key!r}: Snakemake does not nest keys with dots; "
            f"write --config '{head}={flow}' (or {head}: {flow} in a config file)")


def _resolve(schema: dict, root: dict) -> dict:
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
    schema = _resolve(schema, root)
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
