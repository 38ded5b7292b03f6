"""Dataset builders and the ``TrainData`` implementations of the three models."""
