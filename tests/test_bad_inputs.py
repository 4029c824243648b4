"""Every bad input is refused cleanly by the real ``pdarts`` command (issue 5, point 4).

One table, one case per bad input: settings files, step flags, data (CIFAR pickles, image folders,
manifests), genotype, alphas and candidates files, model files and resume checkpoints. Each case runs
``pdarts -q ...`` in a subprocess, in a fresh folder, and must end with exit status 2 and exactly one
line on stderr (no traceback, no warning) that names the problem, and, where there is one, the fix.
Nothing may be written and nothing earlier damaged: every file of the case's folder and of the shared
folder of good inputs is byte-identical afterwards, and the step's outputs (``--out``, or ``--out-model``,
``--out-alphas`` and the like; always ``out`` or files under it) do not appear. Cases with ``earlier``
first put good artifacts where the outputs go.

Cost: one ``pdarts`` process per case; settings, flags, genotype and alphas cases fail before torch is
imported (a fraction of a second), data and checkpoint cases pay for the torch import (~3 s).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pdarts.checkpoints import load_model_file
from pdarts.cli import build_parser
from pdarts.genotype import GENOTYPES, genotype_to_dict

from .helpers import (
    SEARCH_OUTS,
    SMOKE,
    TRAIN_OUTS,
    MakesAFolder,
    alphas,
    break_truncate,
    corrupt_jpeg,
    flags,
    outs,
    rewrite_batch,
    save,
    search_args,
    train_args,
    write_cifar,
)

GOOD = Path("{good}")  # the shared folder of good inputs, filled in when a case runs
OUT = "out"  # every case's artifact is OUT or a file under it, relative to the case's folder

Setup = Callable[[Path, Path], None]  # (case folder, good folder): writes the bad input


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: the test id.
        argv: the command after ``pdarts -q``; ``{good}`` in an argument is the good inputs' folder.
        expect: substrings of the error line: what is wrong and, where the message has one, the fix.
        setup: writes the bad input into the case's folder (which is the command's working folder).
        earlier: a good artifact of the good folder (a file or a folder), copied first to where the
            step's outputs go (``--out``, or the folder of ``--out-model`` etc.); it must survive.
        marks: pytest marks (``xfail`` for a known bug in a file this test's author could not edit).
    """

    id: str
    argv: Sequence[object]
    expect: Sequence[str]
    setup: Setup | None = None
    earlier: tuple[str, str] | None = None  # (path in the good folder, path in the case's folder)
    marks: Sequence[pytest.MarkDecorator] = ()


# --------------------------------------------------------------------------------------------------
# Writers of bad inputs


def _text(name: str, text: str | bytes) -> Setup:
    def setup(folder: Path, good: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return setup


def _json(name: str, data: object) -> Setup:
    return _text(name, json.dumps(data))


def _params(mutate: Callable[[dict], object] | None = None, replace: tuple[str, str] | None = None) -> Setup:
    """params.yaml: the smoke settings, changed by ``mutate`` or by a text replacement."""
    params = copy.deepcopy(SMOKE)
    if mutate is not None:
        mutate(params)
    text = yaml.safe_dump(params, sort_keys=False)
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    return _text("params.yaml", text)


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(params: dict) -> None:
        *parents, last = path.split(".")
        node = params
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return mutate


def _alphas_with(change: Callable[[dict], object]) -> dict:
    data = alphas()
    change(data)
    return data


def _genotype_with(change: Callable[[dict], object]) -> dict:
    data = genotype_to_dict(GENOTYPES["PDARTS"])
    change(data)
    return data


def _cifar_settings(root: Path | str) -> dict:
    """The data settings of CIFAR-10 at ``root``."""
    return {"dataset": "cifar10", "root": root, "download": False, "subset": 0}


def _cifar(damage: Callable[[Path], object]) -> Setup:
    """A tiny CIFAR-10 in torchvision's layout at ``data/``, then ``damage(its folder)``."""

    def setup(folder: Path, good: Path) -> None:
        write_cifar(folder / "data", "cifar10")
        damage(folder / "data" / "cifar-10-batches-py")

    return setup


def _write_tree(root: Path) -> None:
    """An image folder: train/{cat,dog}, val/{cat,dog}, JPEG and PNG."""
    save(root / "train" / "cat" / "a.jpg", (24, 20), seed=1)
    save(root / "train" / "cat" / "b.png", (10, 12), mode="L", seed=2)
    save(root / "train" / "dog" / "c.jpg", (20, 20), seed=3)
    save(root / "val" / "cat" / "d.png", (16, 16), seed=4)
    save(root / "val" / "dog" / "e.jpg", (16, 16), seed=5)


def _images(damage: Callable[[Path], object]) -> Setup:
    """A good image folder at ``images/``, then ``damage(it)``."""

    def setup(folder: Path, good: Path) -> None:
        _write_tree(folder / "images")
        damage(folder / "images")

    return setup


def _model(change: Callable[[dict], object]) -> Setup:
    """``model.pt``: the good trained model file, loaded, changed and saved again."""

    def setup(folder: Path, good: Path) -> None:
        payload = load_model_file(good / "train" / "model.pt")  # as evaluate reads it
        change(payload)
        torch.save(payload, folder / "model.pt")

    return setup


def _torch_file(name: str, payload: object) -> Setup:
    def setup(folder: Path, good: Path) -> None:
        torch.save(payload, folder / name)

    return setup


def _truncated(source: str, name: str) -> Setup:
    def setup(folder: Path, good: Path) -> None:
        data = (good / source).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return setup


def _checkpoint(step: str, change: Callable[[dict], object] | None = None, truncate: bool = False) -> Setup:
    """``checkpoint.pt``: the real resume checkpoint of ``STEPS[step]``, changed or cut short.

    The first use runs the step in this process with ``--keep-checkpoint`` (a second) and keeps its
    checkpoint in the good folder; ``change`` gets the loaded payload (format, fingerprint, state).
    """

    def setup(folder: Path, good: Path) -> None:
        real = good / step / "checkpoint.pt"
        if not real.exists():
            argv = [str(arg).format(good=good) for arg in STEPS[step]]
            _command(*argv, *outs(good / step, *OUTPUTS[step]), "--checkpoint", real, "--keep-checkpoint")
        path = folder / "checkpoint.pt"
        if change is None:
            shutil.copy(real, path)
        else:
            payload = torch.load(real, weights_only=True)
            change(payload)
            torch.save(payload, path)
        if truncate:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return setup


def _resize_first(state_dict: dict) -> None:
    name = next(iter(state_dict))
    state_dict[name] = torch.zeros(*state_dict[name].shape[:-1], state_dict[name].shape[-1] + 1)


def _changed_cifar(folder: Path, good: Path) -> None:
    """CIFAR prepared by the real prepare-data, then one batch replaced by other valid pixels."""
    write_cifar(folder / "data", "cifar10")
    _command("prepare-data", *flags(_cifar_settings(folder / "data")), "--out", folder / "dataset.json")
    rewrite_batch(folder / "data" / "cifar-10-batches-py", data=np.full((3, 3072), 7, np.uint8))


def _command(*argv: object) -> None:
    """Runs a ``pdarts`` step in this process (good inputs, quickly), keeping the process's random
    streams and deterministic-algorithm settings (steps set them) for the tests that run after."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
    args = build_parser().parse_args([str(arg) for arg in argv])
    try:
        assert not args.run(args)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_rng_state(streams[0])
        np.random.set_state(streams[1])
        random.setstate(streams[2])


# --------------------------------------------------------------------------------------------------
# Command lines

CHECK = ("check-params", "params.yaml", "--out", f"{OUT}/params.ok")
# stage s1, 2 cells, skip dropout 0, on the tiny CIFAR (the digits would import scikit-learn: 1-2 s more)
SEARCH = [*search_args(GOOD, GOOD / "candidates.json", OUT), "--data", GOOD / "cifar.json"]
TRAIN = train_args(GOOD, GOOD / "genotype.json", OUT)
STEPS = {"search": SEARCH, "train": TRAIN}  # the steps whose real checkpoints the cases break
OUTPUTS = {"search": SEARCH_OUTS, "train": TRAIN_OUTS}
EVALUATE = (
    "evaluate",
    "--data",
    GOOD / "dataset.json",
    *flags(SMOKE["evaluate"]),
    "--out",
    f"{OUT}/eval.json",
)
DERIVE = (
    "derive",
    "--alphas",
    "alphas.json",
    "--max-skip",
    2,
    "--out",
    f"{OUT}/genotype.json",
    "--all-caps",
    f"{OUT}/caps.json",
)
PREPARE_CIFAR = ("prepare-data", *flags(_cifar_settings("data")), "--out", f"{OUT}/dataset.json")
PREPARE_IMAGES = ("prepare-transfer", "--dataset", "imagefolder", "--root", "images", "--out", OUT)


def _train_with(genotype: str) -> list[object]:
    return train_args(GOOD, genotype, OUT)


def _derive_alphas(change: Callable[[dict], object]) -> Setup:
    return _json("alphas.json", _alphas_with(change))


CHECKPOINT_FIX = "delete it to start the step over"
CIFAR_FIX = "re-download CIFAR-10 (python version) or set data.download: true"
MODEL_EARLIER = ("train", OUT)  # good earlier train artifacts where --out-model, --out-metrics... point
GENOTYPE_EARLIER = ("genotype.json", f"{OUT}/genotype.json")
EVAL_EARLIER = ("train/metrics.json", f"{OUT}/eval.json")

CASES = [
    # ---- settings files, through `pdarts check-params` (no torch) --------------------------------
    Case(
        "params-unknown-top-level-key",
        CHECK,
        ["Additional properties are not allowed ('trian'", "allowed keys: data"],
        _params(_set("trian", {})),
    ),
    Case(
        "params-unknown-key-in-section",
        CHECK,
        ["train: Additional properties are not allowed ('epoch'", "allowed keys:"],
        _params(_set("train.epoch", 3)),
    ),
    Case(
        "params-missing-key",
        CHECK,
        ["train: 'epochs' is a required property", "every setting must be given"],
        _params(lambda p: p["train"].pop("epochs")),
    ),
    Case(
        "params-wrong-type",
        CHECK,
        ["train.batch_size: 'big' is not of type 'integer'"],
        _params(_set("train.batch_size", "big")),
    ),
    Case(
        "params-zero-epochs",
        CHECK,
        ["search.common.epochs: 0 is less than the minimum of 1"],
        _params(_set("search.common.epochs", 0)),
    ),
    Case(
        "params-negative-epochs",
        CHECK,
        ["train.epochs: -3 is less than the minimum of 1"],
        _params(_set("train.epochs", -3)),
    ),
    Case(
        "params-ops-growing-across-stages",
        CHECK,
        ["search.stages[2].ops: 6 is more than the 5 ops of search.stages[1].ops", "must not grow"],
        _params(_set("search.stages.2.ops", 6)),
    ),
    Case(
        "params-more-ops-than-the-space",
        CHECK,
        ["search.stages[0].ops: 8 is more than the 2 ops of search.space.ops"],
        _params(_set("search.space.ops", ["skip_connect", "sep_conv_3x3"])),
    ),
    Case(
        "params-K-is-0", CHECK, ["search.stages: [] should be non-empty"], _params(_set("search.stages", []))
    ),
    Case(
        "params-negative-max-skip",
        CHECK,
        ["derive.max_skip: -1 is less than the minimum of 0"],
        _params(_set("derive.max_skip", -1)),
    ),
    Case(
        "params-unknown-dataset",
        CHECK,
        ["data.dataset: 'mnist' is not one of", "cifar10"],
        _params(_set("data.dataset", "mnist")),
    ),
    Case(
        "params-non-numeric-lr",
        CHECK,
        ["train.lr: 'fast' is not of type 'number'"],
        _params(_set("train.lr", "fast")),
    ),
    Case(
        "params-lr-that-YAML-reads-as-text",
        CHECK,
        ["search.common.weight_lr: '3e-4'", "write numbers with a decimal point"],
        _params(replace=("weight_lr: 0.025", "weight_lr: 3e-4")),
    ),
    Case(
        "params-broken-stage-chain",
        CHECK,
        ["search.stages[2].after: must be 'stage2'"],
        _params(_set("search.stages.2.after", "stage1")),
    ),
    Case(
        "params-duplicate-stage-names",
        CHECK,
        ["search.stages: names must be unique"],
        _params(_set("search.stages.1.name", "stage1")),
    ),
    Case(
        "params-skip-dropout-of-1",
        CHECK,
        ["search.stages[1].skip_dropout: 1.0 is greater than or equal to the maximum of 1"],
        _params(_set("search.stages.1.skip_dropout", 1.0)),
    ),
    Case(
        "params-unknown-op",
        CHECK,
        ["search.space.ops[0]: 'conv_7x7' is not one of"],
        _params(_set("search.space.ops", ["conv_7x7"])),
    ),
    Case(
        "params-warmup-longer-than-epochs",
        CHECK,
        ["search.common.warmup_epochs: 9 is more than search.common.epochs (2)"],
        _params(_set("search.common.warmup_epochs", 9)),
    ),
    Case(
        "params-batch-not-divisible-by-processes",
        CHECK,
        ["train.batch_size: 32 is not a multiple of train.processes (3)"],
        _params(_set("train.processes", 3)),
    ),
    Case(
        "params-bad-device",
        CHECK,
        ["train.device: 'gpu' does not match"],
        _params(_set("train.device", "gpu")),
    ),
    Case(
        "params-yaml-syntax-error",
        CHECK,
        ["params.yaml is not valid YAML at line", "fix the syntax"],
        _text("params.yaml", "train: [unclosed\n"),
    ),
    Case("params-missing-file", CHECK, ["settings file params.yaml does not exist"]),
    Case("params-empty-file", CHECK, ["params.yaml is empty"], _text("params.yaml", "")),
    Case(
        "params-binary-file",
        CHECK,
        ["params.yaml is not a text (UTF-8) file"],
        _text("params.yaml", b"\x1f\x8b\x08\x00\xff\xfe"),
    ),
    Case(
        "params-is-a-folder",
        CHECK,
        ["cannot read settings file params.yaml: Is a directory"],
        lambda folder, good: (folder / "params.yaml").mkdir(),
    ),
    Case(
        "params-not-a-mapping",
        CHECK,
        ["params: ['data', 'search'] is not of type 'object'"],
        _text("params.yaml", "- data\n- search\n"),
    ),
    # ---- step flags (checked before torch is imported) --------------------------------------------
    Case(
        "train-flag-zero-epochs",
        [*TRAIN, "--epochs", 0],
        ["train.epochs: 0 is less than the minimum of 1"],
        earlier=MODEL_EARLIER,
    ),
    Case(
        "transfer-flag-odd-channels",
        [
            "transfer",
            "--genotype",
            GOOD / "genotype.json",
            "--data",
            GOOD / "transfer" / "manifest.json",
            *flags(SMOKE["transfer"]),
            "--init_channels",
            5,
            *outs(OUT, *TRAIN_OUTS),
        ],
        ["transfer.init_channels: 5 is not a multiple of 2"],
    ),
    Case(
        "train-flag-misspelt-setting",  # not read as --epochs
        [*TRAIN, "--epoch", 3],
        ["unknown setting --epoch:", "not a setting of this step", "pdarts check-params"],
        earlier=MODEL_EARLIER,
    ),
    Case(
        "search-flag-abbreviated-setting",  # not read as --warmup_epochs
        [*SEARCH, "--warmup", 1],
        ["unknown setting --warmup:", "not a setting of this step"],
    ),
    Case(
        "train-flag-old-out-folder",  # the steps name each output file
        [*TRAIN, "--out", OUT],
        ["unknown setting --out:"],
    ),
    Case(
        "search-flag-warmup-longer-than-epochs",
        [*SEARCH, "--warmup_epochs", 5],
        ["search.common.warmup_epochs: 5 is more than search.common.epochs (2)"],
    ),
    Case(
        "search-flag-skip-dropout-of-one",  # checked as an entry of search.stages is
        [*SEARCH, "--skip_dropout", 1.0],
        ["search.stages[].skip_dropout: 1.0 is greater than or equal to the maximum of 1"],
    ),
    Case(
        "search-flag-no-cells",
        [*SEARCH, "--cells", 0],
        ["search.stages[].cells: 0 is less than the minimum of 1"],
    ),
    Case(
        "search-flag-non-numeric-lr",
        [*SEARCH, "--weight_lr", "fast"],
        ["--weight_lr/--weight-lr: invalid float value: 'fast'"],
    ),
    Case(
        "evaluate-flag-latency-batch-0",
        [*EVALUATE, "--model", GOOD / "train" / "model.pt", "--latency_batch_sizes", 0],
        ["evaluate.latency_batch_sizes[0]: 0 is less than the minimum of 1"],
    ),
    Case(
        "derive-flag-negative-max-skip",
        ["derive", "--alphas", GOOD / "alphas.json", "--max-skip", -1, "--out", f"{OUT}/genotype.json"],
        ["derive.max_skip: -1 is less than the minimum of 0"],
    ),
    Case(
        "derive-flag-max-skip-not-a-number",
        ["derive", "--alphas", GOOD / "alphas.json", "--max-skip", "two", "--out", f"{OUT}/genotype.json"],
        ["--max_skip/--max-skip: invalid int value: 'two'"],
    ),
    Case(
        "derive-flag-out-is-all-caps",
        [
            "derive",
            "--alphas",
            GOOD / "alphas.json",
            "--max-skip",
            2,
            "--out",
            f"{OUT}/g.json",
            "--all-caps",
            f"{OUT}/g.json",
        ],
        ["--out and --all-caps must be different files"],
    ),
    Case(
        "derive-flag-out-is-a-folder",
        ["derive", "--alphas", GOOD / "alphas.json", "--max-skip", 2, "--out", OUT],
        ["cannot write out: it is a folder"],
        earlier=GENOTYPE_EARLIER,
    ),
    Case(
        "prune-flag-keep-more-than-searched",
        [
            "prune",
            "--alphas",
            GOOD / "alphas.json",
            "--keep",
            4,
            "--stage",
            "s2",
            "--out",
            f"{OUT}/candidates.json",
        ],
        ["would keep 4 ops per edge", "has only 3", "must not grow across stages"],
    ),
    # ---- CIFAR data, through `pdarts prepare-data` -------------------------------------------------
    Case(
        "cifar-missing-folder",
        PREPARE_CIFAR,
        ["data/cifar-10-batches-py does not exist", "set data.download: true or extract"],
        earlier=("dataset.json", f"{OUT}/dataset.json"),
    ),
    Case(
        "cifar-truncated-batch",
        PREPARE_CIFAR,
        ["data_batch_3 is truncated or not a CIFAR pickle batch", CIFAR_FIX],
        _cifar(break_truncate),
    ),
    Case(
        "cifar-batch-not-a-pickle",
        PREPARE_CIFAR,
        ["data_batch_3 is truncated or not a CIFAR pickle batch", CIFAR_FIX],
        _cifar(lambda f: (f / "data_batch_3").write_text("<html>moved</html>")),
    ),
    Case(
        "cifar-batch-wrong-keys",
        PREPARE_CIFAR,
        ["data_batch_3 has no b'data' entry", CIFAR_FIX],
        _cifar(
            lambda f: (f / "data_batch_3").write_bytes(
                pickle.dumps({b"pixels": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]}, protocol=2)
            )
        ),
    ),
    Case(
        "cifar-batch-wrong-image-shape",
        PREPARE_CIFAR,
        [
            "data_batch_3: b'data' is a uint8 array of shape (3, 1024)",
            "expected a uint8 array of shape (N, 3072)",
            CIFAR_FIX,
        ],
        _cifar(lambda f: rewrite_batch(f, data=np.zeros((3, 1024), np.uint8))),
    ),
    Case(
        "cifar-label-out-of-range",
        PREPARE_CIFAR,
        ["data_batch_3: label 10 is out of range 0..9 for CIFAR-10", CIFAR_FIX],
        _cifar(lambda f: rewrite_batch(f, labels=[0, 10, 1])),
    ),
    Case(
        "cifar-batch-that-runs-code",
        PREPARE_CIFAR,
        ["data_batch_3 is not a CIFAR pickle batch: it references posix.mkdir", CIFAR_FIX],
        _cifar(
            lambda f: (f / "data_batch_3").write_bytes(
                pickle.dumps(MakesAFolder(f.parent / "pwned"), protocol=2)
            )
        ),
    ),
    # ---- image folders, through `pdarts prepare-transfer` ----------------------------------------
    Case(
        "images-missing-folder",
        PREPARE_IMAGES,
        ["images does not exist", "expected an image folder with train/<class>/"],
        earlier=("transfer", OUT),
    ),
    Case(
        "images-empty-class-folder",
        PREPARE_IMAGES,
        ["images/train/bird has no images", "remove the folder or add images"],
        _images(lambda r: ((r / "train" / "bird").mkdir(), save(r / "val" / "bird" / "f.png", (8, 8)))),
    ),
    Case(
        "images-corrupt-jpeg",
        PREPARE_IMAGES,
        ["images/train/cat/a.jpg is not a readable image (truncated or corrupt", "replace or delete it"],
        _images(corrupt_jpeg),
        earlier=("transfer", OUT),
    ),
    Case(
        "images-file-of-the-wrong-kind",
        PREPARE_IMAGES,
        [
            "images/val/dog/e.jpg is not a readable image",
            "cannot identify image file",
            "replace or delete it",
        ],
        _images(lambda r: (r / "val" / "dog" / "e.jpg").write_text("<html>404 Not Found</html>")),
    ),
    # ---- data manifests ----------------------------------------------------------------------------
    Case(
        "train-manifest-of-the-wrong-kind",
        [*TRAIN, "--data", GOOD / "transfer" / "manifest.json"],
        ["transfer/manifest.json is not a", "arrays data manifest", "pass the file the prepare step wrote"],
        earlier=MODEL_EARLIER,
    ),
    Case(
        "train-data-is-the-transfer-folder",  # a prepared folder is read through its manifest.json
        [*TRAIN, "--data", GOOD / "transfer"],
        ["transfer/manifest.json is not a", "arrays data manifest", "pass the file the prepare step wrote"],
        earlier=MODEL_EARLIER,
    ),
    Case(
        "transfer-data-is-an-arrays-manifest",
        [
            "transfer",
            "--genotype",
            GOOD / "genotype.json",
            "--data",
            GOOD / "dataset.json",
            *flags(SMOKE["transfer"]),
            *outs(OUT, *TRAIN_OUTS),
        ],
        ["dataset.json is not a", "imagefolder data manifest"],
    ),
    Case(
        "train-manifest-without-fields",
        train_args(Path("."), GOOD / "genotype.json", OUT),
        ["dataset.json", "rerun the prepare_data step"],
        _json("dataset.json", {"format": "arrays"}),
    ),
    Case(
        "evaluate-manifest-not-an-object",
        [*EVALUATE, "--model", GOOD / "train" / "model.pt", "--data", "dataset.json"],
        ["dataset.json is not a data manifest", "prepare-data or prepare-transfer"],
        _json("dataset.json", [1, 2]),
    ),
    Case(
        "search-data-changed-since-prepared",
        search_args(Path("."), GOOD / "candidates.json", OUT),
        ["the cifar10 train data under", "changed since it was prepared", "rerun the prepare_data step"],
        _changed_cifar,
    ),
    # ---- alphas files, through `pdarts derive` and `pdarts prune` (no torch) -------------------------
    Case(
        "alphas-not-json",
        DERIVE,
        ["alphas.json is not valid JSON", "alphas file"],
        _text("alphas.json", "{oops"),
        earlier=GENOTYPE_EARLIER,
    ),
    Case(
        "alphas-not-utf8-text",
        DERIVE,
        ["alphas.json is not valid JSON (not UTF-8 text)"],
        _text("alphas.json", b"\xff\xfe{\x00"),
    ),
    Case(
        "alphas-not-an-object",
        DERIVE,
        ["alphas.json: expected an object with 'normal' and 'reduce'"],
        _json("alphas.json", [1, 2]),
    ),
    Case(
        "alphas-missing-cell",
        DERIVE,
        ["alphas.json: missing cell 'reduce'"],
        _derive_alphas(lambda d: d.pop("reduce")),
    ),
    Case(
        "alphas-13-edges",
        DERIVE,
        ["alphas.json: 'normal' must list 14 edges in DARTS order, got 13"],
        _derive_alphas(lambda d: d["normal"].pop()),
    ),
    Case(
        "alphas-unknown-op",
        DERIVE,
        ["normal edge 3: unknown op 'conv_9x9'; known ops:"],
        _derive_alphas(lambda d: d["normal"][3].update(ops=["skip_connect", "conv_9x9", "dil_conv_3x3"])),
    ),
    Case(
        "alphas-ops-and-alpha-lengths-differ",
        DERIVE,
        ["reduce edge 5: 'ops' has 3 names but 'alpha' has 2 values; give one alpha per op"],
        _derive_alphas(lambda d: d["reduce"][5].update(alpha=[0.1, 0.2])),
    ),
    Case(
        "alphas-NaN",
        DERIVE,
        ["normal edge 0 alpha of 'skip_connect': nan is not a finite number"],
        _text("alphas.json", json.dumps(alphas()).replace("0.5", "NaN", 1)),
        earlier=GENOTYPE_EARLIER,
    ),
    Case(
        "alphas-infinite",
        DERIVE,
        ["-inf is not a finite number"],
        _text("alphas.json", json.dumps(alphas()).replace("0.5", "-Infinity", 1)),
    ),
    Case(
        "alphas-string-value",
        DERIVE,
        ["normal edge 0 alpha of 'skip_connect': expected a number, got '1'"],
        _derive_alphas(lambda d: d["normal"][0].update(alpha=["1", 0, 0])),
    ),
    Case(
        "alphas-edge-with-only-none",
        DERIVE,
        ["normal edge 7 has no op other than 'none'"],
        _derive_alphas(lambda d: d["normal"][7].update(ops=["none"], alpha=[1.0])),
    ),
    Case(
        "alphas-missing-alpha",
        DERIVE,
        ["normal edge 0: missing 'alpha'"],
        _derive_alphas(lambda d: d["normal"][0].pop("alpha")),
    ),
    Case("alphas-missing-file", DERIVE, ["alphas file alphas.json does not exist"], earlier=GENOTYPE_EARLIER),
    Case(
        "prune-alphas-NaN",
        ["prune", "--alphas", "alphas.json", "--keep", 2, "--out", f"{OUT}/candidates.json"],
        ["nan is not a finite number"],
        _text("alphas.json", json.dumps(alphas()).replace("0.5", "NaN", 1)),
    ),
    Case(
        "search-candidates-unknown-op",
        search_args(GOOD, "candidates.json", OUT),
        ["candidates.json: normal edge 0: unknown op 'conv_9x9'"],
        _json("candidates.json", {"normal": [["conv_9x9"]] * 14, "reduce": [["skip_connect"]] * 14}),
    ),
    Case(
        "search-candidates-wrong-edge-count",
        search_args(GOOD, "candidates.json", OUT),
        ["candidates.json: 'reduce' must list 14 edges, got 2"],
        _json("candidates.json", {"normal": [["skip_connect"]] * 14, "reduce": [["skip_connect"]] * 2}),
    ),
    # ---- genotype files, through `pdarts train --genotype` and `pdarts summary` (no torch) -----------
    Case(
        "genotype-missing-file",
        _train_with("genotype.json"),
        ["cannot read genotype file genotype.json"],
        earlier=MODEL_EARLIER,
    ),
    Case(
        "genotype-not-json",
        _train_with("genotype.json"),
        ["genotype.json is not valid JSON", "write a genotype as JSON"],
        _text("genotype.json", "normal: [sep_conv_3x3, 0]"),
    ),
    Case(
        "genotype-NaN",
        _train_with("genotype.json"),
        ["genotype.json is not valid JSON (NaN is not allowed)"],
        _text("genotype.json", json.dumps(genotype_to_dict(GENOTYPES["PDARTS"])).replace("2,", "NaN,", 1)),
    ),
    Case(
        "genotype-7-pairs",
        _train_with("genotype.json"),
        ["genotype 'normal': expected 8 [op, input] pairs, got 7"],
        _json("genotype.json", _genotype_with(lambda g: g["normal"].pop())),
    ),
    Case(
        "genotype-unknown-op",
        _train_with("genotype.json"),
        ["genotype 'reduce' pair 2 (node 1): unknown op 'conv_9x9'; allowed:"],
        _json("genotype.json", _genotype_with(lambda g: g["reduce"][2].__setitem__(0, "conv_9x9"))),
    ),
    Case(
        "genotype-none-op",
        _train_with("genotype.json"),
        ["unknown op 'none'"],
        _json("genotype.json", _genotype_with(lambda g: g["normal"][0].__setitem__(0, "none"))),
    ),
    Case(
        "genotype-input-out-of-range",
        _train_with("genotype.json"),
        ["genotype 'normal' pair 1 (node 0): input must be an integer in 0..1, got 5"],
        _json("genotype.json", _genotype_with(lambda g: g["normal"][1].__setitem__(1, 5))),
    ),
    Case(
        "genotype-unknown-field",
        _train_with("genotype.json"),
        ["genotype: unknown field(s) ['normal_weights']"],
        _json("genotype.json", _genotype_with(lambda g: g.update(normal_weights=[]))),
    ),
    Case(
        "summary-genotype-missing",
        ["summary", "genotype.json"],
        [
            "'genotype.json' is neither a registered genotype (PDARTS, DARTS_V1, DARTS_V2)",
            "nor a genotype JSON file (no such file)",
        ],
    ),
    Case(
        "summary-genotype-name-is-a-folder",
        ["summary", "cells"],
        ["'cells' is neither a registered genotype", "nor a genotype JSON file (a folder)"],
        lambda folder, good: (folder / "cells").mkdir(),
    ),
    Case(
        "summary-genotype-not-utf8-text",
        ["summary", "genotype.json"],
        ["genotype.json is not valid JSON (not UTF-8 text)"],
        _text("genotype.json", b"\x89PNG\r\n\x1a\n"),
    ),
    Case(
        "summary-genotype-not-an-object",
        ["summary", "genotype.json"],
        ["genotype.json: genotype: expected a JSON object, got list"],
        _json("genotype.json", [["sep_conv_3x3", 0]]),
    ),
    Case(
        "summary-genotype-wrong-concat",
        ["summary", "genotype.json"],
        ["genotype normal_concat: expected [2, 3, 4, 5], got [2, 3]"],
        _json("genotype.json", _genotype_with(lambda g: g.update(normal_concat=[2, 3]))),
    ),
    Case(
        "summary-odd-imagenet-channels",
        ["summary", "PDARTS", "--dataset", "imagenet", "--channels", 47],
        ["--channels must be even for ImageNet"],
    ),
    # ---- model files, through `pdarts evaluate --model` ------------------------------------------
    Case(
        "model-truncated",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt is not a readable pdarts checkpoint", "retrain it"],
        _truncated("train/model.pt", "model.pt"),
        earlier=EVAL_EARLIER,
    ),
    Case(
        "model-not-a-checkpoint",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt is not a readable pdarts checkpoint", "retrain it"],
        _text("model.pt", "version https://git-lfs.github.com/spec/v1\n"),
    ),
    Case(
        "model-plain-state-dict",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt is not a pdarts model file (no 'state_dict'/'network'); retrain it"],
        _torch_file("model.pt", {"stem.0.weight": torch.zeros(4, 1, 3, 3)}),
    ),
    Case(
        "model-unsafe-pickle",
        [*EVALUATE, "--model", "model.pt"],
        [
            "model.pt is not a readable pdarts checkpoint (it holds more than tensors and plain data:",
            "GLOBAL posix.mkdir",
            "retrain it",
        ],
        _torch_file("model.pt", MakesAFolder(Path("pwned"))),
        earlier=EVAL_EARLIER,
    ),
    Case(
        "model-weights-of-another-width",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt does not match its network description", "size mismatch", "retrain it"],
        _model(lambda p: p["network"].update(init_channels=6)),
    ),
    Case(
        "model-missing-weights",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt does not match its network description", "Missing key(s)"],
        _model(lambda p: p["state_dict"].pop(next(iter(p["state_dict"])))),
    ),
    Case(
        "model-extra-weights",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt does not match its network description", "Unexpected key(s)"],
        _model(lambda p: p["state_dict"].update(extra=torch.zeros(1))),
    ),
    Case(
        "model-broken-network-description",
        [*EVALUATE, "--model", "model.pt"],
        ["model.pt has a broken network description", "retrain it"],
        _model(lambda p: p["network"].pop("num_cells")),
    ),
    # ---- resume checkpoints, through `pdarts search --checkpoint` --------------------------------
    Case(
        "search-checkpoint-truncated",
        [*SEARCH, "--checkpoint", "checkpoint.pt"],
        ["checkpoint checkpoint.pt is unreadable", CHECKPOINT_FIX],
        _checkpoint("search", truncate=True),
    ),
    Case(
        "search-checkpoint-of-other-settings",
        [*SEARCH, "--checkpoint", "checkpoint.pt"],
        ["checkpoint checkpoint.pt was written for other settings or data", CHECKPOINT_FIX],
        _checkpoint("search", lambda payload: payload.update(fingerprint="of other settings")),
    ),
    Case(
        "search-checkpoint-is-a-model-file",
        [*SEARCH, "--checkpoint", "checkpoint.pt"],
        ["checkpoint.pt is not a pdarts checkpoint", CHECKPOINT_FIX],
        lambda f, g: shutil.copy(g / "train" / "model.pt", f / "checkpoint.pt"),
    ),
    Case(
        "search-checkpoint-network-of-another-shape",
        [*SEARCH, "--checkpoint", "checkpoint.pt"],
        ["the checkpoint does not fit this stage's supernet", CHECKPOINT_FIX],
        _checkpoint("search", lambda payload: _resize_first(payload["state"]["model"])),
    ),
    Case(
        "search-checkpoint-damaged-state",
        [*SEARCH, "--checkpoint", "checkpoint.pt"],
        ["checkpoint.pt", CHECKPOINT_FIX],
        _checkpoint("search", lambda payload: payload["state"].pop("model")),
    ),
    # ---- resume checkpoints, through `pdarts train --checkpoint` ---------------------------------
    Case(
        "train-checkpoint-truncated",
        [*TRAIN, "--checkpoint", "checkpoint.pt"],
        ["checkpoint checkpoint.pt is unreadable", CHECKPOINT_FIX],
        _checkpoint("train", truncate=True),
        earlier=MODEL_EARLIER,
    ),
    Case(
        "train-checkpoint-of-other-settings",
        [*TRAIN, "--checkpoint", "checkpoint.pt", "--seed", "1"],
        ["checkpoint checkpoint.pt was written for other settings or data", CHECKPOINT_FIX],
        _checkpoint("train"),
    ),
    Case(
        "train-checkpoint-of-a-search-stage",
        [*TRAIN, "--checkpoint", "checkpoint.pt"],
        ["checkpoint checkpoint.pt was written for other settings or data", CHECKPOINT_FIX],
        _checkpoint("search"),
    ),
    Case(
        "train-checkpoint-of-an-older-format",
        [*TRAIN, "--checkpoint", "checkpoint.pt"],
        ["checkpoint.pt was written by another pdarts version", CHECKPOINT_FIX],
        _checkpoint("train", lambda payload: payload.update(format=1)),
    ),
    Case(
        "train-checkpoint-network-of-another-shape",
        [*TRAIN, "--checkpoint", "checkpoint.pt"],
        ["the checkpoint does not fit this train network", "size mismatch", CHECKPOINT_FIX],
        _checkpoint("train", lambda payload: _resize_first(payload["state"]["network"])),
        earlier=MODEL_EARLIER,
    ),
    Case(
        "train-checkpoint-damaged-state",
        [*TRAIN, "--checkpoint", "checkpoint.pt"],
        ["checkpoint checkpoint.pt is damaged (no optimizer)", CHECKPOINT_FIX],
        _checkpoint("train", lambda payload: payload["state"].pop("optimizer")),
    ),
]


# --------------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """Good inputs, made in this process by the real commands: a digits manifest, a genotype, alphas,
    candidates, a trained model (``train/``), a tiny CIFAR-10 and its manifest, an image folder and
    its prepare-transfer output."""
    base = tmp_path_factory.mktemp("good")
    _command("prepare-data", *flags(SMOKE["data"]), "--out", base / "dataset.json")
    (base / "genotype.json").write_text(json.dumps(genotype_to_dict(GENOTYPES["PDARTS"])))
    (base / "alphas.json").write_text(json.dumps(alphas()))
    (base / "candidates.json").write_text(
        json.dumps({"normal": [["skip_connect"]] * 14, "reduce": [["skip_connect"]] * 14})
    )
    _command(*train_args(base, base / "genotype.json", base / "train"))
    write_cifar(base / "data", "cifar10")
    _command("prepare-data", *flags(_cifar_settings(base / "data")), "--out", base / "cifar.json")
    _write_tree(base / "images")
    _command(
        "prepare-transfer", "--dataset", "imagefolder", "--root", base / "images", "--out", base / "transfer"
    )
    return base


def _snapshot(*folders: Path) -> dict[str, str]:
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for folder in folders
        for path in sorted(folder.rglob("*"))
    }


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.marks) for case in CASES])
def test_bad_input_is_refused_cleanly(case: Case, good: Path, tmp_path: Path, run_pdarts):
    if case.setup is not None:
        case.setup(tmp_path, good)
    if case.earlier is not None:
        _copy(good / case.earlier[0], tmp_path / case.earlier[1])
    before = _snapshot(tmp_path, good)

    proc = run_pdarts("-q", *(str(arg).format(good=good) for arg in case.argv), cwd=tmp_path, timeout=120)

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"pdarts {case.argv[0]}: error: ") and lines[0].isprintable(), lines[0]
    assert proc.stdout == ""
    assert _snapshot(tmp_path, good) == before, "a file was written, changed or removed"
    if case.earlier is None:
        assert not (tmp_path / OUT).exists()
    for expected in case.expect:  # last: a wording problem is not hiding an artifact or a crash
        assert expected in lines[0], lines[0]


def test_the_table_is_large_and_ids_are_unique():
    assert len(CASES) >= 35 and len({case.id for case in CASES}) == len(CASES)
