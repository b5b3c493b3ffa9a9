"""MJX plumbing: scene layouts, per-world randomisation, batched rollouts, contact events.

Knows nothing of questions, renderers or models.
"""

from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams, apply_world, inertia
from physsim.sim.scene import ObjectSlot, SceneIndex, SceneLayout, StaticGeom, build_mj_model, put_model, scene_index
from physsim.sim.simulate import Frames, n_frames_for, rollout, rollout_world

__all__ = [
    "Frames",
    "Interval",
    "ObjectSlot",
    "Param",
    "SceneIndex",
    "SceneLayout",
    "StaticGeom",
    "WorldParams",
    "apply_world",
    "build_mj_model",
    "inertia",
    "n_frames_for",
    "put_model",
    "rollout",
    "rollout_world",
    "scene_index",
]
