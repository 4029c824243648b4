"""The pipeline under the real ``dvc`` and ``snakemake``, on the smoke settings, in temporary git repos.

Nothing is mocked: each repository is a real ``git clone`` of this one, committed baseline of results
included (the code under test committed on top), with configs/smoke.yaml as params.yaml, and the tools
run as commands.
Which steps ran is read from the tools' own output (DVC: ``Running stage 'NAME'``; Snakemake 9: the
``rule NAME:`` blocks of a dry run, ``localrule NAME:`` when it runs them, with their ``wildcards:``
line, checked against the ``Job stats`` table).

Each tool gets one repository that goes through one fixed sequence of changes (``Scenario``): full run,
no-op rerun, a train setting, stage 2's skip_dropout, derive.max_skip, two stages instead of three. The
two sequences run at the same time in background threads (started when the module's first test runs,
Snakemake's at lower CPU priority), and each test waits for the step it checks, so each pipeline runs
once plus its reruns. Tests read what a step captured right after it ran, never the live repository.

Every step runs single-threaded (OMP_NUM_THREADS=1): Snakemake sets that itself for its one-thread jobs,
so the two tools compute the same numbers, and two cores are not oversubscribed by torch's threads.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT
from ..helpers import SMOKE_STAGES, Repo

pytestmark = pytest.mark.workflow

GATE, GATE_FILE = "check_params", "results/params.ok"  # DVC's settings gate and its file
STEP_WORDS = ("prepare", "search", "prune", "derive", "train", "transfer", "evaluate", "report")
REQUIRED_WORDS = ("search", "prune", "derive", "train", "transfer", "evaluate", "report")
PREPARE = {("prepare_data", None), ("prepare_transfer", None), ("prepare_space", None)}
# The one lint this project declines: it runs every step from one virtualenv, not per-rule conda envs.
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}
# CPU priority: DVC's chain of one-at-a-time steps is the longest path of this file; the Snakemake
# sequence and the dry runs (which run beside it) use the CPU it leaves.
SMK_NICENESS = DRY_NICENESS = 10


# --------------------------------------------------------------------------------------------------
# Temporary repositories and commands


def changed_under(path: str, before: dict[str, str], after: dict[str, str]) -> bool:
    """Whether a file, or any file in a folder, differs between two snapshots."""
    paths = {p for p in before.keys() | after.keys() if p == path or p.startswith(path.rstrip("/") + "/")}
    return any(before.get(p) != after.get(p) for p in paths)


# --------------------------------------------------------------------------------------------------
# Reading the tools' output. A step is keyed (rule, stage): ("search", "stage2"), ("derive", None).

StepKey = tuple[str, str | None]


def fmt(keys) -> list[str]:
    return sorted(f"{rule}[{stage}]" if stage else rule for rule, stage in keys)


def stage_names(params: dict) -> list[str]:
    return [stage["name"] for stage in params["search"]["stages"]]


def dvc_key(name: str, stages: list[str]) -> StepKey:
    """DVC's ``search@1`` is Snakemake's rule search with stage=<the second stage's name>."""
    base, _, index = name.partition("@")
    return (base, stages[int(index)]) if index else (base, None)


def dvc_ran(output: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)':", output, flags=re.M)


def dvc_dry_commands(output: str) -> dict[str, str]:
    """``dvc repro --dry`` output: stage name -> the command it would run (the ``> `` line)."""
    commands: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        match = re.match(r"Running stage '([^']+)':$", line)
        if match:
            current = match.group(1)
            commands[current] = []
        elif current and line.startswith("> "):
            commands[current].append(line[2:])
        else:
            current = None
    for name, cmds in commands.items():
        assert len(cmds) == 1, f"stage {name} has {len(cmds)} commands: {cmds}"
    return {name: cmds[0] for name, cmds in commands.items()}


def dvc_stages(repo: Repo, dvcfile: str = "dvc.yaml") -> dict[str, dict]:
    """The stages DVC resolves from ``dvcfile`` + params.yaml (foreach expanded): cmd, file deps, outs.

    Outs include metrics and plots files. Read through DVC's own API, since `dvc stage list` truncates.
    """
    code = (
        "import json\n"
        "from dvc.repo import Repo\n"
        "with Repo('.') as repo:\n"
        "    print(json.dumps({s.addressing: {'cmd': s.cmd, 'outs': [o.def_path for o in s.outs],\n"
        "        'deps': [d.def_path for d in s.deps if not d.def_path.endswith('params.yaml')]}\n"
        f"        for s in repo.index.stages if s.dvcfile.relpath == {dvcfile!r}}}))\n"
    )
    return json.loads(repo.run(sys.executable, "-c", code).stdout.strip().splitlines()[-1])


@dataclass
class Job:
    rule: str
    fields: dict[str, str] = field(default_factory=dict)
    shell: str | None = None

    @property
    def key(self) -> StepKey:
        wildcards = dict(w.split("=", 1) for w in self.fields.get("wildcards", "").split(", ") if w)
        assert set(wildcards) <= {"stage"}, wildcards
        return (self.rule, wildcards.get("stage"))

    def files(self, name: str) -> set[str]:
        return {f for f in self.fields.get(name, "").split(", ") if f}


def snakemake_jobs(output: str) -> list[Job]:
    """The job blocks Snakemake prints (``rule X:`` in a dry run, ``localrule X:`` when it runs them),
    checked against its ``Job stats`` table."""
    jobs: list[Job] = []
    current = None
    for line in output.splitlines():
        header = re.match(r"(?:local)?rule (\w+):$", line)
        if header:
            current = Job(header.group(1))
            jobs.append(current)
            continue
        item = re.match(r" {4}(\w+): (.*)$", line)
        if current and item:
            current.fields[item.group(1)] = item.group(2)
            continue
        if current and line.startswith("Shell command: ") and current.shell is None:
            current.shell = line.removeprefix("Shell command: ")
        current = None
    stats = {}
    table = re.search(r"^Job stats:\njob +count\n[- ]+\n(.*?)^total +(\d+)$", output, flags=re.M | re.S)
    if table:
        stats = {row.split()[0]: int(row.split()[1]) for row in table.group(1).splitlines() if row.strip()}
        assert sum(stats.values()) == int(table.group(2))
    assert Counter(job.rule for job in jobs) == Counter(stats), f"job blocks {jobs} vs job stats {stats}"
    return jobs


def snakemake_steps(output: str) -> set[StepKey]:
    """The steps Snakemake ran (or would run), without the target rule ``all``."""
    keys = [job.key for job in snakemake_jobs(output) if job.rule != "all"]
    assert len(keys) == len(set(keys)), f"a step twice: {keys}"
    return set(keys)


# --------------------------------------------------------------------------------------------------
# One repository per tool, taken through a fixed sequence of changes, each step run once on demand.


@dataclass
class Step:
    """What one run of a tool did: its output, the steps it ran, results before and after."""

    output: str
    ran: set[StepKey]
    before: dict[str, str]
    after: dict[str, str]
    files: dict[str, object]  # CAPTURED files as they were right after the run
    info: dict = field(default_factory=dict)
    ran_names: list[str] = field(default_factory=list)  # DVC's own stage names

    def changed(self, path: str) -> bool:
        return changed_under(path, self.before, self.after)


class Scenario:
    """Runs named steps in a fixed order, each once: all of them in a background thread (``start``),
    while ``scenario[name]`` waits for the one a test needs; without ``start``, up to it, inline."""

    STEPS: tuple[str, ...] = ("full", "noop", "train", "stage2", "max_skip", "two_stages")

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.done: dict[str, Step] = {}
        self.error: tuple[str, BaseException] | None = None
        self.stopping = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def __getitem__(self, name: str) -> Step:
        if self._thread is None:
            self._run_until(name)
        with self._changed:
            self._changed.wait_for(lambda: name in self.done or self.error or not self.running())
        if name in self.done:
            return self.done[name]
        failed, exc = self.error or ("?", "stopped")
        detail = (
            exc if isinstance(exc, (str, pytest.fail.Exception)) else "".join(traceback.format_exception(exc))
        )
        pytest.fail(f"step {failed!r} of this repository failed:\n{detail}", pytrace=False)

    def _run_until(self, name: str) -> None:
        for step in self.STEPS[: self.STEPS.index(name) + 1]:
            if step in self.done or self.error or self.stopping:
                continue
            try:
                result = getattr(self, f"step_{step}")()
            except BaseException as exc:  # reported to every test that asks for this step or a later one
                result, self.error = None, (step, exc)
            with self._changed:
                if result is not None:
                    self.done[step] = result
                self._changed.notify_all()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run_until, args=(self.STEPS[-1],), name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Lets the step in progress finish and runs no more."""
        self.stopping = True
        if self._thread is not None:
            self._thread.join()

    def changing(self, action: Callable[[], str], parse: Callable[[str], set[StepKey]]) -> Step:
        before = self.repo.snapshot()
        output = action()
        return Step(output, parse(output), before, self.repo.snapshot(), self.repo.capture())


def genotype_cap_that_changes(repo: Repo) -> int:
    """A derive.max_skip value whose genotype differs from the current one, if any cap gives another
    (derive writes every cap's genotype to genotypes.json); else another value than the current one."""
    current = repo.json("results/derive/genotype.json")
    caps = repo.json("results/derive/genotypes.json")["caps"]
    for cap in caps:
        if cap["genotype"] != current:
            return cap["max_skip"]
    return 0 if repo.params["derive"]["max_skip"] != 0 else 8


def two_stage_params(params: dict) -> dict:
    params = copy.deepcopy(params)
    params["search"]["stages"] = params["search"]["stages"][:2]  # stage2 stays after stage1
    return params


# Bad settings given the DVC way (`dvc exp run -S`), beside the whole bad files of the bad-input table:
# (override, what the one error line must name).
BAD_OVERRIDES = [
    ("search.stages.0.ops=3", ["search.stages[1].ops: 5 is more than the 3 ops of", "must not grow"]),
    ("search.stages.0.skip_dropout=1.5", ["search.stages[0].skip_dropout: 1.5"]),
    ("train.epochs=-3", ["train.epochs: -3 is less than the minimum of 1"]),
    ("+train.epoch=3", ["train: Additional properties are not allowed ('epoch' was unexpected)"]),
    ("search.stages.1.after=stage0", ["search.stages[1].after: must be 'stage1'"]),
    ("transfer_data.verify_images=maybe", ["transfer_data.verify_images: 'maybe' is not of type 'boolean'"]),
]


def settings_cases() -> list:
    """The bad settings files of the bad-input table (the cases that `pdarts check-params` refuses)."""
    from ..test_bad_inputs import CASES, CHECK

    return [case for case in CASES if tuple(case.argv) == CHECK]


class DvcScenario(Scenario):
    STEPS = (
        "full",
        "noop",
        "rerun_identical",
        "verify_images",
        "train",
        "stage2",
        "max_skip",
        "bad_settings",  # before two_stages: every file under results/ is then one DVC tracks
        "two_stages",
    )

    def repro(self, *args: str, resolve: bool = True) -> Step:
        """Runs ``dvc ARGS``; with ``resolve``, also records the stages DVC resolves (for dvc_expected)."""
        step = self.changing(
            lambda: self.repo.run("dvc", *args).stdout,
            lambda out: {dvc_key(n, stage_names(self.repo.params)) for n in dvc_ran(out) if n != GATE},
        )
        step.ran_names = [name for name in dvc_ran(step.output) if name != GATE]
        step.info["gate_ran"] = GATE in dvc_ran(step.output)
        step.info["lock"] = step.files["dvc.lock"]["stages"]
        if resolve:
            step.info["stages"] = dvc_stages(self.repo)
        return step

    def step_full(self) -> Step:
        step = self.repro("repro", resolve=False)
        step.info["metrics"] = json.loads(self.repo.run("dvc", "metrics", "show", "--json").stdout)
        step.info["plots"] = json.loads(self.repo.run("dvc", "plots", "show", "--json").stdout)
        return step

    def step_noop(self) -> Step:
        return self.repro("repro", resolve=False)

    def step_rerun_identical(self) -> Step:
        """With everything committed, a forced rerun of a search stage and of train (same settings)."""
        self.repo.git("add", "-A")
        self.repo.git("commit", "-q", "-m", "the full run")
        step = self.repro("repro", "--force", "--single-item", f"search@{len(SMOKE_STAGES) - 1}", "train")
        step.info["git_status"] = self.repo.run("git", "status", "--porcelain").stdout
        step.info["dvc_status"] = self.repo.run("dvc", "status", "--json", "dvc.yaml").stdout
        # Read now: the scenario goes on in the background and later steps rewrite the run record.
        step.info["train_record"] = self.repo.json("logs/train.json")
        step.info["train_epochs"] = self.repo.params["train"]["epochs"]
        return step

    def step_verify_images(self) -> Step:
        return self.repro("exp", "run", "-S", "transfer_data.verify_images=false")

    def step_train(self) -> Step:
        return self.repro("exp", "run", "-S", "train.epochs=2")

    def step_stage2(self) -> Step:
        # Hydra's override grammar: list items by a dotted index (`stages[1]` is a lexer error).
        return self.repro("exp", "run", "-S", "search.stages.1.skip_dropout=0.5")

    def step_max_skip(self) -> Step:
        """The README's example: the workspace committed, then `dvc exp run -S derive.max_skip=M` and
        its `dvc exp show` line at 120 terminal columns."""
        cap = genotype_cap_that_changes(self.repo)
        self.repo.git("add", "-A")
        self.repo.git("commit", "-q", "-m", "before max_skip")
        step = self.repro("exp", "run", "-S", f"derive.max_skip={cap}")
        step.info["max_skip"] = cap
        command = shlex.split(_readme_exp_show())
        step.info["exp_show"] = self.repo.run("env", "COLUMNS=120", *command, "--no-pager").stdout
        return step

    def step_two_stages(self) -> Step:
        self.repo.params = two_stage_params(self.repo.params)
        step = self.repro("repro")
        step.info["rerun"] = self.repo.run("dvc", "repro").stdout
        return step

    def step_bad_settings(self) -> Step:
        """Every bad settings file of the bad-input table under `dvc repro`, and bad `-S` overrides under
        `dvc exp run`, each in the finished workspace and undone afterwards. Per attempt: the tool's
        output, the results and dvc.lock after it, and `dvc status` once the settings are restored."""
        self.repo.git("add", "-A")
        self.repo.git("commit", "-q", "-m", "before the bad settings")
        params = self.repo.path / "params.yaml"
        state = lambda: {**self.repo.snapshot(), "dvc.lock": (self.repo.path / "dvc.lock").read_text()}
        before = state()
        attempts = {}

        def attempt(name: str, command: list[str], expect: list[str]) -> None:
            proc = self.repo.run(*command, check=False)
            after = state()
            if params.is_dir():
                params.rmdir()
            # Restored from the commit's content: after a failed `dvc exp run -S` with a value of the same
            # length, DVC leaves git's index believing the edited file unchanged, so `git checkout` skips it.
            params.write_text(self.repo.run("git", "show", "HEAD:params.yaml").stdout)
            status = self.repo.run("dvc", "status", "--json", "dvc.yaml", check=False).stdout
            attempts[name] = {"proc": proc, "expect": expect, "after": after, "status": status}

        for case in settings_cases():
            params.unlink()
            if case.setup is not None:
                case.setup(self.repo.path, self.repo.path)
            attempt(case.id, ["dvc", "repro"], list(case.expect))
        for override, expect in BAD_OVERRIDES:
            attempt(override, ["dvc", "exp", "run", "-S", override], expect)
        return Step("", set(), before, state(), self.repo.capture(), info={"attempts": attempts})


class SnakemakeScenario(Scenario):
    """Settings changes go in through ``--configfile override.yaml`` (partial; merged over params.yaml),
    accumulated so that each run keeps the earlier changes.

    Two changes are only dry-run (``dry=True``: what Snakemake would rerun, and the commands, from the
    state after the train change; not kept), to keep the file's time down: Snakemake decides what reruns
    before it runs anything (no checkpoints here), and reruns everything downstream of a change.
    """

    def __init__(self, repo: Repo) -> None:
        super().__init__(repo)
        self.override: dict = {}

    def snakemake(self, change: dict | None = None, dry: bool = False) -> Step:
        # --max-threads 1: the heavy rules ask for every core (threads: workflow.cores); here each job
        # gets one thread, as the DVC steps (OMP_NUM_THREADS=1), so both tools compute the same numbers.
        args = ["snakemake", "--cores", "2", "--max-threads", "1", "-p"]
        override = merge(copy.deepcopy(self.override), change or {})
        if not dry:
            self.override = override
        if override:
            name = "override-dry.yaml" if dry else "override.yaml"
            (self.repo.path / name).write_text(yaml.safe_dump(override, sort_keys=False))
            args += ["--configfile", name]
        if dry:
            args.append("-n")
        step = self.changing(lambda: self.repo.run(*args).stdout, snakemake_steps)
        step.info["jobs"] = {job.key: job for job in snakemake_jobs(step.output)}
        step.info["args"] = args
        return step

    def config(self) -> dict:
        return merge(self.repo.params, copy.deepcopy(self.override))

    def step_full(self) -> Step:
        step = self.snakemake()
        self.repo.run("snakemake", "--cores", "1", "--report", "report.html")
        step.info["report"] = (self.repo.path / "report.html").read_text(errors="replace")
        (self.repo.path / "report.html").unlink()
        return step

    def step_noop(self) -> Step:
        return self.snakemake()

    def step_train(self) -> Step:
        return self.snakemake({"train": {"epochs": 2}})

    def step_stage2(self) -> Step:
        stages = copy.deepcopy(self.config()["search"]["stages"])
        stages[1]["skip_dropout"] = 0.5
        return self.snakemake({"search": {"stages": stages}}, dry=True)  # a list is replaced, not merged

    def step_max_skip(self) -> Step:
        cap = genotype_cap_that_changes(self.repo)
        step = self.snakemake({"derive": {"max_skip": cap}}, dry=True)
        step.info["max_skip"] = cap
        return step

    def step_two_stages(self) -> Step:
        stages = two_stage_params(self.config())["search"]["stages"]
        step = self.snakemake({"search": {"stages": stages}})
        step.info["rerun"] = self.repo.run(*step.info["args"], "-n").stdout
        return step


def merge(base: dict, change: dict) -> dict:
    """Recursive dict update, as Snakemake merges config files (lists are replaced)."""
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@pytest.fixture(scope="module", autouse=True)
def scenarios(request, tmp_path_factory):
    """The DVC and the Snakemake repository, each going through its steps in a background thread, so
    that the two tools run at the same time (each step is single-threaded; the machine has two cores).
    Only the ones that the selected tests of this module use are made."""
    used = {name for item in request.session.items if item.path == request.path for name in item.fixturenames}
    made: dict[str, Scenario] = {}
    if "dvc" in used:
        made["dvc"] = DvcScenario(Repo(tmp_path_factory.mktemp("dvc") / "repo"))
    if "smk" in used:
        made["smk"] = SnakemakeScenario(
            Repo(tmp_path_factory.mktemp("snakemake") / "repo", niceness=SMK_NICENESS)
        )
    for scenario in made.values():
        scenario.start()
    yield made
    for scenario in made.values():
        scenario.stop()


@pytest.fixture(scope="module")
def dvc(scenarios) -> DvcScenario:
    return scenarios["dvc"]


@pytest.fixture(scope="module")
def smk(scenarios) -> SnakemakeScenario:
    return scenarios["smk"]


@pytest.fixture(scope="module")
def dry_repo(tmp_path_factory) -> Repo:
    """A repository on the smoke settings that only ever sees dry runs and lint."""
    return Repo(tmp_path_factory.mktemp("dry") / "repo", niceness=DRY_NICENESS)


FINAL_OUTPUTS = [
    "results/evaluate/train.json",
    "results/evaluate/transfer.json",
    "results/derive/genotype.json",
    *[f"results/search/{name}/alphas.json" for name in SMOKE_STAGES],
]


def search_history(step: Step, stage: str) -> list[dict]:
    return step.files[f"results/search/{stage}/history.json"]


def caps(step: Step) -> dict[int, dict]:
    """derive's genotype for every skip cap, by cap."""
    return {c["max_skip"]: c["genotype"] for c in step.files["results/derive/genotypes.json"]["caps"]}


def all_keys(stages: list[str]) -> set[StepKey]:
    per_stage = {(rule, name) for rule in ("prune", "search") for name in stages}
    rest = {("derive", None), ("train", None), ("transfer", None), ("evaluate_train", None)}
    return PREPARE | per_stage | rest | {("evaluate_transfer", None), ("report", None)}


def downstream_of_stage(stages: list[str], index: int) -> set[StepKey]:
    """Snakemake (modification times) reruns the stage's search and everything after it."""
    later = {("search", stages[index])} | {(r, n) for r in ("prune", "search") for n in stages[index + 1 :]}
    return later | downstream_of_derive()


def downstream_of_derive() -> set[StepKey]:
    rest = ("derive", "train", "transfer", "evaluate_train", "evaluate_transfer", "report")
    return {(rule, None) for rule in rest}


def dvc_expected(step: Step, settings_changed: set[str]) -> set[str]:
    """DVC is content-addressed: a stage reruns iff its own settings changed or a dependency's content
    changed (outputs that come out byte-identical stop the cascade)."""
    stages = step.info["stages"]
    return {
        name
        for name, stage in stages.items()
        if name in settings_changed or any(step.changed(dep) for dep in stage["deps"])
    }


# --------------------------------------------------------------------------------------------------
# 1. Both tools: the same steps, commands, inputs and outputs


def _same_files(dvc_paths, smk_paths) -> bool:
    """The same files, where one tool may name a folder and the other files in it: DVC declares the
    files of a dvclive folder (Snakemake the folder) and depends on the search folder (Snakemake on
    each stage's alphas and history). Each path stands for the widest folder of either list holding it."""
    paths = set(dvc_paths) | set(smk_paths)

    def widest(path):
        return min((q for q in paths if path == q or path.startswith(q + "/")), key=len)

    return {widest(p) for p in dvc_paths} == {widest(p) for p in smk_paths}


NO_LATENCY = "configs/smoke.yaml, evaluate.latency_batch_sizes: []"  # an empty list: DVC writes no flag


@pytest.mark.parametrize(
    "config",
    ["configs/smoke.yaml", "params.yaml", "configs/cifar10.yaml", "configs/cifar100.yaml", NO_LATENCY],
)
def test_same_steps_commands_and_files(tmp_path, config):
    params = ROOT / config.split(",")[0]
    if config == NO_LATENCY:
        text = params.read_text()
        params = tmp_path / "params.yaml"
        params.write_text(text.replace("latency_batch_sizes: [1, 64]", "latency_batch_sizes: []", 1))
    repo = Repo(tmp_path / "repo", params, niceness=DRY_NICENESS)
    stages = stage_names(repo.params)
    dvc_cmds = dvc_dry_commands(repo.run("dvc", "repro", "--dry", "--force").stdout)
    dvc_resolved = dvc_stages(repo)
    # DVC's settings gate: first, reading every section, and every step depends on its file. (Snakemake
    # checks the config when it reads the Snakefile, so it has no such step.)
    assert next(iter(dvc_cmds)) == GATE
    gate = dvc_resolved.pop(GATE)
    assert shlex.split(dvc_cmds.pop(GATE))[-4:] == ["check-params", "params.yaml", "--out", GATE_FILE]
    assert gate["outs"] == [GATE_FILE] and gate["deps"] == []
    assert all(GATE_FILE in stage["deps"] for stage in dvc_resolved.values())
    dvc_resolved = {
        name: {**stage, "deps": [d for d in stage["deps"] if d != GATE_FILE]}
        for name, stage in dvc_resolved.items()
    }
    smk_jobs = snakemake_jobs(repo.run("snakemake", "-n", "-p", "--forceall", "--cores", "1").stdout)
    smk = {job.key: job for job in smk_jobs if job.rule != "all"}

    # The same steps...
    assert set(dvc_cmds) == set(dvc_resolved)
    dvc_by_key = {dvc_key(name, stages): name for name in dvc_cmds}
    assert len(dvc_by_key) == len(dvc_cmds) == len(smk) == len(smk_jobs) - 1
    assert set(dvc_by_key) == set(smk) == all_keys(stages)
    # ... named for what they do ...
    for name in [*dvc_cmds, *(job.rule for job in smk_jobs if job.rule != "all")]:
        assert any(word in name for word in STEP_WORDS), name
    for word in REQUIRED_WORDS:
        assert any(word in name for name in dvc_cmds), word
        assert any(word in job.rule for job in smk_jobs), word
    for key, name in dvc_by_key.items():
        job = smk[key]
        # ... running the same command (up to shell quoting) ...
        assert job.shell is not None, job
        assert shlex.split(dvc_cmds[name]) == shlex.split(job.shell), key
        assert shlex.split(dvc_resolved[name]["cmd"]) == shlex.split(job.shell), key
        # ... on the same files: every DVC out (metrics and plots included) is a Snakemake output and
        # the reverse; every DVC dep a Snakemake input and the reverse.
        assert _same_files(dvc_resolved[name]["outs"], job.files("output")), key
        assert _same_files(dvc_resolved[name]["deps"], job.files("input")), key
        assert job.fields["log"] in shlex.split(job.shell), key
    # The final step reads the last stage's alphas.
    assert f"results/search/{stages[-1]}/alphas.json" in smk[("derive", None)].files("input")
    evaluate = shlex.split(smk[("evaluate_train", None)].shell)
    assert ("--latency_batch_sizes" in evaluate) == (config != NO_LATENCY)


# --------------------------------------------------------------------------------------------------
# 2. DVC caching


def test_dvc_full_run(dvc):
    step = dvc["full"]
    assert step.ran == all_keys(SMOKE_STAGES)
    assert step.info["gate_ran"] and dvc_ran(step.output)[0] == GATE
    assert len(step.ran_names) == len(step.ran)  # each once
    for path in FINAL_OUTPUTS:
        assert path in step.after, path
    evaluation = step.files["results/evaluate/train.json"]
    assert 0 <= evaluation["top1_acc"] <= 1
    # `dvc metrics show` lists the report's headline metrics: both evaluations' errors, the search
    # stages' seconds (the run records of this very run).
    text = json.dumps(step.info["metrics"])
    metrics = _find_key(step.info["metrics"], "results/metrics.json")["data"]
    assert metrics["top1_err"] == pytest.approx(evaluation["top1_err"]), text
    assert metrics["transfer_err"] == step.files["results/evaluate/transfer.json"]["top1_err"], text
    assert all(metrics[f"{stage}_s"] > 0 for stage in SMOKE_STAGES), text
    for name in (
        "index.html",
        "summary.md",
        "normal.png",
        "reduce.png",
        f"search/{SMOKE_STAGES[0]}_alphas.png",
    ):
        assert f"results/report/{name}" in step.after, name


def _find_key(tree, key):
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def test_dvc_plots_have_their_axes_and_show_the_reports_images(dvc):
    """`dvc plots show`: each dvclive file of a step is one chart, x = step (the epoch), y = its metric
    (never seconds); the report's images are image plots."""
    plots = dvc["full"].info["plots"]["data"]
    images = {Path(key).name for key, entries in plots.items() if all(e["type"] == "image" for e in entries)}
    expected = {"normal.png", "reduce.png", "train_curves.png", "transfer_curves.png"}
    expected |= {
        f"{stage}_{kind}.png" for stage in SMOKE_STAGES for kind in ("alphas", "trajectories", "curves")
    }
    assert expected <= images, sorted(images)
    charts = {key: entries for key, entries in plots.items() if key.endswith(".tsv")}
    assert f"results/search/{SMOKE_STAGES[0]}/live/plots/metrics/arch_loss.tsv" in charts, sorted(plots)
    assert "results/train/live/plots/metrics/train_acc.tsv" in charts, sorted(plots)
    for key, entries in charts.items():
        spec = json.dumps(entries)
        assert '"step"' in spec and f'"{Path(key).stem}"' in spec and "seconds" not in spec, key


def test_dvc_second_run_does_nothing(dvc):
    step = dvc["noop"]
    assert step.ran == set() and not step.info["gate_ran"], step.output
    assert "Data and pipelines are up to date" in step.output
    assert step.before == step.after


def test_dvc_rerun_with_identical_results_leaves_git_and_dvc_clean(dvc):
    """Timings and environment are not in the artifacts: a forced rerun of a search stage and of train,
    same settings, rewrites byte-identical files (models included), so nothing is left to commit."""
    step = dvc["rerun_identical"]
    assert step.ran == {("search", SMOKE_STAGES[-1]), ("train", None)}, step.output
    assert step.before == step.after
    assert step.info["git_status"] == "", step.info["git_status"]
    assert json.loads(step.info["dvc_status"]) == {}, step.info["dvc_status"]
    # What varies from run to run went to the run records beside the logs.
    record = step.info["train_record"]
    assert record["seconds"] > 0 and len(record["epoch_seconds"]) == step.info["train_epochs"]
    assert "torch" in record["environment"]


def test_dvc_data_check_setting_reruns_only_the_data_step(dvc):
    """transfer_data.verify_images changes how the data are checked, not the data: prepare_transfer
    reruns (after the settings gate), and the transfer training does not. (The report, which lists
    the settings, is redrawn.)"""
    step = dvc["verify_images"]
    assert step.info["gate_ran"]
    assert step.ran == {("prepare_transfer", None), ("report", None)}, step.output
    assert not step.changed("results/data/transfer")


def test_dvc_train_setting_via_exp_run(dvc):
    """`dvc exp run -S train.epochs=2` reruns exactly train, evaluate_train and the report, and reaches
    the step."""
    step = dvc["train"]
    assert step.info["gate_ran"]
    assert step.ran == {("train", None), ("evaluate_train", None), ("report", None)}, step.output
    assert step.ran == {dvc_key(n, SMOKE_STAGES) for n in dvc_expected(step, {"train", "report"})}
    assert len(step.files["results/train/history.json"]) == 2
    assert "--epochs 2" in step.info["lock"]["train"]["cmd"]


def _readme_exp_show() -> str:
    """The `dvc exp show` command of the README's experiments section."""
    lines = [
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("dvc exp show")
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_exp_show_reads_at_120_columns(dvc):
    """After `dvc exp run -S derive.max_skip=M` (a cap that changes the genotype, so both networks
    retrain), the README's `dvc exp show` fits 120 columns: every header whole (no "…"), the headline
    metrics, each stage's seconds, the changed setting, and no unchanged setting."""
    table = dvc["max_skip"].info["exp_show"]
    lines = table.strip("\n").splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 120, table
    assert "…" not in table, table
    header = lines[1].split()
    for column in (
        "top1_err",
        "params",
        "macs",
        "skips",
        *(f"{s}_s" for s in SMOKE_STAGES),
        "derive.max_skip",
    ):
        assert column in header, table
    assert "search.common.seed" not in header  # unchanged settings are left out


def test_dvc_stage_record_via_exp_run(dvc):
    """`-S search.stages.1.skip_dropout=0.5` changes one stage's record: search@1 reruns, not stage 1 nor
    the data; later stages rerun only as far as their inputs' content changed."""
    step = dvc["stage2"]
    assert ("search", "stage2") in step.ran
    assert not step.ran & (PREPARE | {("prune", "stage1"), ("search", "stage1"), ("prune", "stage2")})
    assert step.changed("results/search/stage2/alphas.json")
    assert set(step.ran_names) == dvc_expected(step, {"search@1", "report"}), step.output
    # derive and train ran iff what they read changed.
    assert (("derive", None) in step.ran) == step.changed("results/search/stage3/alphas.json")
    assert (("train", None) in step.ran) == step.changed("results/derive/genotype.json")
    # The value reached the step: the stage's skip-dropout schedule ends at 0.5.
    assert search_history(step, "stage2")[-1]["skip_dropout"] == pytest.approx(0.5)
    assert "--skip_dropout 0.5 " in step.info["lock"]["search@1"]["cmd"]
    assert [s["skip_dropout"] for s in step.files["params.yaml"]["search"]["stages"]] == [0.0, 0.5, 0.7]


def test_dvc_max_skip(dvc):
    step = dvc["max_skip"]
    cap = step.info["max_skip"]
    assert ("derive", None) in step.ran
    assert not {key for key in step.ran if key[0] in ("prune", "search") or key in PREPARE}
    assert set(step.ran_names) == dvc_expected(step, {"derive", "report"}), step.output
    assert step.files["results/derive/genotype.json"] == caps(step)[cap]
    assert (("train", None) in step.ran) == step.changed("results/derive/genotype.json")
    assert (("transfer", None) in step.ran) == step.changed("results/derive/genotype.json")


def test_dvc_two_stages(dvc):
    step = dvc["two_stages"]
    assert ("derive", None) in step.ran
    assert not {key for key in step.ran if key[0] in ("prune", "search") or key in PREPARE}
    assert set(step.ran_names) == dvc_expected(step, {"derive", "report"}), step.output
    assert set(step.info["stages"]) == {
        GATE, "prepare_data", "prepare_transfer", "prepare_space", "prune@0", "prune@1", "search@0",
        "search@1", "derive", "train", "transfer", "evaluate_train", "evaluate_transfer", "report",
    }  # fmt: skip
    derive = step.info["lock"]["derive"]
    assert "--alphas results/search/stage2/alphas.json" in derive["cmd"]
    assert [dep["path"] for dep in derive["deps"]] == [GATE_FILE, "results/search/stage2/alphas.json"]
    assert dvc_ran(step.info["rerun"]) == []


# --------------------------------------------------------------------------------------------------
# 3. Snakemake caching


def test_snakemake_full_run(smk):
    step = smk["full"]
    assert step.ran == all_keys(SMOKE_STAGES)
    for path in FINAL_OUTPUTS:
        assert path in step.after, path
    assert 0 <= step.files["results/evaluate/transfer.json"]["top1_acc"] <= 1


def test_snakemake_report_holds_the_figures(smk):
    """`snakemake --cores 1 --report report.html` after a run: Snakemake's own page, with the report's images
    (marked with report() in the rule) embedded."""
    page = smk["full"].info["report"]
    assert len(page) > 100_000
    for name in ("normal.png", "reduce.png", f"{SMOKE_STAGES[0]}_alphas.png", "train_curves.png"):
        assert name in page, name


def test_snakemake_second_run_does_nothing(smk):
    step = smk["noop"]
    assert step.ran == set(), step.output
    assert "Nothing to be done" in step.output
    assert step.before == step.after


def test_snakemake_partial_configfile_reruns_train(smk):
    """`--configfile override.yaml` holding only `train: {epochs: 2}` passes validation (merged over
    params.yaml), reruns exactly train, evaluate_train and the report, and reaches the step."""
    step = smk["train"]
    assert step.ran == {("train", None), ("evaluate_train", None), ("report", None)}, step.output
    assert "params" in step.info["jobs"][("train", None)].fields["reason"].lower()
    assert len(step.files["results/train/history.json"]) == 2


def test_snakemake_stage_record(smk):
    """A configfile overriding the search.stages list (stage 2's skip_dropout) would rerun stage 2's
    search and everything after it; not stage 1, not the data (dry run)."""
    step = smk["stage2"]
    jobs = step.info["jobs"]
    assert step.ran == downstream_of_stage(SMOKE_STAGES, 1), fmt(step.ran)
    assert "params" in jobs[("search", "stage2")].fields["reason"].lower()
    assert "--skip_dropout 0.5 " in jobs[("search", "stage2")].shell
    assert "--skip_dropout 0.7 " in jobs[("search", "stage3")].shell
    assert step.before == step.after  # a dry run


def test_snakemake_max_skip(smk):
    """derive.max_skip would rerun derive and what follows it, nothing before it (dry run)."""
    step = smk["max_skip"]
    derive = step.info["jobs"][("derive", None)]
    assert step.ran == downstream_of_derive(), fmt(step.ran)
    assert "params" in derive.fields["reason"].lower()
    assert f"--max_skip {step.info['max_skip']} " in derive.shell
    assert step.before == step.after


def test_snakemake_two_stages(smk):
    step = smk["two_stages"]
    assert step.ran == downstream_of_derive(), fmt(step.ran)
    derive = step.info["jobs"][("derive", None)]
    assert derive.files("input") == {"results/search/stage2/alphas.json"}
    assert "--alphas results/search/stage2/alphas.json" in derive.shell
    assert snakemake_steps(step.info["rerun"]) == set()
    assert "Nothing to be done" in step.info["rerun"]


# --------------------------------------------------------------------------------------------------
# 4. Both tools agree


def test_both_tools_compute_the_same_results(dvc, smk):
    """The same commands on the same settings give byte-identical artifacts, every one of them: data,
    alphas, genotypes, models, metrics, histories and evaluations (nothing in them varies by run)."""
    dvc_full, smk_full = dvc["full"].after, smk["full"].after
    # DVC writes .gitignore files beside its outputs and its settings gate's file; Snakemake a
    # timestamp into a directory() output. The report's pages and headline metrics show each run's
    # seconds (its images do not).
    timed = {"results/report/index.html", "results/report/summary.md", "results/metrics.json"}
    dvc_files = {p for p in dvc_full if not p.endswith("/.gitignore") and p not in {GATE_FILE, *timed}}
    assert dvc_files == {
        p for p in smk_full if not p.endswith((".snakemake_timestamp", "/.gitignore")) and p not in timed
    }
    for path in ["results/train/model.pt", "results/evaluate/train.json", *FINAL_OUTPUTS]:
        assert path in dvc_files, path
    assert {p: dvc_full[p] for p in dvc_files} == {p: smk_full[p] for p in dvc_files}


@pytest.mark.parametrize("change", ["train", "stage2", "max_skip", "two_stages"])
def test_both_tools_rerun_alike(dvc, smk, change):
    """Snakemake (modification times) reruns at least what DVC (content hashes) reruns, and both rerun
    the step whose settings changed. (DVC's steps are mapped to Snakemake's: search@1 -> search[stage2].
    Snakemake's stage2 and max_skip sets are its dry-run answers, from the state after the train change.)
    """
    dvc_step, smk_step = dvc[change], smk[change]
    changed_step = {"train": ("train", None), "stage2": ("search", "stage2")}.get(change, ("derive", None))
    assert changed_step in dvc_step.ran & smk_step.ran
    assert dvc_step.ran <= smk_step.ran, (fmt(dvc_step.ran), fmt(smk_step.ran))
    if change == "train":  # nothing content-dependent: exactly the same steps
        assert dvc_step.ran == smk_step.ran
    if change == "stage2":
        stage1 = {("prune", "stage1"), ("search", "stage1"), ("prune", "stage2")} | PREPARE
        assert not (dvc_step.ran | smk_step.ran) & stage1


# --------------------------------------------------------------------------------------------------
# 5. Bad settings stop Snakemake before anything runs, naming the key


@pytest.mark.parametrize(
    ("override", "messages"),
    [
        ({"train": {"epoch": 2}}, ["train: Additional properties are not allowed ('epoch' was unexpected)"]),
        (
            {
                "search": {
                    "stages": [
                        {"name": "stage1", "after": "space", "cells": 2, "ops": 5, "skip_dropout": 0.0},
                        {"name": "stage2", "after": "stage1", "cells": 3, "ops": 8, "skip_dropout": 0.4},
                    ]
                }
            },
            ["search.stages[1].ops", "must not grow"],
        ),
        (
            {
                "search": {
                    "stages": [
                        {"name": "stage1", "after": "stage0", "cells": 2, "ops": 5, "skip_dropout": 0.0}
                    ]
                }
            },
            ["search.stages[0].after"],
        ),
    ],
    ids=["unknown-key", "ops-grow", "broken-chain"],
)
def test_snakemake_refuses_bad_settings(dry_repo, override, messages):
    (dry_repo.path / "bad.yaml").write_text(yaml.safe_dump(override))
    proc = dry_repo.run("snakemake", "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0, proc.stdout
    for message in messages:
        assert message in proc.stdout, proc.stdout
    assert "Job stats" not in proc.stdout


# DVC reads params.yaml itself before any step can run: a file it cannot read, expand into dvc.yaml's
# stages or make a graph of stops it there, with its own one-line error (and nothing runs).
DVC_REFUSES_FIRST = {
    "params-missing-file",
    "params-empty-file",
    "params-binary-file",
    "params-is-a-folder",
    "params-yaml-syntax-error",
    "params-not-a-mapping",
    "params-K-is-0",  # no stages: `${search.stages[-1].name}` in derive cannot be resolved
    "params-duplicate-stage-names",  # two stages would write the same files
}


def test_dvc_refuses_bad_settings_before_any_step_changes(dvc):
    """Every bad settings file of the bad-input table under `dvc repro`, and bad overrides under `dvc exp
    run -S`, in a finished workspace: refused in one line before any step runs (the settings gate runs
    first), no result removed or rewritten, dvc.lock unchanged; once the value is restored, `dvc status`
    is clean."""
    step = dvc["bad_settings"]
    attempts = step.info["attempts"]
    assert len(attempts) == len(settings_cases()) + len(BAD_OVERRIDES) >= 30
    problems = []
    for name, got in attempts.items():
        output = got["proc"].stdout
        errors = [line for line in output.splitlines() if "error" in line.lower()]
        ours = [line for line in errors if line.startswith("pdarts check-params: error:")]
        if name in DVC_REFUSES_FIRST:
            refused = not ours and any(line.startswith("ERROR:") for line in errors)
        else:
            refused = len(ours) == 1 and all(text in ours[0] for text in got["expect"])
        checks = {
            "exit status 0": got["proc"].returncode != 0,
            "a step ran": set(dvc_ran(output)) <= {GATE},
            "results or dvc.lock changed": got["after"] == step.before,
            "dvc status not clean once restored": json.loads(got["status"] or "null") == {},
            "not refused in the expected line": refused,
        }
        changed = sorted(
            p for p in got["after"].keys() | step.before.keys() if got["after"].get(p) != step.before.get(p)
        )
        problems += [
            f"{name}: {what} ({changed})\n{output}\n{got['status']}" for what, ok in checks.items() if not ok
        ]
    assert not problems, "\n\n".join(problems)
    assert step.after == step.before


def test_snakemake_refuses_every_bad_settings_file(dry_repo):
    """The bad settings files of the bad-input table stop Snakemake when it reads the Snakefile."""
    params = dry_repo.path / "params.yaml"
    good = params.read_text()
    try:
        for case in settings_cases():
            params.unlink()
            if case.setup is not None:
                case.setup(dry_repo.path, dry_repo.path)
            proc = dry_repo.run("snakemake", "-n", "--cores", "1", check=False)
            if params.is_dir():
                params.rmdir()
            params.write_text(good)
            assert proc.returncode != 0, (case.id, proc.stdout)
            assert "Job stats" not in proc.stdout, (case.id, proc.stdout)
            if case.id not in DVC_REFUSES_FIRST - {"params-K-is-0", "params-duplicate-stage-names"}:
                for text in case.expect:
                    assert text in proc.stdout, (case.id, proc.stdout)
    finally:
        params.write_text(good)


# --------------------------------------------------------------------------------------------------
# 6. snakemake --lint


def test_snakemake_lint(dry_repo):
    """The linter finds nothing but the (declined) per-rule conda/container suggestion."""
    proc = dry_repo.run("snakemake", "--lint", check=False)
    titles = re.findall(r"^ {4}\* (.+?):?$", proc.stdout, flags=re.M)
    assert set(titles) <= ACCEPTED_LINTS, proc.stdout
    assert "Lints for snakefile" not in proc.stdout, proc.stdout
    if not titles:
        assert proc.returncode == 0, proc.stdout
