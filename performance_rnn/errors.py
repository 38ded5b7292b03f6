"""Errors raised by performance_rnn. Callers catch the base ``PerformanceRNNError``."""


class PerformanceRNNError(Exception):
    """Base for performance_rnn failures."""


class CodecError(PerformanceRNNError, ValueError):
    """A value cannot be encoded or decoded (out-of-range pitch, unknown token, character outside a vocabulary)."""


class CheckpointError(PerformanceRNNError):
    """A checkpoint is missing, unreadable, of an unknown format, or does not match its config."""


class DataError(PerformanceRNNError):
    """A dataset cannot be built or read (no usable files, corrupt shard)."""
