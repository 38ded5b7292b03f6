"""Characters <-> token ids for the char-level text model.

The vocabulary is the sorted set of Unicode code points of the training text (not bytes, so multi-byte
UTF-8 characters are one token each). It is stored in the checkpoint as one string, id i = ``vocab[i]``.
Unknown characters are an error that names them (char-rnn's top complaint was a crash or a silent skip).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from performance_rnn.errors import CodecError


@dataclass(frozen=True)
class TextCodec:
    vocab: str  # every character the model knows, each once, in id order
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.vocab:
            raise CodecError("a text vocabulary needs at least one character")
        if len(set(self.vocab)) != len(self.vocab):
            raise CodecError("a text vocabulary must not repeat characters")
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.vocab)})

    @staticmethod
    def from_text(text: str) -> TextCodec:
        """The codec whose vocabulary is exactly the characters of ``text``."""
        return TextCodec("".join(sorted(set(text))))

    @staticmethod
    def from_dict(d: dict[str, object]) -> TextCodec:
        if d.get("name") != "text" or not isinstance(d.get("vocab"), str):
            raise CodecError(f"not a text codec description: {sorted(d)}")
        return TextCodec(str(d["vocab"]))

    def to_dict(self) -> dict[str, object]:
        """Primitives only, for the checkpoint."""
        return {"name": "text", "vocab": self.vocab}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self._index))

    def encode(self, text: str) -> list[int]:
        """str -> ids. Raises CodecError naming every unknown character."""
        bad = self.unknown(text)
        if bad:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in bad)
            raise CodecError(f"{len(bad)} character(s) not in the model's vocabulary: {shown}")
        return [self._index[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> str. Raises CodecError for an id outside 0..vocab_size-1."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.vocab):
                raise CodecError(f"token must be in range 0..{len(self.vocab) - 1}, got {i}")
            out.append(self.vocab[i])
        return "".join(out)
