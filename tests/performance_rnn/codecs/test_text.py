import pytest

from performance_rnn.codecs.text import TextCodec
from performance_rnn.errors import CodecError


def test_round_trip_is_utf8_safe():
    text = "ROMEO:\nBut soft — 日本, naïve!\n"
    codec = TextCodec.from_text(text)
    ids = codec.encode(text)
    assert len(ids) == len(text)  # one id per code point, not per byte
    assert codec.decode(ids) == text
    assert codec.vocab_size == len(set(text))


def test_vocab_is_sorted_and_survives_the_checkpoint_dict():
    codec = TextCodec.from_text("cab")
    assert codec.vocab == "abc"
    assert TextCodec.from_dict(codec.to_dict()) == codec


def test_unknown_characters_are_named_once_each():
    codec = TextCodec.from_text("abc ")
    with pytest.raises(CodecError) as err:
        codec.encode("a «b» «c»")
    msg = str(err.value)
    assert "2 character(s)" in msg
    assert "'«' (U+00AB)" in msg and "'»' (U+00BB)" in msg
    assert codec.unknown("abz") == ["z"]


def test_bad_vocabularies_and_ids_are_refused():
    with pytest.raises(CodecError):
        TextCodec("")
    with pytest.raises(CodecError):
        TextCodec("aa")
    with pytest.raises(CodecError):
        TextCodec.from_dict({"name": "strokes"})
    with pytest.raises(CodecError, match=r"0\.\.2"):
        TextCodec("abc").decode([3])
