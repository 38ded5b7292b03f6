"""The keyboard mask: unit rules, and zero impossible events from every sampling path (files, engine, beam)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from performance_rnn.codecs.performance import PerformanceCodecConfig
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import StreamSpec
from performance_rnn.fast_step import FastStep
from performance_rnn.keyboard import KeyboardMask, impossible_events
from performance_rnn.sampling import beam_search, generate, generators_from_seeds
from performance_rnn.tasks.music.generate import load_music, music_engine, primer_tokens

CFG = PerformanceCodecConfig()
ON, OFF, SHIFT, VEL = 0, 128, 255, 355  # SHIFT + k is a shift of k steps, VEL + b velocity bin b


def test_rules_of_the_keyboard() -> None:
    mask = KeyboardMask.of(CFG, [[VEL + 20, ON + 60]])
    ok = mask.allowed()[0]
    assert not ok[ON + 60] and not ok[OFF + 60]  # no re-strike, no zero-length note in the same step
    assert not ok[OFF + 61] and ok[ON + 61]  # no release of a key that is up
    assert ok[SHIFT + 1 : SHIFT + 101].all() and ok[VEL + 1 : VEL + 33].all()
    mask.update(torch.tensor([SHIFT + 10]))
    ok = mask.allowed()[0]
    assert ok[OFF + 60] and not ok[ON + 60]
    mask.update(torch.tensor([OFF + 60]))
    ok = mask.allowed()[0]
    assert ok[ON + 60] and not ok[OFF + 60]


def test_a_note_past_the_guard_keeps_its_key_until_its_note_off() -> None:
    """The decoder releases it at 5 s but pairs the next NOTE_OFF with it (note_seq's rule), so the key
    stays taken: a re-strike before that NOTE_OFF would be closed by it."""
    mask = KeyboardMask.of(CFG, [[ON + 60] + [SHIFT + 100] * 7])
    assert not mask.allowed()[0, ON + 60] and mask.allowed()[0, OFF + 60]


def test_the_independent_check_finds_each_kind() -> None:
    found = impossible_events([ON + 60, ON + 60, OFF + 60, SHIFT + 1, OFF + 60, OFF + 61], CFG)
    assert [i for i, _ in found] == [1, 2, 4, 5]  # re-strike, zero length, key up (twice)


@pytest.fixture(scope="module")
def mm(baby_checkpoint: Path):
    return load_music(baby_checkpoint)


def _sample(mm, masked: bool, n: int = 4, steps: int = 400) -> list[list[int]]:
    tokens, _ = primer_tokens(mm, None)
    prim = torch.tensor(tokens)
    ctrl = torch.zeros(21)
    ctrl[0] = 1.0
    out: list[list[int]] = [[] for _ in range(n)]
    for o, _ in generate(FastStep(mm.model), mm.head, [prim] * n, [SamplingConfig(temperature=1.5)] * n,
                         generators_from_seeds(range(n)), max_steps=steps,
                         primer_controls=[ctrl.expand(len(tokens), -1)] * n,
                         controls=lambda t, last: ctrl.expand(n, -1),
                         mask=KeyboardMask.of(mm.codec, [tokens] * n) if masked else None):
        for i in range(n):
            out[i].append(int(o[i]))
    return out


def test_sampling_plays_no_impossible_event(mm) -> None:
    assert all(impossible_events(seq, mm.codec) == [] for seq in _sample(mm, masked=True))
    # the check has teeth: the same barely-trained model unmasked plays impossible events
    assert sum(len(impossible_events(seq, mm.codec)) for seq in _sample(mm, masked=False)) > 0


def test_engine_streams_play_no_impossible_event(mm) -> None:
    tokens, _ = primer_tokens(mm, None)
    with music_engine(mm, max_streams=8) as engine:
        streams = [engine.open(StreamSpec(torch.tensor(tokens), SamplingConfig(temperature=1.5), seed=s,
                                          lookahead_s=None, max_steps=300 + 50 * s)) for s in range(4)]
        for s in streams:
            seq = []
            while (t := s.tokens.get(timeout=30)) is not None:
                seq.append(t)
            assert len(seq) == s.spec.max_steps
            assert impossible_events(seq, mm.codec, primer=tokens) == []


def test_beam_search_plays_no_impossible_event(mm) -> None:
    tokens, _ = primer_tokens(mm, None)
    ctrl = torch.zeros(300, 21)
    ctrl[:, 0] = 1.0
    seq, _ = beam_search(FastStep(mm.model), mm.head, torch.tensor(tokens), beam_size=3, branch_factor=3,
                         max_steps=300, sampling=SamplingConfig(temperature=1.5), primer_controls=ctrl[: len(tokens)],
                         controls=ctrl, mask=KeyboardMask.of(mm.codec, [tokens]),
                         generator=torch.Generator().manual_seed(1))
    assert len(seq) == 300 and impossible_events(seq, mm.codec) == []


def test_masking_keeps_each_event_types_probability() -> None:
    """The model's chance of releasing *some* key stays; the mask only moves it onto the keys that are held."""
    mask = KeyboardMask.of(CFG, [[VEL + 20, ON + 60, ON + 64, SHIFT + 5]])
    logits = torch.randn(1, 388, generator=torch.Generator().manual_seed(0))
    before = torch.softmax(logits, -1)[0]
    after = torch.softmax(mask.apply(logits), -1)[0]
    assert after[OFF : OFF + 128].sum() == pytest.approx(float(before[OFF : OFF + 128].sum()), rel=1e-5)
    assert set(torch.nonzero(after[OFF : OFF + 128]).flatten().tolist()) == {60, 64}
    assert after[OFF + 60] / after[OFF + 64] == pytest.approx(float(before[OFF + 60] / before[OFF + 64]), rel=1e-4)
    assert after[ON + 60] == 0 and after[ON : ON + 128].sum() == pytest.approx(float(before[ON : ON + 128].sum()),
                                                                               rel=1e-5)
    assert after[SHIFT + 1 :].sum() == pytest.approx(float(before[SHIFT + 1 :].sum()), rel=1e-5)
    # with no key held, the note-off mass is shared by the rest in proportion
    empty = torch.softmax(KeyboardMask.of(CFG, [[VEL + 20]]).apply(logits), -1)[0]
    assert empty[OFF : OFF + 128].sum() == 0 and empty.sum() == pytest.approx(1.0)


def test_apply_matches_the_plain_formula_in_a_batch_and_leaves_its_input() -> None:
    import random

    rng = random.Random(7)
    keys = [ON + 60, OFF + 60, ON + 61, OFF + 61, ON + 62, SHIFT + 3, VEL + 9]
    mask = KeyboardMask.of(CFG, [[rng.choice(keys) for _ in range(rng.randrange(12))] for _ in range(64)])
    logits = torch.randn(64, 388, generator=torch.Generator().manual_seed(3)) * 3
    given = logits.clone()
    out = mask.apply(logits)
    assert torch.equal(logits, given)
    ok = mask.allowed()
    want = logits.clone()
    for b in range(64):
        for lo in (ON, OFF):
            group = slice(lo, lo + 128)
            share = float(torch.softmax(logits[b, group].double(), -1)[ok[b, group]].sum())
            want[b, group] += -math.log(share) if share > 0 else 0.0
    want[~ok] = float("-inf")
    assert torch.equal(torch.isinf(out), ~ok)
    torch.testing.assert_close(out[ok], want[ok], atol=1e-5, rtol=0)


def test_priming_a_mask_equals_feeding_its_tokens_one_by_one() -> None:
    import random

    rng = random.Random(4)
    primers = [[rng.choice([ON + 60, OFF + 60, ON + 61, OFF + 61, SHIFT + 3, VEL + 9]) for _ in range(n)]
               for n in (0, 5, 40)]
    fast = KeyboardMask.of(CFG, primers)
    slow = KeyboardMask(CFG, len(primers))
    for i in range(max(len(p) for p in primers)):
        slow.update(torch.tensor([p[i] if i < len(p) else -1 for p in primers]))
    assert torch.equal(fast.start, slow.start) and torch.equal(fast.step, slow.step)
