"""The Snakemake profiles: the SLURM one declares the GPUs of the training rules, for rules that exist."""

import re

import yaml

from .conftest import ROOT

PROFILES = ROOT / "workflow" / "profiles"


def _rule_names() -> set[str]:
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, flags=re.M))


def test_slurm_profile_declares_gpus_per_rule():
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    resources = profile["set-resources"]
    assert set(resources) <= _rule_names()
    for rule in ("search", "train", "transfer", "evaluate_train", "evaluate_transfer"):
        assert resources[rule]["gpu"] >= 1
    # the 8-GPU ImageNet profile starts 8 processes: the transfer job must hold 8 GPUs
    paper = yaml.safe_load((ROOT / "configs" / "imagenet-8gpu.yaml").read_text())
    assert resources["transfer"]["gpu"] == paper["transfer"]["processes"] == 8


def test_default_profile_runs_locally():
    profile = yaml.safe_load((PROFILES / "default" / "config.yaml").read_text())
    assert profile["cores"] == "all" and "executor" not in profile
