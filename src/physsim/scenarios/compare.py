"""Two objects that differ in one hidden property, shown in the experiment that reveals it.

`property` picks the experiment: 0 mass (two balls roll into each other at
the same speed: the heavier keeps going), 1 restitution (two balls dropped
side by side: the bouncier rises higher), 2 friction (two blocks pushed at
the same speed: the more slippery slides farther), 3 size (two balls side by
side). Everything else is the same for both objects. Slots: red ball, blue
ball, red block, blue block; the pair not in use is parked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.scenarios import measure
from physsim.scenarios.base import (
    FLOOR,
    GRAVITY,
    PALETTE,
    Fact,
    Run,
    Scenario,
    default_world,
    fact,
    register,
)
from physsim.sim.params import FRICTION, POSITIVE, Interval, Param
from physsim.sim.contact import RESTITUTION_RANGE
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

MASS, RESTITUTION, FRICTION_EXPERIMENT, SIZE = 0, 1, 2, 3
DROP_HEIGHT = 0.6  # m, ball bottoms above the floor in the bounce experiment
PUSH_SPEED = 1.5  # m/s of both blocks in the slide experiment
ROLL_SPEED = 1.0  # m/s of both balls in the collision experiment

PARAMS = (
    Param("property", "", "0 mass, 1 restitution, 2 friction, 3 size", train=(0.0, 3.0), valid=Interval(0.0, 3.0),
          choices=(0, 1, 2, 3)),
    Param("larger", "", "which object has the larger value: 0 red, 1 blue", train=(0.0, 1.0),
          valid=Interval(0.0, 1.0), choices=(0, 1)),
    Param("ratio", "", "larger value / smaller value of the hidden property", train=(1.5, 3.0),
          ood=((1.2, 1.4),), valid=Interval(1.0, 10.0, lo_open=True)),
    Param("mass", "kg", "mass of the lighter object", train=(0.3, 1.0), ood=((2.0, 4.0),), valid=POSITIVE,
          log=True),
    Param("restitution", "", "restitution of the less bouncy ball", train=(0.25, 0.45),
          valid=Interval(RESTITUTION_RANGE[0], RESTITUTION_RANGE[1] / 1.5)),
    Param("friction", "", "friction of the more slippery object", train=(0.1, 0.3), ood=((0.04, 0.08),),
          valid=FRICTION),
    Param("size", "m", "radius or half-edge of the smaller object", train=(0.07, 0.1), valid=Interval(0.02, 0.1)),
    GRAVITY,
)

WHICH = ("the red one", "the blue one")
QUESTIONS = (
    Template("heavier", "property", "choice", "heavier", (
        "Which ball is heavier?", "Which of the two balls has more mass?",
    ), options=WHICH),
    Template("bouncier", "property", "choice", "bouncier", (
        "Which ball is bouncier?", "Which ball bounces better?",
    ), options=WHICH),
    Template("slippery", "property", "choice", "slippery", (
        "Which block is more slippery?", "Which block has less friction with the floor?",
    ), options=WHICH),
    Template("larger", "property", "choice", "larger", (
        "Which ball is larger?", "Which of the two balls is bigger?",
    ), options=WHICH),
)


@register
class Compare(Scenario):
    name = "compare"
    description = "two objects differing in one hidden property, shown in an experiment that reveals it"
    params = PARAMS
    default_seconds = 2.2
    observe_seconds = 1.2
    questions = QUESTIONS

    @classmethod
    def layout(cls) -> SceneLayout:
        red, blue = PALETTE["red"], PALETTE["blue"]
        return SceneLayout(
            objects=(
                ObjectSlot("red_ball", "sphere", (0.06, 0.06, 0.06), rgba=red),
                ObjectSlot("blue_ball", "sphere", (0.06, 0.06, 0.06), rgba=blue),
                ObjectSlot("red_block", "box", (0.06, 0.06, 0.06), rgba=red),
                ObjectSlot("blue_block", "box", (0.06, 0.06, 0.06), rgba=blue),
            ),
            statics=(FLOOR,),
            timestep=0.002,
            fps=25.0,
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.3, -1.9, 0.8), target=(0.3, 0.0, 0.25), fovy=55.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        kind = p["property"].astype(jnp.int32)
        blue_larger = p["larger"]
        # (2,) factor for (red, blue) on the varied property, 1 elsewhere.
        factor = jnp.where(jnp.arange(2) == blue_larger, p["ratio"], 1.0)

        def varied(base, k):
            return base * jnp.where(kind == k, factor, 1.0)

        mass = varied(p["mass"], MASS)
        restitution = varied(p["restitution"], RESTITUTION)
        friction = varied(p["friction"], FRICTION_EXPERIMENT)  # the other block is the more slippery one
        size = varied(p["size"], SIZE)
        both = lambda x: jnp.concatenate([x, x])  # noqa: E731 (balls then blocks)
        w = default_world(layout, gravity=p["gravity"], mass=both(mass),
                          size=jnp.repeat(both(size)[:, None], 3, axis=1),
                          friction=both(friction), restitution=both(restitution))
        r = size
        zero = jnp.zeros(2)
        # Balls: head-on roll (mass), drop (restitution) or side by side at rest (size).
        roll = jnp.stack([jnp.stack([-0.4 - r[0], 1.2 + r[1]]), zero, r], axis=-1)
        drop = jnp.stack([jnp.array([0.2, 0.6]), zero, r + DROP_HEIGHT], axis=-1)
        rest = jnp.stack([jnp.array([0.1, 0.7]), zero, r], axis=-1)
        ball_pos = jnp.where(kind == MASS, roll, jnp.where(kind == RESTITUTION, drop, rest))
        ball_vx = jnp.where(kind == MASS, jnp.array([ROLL_SPEED, -ROLL_SPEED]), zero)
        # Blocks: two lanes, pushed along +x.
        block_pos = jnp.stack([jnp.array([-0.6, -0.6]), jnp.array([-0.25, 0.25]), r], axis=-1)
        uses_blocks = kind == FRICTION_EXPERIMENT
        pos = jnp.where(uses_blocks, jnp.concatenate([w.pos[:2], block_pos]), jnp.concatenate([ball_pos, w.pos[2:]]))
        vx = jnp.where(uses_blocks, jnp.concatenate([zero, jnp.full(2, PUSH_SPEED)]), jnp.concatenate([ball_vx, zero]))
        linvel = jnp.stack([vx, jnp.zeros(4), jnp.zeros(4)], axis=-1)
        spin = jnp.where(uses_blocks, 0.0, vx / jnp.concatenate([r, r]))
        angvel = jnp.stack([jnp.zeros(4), spin, jnp.zeros(4)], axis=-1)
        return w.replace(pos=pos, linvel=linvel, angvel=angvel)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f, t_obs = run.frames, run.observe_seconds
        kind = run.params["property"].astype(jnp.int32)
        seen = run.observed
        # Mass: the heavier ball ends the window still moving its own way (momentum wins).
        hit = measure.first_touch(f, measure.pair(layout, 0, 1))
        heading = jnp.stack([f.linvel[:, 0, 0], -f.linvel[:, 1, 0]], axis=-1)  # (T, 2), + = own direction
        after = measure.at_time(heading, f.time, jnp.minimum(hit + 0.2, t_obs))
        heavier = jnp.argmax(after)
        # Restitution: highest rise after the first landing, inside the window.
        def rebound(i):
            landed = measure.first_touch(f, measure.pair(layout, None, i))
            z = f.pos[:, i, 2]
            return jnp.max(jnp.where(seen & (f.time > landed + 0.02), z, -jnp.inf)) - run.world.size[i, 2]
        rise = jnp.stack([rebound(0), rebound(1)])
        # Friction: how far each block slid inside the window.
        slid = jnp.stack([jnp.max(jnp.where(seen, measure.displacement(f, i), 0.0)) for i in (2, 3)])
        radius = run.world.size[:2, 0]
        return {
            "heavier": fact(heavier, (kind == MASS) & (hit + 0.2 <= t_obs), hit),
            "bouncier": fact(jnp.argmax(rise), (kind == RESTITUTION) & jnp.all(jnp.isfinite(rise))),
            "slippery": fact(jnp.argmax(slid), kind == FRICTION_EXPERIMENT),
            "larger": fact(jnp.argmax(radius), kind == SIZE),
        }
