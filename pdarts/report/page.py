"""The report's pages: one list of blocks (headings, paragraphs, tables, image rows) rendered twice,
as a self-contained ``index.html`` (inline style, no script, images by relative path: it opens
offline from its folder) and as ``summary.md`` (for a CI comment or a repository page).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..genotype import Genotype
from ..search.derivation import MAX_CAP, count_skips
from .content import NETWORKS, Report, decision_margins

__all__ = ["Figures", "blocks", "render_html", "render_markdown"]


@dataclass(frozen=True)
class Figures:
    """The report's image files, relative to its folder."""

    normal: str
    reduce: str
    stages_curves: str
    stages: dict[str, dict[str, str]]  # stage -> {"alphas", "trajectories", "curves"} -> file
    networks: dict[str, str]  # network -> curves file


Block = tuple[
    Any, ...
]  # ("h2", text) | ("p", text) | ("table", header, rows) | ("images", [(file, caption)])


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _seconds(record) -> str:
    return "not recorded" if record is None or record.seconds is None else f"{record.seconds:.1f}"


def _cell_text(pairs) -> str:
    return ", ".join(f"{op}({source})" for op, source in pairs)


def _results(report: Report) -> list[Block]:
    rows = []
    for network in report.networks:
        evaluation, latency = network.evaluation, network.latency_ms
        rows.append(
            [
                NETWORKS[network.name],
                _percent(evaluation["top1_err"]),
                _percent(evaluation["top5_err"]),
                f"{evaluation['params'] / 1e6:.3f} M",
                f"{evaluation['macs'] / 1e6:.2f} M",
                ", ".join(f"{ms:.1f} ms @ {b}" for b, ms in sorted(latency.items())) or "not recorded",
                _seconds(network.training),
            ]
        )
    header = ["network", "top-1 error", "top-5 error", "parameters", "multiply-adds", "latency", "train s"]
    return [("h2", "Results"), ("table", header, rows)]


def _cells(report: Report, figures: Figures) -> list[Block]:
    genotype: Genotype = report.genotype
    return [
        ("h2", "The cells found"),
        ("p", f"Skip-connect cap M = {report.max_skip}; {count_skips(genotype.normal)} skip-connects in the "
         "normal cell. Inputs c_{k-2}, c_{k-1} are the outputs of the two cells before; the cell's output "
         "c_{k} concatenates nodes 0-3."),  # fmt: skip
        ("images", [(figures.normal, "normal cell"), (figures.reduce, "reduction cell")]),
        ("table", ["cell", "(op, input) per node; inputs 0, 1 = c_{k-2}, c_{k-1}; 2.. = nodes 0.."],
         [["normal", _cell_text(genotype.normal)], ["reduce", _cell_text(genotype.reduce)]]),
    ]  # fmt: skip


def _caps(report: Report) -> list[Block]:
    uncapped = report.caps[MAX_CAP].genotype
    rows = []
    for cap in report.caps:
        chosen = "chosen (derive.max_skip)" if cap.max_skip == min(report.max_skip, MAX_CAP) else ""
        same = "same as uncapped" if cap.genotype == uncapped else "capped"
        rows.append([str(cap.max_skip), str(cap.skips), same, chosen, _cell_text(cap.genotype.normal)])
    text = (
        "Derivation keeps at most M skip-connects in the normal cell, replacing the weakest ones by each "
        "edge's next-best op. A cap at or above the uncapped cell's skip count changes nothing."
    )
    header = ["M", "normal skips", "genotype", "", "normal cell"]
    return [("h2", "Skip-connect cap M = 0..8"), ("p", text), ("table", header, rows)]


MARGINS_NOTE = (
    "The smallest gap between a kept and a dropped op at each pruning (softmax weights of the stage "
    "before), and at the derivation between the chosen op or edge and the next one. A gap of the size "
    "that another thread count or memory layout moves the weights by (README: crashes, resume and "
    "reproducibility) means the decision was made by rounding, not by the search."
)


def _stages(report: Report, figures: Figures) -> list[Block]:
    rows = []
    for stage in report.stages:
        last = stage.last
        rows.append(
            [stage.name, str(stage.cells), str(stage.ops), _number(stage.skip_dropout),
             str(len(stage.history)), _number(last.get("train_acc")), _number(last.get("arch_acc")),
             _seconds(stage.record)]
        )  # fmt: skip
    header = ["stage", "cells", "ops/edge", "skip dropout", "epochs", "train acc", "arch acc", "seconds"]
    margins = [
        [decision, "—" if gap is None else f"{gap:.2g}"] for decision, gap in decision_margins(report.stages)
    ]
    blocks: list[Block] = [
        ("h2", "Search stages"),
        ("table", header, rows),
        ("images", [(figures.stages_curves, "every stage's curves, one row per stage")]),
        ("h3", "Decision margins"),
        ("p", MARGINS_NOTE),
        ("table", ["decision", "smallest gap"], margins),
    ]
    for stage in report.stages:
        files = figures.stages[stage.name]
        blocks += [
            ("h3", f"Stage {stage.name}"),
            ("images", [(files["curves"], f"{stage.name}: losses, accuracies, schedules")]),
            ("images", [(files["alphas"], f"{stage.name}: softmax(α) at the end")]),
        ]
        if "trajectories" in files:
            blocks.append(("images", [(files["trajectories"], f"{stage.name}: op weights per epoch")]))
        else:
            blocks.append(("p", "This stage's history has no op weights per epoch: rerun it to draw them."))
    return blocks


def _training(report: Report, figures: Figures) -> list[Block]:
    images = [(figures.networks[n.name], NETWORKS[n.name]) for n in report.networks]
    return [("h2", "Training"), ("images", images)] if images else []


def _steps_and_settings(report: Report) -> list[Block]:
    steps = [[record.step, _seconds(record)] for record in report.records]
    settings = [[key, f"{value}", f"{default}"] for key, value, default in report.changed_settings]
    return [
        ("h2", "Seconds per step"),
        ("p", "From the run records in the logs folder whose outputs are the files reported here."),
        ("table", ["step", "seconds"], steps),
        ("h2", "Settings that differ from the paper's"),
        ("p", "The schema's defaults are the paper's settings; search.stages is listed above."),
        ("table", ["setting", "value", "paper"], settings),
    ]


def blocks(report: Report, figures: Figures) -> list[Block]:
    """The report's content, in order."""
    return [
        ("h1", "P-DARTS run report"),
        *_results(report),
        *_cells(report, figures),
        *_caps(report),
        *_stages(report, figures),
        *_training(report, figures),
        *_steps_and_settings(report),
    ]


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 1em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.images { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
"""


def _html_block(block: Block) -> str:
    kind = block[0]
    if kind in ("h1", "h2", "h3", "p"):
        return f"<{kind}>{html.escape(block[1])}</{kind}>"
    if kind == "table":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2]
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    figures = "".join(
        f'<figure><img src="{html.escape(file)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for file, caption in block[1]
    )
    return f'<div class="images">{figures}</div>'


def render_html(content: Sequence[Block], title: str = "P-DARTS run report") -> str:
    """A self-contained page: inline style, no script, images by relative path."""
    body = "\n".join(_html_block(block) for block in content)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    kind = block[0]
    if kind in ("h1", "h2", "h3"):
        return f"{'#' * int(kind[1])} {block[1]}"
    if kind == "p":
        return block[1]
    if kind == "table":
        lines = ["| " + " | ".join(_md_cell(h) for h in block[1]) + " |", "|" + "---|" * len(block[1])]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block[2]]
        return "\n".join(lines)
    return " ".join(f"![{caption}]({file})" for file, caption in block[1])


def render_markdown(content: Sequence[Block]) -> str:
    return "\n\n".join(_md_block(block) for block in content) + "\n"
