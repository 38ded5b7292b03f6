"""The keyboard mask: per stream, which Performance events can happen next on a piano.

A stream tracks the note of each key (its start step, and whether the decoder's duration guard has already
released it) and the current step. Masked (impossible) next events:

- NOTE_ON of a key whose note has not been closed by a NOTE_OFF yet (a key is released before it is struck
  again; this also rules out two NOTE_ONs of one key in one step);
- NOTE_OFF of a key with no note, or of a note struck in this same step (it would last no time: Magenta's
  decoder drops it, so it is a ghost note, not music).

A note held past the duration guard (5 s) is released by the decoder, but its key stays taken until the
model's NOTE_OFF arrives, exactly as note_seq's decoder pairs a NOTE_OFF with the oldest open note of its
pitch; so mask and decoder never disagree about which note a NOTE_OFF ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from performance_rnn.codecs.performance import PerformanceCodecConfig, token_layout
from performance_rnn.heads import BatchSampling, CategoricalHead, Generator, Head, draw_uniform, fast_sample


class KeyboardMask:
    """The mask of a batch of streams (B): ``allowed()`` -> (B, V) bool; ``update(tokens)`` after each step."""

    def __init__(self, cfg: PerformanceCodecConfig, batch: int, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg
        layout = token_layout(cfg)
        self.on0, self.off0, self.shift0 = layout.note_on.start, layout.note_off.start, layout.time_shift.start
        self.vocab = layout.size
        if self.off0 != self.on0 + 128:
            raise ValueError("the keyboard mask needs NOTE_OFF ids right after the 128 NOTE_ON ids (the codec's table)")
        self.start = torch.full((batch, 128), -1, dtype=torch.long, device=device)  # step of the open note, -1 none
        self.step = torch.zeros(batch, dtype=torch.long, device=device)

    @classmethod
    def of(cls, cfg: PerformanceCodecConfig, tokens: Sequence[Sequence[int]],
           device: torch.device | str = "cpu") -> KeyboardMask:
        """The masks after each stream's primer ``tokens[b]`` (which may leave notes sounding). One plain Python
        pass per primer and one tensor copy: this runs on the engine thread when a stream joins, so it must not
        cost a tensor op per primer token while the other streams wait."""
        mask = cls(cfg, len(tokens), device)
        starts, steps = [], []
        for seq in tokens:
            start, step = [-1] * 128, 0
            for t in seq:
                t = int(t)
                if mask.on0 <= t < mask.on0 + 128:
                    start[t - mask.on0] = step
                elif mask.off0 <= t < mask.off0 + 128:
                    start[t - mask.off0] = -1
                elif mask.shift0 <= t < mask.shift0 + cfg.max_shift_steps:
                    step += t - mask.shift0 + 1
            starts.append(start)
            steps.append(step)
        if tokens:
            mask.start = torch.tensor(starts, dtype=torch.long, device=device)
            mask.step = torch.tensor(steps, dtype=torch.long, device=device)
        return mask

    def _keys_allowed(self) -> Tensor:
        """(B, 2, 128) bool: which NOTE_ONs (row 0) and NOTE_OFFs (row 1) are possible now."""
        open_ = self.start >= 0
        return torch.stack([~open_, open_ & (self.start < self.step.unsqueeze(1))], dim=1)

    def allowed(self) -> Tensor:
        ok = torch.ones(self.start.shape[0], self.vocab, dtype=torch.bool, device=self.start.device)
        ok[:, self.on0 : self.on0 + 256] = self._keys_allowed().flatten(1)
        return ok

    def apply(self, logits: Tensor) -> Tensor:
        """Mask the logits (B, V), keeping each event type's probability: the mass the model gives to
        impossible NOTE_ONs goes to the possible NOTE_ONs, and that of impossible NOTE_OFFs to the keys that are
        held (in proportion to their own probabilities). The model decides *whether* to release a key; the mask
        only corrects *which*. (Plain renormalisation would spread a barely trained model's note-off mass over
        everything, so notes would pile up until the duration guard.) A type with no possible event loses its
        mass to the others in proportion. Both key groups are handled in one pass (a few tensor ops: this runs
        at every step of every stream)."""
        out = logits.float().clone()
        keys = out[:, self.on0 : self.on0 + 256].view(-1, 2, 128)  # NOTE_ON and NOTE_OFF logits, side by side
        ok = self._keys_allowed()
        e = (keys - keys.amax(dim=2, keepdim=True)).exp_()  # (B, 2, 128), largest 1 per group
        kept_share = e.mul(ok).sum(dim=2, keepdim=True).div_(e.sum(dim=2, keepdim=True))  # in (0, 1], or 0: none
        lift = torch.where(kept_share > 0, kept_share, 1.0).log_().neg_()  # a group with nothing possible: no lift
        # lift where possible, -inf where not, added in place (a bool masked_fill on this strided view is slower)
        keys.add_(torch.where(ok, lift, float("-inf")))
        return out

    def sample(self, head: Head, logits: Tensor, settings: BatchSampling, generators: Sequence[Generator]) -> Tensor:
        """``apply``, ``head.sample`` and ``update`` in one: -> tokens (B,). For a categorical head with plain settings
        on the CPU this is one C pass (``performance_rnn.heads.fast_sample``): the same distribution and, for the
        same uniforms, the same tokens."""
        if (isinstance(head, CategoricalHead) and settings.plain and fast_sample.usable(logits)
                and self.start.device.type == "cpu"):
            self.step = self.step.contiguous()
            keyboard = (self.start, self.step, self.on0, self.shift0, self.cfg.max_shift_steps)
            return fast_sample.sample(logits, settings.temperature, draw_uniform(generators), keyboard)[0]
        tokens = head.sample(self.apply(logits), settings, generators)
        self.update(tokens)
        return tokens

    def update(self, tokens: Tensor) -> None:
        """Advance every stream by its token (B,); -1 leaves a stream as it is."""
        tok = tokens.to(self.start.device).long()
        rel = tok - self.on0  # 0..127 NOTE_ON, 128..255 NOTE_OFF (the codec's table)
        is_key = (rel >= 0) & (rel < 256)
        key = rel.remainder(128).unsqueeze(1)  # (B, 1); rows without a key event write their own value back
        value = torch.where(rel < 128, self.step, -1).unsqueeze(1)
        self.start.scatter_(1, key, torch.where(is_key.unsqueeze(1), value, self.start.gather(1, key)))
        shift = tok - self.shift0
        self.step = self.step + torch.where((shift >= 0) & (shift < self.cfg.max_shift_steps), shift + 1, 0)

    def select(self, index: Tensor) -> KeyboardMask:
        out = KeyboardMask.__new__(KeyboardMask)
        out.__dict__.update(self.__dict__)
        out.start, out.step = self.start.index_select(0, index), self.step.index_select(0, index)
        return out

    @staticmethod
    def cat(masks: Sequence[KeyboardMask]) -> KeyboardMask:
        out = KeyboardMask.__new__(KeyboardMask)
        out.__dict__.update(masks[0].__dict__)
        out.start = torch.cat([m.start for m in masks])
        out.step = torch.cat([m.step for m in masks])
        return out

    def sounding(self, row: int) -> list[int]:
        """The keys stream ``row`` holds down (notes without their NOTE_OFF yet)."""
        return torch.nonzero(self.start[row] >= 0).flatten().tolist()

    def put(self, index: Tensor, other: KeyboardMask) -> None:
        """Write ``other`` (the masks of the streams at ``index``) back into this batch."""
        self.start.index_copy_(0, index, other.start)
        self.step.index_copy_(0, index, other.step)


def impossible_events(tokens: Sequence[int], cfg: PerformanceCodecConfig,
                      primer: Sequence[int] = ()) -> list[tuple[int, str]]:
    """The events of ``tokens`` (after ``primer``) that the keyboard mask rules out, as (index, reason):
    the independent check used by tests and evaluation (plain Python, not the mask's tensors)."""
    layout = token_layout(cfg)
    on0, off0, shift0 = layout.note_on.start, layout.note_off.start, layout.time_shift.start
    held: dict[int, int] = {}  # key -> step its note was struck
    step = 0
    found = []
    for i, t in enumerate([*primer, *tokens]):
        k = i - len(primer)
        if on0 <= t < on0 + 128:
            if t - on0 in held and k >= 0:
                found.append((k, f"NOTE_ON {t - on0} while the key is held"))
            held[t - on0] = step
        elif off0 <= t < off0 + 128:
            p = t - off0
            if p not in held:
                if k >= 0:
                    found.append((k, f"NOTE_OFF {p} of a key that is not held"))
            elif held[p] == step and k >= 0:
                found.append((k, f"NOTE_OFF {p} in the step of its NOTE_ON (a zero-length note)"))
                del held[p]
            else:
                del held[p]
        elif shift0 <= t < shift0 + cfg.max_shift_steps:
            step += t - shift0 + 1
    return found
