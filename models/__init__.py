"""Inference engine library: one queue, one worker, one executor thread; knows nothing of Discord or SQLite."""
