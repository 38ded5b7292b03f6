"""Performance RNN models, codecs, the one sampler, training and data preparation (torch; no mido/fastapi)."""
