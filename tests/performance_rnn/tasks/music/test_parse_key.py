"""parse_key: the names a user types for a key -> a 12-bin pitch-class histogram favouring its scale, its tonic
triad most; anything else is a ValueError that says what to type."""

from __future__ import annotations

import pytest

from performance_rnn.codecs.controls import TRIAD_WEIGHT
from performance_rnn.tasks.music.generate import PITCH_CLASSES, parse_key

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def favoured(h: list[float]) -> tuple[set[int], set[int]]:
    """(scale tones, triad tones) of a histogram, as pitch classes."""
    return {i for i, w in enumerate(h) if w > 0}, {i for i, w in enumerate(h) if w == TRIAD_WEIGHT}


@pytest.mark.parametrize(("key", "tonic", "steps"), [
    ("C", 0, MAJOR), ("F#", 6, MAJOR), ("Bb minor", 10, MINOR), ("Am", 9, MINOR), ("a minor", 9, MINOR),
    ("D major", 2, MAJOR), ("Ebmaj", 3, MAJOR), ("  g  ", 7, MAJOR), ("C#min", 1, MINOR),
])
def test_a_key_favours_its_scale_and_its_tonic_triad(key: str, tonic: int, steps: tuple[int, ...]) -> None:
    h = parse_key(key)
    assert len(h) == 12 and all(w >= 0 for w in h)
    scale, triad = favoured(h)
    assert scale == {(tonic + s) % 12 for s in steps}
    assert triad == {(tonic + steps[d]) % 12 for d in (0, 2, 4)}
    assert all(h[i] == 1.0 for i in scale - triad)


def test_flats_are_their_enharmonic_sharps_and_relative_keys_differ() -> None:
    assert parse_key("Bb") == parse_key("A#") and parse_key("Db minor") == parse_key("C#m")
    assert favoured(parse_key("D minor"))[0] == favoured(parse_key("F"))[0]  # the same scale tones
    assert parse_key("D minor") != parse_key("F")  # not the same triad
    assert len({tuple(parse_key(name)) for name in PITCH_CLASSES}) == 12


@pytest.mark.parametrize("bad", ["H", "", "m", "C##", "Cb minor", "E# major", "C dorian", "12", "minor"])
def test_a_bad_key_is_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown key") as err:
        parse_key(bad)
    message = str(err.value)
    assert repr(bad) in message and "use e.g. C, F#, Bb, 'A minor', Am" in message and "\n" not in message
