"""The commands' options: one per setting of a section (built from the schema), argument types, and
how --help lists them.

The pipeline passes a section as flags (DVC's ``${section}`` unpacking, mirrored by the Snakefile):
``--key value``, ``--flag`` / ``--no-flag`` for booleans, ``--key a b c`` for lists. DVC writes no flag
at all for an empty list, so a list option that is absent is an empty list, whatever the schema's
default (which params.yaml gets when it leaves the key out). The spelling with hyphens
(``--weight-lr``, ``--no-channels-last``) is accepted too; ``--help`` lists the one params.yaml uses.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any, TypeVar

from ..config import section_schema
from ..settings import Section

_TYPES = {"integer": int, "number": float, "string": str}

S = TypeVar("S", bound=Section)


def _option_kwargs(prop: dict[str, Any]) -> dict[str, Any]:
    if prop.get("type") == "boolean":
        return {"action": BooleanFlag}
    if prop.get("type") == "array":
        item_type = prop.get("items", {}).get("type", "string")
        return {"nargs": "*", "metavar": "ITEM", "type": _TYPES[item_type]}
    if "enum" in prop:
        return {"choices": prop["enum"]}
    return {"type": _TYPES[prop["type"]]}


class BooleanFlag(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag``; the usage line shows the first spelling only."""

    def format_usage(self) -> str:
        return " | ".join(self.option_strings[:2])


class HelpFormatter(argparse.HelpFormatter):
    """Lists an option under its first spelling (and its ``--no-`` form): ``--help`` shows the names
    params.yaml uses, while every spelling is accepted."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = 2 if isinstance(action, argparse.BooleanOptionalAction) else 1
        if len(action.option_strings) > shown:
            action = copy.copy(action)
            action.option_strings = action.option_strings[:shown]
        return super()._format_action_invocation(action)


def add_section_options(parser: argparse.ArgumentParser, section: str) -> None:
    """Adds an option for every setting of ``section`` (default and help from the schema)."""
    group = parser.add_argument_group(f"{section} settings (params.yaml)")
    for key, prop in section_schema(section)["properties"].items():
        help_text = prop.get("description", "")
        default = prop.get("default")
        if prop.get("type") == "array" and not prop.get("minItems"):
            default = []  # DVC drops the flag of an empty list: absent means empty
            help_text += " (absent: none"
            help_text += f"; params.yaml's default: {prop['default']})" if "default" in prop else ")"
        elif "default" in prop:
            help_text += f" (default: {default})"
        required = "default" not in prop and default is None
        add_option(group, key, prop, help=help_text.strip(), default=default, required=required)


def add_option(parser, key: str, prop: dict[str, Any], **kwargs: Any) -> None:
    """``--key`` (and ``--ke-y``) typed as the schema property ``prop`` says."""
    names = [f"--{key}"] + ([f"--{key.replace('_', '-')}"] if "_" in key else [])
    parser.add_argument(*names, dest=key, **kwargs, **_option_kwargs(prop))


def section_settings(args: argparse.Namespace, cls: type[S]) -> S:
    """The section's settings from parsed options, checked as ``check-params`` checks them."""
    return cls.from_dict({key: getattr(args, key) for key in section_schema(cls.section)["properties"]})


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
