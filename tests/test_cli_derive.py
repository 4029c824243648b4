"""``pdarts derive`` through the real command: the output and every documented rejection."""

import json

import pytest

from pdarts.genotype import load_genotype
from pdarts.search_space import EDGES

OPS = ["skip_connect", "sep_conv_3x3", "dil_conv_3x3"]


def _edge(i: int) -> dict:
    node, source = EDGES[i]
    # sep_conv_3x3 always wins; skip is second; extra keys are allowed.
    return {
        "ops": OPS,
        "alpha": [0.5, 1.0 + 0.01 * i, 0.0],
        "weights": [0.3, 0.5, 0.2],
        "source": source,
        "target": node + 2,
    }


def _alphas() -> dict:
    return {
        "normal": [_edge(i) for i in range(14)],
        "reduce": [_edge(i) for i in range(14)],
        "stage": 3,
        "cells": 17,
    }


def test_writes_genotype_and_all_caps(tmp_path, run_pdarts):
    alphas, out, caps = tmp_path / "alphas.json", tmp_path / "sub" / "genotype.json", tmp_path / "caps.json"
    alphas.write_text(json.dumps(_alphas()))
    proc = run_pdarts("derive", "--alphas", alphas, "--max-skip", 2, "--out", out, "--all-caps", caps)
    assert proc.returncode == 0, proc.stderr
    genotype = load_genotype(out)
    assert all(op == "sep_conv_3x3" for op, _ in genotype.normal + genotype.reduce)
    # node 3 keeps its two strongest edges: the last two (inputs 3 and 4)
    assert [src for _, src in genotype.normal[6:]] == [3, 4]
    data = json.loads(caps.read_text())
    assert [c["max_skip"] for c in data["caps"]] == list(range(9))
    assert data["caps"][2]["genotype"] == json.loads(out.read_text())
    assert not list(tmp_path.glob("**/.*.tmp"))


def _mutate(fn):
    data = _alphas()
    fn(data)
    return json.dumps(data)


BAD_INPUTS = {
    "not JSON": ("{oops", "not valid JSON"),
    "missing cell": (_mutate(lambda d: d.pop("reduce")), "missing cell 'reduce'"),
    "13 edges": (_mutate(lambda d: d["normal"].pop()), "must list 14 edges"),
    "unknown op": (
        _mutate(lambda d: d["normal"][3].update(ops=["skip_connect", "conv_9x9", "dil_conv_3x3"])),
        "unknown op 'conv_9x9'",
    ),
    "length mismatch": (
        _mutate(lambda d: d["reduce"][5].update(alpha=[0.1, 0.2])),
        "'ops' has 3 names but 'alpha' has 2",
    ),
    "NaN alpha": (json.dumps(_alphas()).replace("0.5", "NaN", 1), "not a finite number"),
    "infinite alpha": (json.dumps(_alphas()).replace("0.5", "-Infinity", 1), "not a finite number"),
    "string alpha": (_mutate(lambda d: d["normal"][0].update(alpha=["1", 0, 0])), "expected a number"),
    "only none": (
        _mutate(lambda d: d["normal"][7].update(ops=["none"], alpha=[1.0])),
        "normal edge 7 has no op other than 'none'",
    ),
    "missing alpha": (_mutate(lambda d: d["normal"][0].pop("alpha")), "missing 'alpha'"),
    "not an object": ("[1, 2]", "expected an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_alphas_are_refused_cleanly(case, tmp_path, run_pdarts):
    text, message = BAD_INPUTS[case]
    alphas, out = tmp_path / "alphas.json", tmp_path / "genotype.json"
    alphas.write_text(text)
    proc = run_pdarts(
        "derive", "--alphas", alphas, "--max-skip", 2, "--out", out, "--all-caps", tmp_path / "caps.json"
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [alphas]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-skip", "-1"], "must be >= 0"),
        (["--max-skip", "two"], "expected an integer"),
    ],
)
def test_bad_max_skip_is_refused(args, message, tmp_path, run_pdarts):
    alphas, out = tmp_path / "alphas.json", tmp_path / "genotype.json"
    alphas.write_text(json.dumps(_alphas()))
    proc = run_pdarts("derive", "--alphas", alphas, *args, "--out", out)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_alphas_file_and_previous_output_kept(tmp_path, run_pdarts):
    out = tmp_path / "genotype.json"
    out.write_text("previous good genotype")
    proc = run_pdarts("derive", "--alphas", tmp_path / "nope.json", "--max-skip", 2, "--out", out)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert out.read_text() == "previous good genotype"
