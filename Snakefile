# The P-DARTS pipeline for `snakemake --cores N`. dvc.yaml runs the same commands on the same files
# (tests/test_workflow.py checks that the two agree). Settings come from params.yaml, or from
# `--configfile other.yaml` on top of it; they reach each step as command-line flags.
from snakemake.utils import min_version

min_version("8.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"


rule all:
    input:
        "results/evaluate/train.json",
        "results/evaluate/transfer.json",
