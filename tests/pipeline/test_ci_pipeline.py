"""The hosted-CI workflow (.github/workflows/pipeline.yml), checked and run here so it cannot rot.

The first test reads the workflow's structure. The second runs every ``run:`` step of its job except the
install step, in order, with bash, in a ``git clone`` of this repository (so ``origin/main`` exists, as it
does after ``actions/checkout`` with ``fetch-depth: 0``). Uncommitted changes of the working tree are
applied to the clone and committed there, so that the clone's HEAD, which the Snakemake step checks out
again with ``git worktree add``, is the code under test. Each step sees the workflow's ``env:`` (entries
with ``${{ }}`` expressions are GitHub's context and left unset, as on a push), a ``RUNNER_TEMP`` and a
``GITHUB_ENV`` file whose ``NAME=value`` lines reach the later steps, as on GitHub. The tools are this
interpreter's (its folder comes first on PATH) and import pdarts from the clone (PYTHONPATH), as
``pip install -e .`` in the checkout does on GitHub.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT
from ..helpers import clone_repository

WORKFLOW = Path(".github/workflows/pipeline.yml")
STEP_TIMEOUT = 900  # seconds; a smoke run takes one to two minutes on 2 CPU cores
TAIL = 6000  # characters of a failed step's output in the failure message
UP_TO_DATE = "Data and pipelines are up to date"

pytestmark = pytest.mark.workflow


def load_workflow(root: Path = ROOT) -> dict:
    workflow = yaml.safe_load((root / WORKFLOW).read_text())
    # YAML 1.1 (pyyaml) reads the key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def the_job(workflow: dict) -> dict:
    jobs = workflow["jobs"]
    assert len(jobs) == 1, f"expected one job, found {sorted(jobs)}"
    return next(iter(jobs.values()))


def git(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"`git {' '.join(args)}` in {cwd} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return proc.stdout.decode()


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    return env | {"GIT_TERMINAL_PROMPT": "0"}


# --------------------------------------------------------------------------------------------------
# The workflow's structure


def test_workflow_structure():
    workflow = load_workflow()
    triggers = workflow["on"]
    if isinstance(triggers, str):
        triggers = [triggers]
    if isinstance(triggers, list):
        triggers = dict.fromkeys(triggers)
    for event in ("push", "pull_request"):
        assert event in triggers, f"the workflow does not run on {event}"
        assert not triggers[event], f"{event} has filters ({triggers[event]}): it must run on every {event}"

    job = the_job(workflow)
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["DVC_NO_ANALYTICS"] == "1"
    assert workflow["defaults"]["run"]["shell"] == "bash"
    steps = job["steps"]
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uses["actions/checkout"]["uses"] == "actions/checkout@v4"
    assert uses["actions/checkout"]["with"]["fetch-depth"] == 0, "checkout needs all history for the diffs"
    assert uses["actions/setup-python"]["uses"] == "actions/setup-python@v5"
    assert str(uses["actions/setup-python"]["with"]["python-version"]) == "3.11"

    runs = [step for step in steps if "run" in step]
    assert all(step.get("name") for step in runs), "every run step needs a name"
    install = [step for step in runs if step.get("id") == "install"]
    assert len(install) == 1, "one run step with id: install"
    assert "pip install -e '.[test]'" in install[0]["run"]
    assert steps.index(install[0]) < steps.index(runs[-1])
    for step in runs:
        assert "${{" not in step["run"], f"step {step['name']!r}: pass GitHub's context through env:"

    bodies = "\n".join(step["run"] for step in runs if step is not install[0])
    for command in ("dvc repro", "snakemake", "dvc params diff", "dvc metrics diff", "git worktree add"):
        assert command in bodies, f"no step runs `{command}`"
    assert bodies.index("dvc repro") < bodies.index("snakemake")
    # Forcing jobs would hide the very bug the Snakemake step is there to catch (committed results that
    # make a fresh checkout look finished).
    forcing = {"-f", "--force", "-F", "--forceall", "-R", "--forcerun"}
    for line in bodies.splitlines():
        if "snakemake " in line:
            assert not forcing & set(line.split()), f"a step forces Snakemake: {line.strip()}"


# --------------------------------------------------------------------------------------------------
# Running its steps


def clone_under_test(target: Path) -> None:
    """A clone of ROOT whose HEAD is the code under test: ROOT's HEAD plus its uncommitted changes."""
    clone_repository(target)
    if git("status", "--porcelain", cwd=target, env=git_env()).strip():
        git("add", "-A", cwd=target, env=git_env())
        identity = ["-c", "user.name=pdarts tests", "-c", "user.email=tests@pdarts.invalid"]
        git(*identity, "commit", "-q", "--no-verify", "-m", "code under test", cwd=target, env=git_env())


def step_env(workflow: dict, job: dict, step: dict, clone: Path, runner_temp: Path, github_env: Path) -> dict:
    env = git_env()
    for name in ("SNAKEMAKE_PROFILE", "BASE_REF", "BASE_BRANCH", "DIFF_BASE"):
        env.pop(name, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(clone)
    env["DVC_NO_ANALYTICS"] = "1"
    env["RUNNER_TEMP"] = str(runner_temp)
    env["GITHUB_ENV"] = str(github_env)
    env["CI"] = "true"
    for section in (workflow.get("env"), job.get("env"), step.get("env")):
        for name, value in (section or {}).items():
            if "${{" in str(value):
                env.pop(name, None)  # GitHub's context: unset here, as on a push
            else:
                env[name] = str(value)
    for line in github_env.read_text().splitlines():
        name, sep, value = line.partition("=")
        assert sep and "<<" not in name, f"GITHUB_ENV line this test cannot read: {line!r}"
        env[name] = value
    return env


def run_step(index: int, step: dict, cwd: Path, env: dict, logs: Path) -> str:
    """Runs one step's body as GitHub does (bash script, -e -o pipefail, plus -u); returns its output."""
    script = logs / f"{index:02d}.sh"
    script.write_text(step["run"])
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-euo", "pipefail", str(script)],
        cwd=cwd / step.get("working-directory", "."),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a timeout ends dvc/snakemake and their steps too
    )
    start = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out = out.decode(errors="replace")
        pytest.fail(f"step {step['name']!r} ran past {STEP_TIMEOUT} s; its output ends:\n{out[-TAIL:]}")
    out = out.decode(errors="replace")
    (logs / f"{index:02d}.log").write_text(out)
    print(f"step {step['name']!r}: exit {proc.returncode} after {time.monotonic() - start:.0f} s")
    if proc.returncode != 0:
        errors = [line for line in out.splitlines() if line.startswith("::error::")]
        pytest.fail(
            f"step {step['name']!r} exited {proc.returncode}"
            + "".join(f"\n  {line.removeprefix('::error::')}" for line in errors)
            + f"\nits output ends:\n{out[-TAIL:]}"
        )
    return out


def dotted(settings: dict, key: str):
    for part in key.split("."):
        settings = settings[part]
    return settings


def made_by_this_run(path: Path, since: float, baseline: str) -> dict:
    assert path.is_file(), f"{path} is missing"
    assert path.stat().st_mtime >= since, f"{path} was not written by this run"
    text = path.read_text()
    assert text != baseline, f"{path} is the committed baseline"
    metrics = json.loads(text)
    assert 0.0 <= metrics["top1_acc"] <= 1.0, f"{path}: top1_acc {metrics['top1_acc']}"
    return metrics


def test_workflow_steps_run_locally(tmp_path):
    clone, runner_temp, logs = tmp_path / "checkout", tmp_path / "runner_temp", tmp_path / "logs"
    runner_temp.mkdir()
    logs.mkdir()
    github_env = runner_temp / "github_env"
    github_env.touch()
    clone_under_test(clone)
    branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=ROOT, env=git_env()).strip()
    has_main = (
        subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "origin/main^{commit}"],
            cwd=clone,
            env=git_env(),
            capture_output=True,
        ).returncode
        == 0
    )
    print(f"repository under test on {branch}; origin/main in the clone: {has_main}")
    baseline = git("show", "HEAD:results/evaluate/train.json", cwd=clone, env=git_env())

    workflow = load_workflow(clone)
    job = the_job(workflow)
    since = time.time() - 1  # file systems with coarse timestamps
    outputs: dict[str, str] = {}
    for index, step in enumerate(job["steps"]):
        if "run" not in step or step.get("id") == "install":
            continue
        env = step_env(workflow, job, step, clone, runner_temp, github_env)
        outputs[step["name"]] = run_step(index, step, clone, env, logs)
    everything = "\n".join(outputs.values())
    dvc_step = next(step["name"] for step in job["steps"] if "dvc repro" in step.get("run", ""))

    # DVC, in the checkout: ran the smoke settings, then a second repro found nothing to do.
    assert UP_TO_DATE in outputs[dvc_step], "the second dvc repro did not say the pipeline is up to date"
    made_by_this_run(clone / "results/evaluate/train.json", since, baseline)
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    smoke = yaml.safe_load((clone / "configs/smoke.yaml").read_text())
    recorded = lock["stages"]["train"]["params"]["params.yaml"]
    assert recorded, "dvc.lock records no params.yaml settings of train"
    for key, value in recorded.items():
        assert value == dotted(smoke, key), f"dvc.lock: train ran with {key}={value}, not the smoke setting"
    status = subprocess.run(  # the pipeline's stages (plain `dvc status` also lists the sweep's)
        ["dvc", "status", "dvc.yaml"], cwd=clone,
        env=step_env(workflow, job, {}, clone, runner_temp, github_env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert status.returncode == 0 and UP_TO_DATE in status.stdout, status.stdout
    if has_main:  # dvc's own tables (the smoke settings and results differ from main's)
        assert re.search(r"^Path\s+Param\s+origin/main\s+workspace", outputs[dvc_step], re.M)
        assert re.search(r"^Path\s+Metric\s+origin/main\s+workspace\s+Change", outputs[dvc_step], re.M)

    # Snakemake, in a second checkout of the same commit: ran every step from scratch.
    worktrees = [
        Path(line.removeprefix("worktree "))
        for line in git("worktree", "list", "--porcelain", cwd=clone, env=git_env()).splitlines()
        if line.startswith("worktree ")
    ]
    others = [path for path in worktrees if path.resolve() != clone.resolve()]
    assert len(others) == 1, f"expected one extra worktree (the Snakemake checkout), found {others}"
    smk = others[0]
    head = git("rev-parse", "HEAD", cwd=clone, env=git_env())
    assert git("rev-parse", "HEAD", cwd=smk, env=git_env()) == head, "the Snakemake checkout: another commit"
    for model in ("results/train/model.pt", "results/transfer/model.pt"):
        assert (smk / model).is_file(), f"the Snakemake checkout has no {model}"
        assert (smk / model).stat().st_mtime >= since
    made_by_this_run(smk / "results/evaluate/train.json", since, baseline)
    assert "Nothing to be done" in everything
