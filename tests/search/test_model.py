import pytest
import torch
from torch import nn

from pdarts.search.model import MixedOp, SearchNetwork
from pdarts.search_space import EDGES, full_candidates


def test_stage_one_supernet_has_the_papers_weight_count():
    net = SearchNetwork(full_candidates(), num_cells=5, init_channels=16, num_classes=10)
    assert sum(p.numel() for p in net.weight_parameters()) == 1_275_834


def test_alphas_are_registered_and_owned_apart_from_weights():
    net = SearchNetwork(full_candidates(), num_cells=5, init_channels=8, num_classes=10)
    weights, alphas = net.weight_parameters(), net.arch_parameters()
    assert len(alphas) == 28 and all(a.shape == (8,) for a in alphas)
    assert not {id(p) for p in weights} & {id(p) for p in alphas}
    assert len(weights) + len(alphas) == len(list(net.parameters()))
    keys = net.state_dict().keys()
    assert "alphas.normal.0" in keys and "alphas.reduce.13" in keys
    assert float(torch.cat([a.detach() for a in alphas]).abs().max()) < 0.01  # 1e-3 * N(0, 1)


def test_parameter_lists_are_the_modules_own_after_a_conversion_that_replaces_them():
    net = SearchNetwork(full_candidates(("none", "skip_connect")), 3, init_channels=4, num_classes=10)
    before = net.weight_parameters()
    before.clear()  # a caller's list is its own
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 28
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # .to() makes new Parameters
    try:
        net.to(torch.float64)
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    owned = {id(p) for p in net.parameters()}
    weights, alphas = net.weight_parameters(), net.arch_parameters()
    assert {id(p) for p in weights} | {id(p) for p in alphas} == owned
    assert all(p.dtype == torch.float64 for p in weights + alphas)


def test_reductions_at_a_third_and_two_thirds_and_shared_alphas():
    net = SearchNetwork(full_candidates(), num_cells=8, init_channels=4, num_classes=3)
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]
    out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3)
    out.sum().backward()
    # every normal cell contributes to the same normal alphas
    assert all(a.grad is not None for a in net.arch_parameters())


def test_mixed_op_is_the_softmax_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    op = MixedOp(4, 1, ("none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3")).eval()
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.tensor([0.3, -0.2, 0.5, 0.1]), 0)
    expected = sum(w[i + 1] * op.ops[name](x) for i, name in enumerate(op.op_names[1:]))
    assert torch.allclose(op(x, w), expected)
    only_none = MixedOp(4, 2, ("none",))
    assert only_none(x, torch.ones(1)).shape == (2, 4, 3, 3)


def test_candidate_lists_shape_the_supernet():
    cands = full_candidates(["skip_connect", "sep_conv_3x3"])
    cands["normal"] = list(cands["normal"])
    cands["normal"][3] = ("none", "dil_conv_5x5", "max_pool_3x3")
    net = SearchNetwork(cands, num_cells=3, init_channels=4, num_classes=2)
    assert net.alphas.normal[3].shape == (3,)
    assert tuple(net.cells[0].edges[3].ops) == ("max_pool_3x3", "dil_conv_5x5")
    assert net.alphas.to_dict()["normal"][3]["ops"] == ["none", "max_pool_3x3", "dil_conv_5x5"]


def _dropouts(net):
    return [m for m in net.modules() if isinstance(m, nn.Dropout)]


def test_skip_dropout_on_every_stride_one_skip_of_both_cell_types():
    """Stage-3 sized supernet (17 cells, reductions at 5 and 11): a dropout on each of a normal cell's
    14 skip-connects, on the 6 of a reduction cell between its nodes, never on a stride-2 skip."""
    net = SearchNetwork(full_candidates(), 17, 4, 10, skip_dropout=True)
    for index, cell in enumerate(net.cells):
        dropped = [
            i for i, edge in enumerate(cell.edges) if any(isinstance(m, nn.Dropout) for m in edge.modules())
        ]
        if cell.reduction:
            assert index in (17 // 3, 2 * 17 // 3)
            assert dropped == [i for i, (_, source) in enumerate(EDGES) if source >= 2], index
            assert len(dropped) == 6
        else:
            assert dropped == list(range(14)), index
    assert len(_dropouts(net)) == 15 * 14 + 2 * 6
    assert not _dropouts(SearchNetwork(full_candidates(), 17, 4, 10, skip_dropout=False))
    net.set_skip_dropout(0.3)
    assert {d.p for d in _dropouts(net)} == {0.3}


def test_skip_dropout_acts_in_training_only():
    op = MixedOp(4, 1, ("skip_connect",), skip_dropout=True)
    op.ops["skip_connect"][1].p = 0.5
    x = torch.ones(1, 4, 8, 8)
    op.train()
    assert (op(x, torch.ones(1)) == 0).any()
    op.eval()
    assert torch.equal(op(x, torch.ones(1)), x)


@pytest.mark.parametrize("channels_last", [False, True])
def test_skip_dropout_drops_at_its_rate_scales_the_kept_values_and_their_gradients(channels_last):
    """The mask is multiplied in as bytes: dropped values and their gradients are zero, kept ones
    are scaled by 1 / (1 - p) both ways, and about p of the values are dropped."""
    from pdarts.search.model import SkipDropout

    torch.manual_seed(0)
    x = torch.randn(8, 16, 16, 16)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    torch.manual_seed(1)
    y = SkipDropout(p=0.3).train()(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.01
    torch.testing.assert_close(y[kept], x.detach()[kept] / 0.7)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    torch.testing.assert_close(grad, kept.float() / 0.7)
    torch.manual_seed(1)
    assert torch.equal(SkipDropout(p=0.3).train()(x.detach()), y.detach())  # reproducible from torch's seed


@pytest.mark.parametrize("rate", [0.3, 0.0])
@pytest.mark.parametrize("channels_last", [False, True])
def test_skip_dropout_with_a_scale_is_the_scale_times_the_dropout(channels_last, rate):
    """A mixed op's weight of its skip-connect enters the dropout as its scale: the same mask (from the
    same seed), values and gradients (of the input and the weight) as ``scale * dropout(x)``."""
    from pdarts.search.model import SkipDropout

    x = torch.randn(4, 8, 8, 8)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    scale = torch.tensor(0.37, requires_grad=True)
    dropout = SkipDropout(p=rate).train()
    grad = torch.randn(4, 8, 8, 8)
    results = []
    for fused in (True, False):
        torch.manual_seed(1)
        y = dropout(x, scale) if fused else scale * dropout(x)
        results.append((y, torch.autograd.grad(y, (x, scale), grad)))
    (fused_y, fused_grads), (plain_y, plain_grads) = results
    torch.testing.assert_close(fused_y, plain_y)
    for f, p in zip(fused_grads, plain_grads):
        torch.testing.assert_close(f, p)
    mixed = MixedOp(8, 1, ("none", "skip_connect"), skip_dropout=True)
    mixed.ops["skip_connect"][1].p = rate
    weights = torch.softmax(torch.tensor([0.2, -0.1]), 0)
    torch.manual_seed(1)
    expected = weights[1] * dropout(x)
    torch.manual_seed(1)
    torch.testing.assert_close(mixed.train()(x, weights), expected)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7, 0.123456])
def test_keep_mask_keeps_at_one_minus_p_and_repeats_from_its_seed(p):
    import numpy as np

    from pdarts.search.model import keep_mask

    mask = keep_mask(7, 1 << 20, p)
    assert mask.dtype == np.uint8 and mask.shape == (1 << 20,) and set(np.unique(mask)) <= {0, 1}
    rate = mask.mean()
    assert abs(rate - (1 - p)) < 4 * (p * (1 - p) / mask.size) ** 0.5  # four standard errors
    assert np.array_equal(keep_mask(7, 1 << 20, p), mask)
    assert not np.array_equal(keep_mask(8, 1 << 20, p), mask)


def test_keep_mask_settles_ties_of_the_first_16_bits_by_16_more():
    """With p halfway between two multiples of 2**-16, the values whose first 16 bits equal the high
    half of p * 2**32 are kept about half the time; all others are decided by those 16 bits alone."""
    import numpy as np

    from pdarts.search.model import keep_mask

    high, count = 40_000, 1 << 24
    mask = keep_mask(3, count, (high + 0.5) / 2**16)
    first = np.random.PCG64(3).random_raw(count // 4).view(np.uint16)
    assert mask[first > high].all() and not mask[first < high].any()
    ties = mask[first == high]
    assert ties.size > 150 and 0.3 < ties.mean() < 0.7
