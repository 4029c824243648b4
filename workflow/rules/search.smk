# The progressive search: prune before every stage, search the stage, derive the genotype.


rule prune:
    input:
        lambda wildcards: alphas_of(STAGES[wildcards.stage]["after"]),
    output:
        "results/search/{stage}/candidates.json",
    params:
        keep=stage_setting("ops"),
    log:
        "logs/prune/{stage}.log",
    shell:
        "pdarts --log {log} prune --alphas {input} --keep {params.keep} --stage {wildcards.stage}"
        " --out {output}"


rule search:
    input:
        candidates=rules.prune.output[0],
        data=rules.prepare_data.output[0],
    output:
        alphas="results/search/{stage}/alphas.json",
        metrics="results/search/{stage}/metrics.json",
        history="results/search/{stage}/history.json",
        live=directory("results/search/{stage}/live"),
    params:
        cells=stage_setting("cells"),
        skip_dropout=stage_setting("skip_dropout"),
        common=flags(config["search"]["common"]),
    threads: workflow.cores
    log:
        "logs/search/{stage}.log",
    shell:
        "pdarts --log {log} search --stage {wildcards.stage} --cells {params.cells}"
        " --skip_dropout {params.skip_dropout} --candidates {input.candidates} --data {input.data}"
        " {params.common} --checkpoint checkpoints/search/{wildcards.stage}.pt"
        " --out-alphas {output.alphas} --out-metrics {output.metrics} --out-history {output.history}"
        " --out-live {output.live}"


rule derive:
    input:
        alphas_of(LAST_STAGE),
    output:
        genotype="results/derive/genotype.json",
        genotypes="results/derive/genotypes.json",
    params:
        flags=flags(config["derive"]),
    log:
        "logs/derive.log",
    shell:
        "pdarts --log {log} derive --alphas {input} {params.flags} --out {output.genotype}"
        " --all-caps {output.genotypes}"
