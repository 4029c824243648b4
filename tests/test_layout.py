"""The shape of the code base, kept: short functions, a thin command layer, layers that import only
downwards, and documentation that is in the repository (every ``docs/...#anchor`` cited exists)."""

import ast
import re
import subprocess

import pytest

from .conftest import ROOT

LIBRARY = ROOT / "pdarts"
MAX_FUNCTION_LINES = 60
MAX_COMMAND_LINES = 100  # a command module: argument parsing, then read -> call the library -> write
MAX_COMMAND_LAYER_LINES = 800  # all of pdarts/cli/


def _functions(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_of_the_library_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(ROOT)}:{name} ({lines} lines)"
        for path in sorted(LIBRARY.rglob("*.py"))
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long


def test_the_command_layer_stays_thin():
    long = {
        path.name: lines
        for path in (LIBRARY / "cli").glob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_COMMAND_LINES
    }
    assert not long
    total = sum(len(path.read_text().splitlines()) for path in (LIBRARY / "cli").glob("*.py"))
    assert total < MAX_COMMAND_LAYER_LINES


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            yield base
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


LIBRARY_MODULES = sorted(p for p in LIBRARY.rglob("*.py") if "cli" not in p.parts and p.name != "__main__.py")


@pytest.mark.parametrize("path", LIBRARY_MODULES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_the_library_never_imports_the_commands_or_the_benchmark(path):
    bad = [name for name in _imports(path) if "cli" in name.split(".") or name.startswith("pdarts_bench")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path) -> set[str]:
    anchors, in_code = set(), False
    for line in path.read_text().splitlines():
        in_code ^= line.startswith("```")
        match = None if in_code else re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            anchors.add(_slug(match.group(1)))
    return anchors


def _repository_text_files():
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        path = ROOT / name
        if (
            path.is_file()
            and path.suffix in (".py", ".md", ".yaml", ".yml", ".smk", "")
            and name != "dvc.lock"
        ):
            yield name, path


def test_every_docs_reference_names_a_page_and_a_heading_that_exist():
    pages = {path.name: _anchors(path) for path in (ROOT / "docs").glob("*.md")}
    missing = []
    for name, path in _repository_text_files():
        for page, anchor in re.findall(r"docs/([\w.-]+\.md)(?:#([\w-]+))?", path.read_text(errors="replace")):
            if page not in pages or (anchor and anchor not in pages[page]):
                missing.append(f"{name}: docs/{page}#{anchor}")
    assert not missing


def test_nothing_points_to_design_notes_outside_the_repository():
    outside = [
        name
        for name, path in _repository_text_files()
        if name != "tests/test_layout.py"
        and re.search(r"PDARTS\.md|WORKFLOW-NOTES", path.read_text(errors="replace"))
    ]
    assert not outside
