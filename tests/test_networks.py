import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pdarts.genotype import GENOTYPES
from pdarts.layers import DropPath, drop_path
from pdarts.networks import CifarNetwork, EvalCell, ImageNetNetwork
from pdarts.networks.heads import AuxiliaryPool
from pdarts.operations import ReLUConvBN
from pdarts.profile import count_macs, count_parameters
from pdarts.settings import schema_defaults

PDARTS = GENOTYPES["PDARTS"]
# The paper's networks: the schema's defaults of the train and transfer sections.
PAPER_CIFAR = {
    "num_cells": schema_defaults("train")["cells"],
    "init_channels": schema_defaults("train")["init_channels"],
}
PAPER_IMAGENET = {
    "num_cells": schema_defaults("transfer")["cells"],
    "init_channels": schema_defaults("transfer")["init_channels"],
}


def small_cifar(**kwargs) -> CifarNetwork:
    """5 cells (reductions at 1 and 3, auxiliary head after cell 3), C = 8."""
    return CifarNetwork(PDARTS, **{"num_cells": 5, "init_channels": 8, **kwargs})


@pytest.mark.parametrize(
    ("genotype", "channels", "num_classes", "expected"),
    [
        ("PDARTS", 36, 10, 3_433_798),  # docs/algorithm.md#cifar-evaluation-network (paper: 3.4M)
        ("PDARTS", 64, 10, 10_521_802),  # the "large" setting (paper: 10.5M)
        ("DARTS_V2", 36, 10, 3_349_342),  # the DARTS paper's 3.3M, as DARTS's own code counts it
    ],
)
def test_cifar_parameter_counts_match_the_papers(genotype, channels, num_classes, expected):
    net = CifarNetwork(GENOTYPES[genotype], num_cells=20, init_channels=channels, num_classes=num_classes)
    assert count_parameters(net) == expected


def test_cifar_auxiliary_head_has_darts_parameters():
    net = CifarNetwork(PDARTS, **PAPER_CIFAR)
    c_aux = 4 * 4 * 36  # output of cell 2L//3, the second reduction cell (C doubled twice, 4 nodes)
    darts_head = c_aux * 128 + 2 * 128 + 128 * 768 * 2 * 2 + 2 * 768 + 768 * 10 + 10
    assert count_parameters(net, exclude_auxiliary=False) - count_parameters(net) == darts_head
    no_head = CifarNetwork(PDARTS, **PAPER_CIFAR, auxiliary=False)
    assert no_head.auxiliary_head is None
    assert count_parameters(no_head, exclude_auxiliary=False) == count_parameters(net) == 3_433_798


@pytest.mark.parametrize(("genotype", "expected"), [("PDARTS", 4_944_352), ("DARTS_V2", 4_718_752)])
def test_imagenet_parameter_counts_match_the_papers(genotype, expected):
    # PDARTS: docs/algorithm.md#imagenet-transfer-network (4.9M); DARTS_V2: the DARTS paper's 4.7M.
    assert count_parameters(ImageNetNetwork(GENOTYPES[genotype], **PAPER_IMAGENET)) == expected


def test_imagenet_is_in_the_mobile_setting():
    net = ImageNetNetwork(PDARTS, **PAPER_IMAGENET).train()
    macs = count_macs(net, (3, 224, 224))
    # flop_counter gives about 543M where the paper reports 557M (docs/algorithm.md#evaluation-metrics).
    assert 530e6 < macs < 600e6
    assert net.training  # count_macs runs in eval mode and restores the mode


def test_auxiliary_pool_is_darts_avg_pool_at_darts_sizes_and_adapts_below():
    x8, x7 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 7, 7)
    assert torch.equal(AuxiliaryPool(3)(x8), nn.AvgPool2d(5, 3, count_include_pad=False)(x8))
    assert torch.equal(AuxiliaryPool(2)(x7), nn.AvgPool2d(5, 2, count_include_pad=False)(x7))
    x2 = torch.randn(2, 3, 2, 2)
    assert torch.equal(AuxiliaryPool(3)(x2), x2)  # already 2x2: adaptive pooling keeps it
    assert AuxiliaryPool(2)(torch.randn(2, 3, 1, 1)).shape == (2, 3, 2, 2)


def _spatial_size_at_auxiliary_head(net: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    sizes = []
    handle = net.auxiliary_head.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape))
    net.train()(x)
    handle.remove()
    return tuple(sizes[0][-2:])


def test_cifar_output_shapes_at_32_pixels():
    net = small_cifar(num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net.train()(x)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    assert _spatial_size_at_auxiliary_head(net, x) == (8, 8)  # DARTS's head input
    assert [cell.reduction for cell in net.cells] == [False, True, False, True, False]


def test_cifar_network_on_8x8_one_channel_images():
    net = CifarNetwork(PDARTS, num_cells=8, init_channels=16, num_classes=10, in_channels=1)
    x = torch.randn(3, 1, 8, 8)
    logits, aux = net.train()(x)
    assert logits.shape == (3, 10) and aux.shape == (3, 10)
    assert _spatial_size_at_auxiliary_head(net, x) == (2, 2)
    logits, aux = net.eval()(x)
    assert logits.shape == (3, 10) and aux is None


@pytest.mark.parametrize(("size", "aux_size"), [(224, (7, 7)), (32, (1, 1))])
def test_imagenet_output_shapes(size, aux_size):
    net = ImageNetNetwork(PDARTS, num_cells=5, init_channels=8, num_classes=11)
    x = torch.randn(2, 3, size, size)
    logits, aux = net.train()(x)
    assert logits.shape == (2, 11) and aux.shape == (2, 11)
    assert _spatial_size_at_auxiliary_head(net, x) == aux_size
    assert net.eval()(x)[1] is None
    assert net.drop_path_prob == 0.0


class _CountReLUs(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += func.__name__.startswith("relu")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("network", ["cifar", "imagenet"])
def test_each_cell_output_is_rectified_once_for_the_two_cells_that_read_it(network):
    """The stack computes one ReLU per state the cells read (the first cell's two inputs, then every
    cell output but the last) where each cell used to compute its own two; the same logits and
    gradients as cells that rectify their own inputs (every ``ReLUConvBN`` made a plain
    ``nn.Sequential``, which cannot take rectified inputs)."""
    torch.manual_seed(0)
    if network == "cifar":
        nets = [CifarNetwork(PDARTS, num_cells=5, init_channels=8, num_classes=10) for _ in range(2)]
    else:
        nets = [ImageNetNetwork(PDARTS, num_cells=5, init_channels=8, num_classes=10) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    for module in list(nets[1].modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ReLUConvBN):
                setattr(module, name, nn.Sequential(*child))
    x = torch.randn(2, 3, 32, 32)
    results = []
    for net in nets:
        with _CountReLUs() as counted:
            logits, _ = net.eval()(x)
        results.append(
            (counted.calls, logits, torch.autograd.grad(logits.sum(), list(net.cells.parameters())))
        )
    (shared, logits, grads), (plain, plain_logits, plain_grads) = results
    first_inputs = 1 if network == "cifar" else 2  # the CIFAR stem's output is both inputs
    assert plain - shared == 2 * 5 - (first_inputs + 4)
    torch.testing.assert_close(logits, plain_logits)
    for g, p in zip(grads, plain_grads):
        torch.testing.assert_close(g, p)


def test_imagenet_first_cell_reduces_the_stems_first_output():
    net = ImageNetNetwork(PDARTS, num_cells=5, init_channels=8)
    assert type(net.cells[0].preprocess0).__name__ == "FactorizedReduce"
    assert type(net.cells[1].preprocess0).__name__ == "ReLUConvBN"
    with pytest.raises(ValueError, match="even"):
        ImageNetNetwork(PDARTS, num_cells=5, init_channels=7)


def test_auxiliary_head_runs_only_in_training():
    net = small_cifar()
    calls = []
    net.auxiliary_head.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 3, 16, 16)
    assert net.eval()(x)[1] is None and not calls
    assert net.train()(x)[1] is not None and len(calls) == 1
    logits, aux = small_cifar(auxiliary=False).train()(x)
    assert aux is None and logits.shape == (2, 10)


def test_drop_path_reaches_every_non_identity_op_output_and_nothing_else():
    net = small_cifar().train()
    net.drop_path_prob = 0.5
    op_outputs, identity_outputs, dropped = [], [], []
    for cell in net.cells:
        assert cell.drop_path.drop_prob == 0.5
        for op in cell.ops:
            target = identity_outputs if isinstance(op, nn.Identity) else op_outputs
            op.register_forward_hook(lambda module, args, out, target=target: target.append(out))
        cell.drop_path.register_forward_hook(lambda module, args, out: dropped.append(args[0]))
    net(torch.randn(4, 3, 16, 16))
    # PDARTS: 2 stride-1 skip-connects per normal cell; 3 normal cells, 2 reduction cells.
    assert len(identity_outputs) == 3 * 2
    assert len(op_outputs) == 3 * 6 + 2 * 8
    assert len(dropped) == len(op_outputs)
    assert all(a is b for a, b in zip(dropped, op_outputs))
    assert not any(d is i for d in dropped for i in identity_outputs)


def test_drop_path_at_rate_one_leaves_only_the_identity_edges():
    torch.manual_seed(0)
    # PDARTS normal cell: node0 = skip(s0) + dil_conv(s1), node1 = skip(s0) + sep_conv(s1), nodes 2
    # and 3 have no identity op.
    cell = EvalCell(PDARTS, 6, 6, 4, reduction=False, reduction_prev=False).train()
    cell.drop_path.drop_prob = 1.0
    s0, s1 = torch.randn(2, 6, 5, 5), torch.randn(2, 6, 5, 5)
    out = cell(s0, s1)
    s0_pre = cell.preprocess0(s0)
    zeros = torch.zeros_like(s0_pre)
    assert torch.equal(out, torch.cat([s0_pre, s0_pre, zeros, zeros], dim=1))


def test_drop_path_is_off_in_eval_mode_and_active_in_training():
    torch.manual_seed(0)
    net = small_cifar()
    x = torch.randn(8, 3, 16, 16)
    net.eval()
    reference = net(x)[0]
    net.drop_path_prob = 0.9
    assert torch.equal(net(x)[0], reference)
    net.train()
    net.drop_path_prob = 0.0
    no_drop = net(x)[0]
    net.drop_path_prob = 0.9
    assert not torch.allclose(net(x)[0], no_drop)


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 4, 4)
    out = drop_path(x, 0.5, training=True)
    per_sample = out.flatten(1)
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # one value per sample
    assert set(per_sample[:, 0].tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / 0.5
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    assert torch.equal(drop_path(x, 1.0, training=True), torch.zeros_like(x))
    with pytest.raises(ValueError):
        DropPath(1.5)


def test_backward_pass_reaches_every_parameter():
    torch.manual_seed(0)
    net = small_cifar().train()
    net.drop_path_prob = 0.2
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    logits, aux = net(x)
    loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in (p.grad for p in net.auxiliary_head.parameters()))


def test_count_macs_of_a_single_linear_layer():
    # 1 image, 5 -> 3 features: 15 multiply-adds.
    assert count_macs(nn.Sequential(nn.Flatten(), nn.Linear(5, 3)), (5, 1, 1)) == 15
    assert count_parameters(nn.Linear(5, 3)) == 18
