"""The service layer: the FastAPI app, live sessions, the web page, and the ``perfrnn`` command line.

It is the one package that imports both ``performance_rnn`` (models) and ``midi_io`` (MIDI). Importing it
does not import FastAPI; ``service.app`` does.
"""
