# Training the found cell from scratch (CIFAR recipe), transferring it (ImageNet recipe), evaluating.


rule train:
    input:
        genotype=rules.derive.output.genotype,
        data=rules.prepare_data.output[0],
    output:
        model="results/train/model.pt",
        metrics="results/train/metrics.json",
        history="results/train/history.json",
        live=directory("results/train/live"),
    params:
        flags=flags(config["train"]),
    threads: workflow.cores
    log:
        "logs/train.log",
    shell:
        "pdarts --log {log} train --genotype {input.genotype} --data {input.data} {params.flags}"
        " --checkpoint checkpoints/train.pt --out-model {output.model} --out-metrics {output.metrics}"
        " --out-history {output.history} --out-live {output.live}"


rule transfer:
    input:
        genotype=rules.derive.output.genotype,
        data=rules.prepare_transfer.output[0],
    output:
        model="results/transfer/model.pt",
        metrics="results/transfer/metrics.json",
        history="results/transfer/history.json",
        live=directory("results/transfer/live"),
    params:
        flags=flags(config["transfer"]),
    threads: workflow.cores
    log:
        "logs/transfer.log",
    shell:
        "pdarts --log {log} transfer --genotype {input.genotype} --data {input.data} {params.flags}"
        " --checkpoint checkpoints/transfer.pt --out-model {output.model} --out-metrics {output.metrics}"
        " --out-history {output.history} --out-live {output.live}"


rule evaluate_train:
    input:
        model=rules.train.output.model,
        data=rules.prepare_data.output[0],
    output:
        "results/evaluate/train.json",
    params:
        flags=flags(config["evaluate"]),
    threads: workflow.cores
    log:
        "logs/evaluate_train.log",
    shell:
        "pdarts --log {log} evaluate --model {input.model} --data {input.data} {params.flags} --out {output}"


rule evaluate_transfer:
    input:
        model=rules.transfer.output.model,
        data=rules.prepare_transfer.output[0],
    output:
        "results/evaluate/transfer.json",
    params:
        flags=flags(config["evaluate"]),
    threads: workflow.cores
    log:
        "logs/evaluate_transfer.log",
    shell:
        "pdarts --log {log} evaluate --model {input.model} --data {input.data} {params.flags} --out {output}"
