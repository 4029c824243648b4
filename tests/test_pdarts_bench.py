"""``pdarts bench`` on its smoke configurations writes complete, well-formed results.

Not a timing test: the numbers only have to be there and positive. ``compile`` is left out of the
modes run here (compiling takes minutes on a CPU); its fallback is tested in tests/search/test_speed.py.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from .conftest import ROOT

MODES = ["reference", "default", "fp32", "bf16", "checkpoint_cells", "bf16+channels_last+checkpoint_cells"]


def test_bench_smoke_writes_every_configuration_and_mode(run_pdarts, tmp_path):
    out = tmp_path / "bench.json"
    done = run_pdarts(
        "bench", "--configs", "smoke", "smoke-train", "--modes", *MODES,
        "--steps", "2", "--warmup", "1", "--threads", "1", "--rounds", "2", "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert machine["torch"] and machine["torchvision"] and machine["python"] and machine["cpu"]
    assert machine["cpu_cores"] >= 1 and machine["device"] == "cpu"
    assert report["options"] == {
        "steps": 2, "warmup": 1, "threads": 1, "device": "cpu", "rounds": 2, "interleave": False,
        "baseline": "reference",
    }  # fmt: skip
    # checkpoint_cells is a search setting: the training steps skip the modes that ask for it.
    train_modes = [mode for mode in MODES if "checkpoint_cells" not in mode]
    # Each configuration runs its modes in turn, twice (A B A B).
    expected = [("smoke", mode, r) for r in (0, 1) for mode in MODES]
    expected += [("smoke-train", mode, r) for r in (0, 1) for mode in train_modes]
    assert [(r["config"], r["mode"], r["round"]) for r in report["results"]] == expected
    results = {(r["config"], r["mode"], r["round"]): r for r in report["results"]}
    for (config, _mode, round_index), result in results.items():
        assert "error" not in result, result
        assert result["seconds_per_step"] > 0 and result["images_per_second"] > 0
        assert result["cpu_seconds_per_step"] > 0 and result["peak_memory_mb"] > 0
        assert len(result["step_seconds"]) == 2 and result["threads"] == 1
        # Ratios against the reference of the same configuration and round.
        reference = results[(config, "reference", round_index)]
        assert result["speedup"] == pytest.approx(reference["seconds_per_step"] / result["seconds_per_step"])
        assert result["memory_ratio"] == pytest.approx(result["peak_memory_mb"] / reference["peak_memory_mb"])
    by_mode = {r["mode"]: r["settings"] for r in report["results"] if r["config"] == "smoke"}
    plain = {
        "precision": "fp32", "channels_last": False, "compile": False, "checkpoint_cells": False,
        "cuda_graph": False,
    }  # fmt: skip
    assert by_mode["fp32"] == by_mode["reference"] == plain
    assert by_mode["bf16"]["precision"] == "bf16" and by_mode["checkpoint_cells"]["checkpoint_cells"]
    # default: the schema's settings of search.common (auto precision is fp32 for CPU search steps)
    assert by_mode["default"] == {**plain, "channels_last": True}
    assert "| smoke | 8 | fp32 |" in done.stdout  # the markdown table
    assert "speedup vs reference" in done.stdout and "memory vs reference" in done.stdout


def test_interleaved_modes_alternate_in_one_process_with_ratios_per_round(run_pdarts, tmp_path):
    out = tmp_path / "bench.json"
    modes = ["reference", "default", "checkpoint_cells"]
    done = run_pdarts(
        "bench", "--configs", "smoke", "smoke-train", "--modes", *modes, "--interleave",
        "--steps", "2", "--warmup", "1", "--threads", "1", "--rounds", "3", "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["options"]["interleave"] is True
    # A B C, C B A, A B C; the training step has no checkpoint_cells.
    order = [("smoke", mode, r) for r, turn in enumerate([modes, modes[::-1], modes]) for mode in turn]
    train = ["reference", "default"]
    order += [("smoke-train", mode, r) for r, turn in enumerate([train, train[::-1], train]) for mode in turn]
    assert [(r["config"], r["mode"], r["round"]) for r in report["results"]] == order
    results = {(r["config"], r["mode"], r["round"]): r for r in report["results"]}
    for (config, _mode, round_index), result in results.items():
        assert "error" not in result, result
        assert len(result["step_seconds"]) == 2 and result["seconds_per_step"] > 0
        assert (result["warmup_seconds"] > 0) == (round_index == 0)  # each mode warmed up once
        # One process holds every mode: no peak memory, no memory ratio.
        assert result["peak_memory_mb"] is None and result["memory_ratio"] is None
        reference = results[(config, "reference", round_index)]
        assert result["speedup"] == pytest.approx(reference["seconds_per_step"] / result["seconds_per_step"])
    assert results[("smoke", "checkpoint_cells", 1)]["settings"]["checkpoint_cells"] is True
    assert "| smoke | 8 | default |" in done.stdout and "| - |" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--configs", "stage9"], "unknown configuration 'stage9'"),
        (["--modes", "turbo"], "unknown mode 'turbo'"),
        (["--modes", "fp16"], "fp16 needs a CUDA device"),
        (["--modes", "channels_last+cuda_graph"], "cuda_graph needs a CUDA device"),
        (["--steps", "0"], "must be >= 1"),
    ],
)
def test_bad_options_are_one_line_errors(run_pdarts, args, message):
    done = run_pdarts("bench", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_run_cut_short_keeps_what_it_measured(tmp_path):
    # The report is rewritten (whole, atomically) after each measurement: a run stopped by a time
    # limit keeps its finished measurements (an H200 run lost all of them once).
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "pdarts", "bench", "--configs", "smoke", "smoke-train", "--steps", "1",
               "--warmup", "0", "--threads", "1", "--rounds", "2", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not out.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    report = json.loads(out.read_text())
    assert 1 <= len(report["results"]) < 8  # 2 configurations x 2 modes x 2 rounds, cut short
    first = report["results"][0]
    assert (first["config"], first["mode"], first["round"]) == ("smoke", "reference", 0)
    assert first["seconds_per_step"] > 0 and report["machine"]["device"] == "cpu"


def test_a_graphed_search_step_is_recorded_before_it_is_timed(monkeypatch):
    # The bench's cuda_graph mode times the stage's own graphed step; on the CPU, with the stand-in
    # graph of tests/search/test_graphs.py, every call after the build is a replay.
    from pdarts.search import graphs, stage
    from pdarts_bench.configs import CONFIGS, step_settings
    from pdarts_bench.steps import make_search_step

    from .search.test_graphs import EagerGraph

    EagerGraph.made.clear()
    monkeypatch.setattr(stage, "graph_refusal", lambda *args: None)
    monkeypatch.setattr(graphs, "CudaGraph", EagerGraph)
    config = CONFIGS["smoke"]
    step, effective = make_search_step(config, step_settings(config, "cuda_graph"), torch.device("cpu"))
    assert effective["cuda_graph"] and len(EagerGraph.made) == 1 and EagerGraph.made[0].replays == 0
    stats = step()
    assert EagerGraph.made[0].replays == 1 and stats["arch"][2] == stats["train"][2] == config.batch_size
