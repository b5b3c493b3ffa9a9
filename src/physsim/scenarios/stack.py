"""A tower of 2-5 cubes, each shifted sideways on the one below: does it fall?

Slots bottom to top: red, green, blue, yellow, purple cubes; slots above
`count` are parked. Whether it falls, which block goes first and where the
top one ends up are read from the simulated trajectory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.scenarios.base import (
    FLOOR,
    GRAVITY,
    PALETTE,
    Fact,
    Run,
    Scenario,
    cube_sizes,
    default_world,
    fact,
    friction_param,
    mass_param,
    register,
    restitution_param,
)
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

COLOURS = tuple(PALETTE)  # red, green, blue, yellow, purple
FALLEN = 0.5  # a block has fallen once it dropped by this many half-sizes

PARAMS = (
    Param("count", "", "number of blocks in the tower", train=(2.0, 5.0), valid=Interval(2.0, 5.0),
          choices=(2, 3, 4, 5)),
    Param("shift", "", "sideways shift of each block on the one below, in block widths", train=(-0.6, 0.6),
          ood=((-0.75, -0.65), (0.65, 0.75)), valid=Interval(-1.0, 1.0), per_object=True),
    Param("size", "m", "half-edge of the blocks", train=(0.05, 0.08), valid=Interval(0.02, 0.2)),
    mass_param("mass of each block", per_object=True),
    friction_param("sliding friction of each block", (0.4, 0.9), ood=((0.1, 0.2),), per_object=True),
    restitution_param("bounciness of each block", (0.2, 0.4), per_object=True),
    GRAVITY,
)

QUESTIONS = (
    Template("falls", "state", "yesno", "falls", (
        "Will the tower fall?",
        "Is this stack of blocks going to topple?",
        "Will any block fall off the tower?",
    )),
    Template("first_to_fall", "state", "choice", "first_to_fall", (
        "Which block will fall first?",
        "Which block is the first to drop?",
    ), options=tuple(f"the {c} block" for c in COLOURS[1:])),
    Template("top_lands", "state", "number", "top_lands", (
        "How far from where it starts will the top block end up?",
        "How far will the top block move sideways before it comes to rest?",
    ), unit="m", rel_tol=0.2, abs_tol=0.05),
)


@register
class Stack(Scenario):
    name = "stack"
    description = "a tower of 2-5 shifted cubes that may stand or fall"
    params = PARAMS
    default_seconds = 2.0
    observe_seconds = 0.2
    questions = QUESTIONS

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=tuple(ObjectSlot(f"{c}_block", "box", (0.06, 0.06, 0.06), rgba=rgba)
                          for c, rgba in PALETTE.items()),
            statics=(FLOOR,),
            timestep=0.002,
            fps=25.0,
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.0, -1.3, 0.55), target=(0.0, 0.0, 0.3), fovy=50.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        n = layout.n_objects
        h = p["size"]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, jnp.full((n,), h)),
                          friction=p["friction"], restitution=p["restitution"])
        # Block i is shifted by shift[i] block widths from block i - 1; the bottom one is not shifted.
        x = jnp.cumsum(p["shift"].at[0].set(0.0) * 2 * h)
        x = x - jnp.mean(jnp.where(jnp.arange(n) < p["count"], x, 0.0))  # keep the tower in view
        z = (2 * jnp.arange(n) + 1) * (h + 5e-4)
        placed = jnp.stack([x, jnp.zeros(n), z], axis=-1)
        in_play = jnp.arange(n) < p["count"]
        return w.replace(pos=jnp.where(in_play[:, None], placed, w.pos))

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f, t_obs = run.frames, run.observe_seconds
        n = layout.n_objects
        h = run.world.size[:, 2]
        in_play = jnp.arange(n) < run.params["count"]
        drop = f.pos[0, :, 2] - f.pos[:, :, 2]  # (T, N)
        fallen = (drop > FALLEN * h) & in_play  # (T, N)
        falls = fallen[-1].any() | fallen.any()
        fall_time = jnp.min(jnp.where(fallen, f.time[:, None], jnp.inf), axis=0)  # (N,)
        t_first = jnp.min(fall_time)
        # The lowest of the blocks that go first (blocks above a failing level go with it).
        first = jnp.argmax(fall_time <= t_first + 1e-6)
        top = (run.params["count"] - 1).astype(jnp.int32)
        moved = jnp.linalg.norm(f.pos[-1, top, :2] - f.pos[0, top, :2])
        visible_yet = t_first <= t_obs
        return {
            "falls": fact(falls, ~visible_yet, t_first),
            "first_to_fall": fact(jnp.maximum(first - 1, 0), falls & ~visible_yet & (first >= 1), t_first),
            "top_lands": fact(moved, falls & ~visible_yet, t_first),
        }
