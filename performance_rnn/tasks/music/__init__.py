"""The performance model: Performance-RNN events of expressive piano.

See defaults.py, data.py, generate.py, evaluate.py."""
