import math

import pytest

from pdarts.schedules import cosine_lr, skip_dropout_rate


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(0, 0.4 * 24 / 25), (9, 0.4 * 15 / 25), (10, 0.4), (24, 0.4 * math.exp(-0.2 * 14))],
)
def test_skip_dropout_rate_at_paper_epochs(epoch, expected):
    assert skip_dropout_rate(epoch, 0.4, epochs=25, warmup_epochs=10) == pytest.approx(expected)


def test_skip_dropout_jumps_back_at_the_end_of_warmup():
    assert skip_dropout_rate(9, 0.7, 25, 10) < skip_dropout_rate(10, 0.7, 25, 10) == 0.7
    assert skip_dropout_rate(3, 0.0, 25, 10) == 0.0


def test_cosine_lr_is_the_authors_formula():
    for epoch in range(25):
        assert cosine_lr(epoch, 0.025, 25) == pytest.approx(0.0125 * (1 + math.cos(math.pi * epoch / 25)))
    assert cosine_lr(0, 0.025, 25) == pytest.approx(0.025)
    assert cosine_lr(25, 0.025, 25, min_lr=0.001) == pytest.approx(0.001)
