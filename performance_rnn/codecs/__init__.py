"""Pure codecs: values <-> token ids. No I/O, torch or randomness."""
