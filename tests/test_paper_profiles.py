"""The paper's profiles build their networks at full size (docs/algorithm.md#evaluation-networks)."""

import pytest

from pdarts.config import load_params
from pdarts.genotype import GENOTYPES
from pdarts.networks import CifarNetwork, ImageNetNetwork
from pdarts.profile import count_macs, count_parameters
from pdarts.settings import check_params

from .conftest import ROOT

PDARTS = GENOTYPES["PDARTS"]
# Parameters of the PDARTS genotype's networks, auxiliary head excluded.
CIFAR_PARAMS = {"cifar10": 3_433_798, "cifar100": 3_485_728}
IMAGENET_PARAMS = 4_944_352


@pytest.fixture(scope="module")
def imagenet_macs():
    """Forward multiply-adds of the ImageNet network at 224x224, counted once."""
    net = ImageNetNetwork(PDARTS, num_cells=14, init_channels=48, num_classes=1000)
    return count_macs(net, (3, 224, 224))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenet-8gpu"])
def test_profile_networks_have_the_paper_sizes(name, imagenet_macs):
    params = load_params(ROOT / "configs" / f"{name}.yaml")
    check_params(params)
    train, transfer = params["train"], params["transfer"]
    dataset = params["data"]["dataset"]
    cifar = CifarNetwork(
        PDARTS, train["cells"], train["init_channels"], num_classes=100 if dataset == "cifar100" else 10
    )
    assert count_parameters(cifar) == CIFAR_PARAMS[dataset]
    imagenet = ImageNetNetwork(PDARTS, transfer["cells"], transfer["init_channels"], num_classes=1000)
    assert count_parameters(imagenet) == IMAGENET_PARAMS
    assert transfer["image_size"] == 224
    assert 530e6 <= imagenet_macs <= 600e6  # the mobile setting: < 600M


def test_imagenet_batch_256_and_1024_recipes():
    base = load_params(ROOT / "configs" / "cifar10.yaml")["transfer"]
    big = load_params(ROOT / "configs" / "imagenet-8gpu.yaml")["transfer"]
    assert (base["batch_size"], base["lr"], base["reference_batch_size"], base["processes"]) == (
        256,
        0.1,
        256,
        1,
    )
    assert (big["batch_size"], big["processes"], big["warmup_epochs"]) == (1024, 8, 5)
    assert big["lr"] * big["batch_size"] / big["reference_batch_size"] == pytest.approx(0.4)
    assert big["batch_size"] // big["processes"] == 128
