# The P-DARTS pipeline for `snakemake --cores N`. dvc.yaml runs the same commands on the same files
# (tests/pipeline/test_workflow.py checks that the two agree). Settings come from params.yaml, or from
# `--configfile other.yaml` on top of it; they reach each step as command-line flags. The config is
# checked (pdarts check-params's rules, then the schema) when this file is read: a bad setting stops
# Snakemake before any job runs.
from snakemake.utils import min_version

min_version("8.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/sweep.smk"


# The products (the seeds sweep is its own target: `snakemake --cores N sweep`): both trained networks, their evaluations and the run report. The models are asked
# for by name because the evaluations and the report are committed in git: in a fresh clone they are
# present, and Snakemake would take them as finished; the models are not, so their steps run, and
# everything downstream of them is then newer than the committed files.
rule all:
    input:
        rules.train.output.model,
        rules.transfer.output.model,
        rules.evaluate_train.output[0],
        rules.evaluate_transfer.output[0],
        rules.report.output.metrics,
