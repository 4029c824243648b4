"""Helpers shared by several test modules: step flags and output options, input files the tests write
(alphas, CIFAR pickles, images) and real clones of this repository. Fixtures stay in conftest.py."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pdarts.config import load_params
from pdarts.search_space import EDGES

from .conftest import ROOT

# --------------------------------------------------------------------------------------------------
# The pipeline's step commands: settings, flags and output options

# The smoke settings, parsed (``SMOKE_YAML`` below is the file, for the pipeline tests).
SMOKE = load_params(ROOT / "configs" / "smoke.yaml")


def flags(section: dict) -> list[str]:
    """A section as the pipeline passes it (DVC's ``${section}``: no flag for an empty list)."""
    words = []
    for key, value in section.items():
        if isinstance(value, bool):
            words.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, list):
            words += [f"--{key}", *map(str, value)] if value else []
        else:
            words += [f"--{key}", str(value)]
    return words


# The artifacts each step writes, one ``--out-NAME PATH`` option apiece, and their usual file names.
SEARCH_OUTS = ("alphas", "metrics", "history")
TRAIN_OUTS = ("model", "metrics", "history")  # train and transfer
OUT_FILES = {
    "alphas": "alphas.json",
    "model": "model.pt",
    "metrics": "metrics.json",
    "history": "history.json",
}


def outs(folder, *names: str) -> list:
    """``--out-NAME folder/FILE`` for each artifact ``name`` (see ``SEARCH_OUTS``, ``TRAIN_OUTS``)."""
    words = []
    for name in names:
        words += [f"--out-{name}", Path(folder) / OUT_FILES[name]]
    return words


def search_args(prepared, candidates, out, **overrides):
    common = {**SMOKE["search"]["common"], **overrides}
    return [
        "search",
        "--stage",
        "s1",
        "--cells",
        2,
        "--skip_dropout",
        0.0,
        "--candidates",
        candidates,
        "--data",
        prepared / "dataset.json",
        *flags(common),
        *outs(out, *SEARCH_OUTS),
    ]


def train_args(prepared, genotype, out, **overrides):
    return [
        "train",
        "--genotype",
        genotype,
        "--data",
        prepared / "dataset.json",
        *flags({**SMOKE["train"], **overrides}),
        *outs(out, *TRAIN_OUTS),
    ]


# --------------------------------------------------------------------------------------------------
# Alphas files for ``pdarts derive``

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


def alphas() -> dict:
    return {
        "normal": [_edge(i) for i in range(14)],
        "reduce": [_edge(i) for i in range(14)],
        "stage": 3,
        "cells": 17,
    }


# --------------------------------------------------------------------------------------------------
# CIFAR files in torchvision's python layout, and image folders


def dumps_protocol2(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def write_cifar(
    root: Path, name: str, dumps: Callable[[object], bytes] = dumps_protocol2
) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """Writes a tiny CIFAR-10/100 (3 images per training batch, 4 test images); returns the raw
    (N, 3072) data and labels of each split, keyed by ``train``."""
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, num_classes = root / "cifar-10-batches-py", 10
        files = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
    else:
        folder, num_classes = root / "cifar-100-python", 100
        files = {True: ["train"], False: ["test"]}
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for train, names in files.items():
        raws, labels = [], []
        for index, file_name in enumerate(names):
            count = 3 if train else 4
            raw = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
            batch_labels = [int(label) for label in rng.integers(0, num_classes, count)]
            batch_labels[-1] = num_classes - 1  # the largest legal label must pass
            batch_label = f"training batch {index + 1} of {len(names)}" if train else "testing batch 1 of 1"
            filenames = [f"{file_name}_{i}.png".encode() for i in range(count)]
            if name == "cifar10":
                batch = {b"batch_label": batch_label.encode(), b"labels": batch_labels, b"data": raw}
                batch[b"filenames"] = filenames
            else:
                batch = {b"filenames": filenames, b"batch_label": batch_label.encode()}
                batch[b"fine_labels"] = batch_labels
                batch[b"coarse_labels"] = [label // 5 for label in batch_labels]
                batch[b"data"] = raw
            (folder / file_name).write_bytes(dumps(batch))
            raws.append(raw)
            labels += batch_labels
        expected[train] = (np.concatenate(raws), np.array(labels))
    if name == "cifar10":
        meta = {
            b"num_cases_per_batch": 3,
            b"label_names": [f"class{i}".encode() for i in range(10)],
            b"num_vis": 3072,
        }
        (folder / "batches.meta").write_bytes(dumps(meta))
    else:
        meta = {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
        (folder / "meta").write_bytes(dumps(meta))
    return expected


def rewrite_batch(folder: Path, **changes: object) -> None:
    path = folder / "data_batch_3"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    for key, value in changes.items():
        if value is None:
            del batch[key.encode()]
        else:
            batch[key.encode()] = value
    path.write_bytes(pickle.dumps(batch, protocol=2))


class MakesAFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def break_truncate(folder: Path) -> None:
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])


def save(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels if channels == 3 else pixels[..., 0]).save(path)


def corrupt_jpeg(root: Path) -> Path:
    path = root / "train" / "cat" / "a.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return path


# --------------------------------------------------------------------------------------------------
# Temporary repositories and commands (real clones of this repository)

SMOKE_YAML = ROOT / "configs" / "smoke.yaml"
COMMAND_TIMEOUT = 1800  # a hang guard: a smoke run takes 1-2 min, 10x that on a loaded machine
SMOKE_STAGES = [stage["name"] for stage in yaml.safe_load(SMOKE_YAML.read_text())["search"]["stages"]]
CAPTURED = [
    "params.yaml",
    "dvc.lock",
    "results/derive/genotype.json",
    "results/derive/genotypes.json",
    "results/train/history.json",
    "results/evaluate/train.json",
    "results/evaluate/transfer.json",
    *[f"results/search/{name}/history.json" for name in SMOKE_STAGES],
]


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["DVC_NO_ANALYTICS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    for name in ("SNAKEMAKE_PROFILE", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(name, None)
    return env


def clone_repository(path: Path) -> None:
    """A real ``git clone`` of this repository (its committed baseline of results included), with the
    working tree's uncommitted changes and new files committed on top, so that it holds the code under
    test exactly as a fresh clone of it would once committed."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(path)], check=True, env=tool_env())
    diff = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "HEAD", "--binary"], check=True, capture_output=True, env=tool_env()
    ).stdout
    if diff:
        subprocess.run(["git", "-C", str(path), "apply", "--binary"], input=diff, check=True, env=tool_env())
    untracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
        env=tool_env(),
    ).stdout
    for name in filter(None, untracked.split("\0")):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, path / name)


class Repo:
    """A real clone of this repository (see ``clone_repository``) with a params.yaml of the tests'."""

    def __init__(self, path: Path, params: Path = SMOKE_YAML, niceness: int = 0) -> None:
        self.path = path
        self.env = tool_env()
        self.niceness = niceness
        path.parent.mkdir(parents=True, exist_ok=True)
        clone_repository(path)
        shutil.copy2(params, path / "params.yaml")
        self.git("config", "user.name", "pdarts tests")
        self.git("config", "user.email", "tests@pdarts.invalid")
        self.git("config", "commit.gpgsign", "false")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "the code under test, on the test's settings")

    def git(self, *args: str) -> None:
        self.run("git", *args)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Runs a command in the repo; stdout and stderr together in ``.stdout``."""
        proc = subprocess.run(
            ["nice", "-n", str(self.niceness), *args] if self.niceness else list(args),
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"`{shlex.join(args)}` exited {proc.returncode}:\n{proc.stdout[-6000:]}{self.logs()}")
        return proc

    def logs(self) -> str:
        """The tail of every step log, for failure messages."""
        parts = []
        for log in sorted((self.path / "logs").rglob("*.log")):
            text = log.read_text(errors="replace").strip().splitlines()[-15:]
            parts.append(f"\n--- {log.relative_to(self.path)}:\n" + "\n".join(text))
        return "".join(parts)

    @property
    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    @params.setter
    def params(self, value: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(value, sort_keys=False))

    def json(self, relpath: str):
        return json.loads((self.path / relpath).read_text())

    def capture(self) -> dict[str, object]:
        """The CAPTURED files that exist, parsed (tests read these, not the repo a later step changes)."""
        files = {}
        for relpath in CAPTURED:
            path = self.path / relpath
            if path.is_file():
                text = path.read_text()
                files[relpath] = json.loads(text) if relpath.endswith(".json") else yaml.safe_load(text)
        return files

    def snapshot(self) -> dict[str, str]:
        """Content hash of every file under results/."""
        root = self.path / "results"
        if not root.exists():
            return {}
        return {
            str(p.relative_to(self.path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
