from pathlib import Path

import pytest
import torch

from performance_rnn import fast_step
from performance_rnn.config import ModelConfig
from performance_rnn.fast_step import FastStep, choose_weights, int8_available, int8_divergence
from performance_rnn.model import RecurrentModel


def _model(device: str = "cpu", **kw: object) -> RecurrentModel:
    torch.manual_seed(0)
    base = {"input_size": 40, "hidden_size": 32, "num_layers": 3, "control_size": 5, "output_size": 40}
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


def test_the_large_batch_cell_matches_the_training_model() -> None:
    model = _model(hidden_size=64)
    assert fast_step._TANH_BY_SIGMOID_FROM <= 64 * 64  # this batch takes tanh(c') = 2 sigmoid(2c') - 1
    _compare(model, FastStep(model), torch.randint(0, 40, (64, 8)), torch.rand(64, 8, 5), atol=1e-5)


def test_both_cell_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    gates, c = torch.randn(8, 4 * 16) * 4, torch.randn(8, 16) * 3  # saturated and linear regions both
    h_tanh, c_tanh = fast_step._cell(gates.clone(), c, 16)
    monkeypatch.setattr(fast_step, "_TANH_BY_SIGMOID_FROM", 1)
    h_sig, c_sig = fast_step._cell(gates.clone(), c, 16)
    torch.testing.assert_close(c_sig, c_tanh, atol=0, rtol=0)
    torch.testing.assert_close(h_sig, h_tanh, atol=1e-6, rtol=0)
    assert not torch.equal(h_sig, h_tanh)  # the other path did run


def test_bf16_weights_stay_close() -> None:
    model = _model()
    tokens = torch.randint(0, 40, (2, 12))
    _compare(model, FastStep(model, weights="bfloat16"), tokens, torch.rand(2, 12, 5), atol=5e-2)


needs_int8 = pytest.mark.skipif(not int8_available(), reason="torch's x86/fbgemm int8 kernels are not available")


@needs_int8
@pytest.mark.parametrize("kw", [{}, {"embed_size": 16}, {"control_size": 0}])
def test_int8_step_stays_close_to_the_training_model(kw: dict) -> None:
    model = _model(hidden_size=64, **kw)
    tokens = torch.randint(0, 40, (3, 12))
    controls = torch.rand(3, 12, model.config.control_size) if model.config.control_size else None
    _compare(model, FastStep(model, weights="int8"), tokens, controls, atol=5e-2)


@needs_int8
def test_int8_priming_matches_its_steps_and_the_training_model() -> None:
    model = _model(hidden_size=64)
    tokens, controls = torch.randint(0, 40, (2, 30)), torch.rand(2, 30, 5)
    fast = FastStep(model, weights="int8")
    with torch.no_grad():
        ref, ref_state = model.forward(tokens, None, controls)
    primed, state = fast.forward(tokens, None, controls)
    stepped, step_state = fast.forward_by_steps(tokens, None, controls)
    last, last_state = fast.prime(tokens, None, controls)  # the output layer on the last step only
    torch.testing.assert_close(last, ref[:, -1], atol=5e-2, rtol=0)
    torch.testing.assert_close(last_state.h, state.h)
    for params, st in ((primed, state), (stepped, step_state)):
        assert params.shape == ref.shape and st.h.shape == ref_state.h.shape
        torch.testing.assert_close(params, ref, atol=5e-2, rtol=0)
        torch.testing.assert_close(st.c, ref_state.c, atol=5e-2, rtol=0)


@needs_int8
def test_int8_is_chosen_only_within_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(control_size=0, hidden_size=64)
    kl = int8_divergence(model, 3, steps=32)
    assert 0 <= kl < fast_step.INT8_KL_TOLERANCE  # a small random model: int8 barely moves it
    assert choose_weights(model, 3) == "int8"
    monkeypatch.setattr(fast_step, "INT8_KL_TOLERANCE", kl / 2)
    assert choose_weights(model, 3) == "float32"


def test_unknown_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="weights must be one of"):
        FastStep(_model(), weights="int4")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_step_matches() -> None:
    model = _model("cuda")
    tokens = torch.randint(0, 40, (4, 12), device="cuda")
    _compare(model, FastStep(model), tokens, torch.rand(4, 12, 5, device="cuda"), atol=1e-4)


@needs_int8
def test_the_shipped_checkpoint_loads_with_int8_weights() -> None:
    from performance_rnn.tasks.music.generate import load_music

    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "music.pt"
    assert load_music(shipped).weights == "int8"
    assert load_music(shipped, weights="float32").fast.weights == "float32"
    with pytest.raises(ValueError, match="weights must be auto or one of"):
        load_music(shipped, weights="int4")
