"""The run: the Trainer over an engine (trainer.py), numbamlp.fit (fit.py) and its plan, loop and
callbacks, checkpoints, validation, step-size schedules, sampling, random streams. Uses engines/,
model/ and datasets/."""
