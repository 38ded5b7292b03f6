"""Test helpers shared by the tests and the benchmarks, imported as a normal package (``import testing.midi``).

- ``testing.midi``: a fake MIDI output port and a fake clock for real-time logic, a dense MIDI file maker and
  ``unmatched_note_ons`` (what was left sounding).
- ``testing.jack``: a JACK server on the dummy backend (``start_jack``) and ``JackReceiver``, a second JACK
  client that records what a port sends.
- ``testing.audio_check``: reading synthesized audio, its loudness and note onsets.
- ``testing.waiting``: ``wait_until``, a bounded wait for a condition in tests of threaded code.

No module here imports pytest: ``bench/realtime.py`` uses them without it. (The name is ``testing``, not
``tests``: an installed package, Hershey-Fonts, owns the top-level name ``tests``.)
"""
