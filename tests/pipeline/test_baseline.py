"""The committed baseline (``dvc.lock`` and the results committed beside it) is the default run of
this very ``params.yaml``: in a fresh clone, ``dvc status`` finds no setting changed, and every
committed result is the one the lock names. (A setting added to the schema without a rerun of the
baseline left the lock one key short, so a clone's first ``dvc repro`` rewrote it.)"""

from __future__ import annotations

import hashlib
import subprocess

from ruamel.yaml import YAML  # YAML 1.2, as DVC reads and writes dvc.lock (3e-05 is a number)

from ..conftest import ROOT


def _value(params: dict, dotted: str):
    for part in dotted.split("."):
        params = params[part]
    return params


def _load(name: str):
    return YAML(typ="safe").load((ROOT / name).read_text())


def _lock():
    return _load("dvc.lock")["stages"]


def test_the_lock_records_the_settings_of_params_yaml():
    params = _load("params.yaml")
    differ = [
        f"{stage}: {key}"
        for stage, entry in _lock().items()
        for key, value in entry.get("params", {}).get("params.yaml", {}).items()
        if _value(params, key) != value
    ]
    assert not differ, "rerun the baseline (dvc repro) and commit dvc.lock"


def test_every_committed_result_is_the_one_the_lock_names():
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    )
    outs = {out["path"]: out["md5"] for entry in _lock().values() for out in entry.get("outs", [])}
    committed = {path: md5 for path, md5 in outs.items() if path in tracked}
    assert len(committed) >= 10  # the metrics and histories of every step, the evaluations, the report's
    differ = [
        path for path, md5 in committed.items() if hashlib.md5((ROOT / path).read_bytes()).hexdigest() != md5
    ]
    assert not differ
