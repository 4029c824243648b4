"""The settings schema (``schemas/params.schema.yaml``), reading params files, and validation.

The JSON Schema is the one description of every setting: its keys, types, ranges and defaults. The
typed settings of each section and the rules across keys live in :mod:`pdarts.settings`, which
validates with this module; each step's command-line options are built from the schema too.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import PdartsError

__all__ = [
    "SCHEMA_PATH",
    "load_schema",
    "section_schema",
    "resolved_schema",
    "schema_error",
    "validate_section",
    "load_params",
]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "params.schema.yaml"


@functools.cache
def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as handle:
        return yaml.safe_load(handle)


def _resolve_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inlines local ``$ref``s (keywords beside a ``$ref`` override the referenced ones)."""
    if isinstance(node, dict):
        node = {k: _resolve_refs(v, defs) for k, v in node.items()}
        ref = node.pop("$ref", None)
        if ref is not None:
            return {**_resolve_refs(defs[ref.rsplit("/", 1)[-1]], defs), **node}
        return node
    if isinstance(node, list):
        return [_resolve_refs(v, defs) for v in node]
    return node


@functools.cache
def resolved_schema() -> dict[str, Any]:
    schema = copy.deepcopy(load_schema())
    defs = schema.pop("$defs", {})
    return _resolve_refs(schema, defs)


def section_schema(section: str) -> dict[str, Any]:
    """The schema of one section, e.g. ``"train"`` or ``"search.common"``, with refs inlined."""
    node = resolved_schema()
    for part in section.split("."):
        node = node["properties"][part]
    return node


def _key_path(section: str, path) -> str:
    text = section
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def schema_error(data: Any, schema: Mapping[str, Any], section: str) -> str | None:
    import jsonschema  # imported here: only validation needs it

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    key = _key_path(section, error.absolute_path) or "params"
    message = error.message
    if error.validator == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        message += f"; allowed keys: {allowed}"
    elif (
        error.validator == "type"
        and isinstance(error.instance, str)
        and "number" in str(error.validator_value)
    ):
        message += " (write numbers with a decimal point, e.g. 3.0e-4: YAML reads 3e-4 as text)"
    elif error.validator == "required":
        message += " (every setting must be given)"
    return f"{key}: {message}"


def validate_section(values: Mapping[str, Any], section: str) -> None:
    """Validates one section's values against its schema; raises ``PdartsError`` naming the key."""
    problem = schema_error(dict(values), section_schema(section), section)
    if problem:
        raise PdartsError(problem)


def load_params(path: str | Path) -> dict[str, Any]:
    """Reads a params YAML file (not validated; an empty one is refused)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PdartsError(f"settings file {path} does not exist") from None
    except UnicodeDecodeError:
        raise PdartsError(f"{path} is not a text (UTF-8) file; give the settings as YAML") from None
    except OSError as exc:
        raise PdartsError(f"cannot read settings file {path}: {exc.strerror}") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PdartsError(f"{path} is not valid YAML{where}; fix the syntax") from None
    if params is None:
        raise PdartsError(f"{path} is empty; write the settings (params.yaml shows every one)")
    return params
