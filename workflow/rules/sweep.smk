# The seeds sweep: `snakemake --cores N sweep`. Every method of sweep.methods on every seed of
# sweep.seeds, each run in results/sweep/runs/<method>/seed<N>/, then the aggregate. sweep/dvc.yaml
# runs the same commands for `dvc repro sweep/dvc.yaml`.
import json
from pathlib import Path

import pdarts.sweep.plan

SWEEP_RUN = "results/sweep/runs/{method}/seed{seed}"


wildcard_constraints:
    method="|".join(pdarts.sweep.plan.METHODS),
    seed=r"\d+",


# A method's plan reruns only when what it holds changes (its JSON is the rule's parameter), so a
# setting of another method, of training, or a new seed leaves its searches alone.
rule sweep_plan:
    output:
        "results/sweep/plans/{method}.json",
    params:
        files=SETTINGS_FILES,
        plan=lambda wildcards: json.dumps(
            pdarts.sweep.plan.method_plan(config, wildcards.method).to_dict(), sort_keys=True
        ),
    log:
        "logs/sweep/plan_{method}.log",
    shell:
        "pdarts --log {log} sweep-plan --params {params.files} --method {wildcards.method} --out {output}"


rule sweep_search:
    input:
        plan=rules.sweep_plan.output[0],
        data=rules.prepare_data.output[0],
    output:
        genotype=f"{SWEEP_RUN}/genotype.json",
        search=f"{SWEEP_RUN}/search.json",
    threads: workflow.cores
    log:
        "logs/sweep/{method}/seed{seed}/search.log",
    shell:
        "pdarts --log {log} sweep-search --plan {input.plan} --seed {wildcards.seed} --data {input.data}"
        " --checkpoint checkpoints/sweep/{wildcards.method}/seed{wildcards.seed}"
        " --out-genotype {output.genotype} --out-search {output.search}"


# The pipeline's training and evaluation, with the seed's genotype and the seed as train.seed.
rule sweep_train:
    input:
        genotype=rules.sweep_search.output.genotype,
        data=rules.prepare_data.output[0],
    output:
        model=f"{SWEEP_RUN}/model.pt",
        metrics=f"{SWEEP_RUN}/train.json",
        history=f"{SWEEP_RUN}/history.json",
    params:
        flags=flags(config["train"]),
    threads: workflow.cores
    log:
        "logs/sweep/{method}/seed{seed}/train.log",
    shell:
        "pdarts --log {log} train --genotype {input.genotype} --data {input.data} {params.flags}"
        " --seed {wildcards.seed} --checkpoint checkpoints/sweep/{wildcards.method}/seed{wildcards.seed}/train.pt"
        " --out-model {output.model} --out-metrics {output.metrics} --out-history {output.history}"


rule sweep_evaluate:
    input:
        model=rules.sweep_train.output.model,
        data=rules.prepare_data.output[0],
    output:
        f"{SWEEP_RUN}/evaluate.json",
    params:
        flags=flags(config["evaluate"]),
    threads: workflow.cores
    log:
        "logs/sweep/{method}/seed{seed}/evaluate.log",
    shell:
        "pdarts --log {log} evaluate --model {input.model} --data {input.data} {params.flags} --out {output}"


# Only for the methods of sweep.transfer: their cells on the transfer data.
rule sweep_transfer:
    input:
        genotype=rules.sweep_search.output.genotype,
        data=rules.prepare_transfer.output[0],
    output:
        model=f"{SWEEP_RUN}/transfer_model.pt",
        metrics=f"{SWEEP_RUN}/transfer.json",
        history=f"{SWEEP_RUN}/transfer_history.json",
    params:
        flags=flags(config["transfer"]),
    threads: workflow.cores
    log:
        "logs/sweep/{method}/seed{seed}/transfer.log",
    shell:
        "pdarts --log {log} transfer --genotype {input.genotype} --data {input.data} {params.flags}"
        " --seed {wildcards.seed} --checkpoint checkpoints/sweep/{wildcards.method}/seed{wildcards.seed}/transfer.pt"
        " --out-model {output.model} --out-metrics {output.metrics} --out-history {output.history}"


rule sweep_evaluate_transfer:
    input:
        model=rules.sweep_transfer.output.model,
        data=rules.prepare_transfer.output[0],
    output:
        f"{SWEEP_RUN}/transfer_evaluate.json",
    params:
        flags=flags(config["evaluate"]),
    threads: workflow.cores
    log:
        "logs/sweep/{method}/seed{seed}/evaluate_transfer.log",
    shell:
        "pdarts --log {log} evaluate --model {input.model} --data {input.data} {params.flags} --out {output}"


rule sweep:
    input:
        expand(
            [rules.sweep_search.output.search, rules.sweep_search.output.genotype, rules.sweep_evaluate.output[0]],
            method=config["sweep"]["methods"],
            seed=config["sweep"]["seeds"],
        ),
        expand(
            rules.sweep_evaluate_transfer.output[0],
            method=config["sweep"]["transfer"],
            seed=config["sweep"]["seeds"],
        ),
    output:
        summary="results/sweep/summary.json",
        report=report(
            directory("results/sweep/report"),
            patterns=["{name}.png"],
            caption="../report/sweep.rst",
            category="Seeds sweep",
        ),
    params:
        flags=flags(config["sweep"]),
        runs=Path(SWEEP_RUN).parent.parent,
    log:
        "logs/sweep/summary.log",
    shell:
        "pdarts --log {log} sweep-summary {params.flags} --runs {params.runs} --out {output.summary}"
        " --out-report {output.report}"
