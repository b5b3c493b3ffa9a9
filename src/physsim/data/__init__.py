"""Frozen sets for other models: generation (`generate`), the TFDS builder (`builder`).

The command-line tools live beside the package: `python -m physsim.export`
(JSONL + PNG, or TFDS) and `python -m physsim.score` (scores any model's
free-text answers with the scorer our own evaluation uses).
"""
