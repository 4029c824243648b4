"""Cell diagrams: the drawing holds exactly the genotype's edges and ops, the files are written and are the
same bytes on every call, and the SVG keeps the op names as text."""

from __future__ import annotations

import pytest

from pdarts.errors import PdartsError
from pdarts.genotype import GENOTYPES
from pdarts.report.cells import OUTPUT, cell_drawing, draw_cell
from pdarts.search_space import CELL_TYPES

CASES = [(name, cell) for name in ("PDARTS", "DARTS_V2") for cell in CELL_TYPES]


def _label(source: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(source, str(source - 2))


def _expected_op_edges(pairs) -> set[tuple[str, str, str]]:
    return {(_label(source), str(index // 2), op) for index, (op, source) in enumerate(pairs)}


@pytest.mark.parametrize(("name", "cell"), CASES)
def test_the_drawing_holds_exactly_the_genotype_edges(tmp_path, name, cell):
    pairs = getattr(GENOTYPES[name], cell)
    drawn = draw_cell(GENOTYPES[name], cell, tmp_path / cell)
    for drawing in (drawn, cell_drawing(pairs, cell)):
        op_edges = {(e.source, e.target, e.label) for e in drawing.edges if e.label}
        assert op_edges == _expected_op_edges(pairs)
        assert len([e for e in drawing.edges if e.label]) == 8
        concat = [e for e in drawing.edges if not e.label]
        assert sorted((e.source, e.target) for e in concat) == [(str(n), OUTPUT) for n in range(4)]
        assert drawing.nodes == ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", OUTPUT)
        assert set(drawing.positions) == set(drawing.nodes)
        assert all(e.label_xy is not None for e in drawing.edges if e.label)
    assert drawn == cell_drawing(pairs, cell)


@pytest.mark.parametrize(("name", "cell"), CASES)
def test_png_and_svg_are_written_and_reproducible(tmp_path, name, cell):
    genotype = GENOTYPES[name]
    draw_cell(genotype, cell, tmp_path / "first" / cell)
    draw_cell(genotype, cell, tmp_path / "second" / cell)
    for suffix in ("png", "svg"):
        first = (tmp_path / "first" / f"{cell}.{suffix}").read_bytes()
        assert first
        assert first == (tmp_path / "second" / f"{cell}.{suffix}").read_bytes()
    assert (tmp_path / "first" / f"{cell}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (tmp_path / "first" / f"{cell}.svg").read_text()
    for op, _ in getattr(genotype, cell):
        assert f">{op}</text>" in svg
    assert not list(tmp_path.rglob("*.tmp")), "temporary files are left behind"


def test_a_second_edge_between_the_same_states_is_bent_apart():
    pairs = [("skip_connect", 0), ("sep_conv_3x3", 0)] + list(GENOTYPES["PDARTS"].normal[2:])
    drawing = cell_drawing(pairs, "normal")
    first, second = (e for e in drawing.edges if (e.source, e.target) == ("c_{k-2}", "0"))
    assert abs(first.rad - second.rad) >= 0.3
    assert first.label_xy != second.label_xy


@pytest.mark.parametrize(
    ("pairs", "cell"),
    [
        (GENOTYPES["PDARTS"].normal, "reduction"),
        (GENOTYPES["PDARTS"].normal[:6], "normal"),
        ((("conv_7x7", 0),) + GENOTYPES["PDARTS"].normal[1:], "normal"),
        ((("skip_connect", 2),) + GENOTYPES["PDARTS"].normal[1:], "normal"),
    ],
)
def test_a_bad_cell_is_refused(pairs, cell):
    with pytest.raises(PdartsError):
        cell_drawing(pairs, cell)
