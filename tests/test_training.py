"""Epoch loops, schedules and precision settings of the evaluation networks."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pdarts.errors import PdartsError
from pdarts.genotype import GENOTYPES
from pdarts.networks import CifarNetwork, ImageNetNetwork
from pdarts.precision import native_bf16, resolve_precision
from pdarts.schedules import cosine_lr, linear_lr
from pdarts.training import evaluate, measure_latency, topk_correct, train_epoch

CPU = torch.device("cpu")


def _batches(n=2, batch=8, classes=10, seed=0, channels=1, size=8):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch, channels, size, size, generator=g),
            torch.randint(0, classes, (batch,), generator=g),
        )
        for _ in range(n)
    ]


def _net():
    torch.manual_seed(0)
    return CifarNetwork(GENOTYPES["PDARTS"], num_cells=3, init_channels=4, num_classes=10, in_channels=1)


def test_cifar_cosine_at_first_middle_last_epoch():
    assert cosine_lr(0, 0.025, 600) == pytest.approx(0.025)
    assert cosine_lr(300, 0.025, 600) == pytest.approx(0.0125)
    assert cosine_lr(599, 0.025, 600) == pytest.approx(0.0125 * (1 + math.cos(math.pi * 599 / 600)))


def test_imagenet_linear_decay_with_warmup():
    assert linear_lr(0, 0.4, 250, warmup_epochs=5) == pytest.approx(0.08)
    assert linear_lr(4, 0.4, 250, warmup_epochs=5) == pytest.approx(0.4)
    assert linear_lr(5, 0.4, 250, warmup_epochs=5) == pytest.approx(0.4)
    assert linear_lr(127, 0.4, 250, warmup_epochs=5) == pytest.approx(0.4 * (1 - 122 / 245))
    assert linear_lr(249, 0.4, 250, warmup_epochs=5) == pytest.approx(0.4 / 245)
    assert linear_lr(0, 0.1, 250) == pytest.approx(0.1) and linear_lr(125, 0.1, 250) == pytest.approx(0.05)


def test_label_smoothing_is_the_smoothed_cross_entropy():
    logits, target = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    smooth = F.cross_entropy(logits, target, label_smoothing=0.1)
    log_p = logits.log_softmax(1)
    expected = (-(0.9 * log_p.gather(1, target[:, None]).squeeze(1) + 0.1 * log_p.mean(1))).mean()
    assert smooth == pytest.approx(float(expected), rel=1e-6)


def test_topk_counts_and_caps_k_at_the_classes():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    top1, top5 = topk_correct(logits, torch.tensor([1, 2]), (1, 5))
    assert int(top1) == 1 and int(top5) == 2


@pytest.mark.parametrize(
    ("precision", "channels_last"),
    [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True), ("auto", True)],
)
def test_train_and_evaluate_in_each_precision(precision, channels_last):
    net = _net()
    prec = resolve_precision(precision, CPU, channels_last)
    net = prec.prepare(net)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sums = train_epoch(
        net,
        _batches(),
        optimizer,
        CPU,
        auxiliary_weight=0.4,
        grad_clip=5.0,
        label_smoothing=0.1,
        precision=prec,
    )
    assert sums["count"] == 16 and math.isfinite(sums["loss_sum"]) and 0 <= sums["correct"] <= 16
    assert all(p.dtype == torch.float32 for p in net.parameters())  # autocast leaves the weights in fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    scores = evaluate(net, _batches(seed=1), CPU, prec)
    assert scores["count"] == 16 and scores["top1"] <= scores["top5"] <= 16
    assert measure_latency(net, (1, 8, 8), 4, CPU, prec, repeats=2, warmup=1) > 0


@pytest.mark.parametrize(
    ("channels", "cells", "size", "batch"), [(4, 3, 8, 3), (4, 3, 8, 5), (8, 5, 16, 3), (36, 8, 32, 3)]
)
def test_bf16_channels_last_trains_odd_batches_of_small_maps_to_the_same_finite_losses(
    channels, cells, size, batch, monkeypatch
):
    """bf16 + channels_last on the CPU once gave non-finite, run-to-run different losses on batches
    like these (oneDNN's strided 1x1 backward pass, which ``FactorizedReduce`` no longer calls); the
    forms of ``fast_ops`` taken at every size."""
    from pdarts import fast_ops

    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0)
    prec = resolve_precision("bf16", CPU, True)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        net = prec.prepare(CifarNetwork(GENOTYPES["PDARTS"], cells, channels, 10, in_channels=3))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        batches = _batches(n=3, batch=batch, seed=1, channels=3, size=size)
        losses.append(train_epoch(net, batches, optimizer, CPU, 0.4, 5.0, precision=prec)["loss_sum"])
    assert math.isfinite(losses[0]) and losses[0] == losses[1]


def test_fp16_needs_cuda_and_auto_resolves():
    with pytest.raises(PdartsError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU, False)
    auto = resolve_precision("auto", CPU, True)
    # The fastest forms measured on the CPU (precision.py): bf16 + channels_last where bf16 is native.
    assert auto.name == ("bf16" if native_bf16() else "fp32") and auto.channels_last
    # Small maps (under fast_ops.MIN_ELEMENTS: the digits search) stay fp32, large ones follow the rule.
    assert resolve_precision("auto", CPU, True, map_elements=64 * 8 * 8 * 8).name == "fp32"
    assert resolve_precision("auto", CPU, True, map_elements=32 * 16 * 32 * 32).name == auto.name
    assert resolve_precision("bf16", CPU, True, map_elements=1).name == "bf16"  # asked for: kept
    assert resolve_precision("auto", CPU, False).name == "fp32"
    assert resolve_precision("bf16", CPU, True).channels_last  # the fastest training form on the CPU
    assert resolve_precision("fp32", CPU, False).grad_scaler().is_enabled() is False


def test_auxiliary_loss_changes_the_gradient_only_in_training():
    batches = _batches(n=1)
    grads = []
    for weight in (0.0, 0.4):
        net = _net()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
        train_epoch(net, batches, optimizer, CPU, auxiliary_weight=weight)
        grads.append(torch.cat([p.grad.flatten() for p in net.cells.parameters() if p.grad is not None]))
    assert not torch.allclose(grads[0], grads[1])
    net = _net().eval()
    assert net(batches[0][0])[1] is None


@pytest.mark.parametrize(("precision", "channels_last"), [("fp32", False), ("bf16", False), ("fp32", True)])
def test_transfer_step_in_each_precision(precision, channels_last):
    """One ImageNet-recipe step (label smoothing, auxiliary loss) of the ImageNet network on 32 px images."""
    torch.manual_seed(0)
    prec = resolve_precision(precision, CPU, channels_last)
    net = prec.prepare(ImageNetNetwork(GENOTYPES["PDARTS"], num_cells=3, init_channels=4, num_classes=5))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 5, (6,), generator=g))]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-5)
    sums = train_epoch(
        net, batches, optimizer, CPU, auxiliary_weight=0.4, label_smoothing=0.1, precision=prec
    )
    assert sums["count"] == 6 and math.isfinite(sums["loss_sum"])
    assert evaluate(net, batches, CPU, prec)["count"] == 6


def test_running_out_of_memory_names_the_batch_size_and_the_setting_to_lower():
    from pdarts.errors import oom_hint

    with pytest.raises(PdartsError, match=r"out of memory at batch size 96 .*lower search.common.batch_size"):
        with oom_hint("search.common.batch_size", 96):
            torch.empty(2**60, dtype=torch.uint8)  # a real allocation failure on the CPU
    with pytest.raises(PdartsError, match=r"at batch size 1024 \(CUDA out of memory.*lower train.batch_size"):
        with oom_hint("train.batch_size", 1024):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nGPU 0 details")
    with pytest.raises(RuntimeError, match="an unrelated bug"):  # anything else keeps its traceback
        with oom_hint("train.batch_size", 8):
            raise RuntimeError("an unrelated bug")


def _train_network(save_state=None, resume=None, epochs=3):
    from pdarts.data import ArrayDataset, dataset_info, load_arrays, train_transform
    from pdarts.genotype import genotype_to_dict
    from pdarts.settings import TrainSettings
    from pdarts.training import network_spec, train_network

    images, labels = load_arrays("digits", "", train=True)
    dataset = ArrayDataset(images[:24], labels[:24], train_transform(dataset_info("digits")))
    settings = TrainSettings.defaults(
        cells=3, init_channels=4, epochs=epochs, batch_size=8, precision="fp32", channels_last=False, cutout=0
    )
    spec = network_spec(GENOTYPES["PDARTS"], settings, num_classes=10, in_channels=1)
    assert spec["genotype"] == genotype_to_dict(GENOTYPES["PDARTS"]) and spec["num_cells"] == 3
    return train_network(spec, settings, dataset, resume=resume, save_state=save_state)


def test_train_network_is_deterministic_and_resumes_to_the_same_network():
    states = []  # as a checkpoint file holds them: copies, not the live tensors
    whole = _train_network(save_state=lambda state: states.append(copy.deepcopy(state)))
    assert [epoch["epoch"] for epoch in whole.history] == [0, 1, 2] and len(states) == 3
    assert whole.history[0]["lr"] == 0.025 and whole.history[-1]["drop_path"] > 0  # the schema's recipe
    resumed = _train_network(resume=states[0])
    assert [e["train_loss"] for e in resumed.history] == [e["train_loss"] for e in whole.history]
    for name, value in whole.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[name]), name
