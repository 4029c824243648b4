# Data preparation: check the datasets once and write manifests; the initial search space.


rule prepare_data:
    output:
        "results/data/dataset.json",
    params:
        flags=flags(config["data"]),
    log:
        "logs/prepare_data.log",
    shell:
        "pdarts --log {log} prepare-data {params.flags} --out {output}"


rule prepare_transfer:
    output:
        directory("results/data/transfer"),
    params:
        flags=flags(config["transfer_data"]),
    log:
        "logs/prepare_transfer.log",
    shell:
        "pdarts --log {log} prepare-transfer {params.flags} --out {output}"


rule prepare_space:
    output:
        "results/search/space/alphas.json",
    params:
        flags=flags(config["search"]["space"]),
    log:
        "logs/prepare_space.log",
    shell:
        "pdarts --log {log} prepare-space {params.flags} --out {output}"
