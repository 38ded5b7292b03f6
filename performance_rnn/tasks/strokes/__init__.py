"""The pen-stroke mixture-density model (KanjiVG kanji): defaults.py, data.py, generate.py, evaluate.py."""
