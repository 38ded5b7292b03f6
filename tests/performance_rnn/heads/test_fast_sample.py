"""The one-pass sampling kernel against the tensor ops it replaces: the same distribution, the same tokens for the
same uniforms, the same keyboard state after; both of its ways (torch's exponentials, or its own), the rows it
must redo for underflow, and the tensor ops again where it cannot be built."""

from __future__ import annotations

import random
import shutil

import pytest
import torch

from performance_rnn.codecs.performance import PerformanceCodecConfig
from performance_rnn.config import SamplingConfig
from performance_rnn.heads import BatchSampling, CategoricalHead, draw_uniform, fast_sample, filtered_logits
from performance_rnn.keyboard import KeyboardMask
from performance_rnn.sampling import generators_from_seeds

CFG = PerformanceCodecConfig()
V = 388
ON, OFF, SHIFT = 0, 128, 256
HEAD = CategoricalHead(V)

needs_kernel = pytest.mark.skipif(not fast_sample.available(), reason="the sampling kernel cannot be built here")


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_the_kernel_builds_where_there_is_a_compiler() -> None:
    """Else every test marked ``needs_kernel`` would skip, and sampling would quietly take the slow path."""
    assert fast_sample.available()


def _masks(batch: int, seed: int) -> KeyboardMask:
    """Random keyboard states: some keys held (struck now or earlier), the rest up."""
    g = torch.Generator().manual_seed(seed)
    mask = KeyboardMask(CFG, batch)
    mask.step = torch.randint(0, 50, (batch,), generator=g)
    held = torch.rand(batch, 128, generator=g) < 0.3
    struck = (torch.rand(batch, 128, generator=g) * (mask.step.unsqueeze(1) + 1).float()).long()  # 0..step
    mask.start = torch.where(held, struck, -1)
    return mask


def _reference_probs(logits: torch.Tensor, mask: KeyboardMask | None, temps: list[float]) -> torch.Tensor:
    settings = BatchSampling.of([SamplingConfig(temperature=t) for t in temps])
    masked = logits if mask is None else mask.apply(logits)
    return torch.softmax(filtered_logits(masked, settings), dim=-1, dtype=torch.float64)


def _logits(batch: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(batch, V, generator=torch.Generator().manual_seed(seed)) * scale


@needs_kernel
@pytest.mark.parametrize("batch", [1, 3, fast_sample.TORCH_EXP_FROM_ROWS, 64])  # its own exps, and torch's
@pytest.mark.parametrize("masked", [False, True])
def test_the_kernel_samples_the_distribution_of_the_tensor_ops(batch: int, masked: bool) -> None:
    for seed in range(3):
        logits = _logits(batch, seed)
        temps = [random.Random(seed * 100 + b).choice([0.5, 1.0, 1.0, 1.7]) for b in range(batch)]
        mask = _masks(batch, seed) if masked else None
        expected = _reference_probs(logits, mask, temps)
        keyboard = None if mask is None else (mask.start.clone(), mask.step.clone(), ON, SHIFT, CFG.max_shift_steps)
        _, probs = fast_sample.sample(logits, torch.tensor(temps), torch.rand(batch, dtype=torch.float64), keyboard,
                                      with_probs=True)
        assert probs is not None
        torch.testing.assert_close(probs, expected, atol=2e-6, rtol=1e-4)
        if mask is not None:  # nothing impossible has any probability
            assert float(probs[~mask.allowed()].abs().max()) == 0.0


@needs_kernel
@pytest.mark.parametrize("batch", [2, 64])
def test_the_same_uniforms_give_the_same_tokens_and_the_same_keyboard_after(batch: int) -> None:
    settings = BatchSampling.of([SamplingConfig(temperature=1.0 if b % 3 else 1.3) for b in range(batch)])
    mask_fast, mask_ops = _masks(batch, 7), _masks(batch, 7)
    gens_fast, gens_ops = generators_from_seeds(range(batch)), generators_from_seeds(range(batch))
    same = total = 0
    for step in range(200):
        logits = _logits(batch, 1000 + step)
        fast = mask_fast.sample(HEAD, logits, settings, gens_fast)  # the kernel
        ops = HEAD.sample_by_tensor_ops(mask_ops.apply(logits), settings, gens_ops)
        mask_ops.update(ops)
        same += int((fast == ops).sum())
        total += batch
        mask_fast.start, mask_fast.step = mask_ops.start.clone(), mask_ops.step.clone()  # follow one history
        if step == 0:
            assert torch.equal(fast, ops)
    # a uniform within rounding (~1e-7) of a boundary may go either way: at most one such draw in these
    assert total - same <= 1, f"{total - same} of {total} tokens differ"


@needs_kernel
def test_the_kernel_advances_the_keyboard_as_update_does() -> None:
    batch = 32
    mask_fast, mask_ops = _masks(batch, 3), _masks(batch, 3)
    settings = BatchSampling.of([SamplingConfig()] * batch)
    for step in range(300):
        logits = _logits(batch, step, scale=1.0)
        logits[:, SHIFT:] -= 2.0  # plenty of key events, and shifts
        tokens = mask_fast.sample(HEAD, logits, settings, generators_from_seeds(range(step, step + batch)))
        mask_ops.update(tokens)
        assert torch.equal(mask_fast.start, mask_ops.start) and torch.equal(mask_fast.step, mask_ops.step)
    assert int((mask_ops.start >= 0).sum()) > 0 and int(mask_ops.step.min()) > 0


def _exact_probs(logits: torch.Tensor, mask: KeyboardMask, temps: list[float]) -> torch.Tensor:
    """The masked distribution in float64 from the logits (each group's lift from its own maximum)."""
    out = logits.double().clone()
    ok = mask.allowed()
    for first in (ON, OFF):
        keys, allowed = out[:, first : first + 128], ok[:, first : first + 128]
        e = (keys - keys.amax(1, keepdim=True)).exp()
        share = (e * allowed).sum(1, keepdim=True) / e.sum(1, keepdim=True)
        lift = torch.where(share > 0, -share.log(), 0.0)
        out[:, first : first + 128] = torch.where(allowed, keys + lift, float("-inf"))
    return torch.softmax(out / torch.tensor(temps, dtype=torch.float64).unsqueeze(1), dim=-1)


@needs_kernel
@pytest.mark.parametrize("batch", [4, 16])
def test_rows_that_underflow_are_sampled_exactly(batch: int) -> None:
    """Rows where weights relative to the row's largest logit underflow float32 (below e^-87): the kernel must
    take them from the logits, in double, and match the exact distribution, not lose a group's lift."""
    # key 60 held, struck now: no NOTE_ON 60, no NOTE_OFF at all; row 3: every key held, struck now: no key event
    mask = KeyboardMask.of(CFG, [[ON + 60]] * 3 + [[ON + k for k in range(128)]] + [[ON + 60]] * (batch - 4))
    logits = _logits(batch, 5, scale=1.0)
    temps = [1.0, 10.0] + [1.0] * (batch - 2)
    # row 0: the largest logit is the impossible NOTE_ON 60; every possible token is ~150 below it
    logits[0] -= 150.0
    logits[0, ON + 60] = 0.0
    logits[0, OFF : OFF + 128] = -10.0  # the NOTE_OFFs are near, but none is possible
    # row 1 (temperature 10): a shift is largest; the keys are ~110 below it (their float32 weights are 0), and
    # the NOTE_ON group's largest is the impossible one, so its lift matters, and at temperature 10 so does its mass
    logits[1] -= 110.0
    logits[1, SHIFT + 3] = 0.0
    logits[1, SHIFT + 4 :] = -20.0
    logits[1, ON + 60] = -105.0
    # row 2: the NOTE_ON group's largest is the impossible one at the top, its possible keys ~100 below (subnormal
    # float32 weights): they hold the group's mass, so their share must be exact
    logits[2, :] = -3.0
    logits[2, OFF : OFF + 128] = -5.0
    logits[2, ON : ON + 128] = -100.0 + torch.rand(128, generator=torch.Generator().manual_seed(0))
    logits[2, ON + 60] = 0.0
    # row 3: the largest logit is an impossible key, every possible token (no key is) ~95 below it, subnormal
    logits[3, :] = -95.0 + torch.rand(V, generator=torch.Generator().manual_seed(1))
    logits[3, ON + 5] = 0.0
    expected = _exact_probs(logits, mask, temps)
    _, probs = fast_sample.sample(logits, torch.tensor(temps), torch.rand(batch, dtype=torch.float64),
                                  (mask.start.clone(), mask.step.clone(), ON, SHIFT, CFG.max_shift_steps),
                                  with_probs=True)
    assert probs is not None
    torch.testing.assert_close(probs[:4], expected[:4], atol=1e-12, rtol=1e-5)
    torch.testing.assert_close(probs, expected, atol=2e-6, rtol=1e-4)
    assert float(probs[0, ON + 60]) == 0.0 and 0.999 < float(probs[0, ON : ON + 128].sum()) <= 1.0
    assert float(probs[1, ON : ON + 128].sum()) > 5e-5  # the lifted group's mass at temperature 10, not 0
    assert float(probs[2, ON : ON + 128].sum()) > 0.1  # the group's mass, now on its possible keys
    assert float(probs[3, ON : ON + 256].abs().sum()) == 0.0 and abs(float(probs[3].sum()) - 1.0) < 1e-9


@needs_kernel
def test_plain_categorical_sampling_takes_the_kernel_and_matches_the_tensor_ops() -> None:
    batch = 16
    settings = BatchSampling.of([SamplingConfig(temperature=0.8)] * batch)
    logits = _logits(batch, 11)
    a = HEAD.sample(logits, settings, generators_from_seeds(range(batch)))
    b = HEAD.sample_by_tensor_ops(logits, settings, generators_from_seeds(range(batch)))
    assert torch.equal(a, b)


def test_greedy_and_filtered_settings_take_the_tensor_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(fast_sample, "sample", lambda *a, **k: calls.append(1))
    settings = BatchSampling.of([SamplingConfig(top_k=5), SamplingConfig(temperature=0.0)])
    tokens = _masks(2, 0).sample(HEAD, _logits(2, 0), settings, generators_from_seeds(range(2)))
    assert tokens.shape == (2,) and calls == []


@needs_kernel
def test_bad_arguments_are_refused_before_the_c_code_runs() -> None:
    logits = _logits(4, 0)
    with pytest.raises(ValueError, match="one temperature and one uniform per row"):
        fast_sample.sample(logits, torch.ones(3), torch.rand(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="keyboard state"):
        fast_sample.sample(logits, torch.ones(4), torch.rand(4, dtype=torch.float64),
                           (torch.full((4, 128), -1, dtype=torch.int32), torch.zeros(4, dtype=torch.long), 0, 256, 100))
    with pytest.raises(ValueError, match="keyboard state"):
        fast_sample.sample(logits[:, :200], torch.ones(4), torch.rand(4, dtype=torch.float64),
                           (torch.full((4, 128), -1, dtype=torch.long), torch.zeros(4, dtype=torch.long), 0, 256, 100))


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_without_a_compiler_sampling_runs_on_tensor_ops(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    batch = 8
    settings = BatchSampling.of([SamplingConfig()] * batch)
    logits = _logits(batch, 2)
    with_kernel = _masks(batch, 2).sample(HEAD, logits, settings, generators_from_seeds(range(batch)))
    monkeypatch.setenv("PERFRNN_CACHE", str(tmp_path))  # nothing cached: it must build
    monkeypatch.setenv("CC", "false")  # and cannot
    fast_sample._library.cache_clear()
    try:
        assert not fast_sample.available()
        mask = _masks(batch, 2)
        without = mask.sample(HEAD, logits, settings, generators_from_seeds(range(batch)))
        assert torch.equal(with_kernel, without)  # the same tokens, by the tensor ops
        expected = _masks(batch, 2)
        expected.update(without)
        assert torch.equal(mask.start, expected.start)
        assert HEAD.sample(logits, settings, generators_from_seeds(range(batch))).shape == (batch,)
    finally:
        fast_sample._library.cache_clear()
    assert not any(tmp_path.iterdir())


def test_uniform_draws_are_the_streams_own() -> None:
    """Both paths draw exactly one uniform per stream per step, so a stream's music does not depend on the path."""
    gens = generators_from_seeds(range(3))
    twins = generators_from_seeds(range(3))
    HEAD.sample(_logits(3, 0), BatchSampling.of([SamplingConfig()] * 3), gens)
    draw_uniform(twins)
    assert [g.random() for g in gens] == [g.random() for g in twins]


def test_making_a_head_prepares_the_kernel_off_the_real_time_path() -> None:
    """The first build takes a compiler run: it happens when a model's head is made, not at a stream's first step."""
    fast_sample._library.cache_clear()
    try:
        CategoricalHead(V)
        assert fast_sample._library.cache_info().currsize == 1
        misses = fast_sample._library.cache_info().misses
        HEAD.sample(_logits(2, 0), BatchSampling.of([SamplingConfig()] * 2), generators_from_seeds(range(2)))
        assert fast_sample._library.cache_info().misses == misses  # sampling found it ready
    finally:
        fast_sample._library.cache_clear()
