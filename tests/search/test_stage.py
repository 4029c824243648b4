"""One search stage on tiny random data, on the CPU."""

import pytest
import torch

from pdarts.search.model import SearchNetwork
from pdarts.search.stage import SearchSettings, Stage, run_search_stage
from pdarts.search_space import full_candidates

CANDIDATES = full_candidates(["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"])


def _batches(seed: int, n: int = 2, batch: int = 8):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, 1, 8, 8, generator=g), torch.randint(0, 3, (batch,), generator=g))
        for _ in range(n)
    ]


def _run(epochs: int, warmup: int, seed: int = 0, skip_dropout: float = 0.3):
    settings = SearchSettings.defaults(
        seed=seed, epochs=epochs, warmup_epochs=warmup, init_channels=4, precision="fp32", channels_last=False
    )
    stage = Stage("test", cells=3, skip_dropout=skip_dropout)
    return run_search_stage(
        CANDIDATES, settings, stage, _batches(1), _batches(2), num_classes=3, in_channels=1, device="cpu"
    )


def _initial_alphas(seed: int = 0):
    torch.manual_seed(seed)
    return SearchNetwork(CANDIDATES, 3, 4, 3, in_channels=1, skip_dropout=True).alphas.to_dict()


def _alpha_values(alphas):
    return [edge["alpha"] for cell in ("normal", "reduce") for edge in alphas[cell]]


def test_warmup_leaves_alphas_untouched_and_search_moves_them():
    initial = _alpha_values(_initial_alphas())
    warm = _run(epochs=2, warmup=2)
    assert _alpha_values(warm.alphas) == initial
    searched = _run(epochs=3, warmup=2)
    moved = [abs(a - b) for ea, eb in zip(_alpha_values(searched.alphas), initial) for a, b in zip(ea, eb)]
    assert max(moved) > 1e-5


def test_metrics_per_epoch():
    result = _run(epochs=3, warmup=1)
    assert [m["epoch"] for m in result.history] == [0, 1, 2]
    assert [m["warmup"] for m in result.history] == [True, False, False]
    first, last = result.history[0], result.history[-1]
    assert first["arch_loss"] is None and last["arch_loss"] > 0 and 0 <= last["arch_acc"] <= 1
    assert first["lr"] == pytest.approx(0.025) and last["lr"] < first["lr"]
    assert first["skip_dropout"] == pytest.approx(0.3 * 2 / 3)
    assert last["skip_dropout"] == pytest.approx(0.3 * 2.718281828**-0.2)
    assert all(m["seconds"] > 0 and m["train_loss"] > 0 for m in result.history)


def test_same_seed_same_alphas_different_seed_different():
    a = _run(epochs=2, warmup=1, seed=3)
    b = _run(epochs=2, warmup=1, seed=3)
    c = _run(epochs=2, warmup=1, seed=4)
    assert _alpha_values(a.alphas) == _alpha_values(b.alphas)
    assert _alpha_values(a.alphas) != _alpha_values(c.alphas)


def test_alphas_are_in_the_derive_format():
    alphas = _run(epochs=1, warmup=0).alphas
    edge = alphas["normal"][4]
    assert edge["ops"] == ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    assert len(edge["alpha"]) == 4 and sum(edge["weights"]) == pytest.approx(1.0)
    assert (edge["source"], edge["target"]) == (2, 3)


class _Poisoned:
    """Re-iterable batches; in pass ``epoch`` (0-based) batch ``step`` (1-based) is all NaN."""

    def __init__(self, batches, epoch, step):
        self.batches, self.epoch, self.step, self.passes = batches, epoch, step, 0

    def __iter__(self):
        poisoned = self.passes == self.epoch
        self.passes += 1
        for index, (x, y) in enumerate(self.batches, start=1):
            yield (torch.full_like(x, float("nan")), y) if poisoned and index == self.step else (x, y)


def test_a_non_finite_loss_stops_the_stage_naming_epoch_and_step_and_keeps_the_last_checkpoint():
    from pdarts.errors import PdartsError

    batches = [(torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))) for _ in range(3)]
    settings = SearchSettings.defaults(
        epochs=3, warmup_epochs=1, init_channels=4, precision="fp32", channels_last=False
    )
    saved = []
    with pytest.raises(PdartsError, match=r"not finite at epoch 2, step 2;.*checkpoint of the last"):
        run_search_stage(
            CANDIDATES,
            settings,
            Stage("test", cells=3, skip_dropout=0.0),
            _Poisoned(batches, epoch=1, step=2),
            batches,
            num_classes=3,
            in_channels=1,
            save_state=saved.append,
        )
    assert [len(state["history"]) for state in saved] == [1]  # epoch 1's state, nothing after it


def test_the_weight_update_is_fused_sgd_and_matches_the_per_tensor_loop():
    """On the CPU the weights take fused SGD and multi-tensor clipping (a few calls for the 1,500
    tensors of stage 3 instead of six per tensor); the same update as torch's loop to fp32 rounding."""
    from pdarts.search.stage import build_search, search_step

    settings = SearchSettings.defaults(init_channels=4, precision="fp32", channels_last=False, grad_clip=0.01)
    stage = Stage("test", cells=3, skip_dropout=0.0)
    images, target = _batches(3, n=1)[0]
    results = []
    for fused in (True, False):
        torch.manual_seed(0)
        parts = build_search(CANDIDATES, settings, stage, 3, 1, torch.device("cpu"), example=images)
        assert parts.weight_optimizer.defaults["fused"] is True
        initial = [p.detach().clone() for p in parts.model.weight_parameters()]
        if not fused:  # torch's per-tensor loop, as before
            parts.weight_optimizer.param_groups[0]["fused"] = None
            parts.weight_optimizer.defaults["fused"] = None
        for _ in range(3):  # momentum buffers from the second step on
            search_step(parts.model, (images, target), None, parts.weight_optimizer, None, settings.grad_clip)
        results.append([p.detach().clone() for p in parts.model.weight_parameters()])
        assert sum(not torch.equal(a, b) for a, b in zip(initial, results[-1])) > 20  # the steps moved them
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
