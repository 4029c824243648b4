"""The benchmark's straightforward implementation computes what the library computes.

``pdarts bench --modes reference default`` divides the reference's seconds by the library's; the
ratio means something only if both do the same work. Here the library's models (in the layout the
defaults run, channels_last) and their reference twins, loaded with the same weights, give the same
losses and the same gradients of every parameter, to fp32 tolerance, and one search step of each
leaves the same parameters.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from pdarts import fast_ops, operations
from pdarts.genotype import GENOTYPES
from pdarts.networks import CifarNetwork
from pdarts.search.model import SearchNetwork
from pdarts.search.stage import ARCH_BETAS, search_step
from pdarts.search_space import PRIMITIVES, full_candidates
from pdarts.training import FP32
from pdarts_bench.reference import ReferenceSupernet, reference_search_step, to_reference

TOLERANCE = {"rtol": 1e-3, "atol": 2e-5}
STAGE_OPS = {
    "stage1": PRIMITIVES,
    "stage2": ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"),
    "stage3": ("skip_connect", "sep_conv_3x3", "dil_conv_3x3"),
}


def _twins(ops, channels_last: bool):
    torch.manual_seed(0)
    candidates = full_candidates(ops)
    fast = SearchNetwork(candidates, 3, 4, 10, in_channels=3, skip_dropout=True)  # reductions at 1 and 2
    reference = ReferenceSupernet(candidates, 3, 4, 10, 3, dropout=True)
    reference.load_state_dict(fast.state_dict())  # strict: the same names, the same shapes
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast.train(), reference.train()


def _batch(seed: int, channels_last: bool = False):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(6, 3, 8, 8, generator=generator)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, torch.randint(0, 10, (6,), generator=generator)


def _gradients(model, images, target, forward=lambda model, x: model(x)):
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(forward(model, images), target)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("stage", sorted(STAGE_OPS))
def test_reference_supernet_has_the_same_loss_and_gradients(stage):
    fast, reference = _twins(STAGE_OPS[stage], channels_last=True)
    images, target = _batch(1)
    loss, grads = _gradients(fast, images.contiguous(memory_format=torch.channels_last), target)
    reference_loss, reference_grads = _gradients(reference, images, target)
    torch.testing.assert_close(loss, reference_loss, **TOLERANCE)
    # Every parameter has a gradient in both (`none` has no parameters; the alphas of both types).
    assert grads.keys() == reference_grads.keys()
    assert any(name.startswith("alphas.reduce") for name in grads)
    for name in grads:
        torch.testing.assert_close(grads[name], reference_grads[name], **TOLERANCE, msg=name)


def test_one_search_step_of_each_leaves_the_same_parameters():
    fast, reference = _twins(STAGE_OPS["stage1"], channels_last=False)

    def optimizers(model, weights, alphas):
        return (
            torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4),
            torch.optim.Adam(alphas, lr=0.01, betas=ARCH_BETAS, weight_decay=1e-3),
        )

    fast_optimizers = optimizers(fast, fast.weight_parameters(), fast.arch_parameters())
    alphas = list(reference.alphas.parameters())
    weights = [p for name, p in reference.named_parameters() if not name.startswith("alphas.")]
    reference_optimizers = optimizers(reference, weights, alphas)
    for _ in range(2):
        weight_batch, arch_batch = _batch(2), _batch(3)
        stats = search_step(fast, weight_batch, arch_batch, *fast_optimizers, 5.0, FP32)
        arch_loss, weight_loss = reference_search_step(
            reference, weight_batch, arch_batch, *reference_optimizers, 5.0
        )
        torch.testing.assert_close(stats["arch"][0] / 6, arch_loss, **TOLERANCE)
        torch.testing.assert_close(stats["train"][0] / 6, weight_loss, **TOLERANCE)
    reference_parameters = dict(reference.named_parameters())
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param, reference_parameters[name], **TOLERANCE, msg=name)


def test_reference_training_network_has_the_same_loss_and_gradients(monkeypatch):
    # The library's forms on these small maps too (fast_ops.BatchNorm2d: 8, 24 channels...).
    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0)
    torch.manual_seed(0)
    fast = CifarNetwork(GENOTYPES["PDARTS"], 5, 8, 10).train()  # reductions at 1 and 3, an auxiliary head
    reference = to_reference(copy.deepcopy(fast))
    library_ops = (operations.SepConv, operations.DilConv, operations.FactorizedReduce, fast_ops.BatchNorm2d)
    assert not any(isinstance(module, library_ops) for module in reference.modules())
    assert sum(isinstance(module, fast_ops.BatchNorm2d) for module in fast.modules()) > 20
    assert reference.state_dict().keys() == fast.state_dict().keys()
    images, target = _batch(4)

    def forward(model, x):
        logits, auxiliary = model(x)
        return logits + 0.4 * auxiliary

    loss, grads = _gradients(fast.to(memory_format=torch.channels_last), images, target, forward)
    reference_loss, reference_grads = _gradients(reference, images, target, forward)
    torch.testing.assert_close(loss, reference_loss, **TOLERANCE)
    assert grads.keys() == reference_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], reference_grads[name], **TOLERANCE, msg=name)
