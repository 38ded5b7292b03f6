import itertools
import threading
import time
from collections.abc import Callable

import pytest
import torch

from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.engine import Engine, EngineBusy, StreamSpec
from performance_rnn.fast_step import FastStep
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.sampling import generate, generators_from_seeds

V = 12
SHIFT = 11  # in this toy vocabulary token 11 advances the music clock by 0.1 s


def seconds_of(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens == SHIFT).float() * 0.1


@pytest.fixture
def model() -> RecurrentModel:
    torch.manual_seed(0)
    return RecurrentModel(ModelConfig(input_size=V, hidden_size=16, num_layers=2, control_size=3,
                                      output_size=V)).eval()


def drain(stream, timeout: float = 20.0) -> list[int]:
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tok = stream.tokens.get(timeout=timeout)
        if tok is None:
            return out
        out.append(tok)
    raise AssertionError("stream did not end")


def reference(model: RecurrentModel, spec: StreamSpec, n: int, ctrl: torch.Tensor) -> list[int]:
    outs = generate(model, CategoricalHead(V), [spec.primer], [spec.sampling], generators_from_seeds([spec.seed]),
                    max_steps=n, primer_controls=[ctrl.expand(len(spec.primer), -1)],
                    controls=lambda t, last: ctrl.unsqueeze(0))
    return [int(o[0]) for o, _ in outs]


def test_streams_joining_at_different_steps_match_the_sampler(model: RecurrentModel) -> None:
    ctrl = torch.tensor([1.0, 0.0, 0.0])
    specs = [StreamSpec(torch.tensor([1, 2]), SamplingConfig(temperature=0.9), seed=5, lookahead_s=None,
                        max_steps=30),
             StreamSpec(torch.tensor([3]), SamplingConfig(top_k=3), seed=6, lookahead_s=None, max_steps=17),
             StreamSpec(torch.tensor([4, 4, 4]), SamplingConfig(), seed=7, lookahead_s=None, max_steps=25)]
    with Engine(FastStep(model), CategoricalHead(V), seconds_of=seconds_of, default_controls=ctrl) as engine:
        first = engine.open(specs[0])
        time.sleep(0.05)  # the others join while the first is running
        rest = [engine.open(s) for s in specs[1:]]
        results = [drain(s) for s in [first, *rest]]
    for spec, got in zip(specs, results, strict=True):
        assert got == reference(model, spec, spec.max_steps, ctrl)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_live_stream_stays_within_its_lookahead(model: RecurrentModel) -> None:
    clock = FakeClock()
    with torch.no_grad():
        model.out.bias[SHIFT] += 3.0  # plenty of time shifts so music time advances
    engine = Engine(model, CategoricalHead(V), seconds_of=seconds_of, default_controls=torch.zeros(3),
                    clock=clock).start()
    try:
        stream = engine.open(StreamSpec(torch.tensor([1]), seed=1, lookahead_s=0.5))
        for t in (0.0, 1.0, 2.5):
            clock.t = t
            deadline = time.monotonic() + 20
            while stream.music_s < t + 0.5 and time.monotonic() < deadline:  # the engine fills the lookahead
                time.sleep(0.01)
            time.sleep(0.1)  # and then waits for the clock, however long it is given
            assert t + 0.5 <= stream.music_s <= t + 0.5 + 0.1 + 1e-6
    finally:
        engine.stop()


class Gate:
    """A step model that holds the engine's worker inside its ``at``-th step until the test lets it go, so that
    the test acts at a known point of the stream (between that step and the next), and records the controls
    of every step."""

    def __init__(self, inner: RecurrentModel, at: int) -> None:
        self.inner, self.at = inner, at
        self.reached, self.go = threading.Event(), threading.Event()
        self.controls: list[torch.Tensor] = []

    def forward(self, *a, **k):
        return self.inner.forward(*a, **k)

    def step(self, inputs, state, controls):
        self.controls.append(controls.clone())
        if len(self.controls) == self.at:
            self.reached.set()
            assert self.go.wait(timeout=20), "the test never let the worker go"
        return self.inner.step(inputs, state, controls)


def test_control_change_reaches_the_next_steps(model: RecurrentModel) -> None:
    gate = Gate(model, at=5)
    with Engine(gate, CategoricalHead(V), seconds_of=seconds_of, default_controls=torch.zeros(3)) as engine:
        stream = engine.open(StreamSpec(torch.tensor([1]), seed=1, lookahead_s=None, max_steps=12))
        assert gate.reached.wait(timeout=20)
        stream.set_controls(torch.tensor([0.0, 1.0, 0.0]))  # while the 5th step runs
        gate.go.set()
        assert len(drain(stream)) == 12
    seen = [c[0].tolist() for c in gate.controls]
    assert seen == [[0.0, 0.0, 0.0]] * 5 + [[0.0, 1.0, 0.0]] * 7  # from the very next step on, and kept


def test_close_frees_the_stream_and_full_engine_refuses(model: RecurrentModel) -> None:
    with Engine(model, CategoricalHead(V), seconds_of=seconds_of, default_controls=torch.zeros(3),
                max_streams=2) as engine:
        a = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None))
        engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None))
        with pytest.raises(EngineBusy):
            engine.open(StreamSpec(torch.tensor([1])))
        a.close()
        deadline = time.monotonic() + 5
        while engine.active > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.active == 1
        engine.open(StreamSpec(torch.tensor([2]), lookahead_s=None))


def test_injected_tokens_enter_the_state(model: RecurrentModel) -> None:
    """Tokens injected after the k-th sampled token: the stream continues exactly as a stream primed with
    primer + those k tokens + the injected ones would (they are not echoed among its tokens)."""
    with torch.no_grad():  # a model whose next token depends on its inputs (the untrained one is near-constant)
        model.lstm.weight_ih_l0.mul_(8)
        model.lstm.weight_ih_l1.mul_(4)
        model.out.weight.mul_(8)
    ctrl, greedy = torch.zeros(3), SamplingConfig(temperature=0.0)
    gate = Gate(model, at=3)  # sampling feeds each token back by a step: during the 3rd step, 3 are sampled
    with Engine(gate, CategoricalHead(V), seconds_of=seconds_of, default_controls=ctrl) as engine:
        s = engine.open(StreamSpec(torch.tensor([1]), greedy, lookahead_s=None, max_steps=10))
        assert gate.reached.wait(timeout=20)
        s.inject([5, 6])
        gate.go.set()
        got = drain(s)
    alone = reference(model, StreamSpec(torch.tensor([1]), greedy), 10, ctrl)
    assert len(got) == 10 and got[:3] == alone[:3]
    assert got[3:] == reference(model, StreamSpec(torch.tensor([1, *got[:3], 5, 6]), greedy), 7, ctrl)
    assert got[3:] != alone[3:]  # and the injection mattered: without it the stream goes on differently


class Faulty:
    """A step model that records its calls and raises where told: in ``forward`` for a primer holding
    ``bad_token``, in ``step`` the ``fail_step``-th time (``error`` is what it raises)."""

    def __init__(self, inner: RecurrentModel, *, bad_token: int | None = None, fail_step: int | None = None,
                 error: type[BaseException] = RuntimeError) -> None:
        self.inner, self.bad_token, self.fail_step, self.error = inner, bad_token, fail_step, error
        self.calls: list[tuple[str, int]] = []

    def forward(self, inputs, state=None, controls=None):
        self.calls.append(("forward", inputs.shape[1]))
        if self.bad_token is not None and bool((inputs == self.bad_token).any()):
            raise MemoryError("cannot allocate the primer's activations")
        return self.inner.forward(inputs, state, controls)

    def step(self, inputs, state, controls):
        self.calls.append(("step", inputs.shape[0]))
        if self.fail_step is not None and sum(c[0] == "step" for c in self.calls) == self.fail_step:
            raise self.error("the step blew up")
        return self.inner.step(inputs, state, controls)


def test_a_long_primer_is_primed_in_chunks_between_the_other_streams_steps(model: RecurrentModel) -> None:
    spy = Faulty(model)
    ctrl = torch.zeros(3)
    long = StreamSpec(torch.randint(0, V, (1000,), generator=torch.Generator().manual_seed(0)), seed=3,
                      lookahead_s=None, max_steps=20)
    with Engine(spy, CategoricalHead(V), seconds_of=seconds_of, default_controls=ctrl, prime_chunk=64) as engine:
        running = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=100_000))
        while running.steps < 5:
            time.sleep(0.001)
        primed = engine.open(long)
        got = drain(primed)
        running.close()
    feeds = [i for i, (kind, n) in enumerate(spy.calls) if kind == "forward" and n > 1]
    assert len(feeds) == -(-1000 // 64) and max(spy.calls[i][1] for i in feeds) <= 64
    # the running stream was stepped between every two chunks of the long primer
    assert all(any(k == "step" for k, _ in spy.calls[a:b]) for a, b in itertools.pairwise(feeds))
    assert got == reference(model, long, 20, ctrl)  # chunked priming changes nothing in the music


def test_a_stream_that_fails_to_prime_fails_alone(model: RecurrentModel) -> None:
    with Engine(Faulty(model, bad_token=9), CategoricalHead(V), seconds_of=seconds_of,
                default_controls=torch.zeros(3)) as engine:
        good = engine.open(StreamSpec(torch.tensor([1, 2]), lookahead_s=None, max_steps=50))
        bad = engine.open(StreamSpec(torch.tensor([1, 9]), lookahead_s=None, max_steps=50))
        assert drain(bad) == [] and bad.error is not None and "MemoryError" in bad.error
        assert len(drain(good)) == 50 and good.error is None
        assert engine.healthy


def test_a_failing_step_ends_its_batch_with_the_error_and_the_engine_carries_on(model: RecurrentModel) -> None:
    with Engine(Faulty(model, fail_step=3), CategoricalHead(V), seconds_of=seconds_of,
                default_controls=torch.zeros(3)) as engine:
        first = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=50))
        drain(first)
        assert first.error is not None and "the step blew up" in first.error
        later = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=50))
        assert len(drain(later)) == 50 and later.error is None
        assert engine.healthy and engine.failures == 1


class RaisingHead:
    """A head that raises once, in the first ``sample`` after ``armed()`` turns true."""

    def __init__(self, inner: CategoricalHead, armed: Callable[[], bool]) -> None:
        self.inner, self.armed, self.raised = inner, armed, False
        self.num_params = inner.num_params

    def sample(self, params, settings, generators):
        if not self.raised and self.armed():
            self.raised = True
            raise ValueError("the head blew up")
        return self.inner.sample(params, settings, generators)

    def log_prob(self, params, targets):
        return self.inner.log_prob(params, targets)


def test_a_head_that_raises_mid_batch_ends_that_batch_only(model: RecurrentModel) -> None:
    """The batch fails while a long primer is half fed: both streams in the batch end with the reason, the
    stream being primed is untouched (it joins and plays as it would have), and the engine carries on."""
    spy = Faulty(model)
    head = RaisingHead(CategoricalHead(V), armed=lambda: ("forward", 64) in spy.calls)  # a chunk of the long one
    ctrl = torch.zeros(3)
    long = StreamSpec(torch.randint(0, V, (1000,), generator=torch.Generator().manual_seed(1)), seed=3,
                      lookahead_s=None, max_steps=20)
    with Engine(spy, head, seconds_of=seconds_of, default_controls=ctrl, prime_chunk=64) as engine:
        a, b = (engine.open(StreamSpec(torch.tensor([t]), lookahead_s=None, max_steps=100_000)) for t in (1, 2))
        deadline = time.monotonic() + 20
        while min(a.steps, b.steps) < 1 and time.monotonic() < deadline:  # both are in the batch
            time.sleep(0.001)
        primed = engine.open(long)
        drain(a), drain(b)
        for s in (a, b):
            assert s.error == "the engine failed while generating this stream (ValueError: the head blew up)"
            assert s.steps < 100_000
        assert drain(primed) == reference(model, long, 20, ctrl) and primed.error is None
        assert head.raised and engine.failures == 1 and engine.last_error == "ValueError: the head blew up"
        after = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=5))
        assert len(drain(after)) == 5 and after.error is None and engine.healthy


def test_a_consumer_that_raises_closes_its_own_stream_only(model: RecurrentModel) -> None:
    """A sink (live playback) that raises on the engine's thread ends its stream; its batch-mates play on and the
    engine counts no failure."""
    got: dict[str, list[int | None]] = {"good": [], "bad": []}
    ended = {name: threading.Event() for name in got}

    def sink(name: str) -> Callable[[int | None], None]:
        def take(tok: int | None) -> None:
            got[name].append(tok)
            if tok is None:
                ended[name].set()
            elif name == "bad" and len(got[name]) == 3:
                raise RuntimeError("the player stopped")
        return take

    with Engine(model, CategoricalHead(V), seconds_of=seconds_of, default_controls=torch.zeros(3)) as engine:
        streams = {}
        for name in got:  # tokens made before ``attach`` are handed over first
            streams[name] = engine.open(StreamSpec(torch.tensor([1]), seed=2, lookahead_s=None, max_steps=200))
            streams[name].attach(sink(name))
        assert ended["good"].wait(20) and ended["bad"].wait(20)
    assert len(got["good"]) == 201  # every token, then the end
    assert len(got["bad"]) == 4 and got["bad"][-1] is None  # closed after its third token, before a fourth
    assert streams["bad"].closed.is_set() and streams["bad"].error is None and engine.failures == 0


class WorkerKiller(BaseException):
    """Not an Exception: nothing inside the worker catches it, so the worker thread dies."""


def test_a_dead_worker_reports_unhealthy_and_the_next_open_restarts_it(model: RecurrentModel) -> None:
    with Engine(Faulty(model, fail_step=2, error=WorkerKiller), CategoricalHead(V), seconds_of=seconds_of,
                default_controls=torch.zeros(3)) as engine:
        victim = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=50))
        drain(victim)
        assert victim.error is not None and "died" in victim.error
        deadline = time.monotonic() + 5
        while engine.healthy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not engine.healthy
        revived = engine.open(StreamSpec(torch.tensor([1]), lookahead_s=None, max_steps=50))
        assert len(drain(revived)) == 50 and engine.healthy


def test_a_paused_stream_takes_a_phrase_then_answers_from_it(model: RecurrentModel) -> None:
    """Jam's call mode: the stream joins paused, the phrase is injected as it is played, and after resume its
    answer is what the sampler gives with primer + phrase, ending after ``max_seconds`` of music."""
    ctrl = torch.tensor([1.0, 0.0, 0.0])
    phrase = [2, 3, SHIFT, 4, SHIFT, 5]
    spec = StreamSpec(torch.tensor([1]), SamplingConfig(), seed=3, lookahead_s=None, paused=True)
    with Engine(FastStep(model), CategoricalHead(V), seconds_of=seconds_of, default_controls=ctrl) as engine:
        stream = engine.open(spec)
        for i in range(0, len(phrase), 2):  # played a note at a time
            stream.inject(phrase[i : i + 2])
            time.sleep(0.02)
        assert stream.tokens.empty()  # paused: nothing generated while the phrase is played
        stream.resume(max_seconds=0.5)
        got = drain(stream)
    assert got.count(SHIFT) == 5 and got[-1] == SHIFT  # it ended at 0.5 s of music
    full = StreamSpec(torch.tensor([1, *phrase]), SamplingConfig(), seed=3, lookahead_s=None)
    assert got == reference(model, full, len(got), ctrl)


def test_streams_close_to_their_lookahead_step_with_one_that_reached_it(model: RecurrentModel) -> None:
    """Many live streams share few large steps: when one stream must step, those within ``batch_slack_s`` of
    having to step come along; alone, nobody steps early."""
    from performance_rnn.engine import Stream

    clock = FakeClock()
    engine = Engine(model, CategoricalHead(V), seconds_of=seconds_of, clock=clock, batch_slack_s=0.1)
    spec = StreamSpec(torch.tensor([1]), lookahead_s=0.2)
    due, near, far = (Stream(i, spec) for i in range(3))
    for s, ahead in ((due, 0.15), (near, 0.25), (far, 0.35)):
        s.music_s = ahead  # started at clock 0: this far ahead of the wall clock
    engine._streams = [near, far]
    assert engine._due_rows() is None  # none has reached its lookahead: no step
    engine._streams = [due, near, far]
    assert engine._due_rows() == [0, 1]  # the due one, and the one within the slack; not the far one


def test_a_live_stream_clock_starts_once_its_first_lookahead_exists(model: RecurrentModel) -> None:
    """Pre-roll: however long the engine takes to fill a new stream's lookahead (many streams starting at once),
    the stream's music time 0 is due only after that, so its opening notes cannot be late."""
    clock = FakeClock()
    with torch.no_grad():
        model.out.bias[SHIFT] += 3.0
    clock.t = 5.0
    engine = Engine(model, CategoricalHead(V), seconds_of=seconds_of, default_controls=torch.zeros(3),
                    clock=clock).start()
    try:
        stream = engine.open(StreamSpec(torch.tensor([1]), seed=1, lookahead_s=0.5))
        deadline = time.monotonic() + 20
        while stream.music_s < 0.5 and time.monotonic() < deadline:
            clock.t += 0.3  # wall time runs faster than the engine fills the lookahead
            time.sleep(0.002)
        deadline = time.monotonic() + 5
        while not stream.started_at and time.monotonic() < deadline:
            time.sleep(0.002)
        assert stream.started_at >= 5.3 and not stream.prerolling  # started after the pre-roll, not at joining
        assert stream.music_s >= 0.5
    finally:
        engine.stop()


def test_prime_window_feeds_only_the_primers_last_tokens(model: RecurrentModel) -> None:
    """Engine and sampler prime alike with ``prime_window``: as if the primer were its last W tokens."""
    ctrl = torch.tensor([1.0, 0.0, 0.0])
    long = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2, 3, 4])
    spec = StreamSpec(long, SamplingConfig(), seed=4, lookahead_s=None, max_steps=12)
    with Engine(FastStep(model), CategoricalHead(V), seconds_of=seconds_of, default_controls=ctrl,
                prime_window=5) as engine:
        got = drain(engine.open(spec))
    short = StreamSpec(long[-5:], SamplingConfig(), seed=4, lookahead_s=None, max_steps=12)
    assert got == reference(model, short, 12, ctrl)
    windowed = generate(model, CategoricalHead(V), [long], [spec.sampling], generators_from_seeds([4]), max_steps=12,
                        primer_controls=[ctrl.expand(len(long), -1)], controls=lambda t, last: ctrl.unsqueeze(0),
                        prime_window=5)
    assert [int(o[0]) for o, _ in windowed] == got
