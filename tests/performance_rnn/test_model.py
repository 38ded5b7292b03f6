import torch

from performance_rnn.config import ModelConfig
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import LSTMState, RecurrentModel


def baby(control_size: int = 0, **kw: int) -> RecurrentModel:
    torch.manual_seed(0)
    return RecurrentModel(ModelConfig(input_size=12, hidden_size=16, num_layers=2, control_size=control_size,
                                      output_size=12, **kw))


def test_step_equals_forward_one_position_at_a_time() -> None:
    model = baby(control_size=3).eval()
    tokens = torch.randint(0, 12, (2, 7))
    controls = torch.rand(2, 7, 3)
    full, _ = model(tokens, None, controls)
    state = None
    for t in range(7):
        params, state = model.step(tokens[:, t], state, controls[:, t])
        torch.testing.assert_close(params, full[:, t])


def test_state_select_and_cat_are_inverse() -> None:
    model = baby()
    _, state = model(torch.randint(0, 12, (3, 4)))
    parts = [state.select(torch.tensor([i])) for i in range(3)]
    joined = LSTMState.cat(parts)
    torch.testing.assert_close(joined.h, state.h)
    torch.testing.assert_close(joined.c, state.c)


def test_tiny_model_overfits_one_batch() -> None:
    model = baby(embed_size=8)
    head = CategoricalHead(12)
    tokens = torch.randint(0, 12, (4, 17), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(150):
        params, _ = model(tokens[:, :-1])
        loss = -head.log_prob(params, tokens[:, 1:]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1  # from ~2.5 (uniform over 12) to nearly memorised
