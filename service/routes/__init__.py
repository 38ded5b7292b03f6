"""One router per resource: music, text and strokes (siblings), models and health (meta), port sessions, live."""
