"""The pipeline's settings (params.yaml): schema, loading and validation.

The JSON Schema in ``schemas/params.schema.yaml`` is the one description of every setting: the
Snakefile validates its config with it, ``check_params`` validates a whole file with it (plus the
cross-field rules a schema cannot say), and each step's command-line options are built from it.
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
    "validate_section",
    "check_section",
    "check_params",
    "load_params",
]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "params.schema.yaml"
FIRST_STAGE_AFTER = "space"  # the first stage prunes from the initial search space


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
def _resolved_schema() -> dict[str, Any]:
    schema = copy.deepcopy(load_schema())
    defs = schema.pop("$defs", {})
    return _resolve_refs(schema, defs)


def section_schema(section: str) -> dict[str, Any]:
    """The schema of one section, e.g. ``"train"`` or ``"search.common"``, with refs inlined."""
    node = _resolved_schema()
    for part in section.split("."):
        node = node["properties"][part]
    return node


def _key_path(section: str, path) -> str:
    text = section
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _first_error(data: Any, schema: Mapping[str, Any], section: str) -> str | None:
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
    problem = _first_error(dict(values), section_schema(section), section)
    if problem:
        raise PdartsError(problem)


def _check_stages(params: Mapping[str, Any]) -> None:
    stages = params["search"]["stages"]
    names = [stage["name"] for stage in stages]
    if FIRST_STAGE_AFTER in names or len(set(names)) != len(names):
        raise PdartsError(f"search.stages: names must be unique and not {FIRST_STAGE_AFTER!r}, got {names}")
    previous_name, previous_ops = FIRST_STAGE_AFTER, len(params["search"]["space"]["ops"])
    for index, stage in enumerate(stages):
        key = f"search.stages[{index}]"
        if stage["after"] != previous_name:
            raise PdartsError(
                f"{key}.after: must be {previous_name!r} (the stage before it), got {stage['after']!r}"
            )
        if stage["ops"] > previous_ops:
            source = "search.space.ops" if index == 0 else f"search.stages[{index - 1}].ops"
            raise PdartsError(
                f"{key}.ops: {stage['ops']} is more than the {previous_ops} ops of {source}; "
                "ops searched must not grow across stages"
            )
        previous_name, previous_ops = stage["name"], stage["ops"]


def _check_processes(section: str, settings: Mapping[str, Any]) -> None:
    if settings["batch_size"] % settings["processes"]:
        raise PdartsError(
            f"{section}.batch_size: {settings['batch_size']} is not a multiple of {section}.processes "
            f"({settings['processes']}); it is the total batch over the processes"
        )


def _check_search_common(common: Mapping[str, Any]) -> None:
    if common["warmup_epochs"] > common["epochs"]:
        raise PdartsError(
            f"search.common.warmup_epochs: {common['warmup_epochs']} is more than "
            f"search.common.epochs ({common['epochs']})"
        )
    _check_processes("search.common", common)


def _check_transfer_data(transfer_data: Mapping[str, Any]) -> None:
    if transfer_data["dataset"] == "imagefolder" and not transfer_data["root"]:
        raise PdartsError(
            "transfer_data.root: give the ImageFolder root (with train/ and val/) for dataset imagefolder"
        )


def _check_transfer(transfer: Mapping[str, Any]) -> None:
    if transfer["warmup_epochs"] >= transfer["epochs"]:
        raise PdartsError(
            f"transfer.warmup_epochs: {transfer['warmup_epochs']} must be less than transfer.epochs "
            f"({transfer['epochs']})"
        )
    _check_processes("transfer", transfer)


# The rules within one section that a schema cannot say; each is written once, here, and checked both
# for a whole settings file (check_params) and by the step that takes the section (check_section).
SECTION_RULES = {
    "search.common": _check_search_common,
    "train": lambda train: _check_processes("train", train),
    "transfer_data": _check_transfer_data,
    "transfer": _check_transfer,
}


def check_section(values: Mapping[str, Any], section: str) -> None:
    """Validates one section: its schema, then its cross-field rules (``PdartsError`` names the key)."""
    validate_section(values, section)
    rule = SECTION_RULES.get(section)
    if rule is not None:
        rule(values)


def check_params(params: Any) -> None:
    """Validates a whole settings mapping: the schema, then the cross-field rules.

    Raises:
        PdartsError: one line naming the first bad key and what is allowed.
    """
    problem = _first_error(params, _resolved_schema(), "")
    if problem:
        raise PdartsError(problem)
    _check_stages(params)
    for section, rule in SECTION_RULES.items():
        node = params
        for part in section.split("."):
            node = node[part]
        rule(node)


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
