from typing import Any

import pytest
import torch

from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.heads import BatchSampling, CategoricalHead, draw_normal, draw_uniform, filtered_log_probs
from performance_rnn.model import RecurrentModel
from performance_rnn.sampling import beam_search, generate, generators_from_seeds

V = 10


@pytest.fixture
def model() -> RecurrentModel:
    torch.manual_seed(0)
    m = RecurrentModel(ModelConfig(input_size=V, hidden_size=24, num_layers=2, output_size=V)).eval()
    with torch.no_grad():  # sharpen the output so sequences depend strongly on the state
        m.out.weight.mul_(8)
    return m


def run(model: RecurrentModel, primers: list[torch.Tensor], configs: list[SamplingConfig], seeds: list[int],
        steps: int = 20) -> torch.Tensor:
    outs = [o for o, _ in generate(model, CategoricalHead(V), primers, configs, generators_from_seeds(seeds),
                                   max_steps=steps)]
    return torch.stack(outs, dim=1)  # (B, steps)


def test_state_is_carried_across_steps(model: RecurrentModel) -> None:
    """Greedy samples must equal the argmax of a full forward pass over primer + samples: that holds only if
    each step continues from the previous step's state (a re-zeroed state gives other logits)."""
    primer = torch.tensor([1, 2, 3])
    out = run(model, [primer], [SamplingConfig(temperature=0.0)], [0])[0]
    seq = torch.cat([primer, out])
    with torch.no_grad():
        logits, _ = model(seq.unsqueeze(0))
    expected = logits[0, len(primer) - 1 : -1].argmax(-1)
    assert torch.equal(out, expected)
    with torch.no_grad():  # and the check has teeth: a zero state at each step predicts differently
        fresh = torch.stack([model.step(seq[i : i + 1], None)[0][0].argmax() for i in range(2, len(seq) - 1)])
    assert not torch.equal(fresh, expected)


def test_same_seed_same_samples_and_other_seed_differs(model: RecurrentModel) -> None:
    p = [torch.tensor([4])]
    a = run(model, p, [SamplingConfig()], [7])
    b = run(model, p, [SamplingConfig()], [7])
    c = run(model, p, [SamplingConfig()], [8])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stream_does_not_depend_on_its_batch(model: RecurrentModel) -> None:
    alone = run(model, [torch.tensor([4, 5])], [SamplingConfig(temperature=1.3)], [3])
    batched = run(model, [torch.tensor([1]), torch.tensor([4, 5]), torch.tensor([9, 9, 9])],
                  [SamplingConfig(), SamplingConfig(temperature=1.3), SamplingConfig(top_k=2)], [1, 3, 5])
    assert torch.equal(alone[0], batched[1])


def test_a_streams_draws_follow_from_its_seed_alone() -> None:
    """Row by row, in a batch or alone (the one-stream path included), uniforms then normals as a head draws them."""
    def draws(seeds: list[int]) -> list[torch.Tensor]:
        gens = generators_from_seeds(seeds)
        return [draw_uniform(gens), draw_uniform(gens, 2), draw_normal(gens, 2), draw_uniform(gens)]

    alone, batched = draws([3]), draws([11, 3, -3, 12])
    for a, b in zip(alone, batched, strict=True):
        assert a.dtype == torch.float64 and torch.equal(a[0], b[1])
    assert not torch.equal(batched[0][1], batched[0][2])  # -3 is not 3
    assert len({float(x) for x in torch.cat([d.flatten() for d in batched])}) == 4 * 6  # no repeats
    g, ref = generators_from_seeds([5, 5])  # one generator repeated (beam search): rows take its draws in turn
    assert draw_uniform([g, g]).flatten().tolist() == [ref.random(), ref.random()]


def test_draws_are_uniform_and_normal_across_seeds_and_along_a_stream() -> None:
    n = 4000
    across = draw_uniform(generators_from_seeds(range(n))).flatten()  # the first draw of consecutive seeds
    along = draw_uniform(generators_from_seeds([0]), n).flatten()  # one stream's first n draws
    for u in (across, along):
        assert float(u.min()) >= 0 and float(u.max()) < 1
        counts = torch.histc(u.float(), bins=10, min=0, max=1)  # chi-square, 9 dof: p(> 27.9) = 0.001
        assert float(((counts - n / 10) ** 2 / (n / 10)).sum()) < 27.9
        assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.06  # neighbours independent
    z = draw_normal(generators_from_seeds(range(n)), 2)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.04
    assert abs(float(torch.corrcoef(z.T)[0, 1])) < 0.06


def test_top_k_1_equals_greedy(model: RecurrentModel) -> None:
    greedy = run(model, [torch.tensor([2])], [SamplingConfig(temperature=0.0)], [0])
    for seed in (1, 2, 3):
        top1 = run(model, [torch.tensor([2])], [SamplingConfig(temperature=1.5, top_k=1)], [seed])
        assert torch.equal(top1, greedy)


def test_top_k_and_top_p_filter_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def keep(**kw: Any) -> torch.Tensor:
        return torch.isfinite(filtered_log_probs(logits, BatchSampling.of([SamplingConfig(**kw)])))

    assert keep(top_k=2).tolist() == [[True, True, False, False]]
    assert keep(top_p=0.5).tolist() == [[True, False, False, False]]
    assert keep(top_p=0.8).tolist() == [[True, True, False, False]]
    assert keep(top_p=0.81).tolist() == [[True, True, True, False]]
    assert keep().all()


def test_samples_follow_the_distribution() -> None:
    probs = torch.tensor([0.1, 0.6, 0.3])
    params = probs.log().expand(4000, 3)
    settings = BatchSampling.of([SamplingConfig()] * 4000)
    samples = CategoricalHead(3).sample(params, settings, generators_from_seeds(range(4000)))
    freq = torch.bincount(samples, minlength=3).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03)


def test_stop_marks_streams_inactive(model: RecurrentModel) -> None:
    gen = generate(model, CategoricalHead(V), [torch.tensor([1])] * 2, [SamplingConfig()] * 2,
                   generators_from_seeds([0, 1]), max_steps=50, stop=lambda t, out: torch.tensor([t >= 2, t >= 4]))
    actives = [a.tolist() for _, a in gen]
    assert actives == [[True, True]] * 3 + [[False, True]] * 2


def test_greedy_beam_of_one_is_greedy_sampling(model: RecurrentModel) -> None:
    primer = torch.tensor([3, 1])
    greedy = run(model, [primer], [SamplingConfig(temperature=0.0)], [0], steps=8)[0].tolist()
    seq1, _ = beam_search(model, CategoricalHead(V), primer, beam_size=1, branch_factor=1, max_steps=8,
                          sampling=SamplingConfig(temperature=0.0))
    assert seq1 == greedy


def _log_p(model: RecurrentModel, primer: torch.Tensor, seq: list[int]) -> float:
    full = torch.cat([primer, torch.tensor(seq)])
    with torch.no_grad():
        logits, _ = model(full.unsqueeze(0))
    logp = torch.log_softmax(logits[0, len(primer) - 1 : -1].double(), -1)
    return float(logp.gather(1, torch.tensor(seq).unsqueeze(1)).sum())


def test_beam_search_samples_by_seed_and_scores_its_result(model: RecurrentModel) -> None:
    primer = torch.tensor([3, 1])

    def beam(seed: int, size: int, branch: int) -> tuple[list[int], float]:
        return beam_search(model, CategoricalHead(V), primer, beam_size=size, branch_factor=branch, max_steps=12,
                           generator=torch.Generator().manual_seed(seed))

    seq, score = beam(1, 4, 4)
    assert beam(1, 4, 4) == (seq, score)  # the seed decides
    assert len({tuple(beam(s, 4, 4)[0]) for s in range(6)}) > 1  # and it is sampled, not greedy
    assert score == pytest.approx(_log_p(model, primer, seq), abs=1e-4)  # the score is the sequence's log p
    # a wider beam keeps the likelier branches: on average over seeds it beats plain sampling
    wide = sum(beam(s, 4, 4)[1] for s in range(8)) / 8
    plain = sum(beam(s, 1, 1)[1] for s in range(8)) / 8
    assert wide > plain


def test_beam_search_respects_a_mask(model: RecurrentModel) -> None:
    class NoEvens:
        def __init__(self, n: int = 1) -> None:
            self.n = n

        def allowed(self) -> torch.Tensor:
            ok = torch.ones(self.n, V, dtype=torch.bool)
            ok[:, ::2] = False
            return ok

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            return logits.masked_fill(~self.allowed(), float("-inf"))

        def update(self, tokens: torch.Tensor) -> None:
            pass

        def select(self, index: torch.Tensor) -> "NoEvens":
            return NoEvens(len(index))

    seq, _ = beam_search(model, CategoricalHead(V), torch.tensor([3, 1]), beam_size=3, max_steps=20,
                         mask=NoEvens(), generator=torch.Generator().manual_seed(0))
    assert seq and all(t % 2 for t in seq)
