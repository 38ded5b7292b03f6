"""The one n-gram baseline, on cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from performance_rnn.baselines import NGram


def test_bigram_absolute_discounting_by_hand():
    lm = NGram(2, vocab_size=3, discount=0.5).fit([[0, 1, 0, 1]])
    uni = {0: 3 / 7, 1: 3 / 7, 2: 1 / 7}  # add-one over 4 tokens and 3 types
    for t, p in uni.items():
        assert lm.prob([], t) == pytest.approx(p)
    # after 0: C(0 1) = 2 of C(0 .) = 2, one type: 1.5/2 + 0.5 * 1/2 * p_uni
    assert lm.prob([0], 1) == pytest.approx(0.75 + 0.25 * 3 / 7)
    assert lm.prob([0], 0) == pytest.approx(0.25 * 3 / 7)
    assert lm.prob([0], 2) == pytest.approx(0.25 / 7)
    assert sum(lm.prob([0], t) for t in range(3)) == pytest.approx(1.0)
    assert lm.prob([1], 0) == pytest.approx(0.5 + 0.5 * 3 / 7)
    assert lm.prob([2], 1) == pytest.approx(3 / 7)  # unseen context: the unigram
    assert lm.nll([[0, 1, 0]]) == pytest.approx(-(math.log(6 / 7) + math.log(5 / 7)) / 2)
    assert lm.nll([[0, 1, 0]], order=1) == pytest.approx(-2 * math.log(3 / 7) / 2)


def test_fit_twice_counts_contexts_once():
    twice = NGram(3, 4).fit([[0, 1, 2, 3]]).fit([[0, 1]])
    split = NGram(3, 4).fit([[0, 1, 2, 3], [0, 1]])
    assert twice.nll([[0, 1, 2, 3]]) == pytest.approx(split.nll([[0, 1, 2, 3]]))


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order must be >= 1"):
        NGram(0, 3)
