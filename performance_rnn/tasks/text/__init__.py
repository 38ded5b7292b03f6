"""The character-level text model (Shakespeare): defaults.py, data.py, generate.py, evaluate.py."""
