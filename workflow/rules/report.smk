# The run report: cell diagrams, alpha maps, curves, index.html and summary.md, and the headline
# metrics; its images are marked for `snakemake --report report.html`.
import json
from pathlib import Path


rule report:
    input:
        alphas=expand(rules.search.output.alphas, stage=STAGES),
        histories=expand(rules.search.output.history, stage=STAGES),
        genotypes=rules.derive.output.genotypes,
        train=[rules.train.output.history, rules.evaluate_train.output[0]],
        transfer=[rules.transfer.output.history, rules.evaluate_transfer.output[0]],
    output:
        report=report(
            directory("results/report"),
            patterns=["{name}.png"],
            caption="../report/results.rst",
            category="P-DARTS run",
        ),
        metrics="results/metrics.json",
    params:
        # The whole config as a parameter, so that any setting's change reruns the report as in DVC.
        files=SETTINGS_FILES,
        search=Path(rules.search.output.alphas).parent.parent,
        settings=json.dumps(config, sort_keys=True),
    log:
        "logs/report.log",
    shell:
        "pdarts --log {log} report --params {params.files} --search {params.search}"
        " --genotypes {input.genotypes} --train {input.train} --transfer {input.transfer} --logs logs"
        " --out {output.report} --out-metrics {output.metrics}"
