import json

import pytest

from pdarts.genotype import GENOTYPES, genotype_to_dict

REQUIRED = {
    "genotype",
    "dataset",
    "cells",
    "channels",
    "num_classes",
    "input_size",
    "params",
    "params_auxiliary",
    "macs",
}


def summary_of(result) -> dict:
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # one JSON object, nothing else on stdout
    return json.loads(result.stdout)


def test_summary_of_a_registered_genotype_uses_the_papers_cifar_network(run_pdarts):
    summary = summary_of(run_pdarts("summary", "PDARTS"))
    assert REQUIRED <= set(summary)
    assert summary["genotype"] == "PDARTS" and summary["dataset"] == "cifar10"
    assert (summary["cells"], summary["channels"], summary["num_classes"]) == (20, 36, 10)
    assert summary["input_size"] == [3, 32, 32]
    assert summary["params"] == 3_433_798
    assert summary["params_auxiliary"] == 476_426  # DARTS's CIFAR head on 576 channels, 10 classes
    assert 500e6 < summary["macs"] < 560e6  # flop_counter: about 532M (docs/algorithm.md#evaluation-metrics)
    assert "mobile_setting" not in summary


def test_summary_of_a_genotype_file_on_imagenet(run_pdarts, tmp_path):
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(genotype_to_dict(GENOTYPES["PDARTS"])))
    summary = summary_of(run_pdarts("summary", path, "--dataset", "imagenet"))
    assert summary["genotype"] == str(path)
    assert (summary["cells"], summary["channels"], summary["num_classes"]) == (14, 48, 1000)
    assert summary["input_size"] == [3, 224, 224]
    assert summary["params"] == 4_944_352
    assert 530e6 < summary["macs"] < 600e6 and summary["mobile_setting"] is True


def test_summary_with_other_depth_width_and_data_set(run_pdarts, tmp_path):
    path = tmp_path / "darts_v2.json"
    path.write_text(json.dumps(genotype_to_dict(GENOTYPES["DARTS_V2"])))
    summary = summary_of(
        run_pdarts("summary", path, "--dataset", "cifar100", "--cells", "20", "--channels", "36")
    )
    # DARTS_V2 has 3,349,342 parameters for 10 classes; 100 classes add 90 * (576 + 1) to the classifier.
    assert summary["params"] == 3_349_342 + 90 * 577
    assert summary["num_classes"] == 100


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "neither a registered genotype"),
        ("{not json", "not valid JSON"),
        (
            json.dumps({**genotype_to_dict(GENOTYPES["PDARTS"]), "normal": [["conv_9x9", 0]] * 8}),
            "unknown op",
        ),
    ],
    ids=["missing-file", "invalid-json", "invalid-genotype"],
)
def test_bad_genotype_is_a_one_line_error(run_pdarts, tmp_path, content, message):
    path = tmp_path / "genotype.json"
    if content is not None:
        path.write_text(content)
    result = run_pdarts("summary", path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pdarts summary: error:")
    assert message in lines[0] and "Traceback" not in result.stderr


def test_imagenet_needs_even_channels(run_pdarts):
    result = run_pdarts("summary", "PDARTS", "--dataset", "imagenet", "--channels", "47")
    assert result.returncode == 2 and "even" in result.stderr and "Traceback" not in result.stderr
