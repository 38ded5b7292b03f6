import pytest
import torch

from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.heads import BatchSampling, CategoricalHead, filtered_log_probs
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


def test_top_k_1_equals_greedy(model: RecurrentModel) -> None:
    greedy = run(model, [torch.tensor([2])], [SamplingConfig(temperature=0.0)], [0])
    for seed in (1, 2, 3):
        top1 = run(model, [torch.tensor([2])], [SamplingConfig(temperature=1.5, top_k=1)], [seed])
        assert torch.equal(top1, greedy)


def test_top_k_and_top_p_filter_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    keep = lambda **kw: torch.isfinite(filtered_log_probs(logits, BatchSampling.of([SamplingConfig(**kw)])))  # noqa
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


def test_beam_of_one_is_greedy_and_wider_beams_score_no_worse(model: RecurrentModel) -> None:
    primer = torch.tensor([3, 1])
    greedy = run(model, [primer], [SamplingConfig(temperature=0.0)], [0], steps=8)[0].tolist()
    seq1, score1 = beam_search(model, CategoricalHead(V), primer, beam_size=1, max_steps=8)
    seq4, score4 = beam_search(model, CategoricalHead(V), primer, beam_size=4, max_steps=8)
    assert seq1 == greedy
    assert score4 >= score1 - 1e-5
