import pytest
import torch

from performance_rnn.config import ModelConfig
from performance_rnn.fast_step import FastStep
from performance_rnn.model import RecurrentModel


def _model(device: str = "cpu", **kw: object) -> RecurrentModel:
    torch.manual_seed(0)
    base = dict(input_size=40, hidden_size=32, num_layers=3, control_size=5, output_size=40)
    base.update(kw)
    return RecurrentModel(ModelConfig(**base)).to(device).eval()  # type: ignore[arg-type]


def _compare(model: RecurrentModel, fast: FastStep, inputs: torch.Tensor, controls: torch.Tensor | None,
             atol: float) -> None:
    state_a = state_b = None
    for t in range(inputs.shape[1]):
        ctrl = None if controls is None else controls[:, t]
        with torch.no_grad():
            pa, state_a = model.step(inputs[:, t], state_a, ctrl)
        pb, state_b = fast.step(inputs[:, t], state_b, ctrl)
        torch.testing.assert_close(pb, pa, atol=atol, rtol=0)
        torch.testing.assert_close(state_b.h, state_a.h, atol=atol, rtol=0)


@pytest.mark.parametrize("kw", [{}, {"embed_size": 16}, {"control_size": 0}])
def test_fused_step_matches_the_training_model(kw: dict) -> None:
    model = _model(**kw)
    tokens = torch.randint(0, 40, (3, 12))
    controls = torch.rand(3, 12, model.config.control_size) if model.config.control_size else None
    _compare(model, FastStep(model), tokens, controls, atol=1e-5)


def test_vector_inputs_match() -> None:
    model = _model(input_kind="vectors", input_size=5, control_size=0, output_size=9, num_layers=1)
    _compare(model, FastStep(model), torch.randn(2, 10, 5), None, atol=1e-5)


def test_bf16_weights_stay_close() -> None:
    model = _model()
    tokens = torch.randint(0, 40, (2, 12))
    _compare(model, FastStep(model, weight_dtype=torch.bfloat16), tokens, torch.rand(2, 12, 5), atol=5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_step_matches() -> None:
    model = _model("cuda")
    tokens = torch.randint(0, 40, (4, 12), device="cuda")
    _compare(model, FastStep(model), tokens, torch.rand(4, 12, 5, device="cuda"), atol=1e-4)
