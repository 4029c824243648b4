"""Command-line options built from the settings schema, one option per setting of a section.

The pipeline passes a section as flags (DVC's ``${section}`` unpacking, mirrored by the Snakefile):
``--key value``, ``--flag`` / ``--no-flag`` for booleans, ``--key a b c`` for lists. Both spellings
``--weight_lr`` and ``--weight-lr`` are accepted.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import check_section, section_schema

_TYPES = {"integer": int, "number": float, "string": str}


def add_section_options(parser: argparse.ArgumentParser, section: str) -> None:
    """Adds an option for every setting of ``section`` (default and help from the schema)."""
    group = parser.add_argument_group(f"{section} settings (params.yaml)")
    for key, prop in section_schema(section)["properties"].items():
        names = [f"--{key}"] + ([f"--{key.replace('_', '-')}"] if "_" in key else [])
        kwargs: dict[str, Any] = {"dest": key, "default": prop.get("default")}
        help_text = prop.get("description", "")
        if "default" in prop:
            help_text += f" (default: {prop['default']})"
        if prop.get("type") == "boolean":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif prop.get("type") == "array":
            item_type = prop.get("items", {}).get("type", "string")
            kwargs.update(nargs="*", metavar="ITEM", type=_TYPES[item_type])
        elif "enum" in prop:
            kwargs.update(choices=prop["enum"])
        else:
            kwargs["type"] = _TYPES[prop["type"]]
        if "default" not in prop:
            kwargs["required"] = True
        group.add_argument(*names, help=help_text.strip(), **kwargs)


def section_values(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The section's settings from parsed options, checked as ``check-params`` checks them."""
    values = {key: getattr(args, key) for key in section_schema(section)["properties"]}
    check_section(values, section)
    return values


def int_at_least(minimum: int, note: str = ""):
    """An argparse type: an integer >= ``minimum`` (``note`` is added to the range error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{note}, got {value}")
        return value

    return parse
