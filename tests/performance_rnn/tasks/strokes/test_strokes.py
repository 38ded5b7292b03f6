import itertools
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from performance_rnn import sampling
from performance_rnn.checkpoint import atomic_save, model_payload
from performance_rnn.codecs.strokes import END, S0
from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.errors import CodecError, DataError
from performance_rnn.heads import BatchSampling
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.strokes import data
from performance_rnn.tasks.strokes import generate as strokegen
from performance_rnn.tasks.strokes.evaluate import stroke_nll
from service.cli import main as perfrnn


def _params(m, pen, pi, mux, muy, lsx, lsy, rho_raw):
    return torch.tensor([list(pen) + list(pi) + list(mux) + list(muy) + list(lsx) + list(lsy) + list(rho_raw)],
                        dtype=torch.float32)


def _settings(tau, b=1):
    return BatchSampling.of([SamplingConfig(temperature=tau)] * b)


def _tiny_model(m=3, hidden=8, seed=0):
    torch.manual_seed(seed)
    head = StrokeMixtureHead(m)
    cfg = ModelConfig(input_kind="vectors", input_size=5, hidden_size=hidden, num_layers=1,
                      output_size=head.num_params)
    return RecurrentModel(cfg).eval(), head


def test_num_params_and_validation():
    assert StrokeMixtureHead(20).num_params == 123
    with pytest.raises(ValueError, match="num_mixtures must be >= 1"):
        StrokeMixtureHead(0)
    with pytest.raises(ValueError, match="sigma_rule must be"):
        StrokeMixtureHead(2, sigma_rule="graves")


def test_log_prob_matches_direct_numpy_computation():
    rng = np.random.default_rng(3)
    m = 2
    raw = rng.normal(size=(4, 3 + 6 * m)).astype(np.float32)
    targets = np.array([[0.3, -0.2, 1, 0, 0], [1.1, 0.4, 0, 1, 0], [-0.5, 0.9, 1, 0, 0], [0, 0, 0, 0, 1]],
                       dtype=np.float32)
    got = StrokeMixtureHead(m).log_prob(torch.from_numpy(raw), torch.from_numpy(targets)).numpy()
    for row, t, g in zip(raw.astype(np.float64), targets, got, strict=True):
        pen = row[:3]
        pi, mx, my, lsx, lsy, rr = row[3:].reshape(6, m)
        w = np.exp(pi) / np.exp(pi).sum()
        sx, sy, rho = np.exp(lsx), np.exp(lsy), np.tanh(rr)
        zx, zy = (t[0] - mx) / sx, (t[1] - my) / sy
        z = zx**2 + zy**2 - 2 * rho * zx * zy
        dens = np.exp(-z / (2 * (1 - rho**2))) / (2 * math.pi * sx * sy * np.sqrt(1 - rho**2))
        offsets = np.log((w * dens).sum()) if t[4] == 0 else 0.0  # no offsets scored at the end state
        pen_lp = pen[np.argmax(t[2:])] - np.log(np.exp(pen).sum())
        assert g == pytest.approx(offsets + pen_lp, rel=1e-5, abs=1e-5)


def test_temperature_zero_gives_the_mode():
    p = _params(3, pen=[0.1, 2.0, -1.0], pi=[0.0, 3.0, 1.0], mux=[5, -1.5, 7], muy=[6, 2.25, 8],
                lsx=[0, 0, 0], lsy=[0, 0, 0], rho_raw=[0, 0.5, 0])
    gens = sampling.generators_from_seeds([1, 2])
    out = StrokeMixtureHead(3).sample(p.repeat(2, 1), _settings(0.0, 2), gens)
    np.testing.assert_allclose(out.numpy(), [[-1.5, 2.25, 0, 1, 0]] * 2)  # best component's mean, pen "up"


@pytest.mark.parametrize(("rule", "expect"), [("sqrt", math.sqrt), ("linear", lambda tau: tau)])
def test_sigma_scales_with_the_documented_rule(rule, expect):
    tau, n = 0.25, 3000
    p = _params(1, pen=[0, 0, -30], pi=[0], mux=[1.0], muy=[-2.0], lsx=[math.log(2.0)], lsy=[math.log(0.5)],
                rho_raw=[0.0])
    out = StrokeMixtureHead(1, rule).sample(p.repeat(n, 1), _settings(tau, n),
                                            sampling.generators_from_seeds(range(n))).numpy()
    assert out[:, 0].mean() == pytest.approx(1.0, abs=0.1)
    assert out[:, 0].std() == pytest.approx(2.0 * expect(tau), rel=0.06)
    assert out[:, 1].std() == pytest.approx(0.5 * expect(tau), rel=0.06)


def test_mixture_weights_and_pen_logits_are_divided_by_tau():
    tau, n = 0.5, 4000
    logits = np.log([0.5, 0.3, 0.2])
    p = _params(2, pen=logits, pi=[0.0, math.log(3.0)], mux=[-10, 10], muy=[0, 0], lsx=[-3, -3], lsy=[-3, -3],
                rho_raw=[0, 0])
    out = StrokeMixtureHead(2).sample(p.repeat(n, 1), _settings(tau, n),
                                      sampling.generators_from_seeds(range(n))).numpy()
    drawn = out[:, 2:].argmax(1)
    want = np.exp(logits / tau) / np.exp(logits / tau).sum()
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / n, want, atol=0.03)
    moved = drawn != 2  # end rows carry no offset
    second = (out[moved, 0] > 0).mean()
    assert second == pytest.approx(9 / 10, abs=0.03)  # weights 1:3 -> 1:9 at tau 1/2
    np.testing.assert_array_equal(out[~moved, :2], 0)


def test_state_is_carried_across_steps(monkeypatch):
    model, head = _tiny_model()
    seen = []
    real_step = model.step

    def spy(inputs, state=None, controls=None):
        params, new = real_step(inputs, state, controls)
        seen.append((state, new))
        return params, new

    monkeypatch.setattr(model, "step", spy)
    primer = torch.from_numpy(np.vstack([S0, [[0.5, 0.5, 1, 0, 0]]]).astype(np.float32))
    cfg = [SamplingConfig(temperature=0.0)]
    outs = [o.clone() for o, _ in sampling.generate(model, head, [primer], cfg, sampling.generators_from_seeds([0]),
                                                   max_steps=6)]
    assert len(seen) == 6
    assert seen[0][0].h.abs().sum() > 0  # the primer's state, not zeros
    for (_, prev_out), (nxt_in, _) in itertools.pairwise(seen):
        assert nxt_in is prev_out

    # the same loop with the state re-zeroed each step (write-rnn-tensorflow#34) draws something else
    monkeypatch.setattr(model, "step", lambda inputs, state=None, controls=None: real_step(inputs, None, controls))
    zeroed = [o.clone() for o, _ in sampling.generate(model, head, [primer], cfg, sampling.generators_from_seeds([0]),
                                                     max_steps=6)]
    assert not all(torch.equal(a, b) for a, b in zip(outs, zeroed, strict=True))


@pytest.fixture
def ckpt(tmp_path):
    model, _ = _tiny_model(m=2, hidden=16, seed=1)
    with torch.no_grad():
        model.out.bias[:3] = torch.tensor([3.0, 0.5, -2.0])  # mostly pen-down, ends eventually
    path = tmp_path / "strokes.pt"
    atomic_save(model_payload("strokes", model, data.codec_dict(20.0, 2), half=True), path)
    return path


def test_generate_strokes_goes_through_the_one_sampler(ckpt, monkeypatch):
    calls = []
    real = sampling.advance
    monkeypatch.setattr(sampling, "advance", lambda *a, **k: calls.append(1) or real(*a, **k))
    drawings = strokegen.generate_strokes(ckpt, n=2, temperature=0.5, seed=3, max_points=12)
    assert calls and len(calls) <= 12
    assert len(drawings) == 2 and all(d.ndim == 2 and d.shape[1] == 3 for d in drawings)


def test_generate_strokes_deterministic_per_seed_and_per_stream(ckpt):
    a = strokegen.generate_strokes(ckpt, n=3, temperature=0.6, seed=5, max_points=20)
    b = strokegen.generate_strokes(ckpt, n=3, temperature=0.6, seed=5, max_points=20)
    c = strokegen.generate_strokes(ckpt, n=1, temperature=0.6, seed=6, max_points=20)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(a[1], c[0], rtol=1e-5, atol=1e-4)  # stream i: seed + i, whatever its batch
    other_seed = strokegen.generate_strokes(ckpt, 3, 0.6, 9, None, 20)
    assert not all(np.array_equal(x, y) for x, y in zip(a, other_seed, strict=True))


def test_partial_drawing_is_continued(ckpt):
    partial = [[20, 30, 0], [40, 0, 1]]
    for d in strokegen.generate_strokes(ckpt, n=2, temperature=0.5, seed=1, partial=partial, max_points=10):
        np.testing.assert_allclose(d[:2], partial)
    with pytest.raises(CodecError):
        strokegen.generate_strokes(ckpt, n=1, partial=[[1, 2]])


def test_main_strokes_writes_an_svg_grid(ckpt, tmp_path, capsys):
    out = tmp_path / "grid.svg"
    assert perfrnn(["strokes", "--checkpoint", str(ckpt), "-o", str(out), "-n", "4", "--seed", "1"]) == 0
    root = ET.fromstring(out.read_text())
    assert len(root.findall("{http://www.w3.org/2000/svg}g")) == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "strokes"}))
    assert perfrnn(["strokes", "--checkpoint", str(ckpt), "-o", str(out), "--partial", str(bad)]) == 2
    assert "partial drawing" in capsys.readouterr().err


def test_batches_shift_by_s0_pad_with_end_and_mask_n_plus_one():
    d = [np.array([[1, 2, 0], [3, 4, 1]], np.float32), np.array([[5, 6, 1]], np.float32)]
    sd = data.StrokeData(1.0, {"train": d, "validation": d, "test": d})
    (b,) = list(sd.eval_batches("test", 8, 201))
    assert b.inputs.shape == (2, 3, 5) and b.targets.shape == (2, 3, 5)
    np.testing.assert_array_equal(b.inputs[:, 0], np.tile(S0, (2, 1)))
    np.testing.assert_array_equal(b.targets[0, 2], END)
    np.testing.assert_array_equal(b.inputs[0, 1:], b.targets[0, :2])  # teacher forcing
    np.testing.assert_array_equal(b.mask.numpy(), [[1, 1, 1], [1, 1, 0]])
    tb = sd.train_batch(4, 201, np.random.default_rng(0))
    assert tb.inputs.shape[0] == 4 and tb.mask.sum() >= 4 * 2


def test_stroke_nll_parts_add_up():
    model, head = _tiny_model(m=3)
    d = [np.array([[1, 2, 0], [3, 4, 1]], np.float32), np.array([[0.5, 0.6, 1]], np.float32)]
    sd = data.StrokeData(1.0, {"test": d})
    res = stroke_nll(model, head, sd.eval_batches("test", 8, 201))
    assert res["points"] == 5 and res["drawings"] == 2
    assert res["nll_per_point"] == pytest.approx(res["offset_nll_per_point"] + res["pen_nll_per_point"], abs=2e-4)


def test_split_by_code_point_keeps_variants_together():
    assert data.code_point("04e00-Kaisho.svg") == data.code_point("04e00.svg") == 0x4E00
    splits = [data.split_of(cp) for cp in range(0x4E00, 0x4E00 + 2000)]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "validation", "test")}
    assert 0.85 < frac["train"] < 0.95 and 0.02 < frac["test"] < 0.08 and 0.02 < frac["validation"] < 0.08


def test_kanjivg_file_to_stroke3():
    try:
        root = data.kanji_root()
    except DataError:
        pytest.skip("kanjivg is not installed")
    s3 = data.svg_to_stroke3((root / "04e8c.svg").read_text(encoding="utf-8"))  # 二: two strokes
    assert s3[:, 2].sum() == 2 and s3[-1, 2] == 1
    assert np.cumsum(s3[:, :2], 0).min() > 0 and np.cumsum(s3[:, :2], 0).max() < 109


def test_music_text_and_strokes_heads_all_run_through_sampling_advance(monkeypatch):
    from performance_rnn.heads import CategoricalHead

    seen = []
    real = sampling.advance
    monkeypatch.setattr(sampling, "advance", lambda model, head, *a, **k: seen.append(type(head).__name__)
                        or real(model, head, *a, **k))
    stroke_model, stroke_head = _tiny_model()
    kinds = [
        (RecurrentModel(ModelConfig(input_size=388, hidden_size=8, num_layers=1, output_size=388)),
         CategoricalHead(388), torch.tensor([356, 60])),  # music: velocity, note-on
        (RecurrentModel(ModelConfig(input_size=30, embed_size=4, hidden_size=8, num_layers=1, output_size=30)),
         CategoricalHead(30), torch.tensor([1, 2, 3])),  # text
        (stroke_model, stroke_head, torch.from_numpy(S0[None].copy())),  # strokes
    ]
    for model, head, primer in kinds:
        steps = list(sampling.generate(model.eval(), head, [primer], [SamplingConfig(0.7)],
                                       sampling.generators_from_seeds([0]), max_steps=3))
        assert len(steps) == 3
    assert seen == ["CategoricalHead"] * 6 + ["StrokeMixtureHead"] * 3


def test_build_from_a_folder_of_svgs_and_its_cache(tmp_path):
    svg = '<svg><g><path id="kvg:{cp}-s1" d="M10,10c5,0,10,5,20,20"/><path d="M50,50 L60,{y}"/></g></svg>'
    cps = [cp for cp in range(0x4E00, 0x4F00) if data.split_of(cp) == "train"][:3]
    cps += [cp for cp in range(0x4E00, 0x5000) if data.split_of(cp) == "test"][:1]
    for i, cp in enumerate(cps):
        (tmp_path / f"{cp:05x}.svg").write_text(svg.format(cp=cp, y=60 + i))
    (tmp_path / f"{cps[0]:05x}-Kaisho.svg").write_text(svg.format(cp=cps[0], y=90))
    cache = tmp_path / "cache.npz"
    first = data.build(root=tmp_path, cache=cache)
    again = data.build(root=tmp_path / "nowhere", cache=cache)  # read back from the cache
    assert len(first.splits["train"]) == 4 and len(first.splits["test"]) == 1 and not first.splits["validation"]
    assert again.factor == pytest.approx(first.factor)
    assert first.names["train"][:2] == [f"{cps[0]:05x}-Kaisho.svg", f"{cps[0]:05x}.svg"]
    for a, b in zip(first.splits["train"], again.splits["train"], strict=True):
        np.testing.assert_allclose(a, b)
    offsets = np.concatenate([d[:, :2] for d in first.splits["train"]])
    assert np.std(offsets) == pytest.approx(1.0, rel=1e-5)  # scaled by the one factor
