"""Simulation-in-the-loop training: `python -m physsim.train --config experiments/tiny.py [--train.steps=200 ...]`.

config.py   the run configuration and its overrides
data.py     training batches made inside the jitted step (simulate, render, ask, pad, shard)
mesh.py     the device mesh, parameter and batch shardings, multi-host start
step.py     the train state and the jitted step
evaluate.py held-out suites and scoring
run.py      the loop, checkpoints, logs, plots
"""
