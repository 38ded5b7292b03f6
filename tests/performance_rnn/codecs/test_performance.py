import random

import pytest

from midi_io.notes import Note
from performance_rnn.codecs.performance import (
    Event,
    EventType,
    NoteDecoder,
    PerformanceCodecConfig,
    bin_to_velocity,
    decode,
    decode_token,
    encode,
    encode_event,
    events_to_notes,
    notes_to_events,
    velocity_to_bin,
    vocab_size,
)
from performance_rnn.errors import CodecError

CFG = PerformanceCodecConfig()

# (event, token) pairs from note_seq's PerformanceOneHotEncoding layout
PAIRS = [
    (Event(EventType.NOTE_ON, 0), 0),
    (Event(EventType.NOTE_ON, 60), 60),
    (Event(EventType.NOTE_ON, 127), 127),
    (Event(EventType.NOTE_OFF, 0), 128),
    (Event(EventType.NOTE_OFF, 72), 200),
    (Event(EventType.TIME_SHIFT, 1), 256),
    (Event(EventType.TIME_SHIFT, 100), 355),  # the browser demo's PRIMER_IDX
    (Event(EventType.VELOCITY, 1), 356),
    (Event(EventType.VELOCITY, 32), 387),
]


def test_vocab_size_is_magentas_388() -> None:
    assert vocab_size(CFG) == 388
    assert vocab_size(PerformanceCodecConfig(num_velocity_bins=0)) == 356


@pytest.mark.parametrize(("event", "token"), PAIRS)
def test_event_token_table_both_ways(event: Event, token: int) -> None:
    assert encode_event(event, CFG) == token
    assert decode_token(token, CFG) == event


def test_round_trip_over_the_whole_vocabulary() -> None:
    tokens = list(range(vocab_size(CFG)))
    events = decode(tokens, CFG)
    assert encode(events, CFG) == tokens
    assert len(set(events)) == len(tokens)


@pytest.mark.parametrize("bad", [Event(EventType.NOTE_ON, 128), Event(EventType.TIME_SHIFT, 0),
                                 Event(EventType.TIME_SHIFT, 101), Event(EventType.VELOCITY, 33)])
def test_out_of_range_event_raises(bad: Event) -> None:
    with pytest.raises(CodecError, match="must be in range"):
        encode_event(bad, CFG)


@pytest.mark.parametrize("token", [-1, 388, 10_000])
def test_out_of_range_token_raises(token: int) -> None:
    with pytest.raises(CodecError, match=r"0\.\.387"):
        decode_token(token, CFG)


def test_velocity_bins_cover_1_to_127() -> None:
    assert velocity_to_bin(1, CFG) == 1 and velocity_to_bin(127, CFG) == 32
    for v in range(1, 128):
        assert abs(bin_to_velocity(velocity_to_bin(v, CFG), CFG) - v) < 4  # one bin is 4 velocities wide


def test_notes_events_notes_round_trip_within_10ms_and_one_bin() -> None:
    rng = random.Random(0)
    notes = []
    for _ in range(300):
        start = rng.uniform(0, 60)
        notes.append(Note(rng.randrange(128), rng.randrange(1, 128), start, start + rng.uniform(0.01, 4.0)))
    # one note per pitch at a time, so the round trip is well defined
    notes.sort(key=lambda n: n.start_s)
    last_end: dict[int, float] = {}
    clean = []
    for n in notes:
        if n.start_s > last_end.get(n.pitch, -1) + 0.02:
            clean.append(n)
            last_end[n.pitch] = n.end_s
    back = events_to_notes(notes_to_events(clean, CFG), CFG)
    assert len(back) == len(clean)
    key = lambda n: (n.pitch, round(n.start_s, 1))  # noqa: E731
    for a, b in zip(sorted(clean, key=key), sorted(back, key=key), strict=True):
        assert a.pitch == b.pitch
        assert abs(a.start_s - b.start_s) <= 0.0051 + 1e-9
        assert abs(a.end_s - b.end_s) <= 0.0101 + 1e-9
        assert abs(velocity_to_bin(a.velocity, CFG) - velocity_to_bin(b.velocity, CFG)) == 0


def test_long_gap_is_a_chain_of_time_shifts() -> None:
    events = notes_to_events([Note(60, 80, 2.5, 2.6)], CFG)
    shifts = [e.value for e in events if e.type == EventType.TIME_SHIFT]
    assert shifts[:3] == [100, 100, 50]


def test_note_off_without_note_on_is_ignored() -> None:
    events = [Event(EventType.NOTE_OFF, 60), Event(EventType.NOTE_ON, 62), Event(EventType.TIME_SHIFT, 50),
              Event(EventType.NOTE_OFF, 62)]
    notes = events_to_notes(events, CFG)
    assert [(n.pitch, n.start_s, n.end_s) for n in notes] == [(62, 0.0, 0.5)]


def test_note_held_longer_than_max_is_released() -> None:
    events = [Event(EventType.NOTE_ON, 60)] + [Event(EventType.TIME_SHIFT, 100)] * 8 + [Event(EventType.NOTE_OFF, 60)]
    (note,) = events_to_notes(events, CFG)
    assert note.end_s == pytest.approx(5.0)
    (short,) = events_to_notes(events, PerformanceCodecConfig(max_note_duration_s=2.0))
    assert short.end_s == pytest.approx(2.0)


def test_streaming_decoder_matches_batch_decoder() -> None:
    events = notes_to_events([Note(60, 80, 0, 1), Note(64, 100, 0.5, 1.5), Note(67, 30, 1.2, 9.0)], CFG)
    dec = NoteDecoder(CFG)
    streamed = [n for e in events for n in dec.feed(e)] + dec.finish()
    assert sorted(streamed, key=lambda n: (n.start_s, n.pitch)) == events_to_notes(events, CFG)


def _played_phrase(seed: int) -> list[tuple[float, str, int, int]]:
    """A random phrase as a player plays it: (time_s, kind, pitch or 64, velocity or pedal value), each event on
    its own 10 ms step (3 ms past it, so rounding is never a tie), notes at least 20 ms long, pedal up at the end."""
    import random

    rng = random.Random(seed)
    t, held, pedal, events = 1.003, {}, False, []
    for _ in range(60):
        t += rng.choice([0.01, 0.02, 0.05, 0.13, 0.4])
        r = rng.random()
        if r < 0.15:
            pedal = not pedal
            events.append((t, "pedal", 64, 127 if pedal else 0))
        elif held and r < 0.55:
            pitch = rng.choice(sorted(held))
            if t - held[pitch] >= 0.02:
                events.append((t, "off", pitch, 0))
                del held[pitch]
        else:
            pitch = rng.choice([60, 62, 64, 65, 67])  # few pitches: re-strikes, also under the pedal
            if pitch not in held:
                events.append((t, "on", pitch, rng.randint(20, 120)))
                held[pitch] = t
    for pitch in sorted(held):
        t += 0.05
        events.append((t, "off", pitch, 0))
    if pedal:
        events.append((t + 0.05, "pedal", 64, 0))
    return events


@pytest.mark.parametrize("seed", range(20))
def test_phrase_encoder_tokens_equal_the_captured_phrase_encoded(seed: int) -> None:
    """Fed note by note as it is played, the encoder gives the tokens of the finished phrase as the jam captures
    it (sustain applied) and encodes it offline."""
    import mido

    from midi_io.capture import CaptureConfig, PhraseCapture
    from performance_rnn.codecs.performance import PhraseEncoder

    cfg = PerformanceCodecConfig()
    events = _played_phrase(seed)
    capture = PhraseCapture(CaptureConfig(silence_s=0.5, min_notes=1))
    encoder: PhraseEncoder | None = None
    tokens: list[int] = []
    pedal = False
    for t, kind, pitch, value in events:
        if kind == "pedal":
            msg = mido.Message("control_change", control=64, value=value)
        else:
            msg = mido.Message("note_on" if kind == "on" else "note_off", note=pitch, velocity=value)
        capture.feed(msg, t)
        if encoder is None and kind == "on":
            encoder = PhraseEncoder(cfg, t, pedal=pedal)
        pedal = value >= 64 if kind == "pedal" else pedal
        if encoder is not None:
            tokens += (encoder.note_on(pitch, value, t) if kind == "on" else encoder.note_off(pitch, t)
                       if kind == "off" else encoder.pedal_change(value >= 64, t))
    end = events[-1][0] + 1.0
    phrase = capture.poll(end)
    assert phrase is not None and encoder is not None
    tokens += encoder.release_all(end)
    assert tokens == encode(notes_to_events(phrase, cfg), cfg)
