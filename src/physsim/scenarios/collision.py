"""Two balls roll on the floor, mostly towards each other, and may collide.

Slot 0 (red) starts on the left, slot 1 (blue) on the right; each rolls
towards the other at its own speed, or away from it when the speed is
negative (so "will they collide?" has both answers). Both start rolling
without slipping, so nothing but rolling contact changes their motion
before an impact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.questions.templates import Template
from physsim.scenarios import measure
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
from physsim.render.camera import Camera
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

PARAMS = (
    Param("speed", "m/s", "initial speed of each ball towards the other (negative: away from it)",
          train=(-1.0, 2.5), ood=((3.0, 4.0),), valid=Interval(-10.0, 10.0), per_object=True),
    Param("gap", "m", "distance between the balls' surfaces at the start", train=(0.4, 1.4),
          ood=((1.6, 2.0),), valid=Interval(0.0, 5.0)),
    mass_param("mass of each ball", per_object=True),
    Param("radius", "m", "radius of each ball", train=(0.07, 0.12), ood=((0.15, 0.2),),
          valid=Interval(0.01, 0.3), per_object=True),
    friction_param("sliding friction of each ball", (0.2, 0.8), ood=((1.0, 1.5),), per_object=True),
    restitution_param("bounciness of each ball", (0.3, 0.9), per_object=True),
    GRAVITY,
)

BALLS = ("the red ball", "the blue ball")
AFTER = 0.2  # s after the impact at which "faster after" compares speeds
HEAVIER = 4.0  # the counterfactual twin's red ball has this many times its mass
MASS_RATIO = 1.5  # "heavier" is asked only when the masses differ at least this much

QUESTIONS = (
    Template("will_collide", "state", "yesno", "will_collide", (
        "Will the red ball and the blue ball collide?",
        "Are the two balls going to hit each other?",
        "Will the red ball hit the blue ball?",
    )),
    Template("collision_time", "state", "number", "collision_time", (
        "When will the red ball and the blue ball collide?",
        "At what time will the two balls hit each other?",
    ), unit="s", abs_tol=0.1),
    Template("faster_after", "state", "choice", "faster_after", (
        "Which ball will move faster after the collision?",
        "After they collide, which ball is faster?",
    ), options=BALLS),
    Template("if_red_heavier", "counterfactual", "choice", "if_red_heavier", (
        "If the red ball were four times heavier, which ball would move faster after the collision?",
        "Suppose the red ball had four times its mass: which ball would be faster after they collide?",
    ), options=BALLS),
    Template("heavier", "property", "choice", "heavier", (
        "Which ball is heavier?",
        "Which of the two balls has more mass?",
    ), options=BALLS),
)


@register
class Collision(Scenario):
    name = "collision"
    description = "two balls rolling towards each other on a floor"
    params = PARAMS
    default_seconds = 2.0
    observe_seconds = 0.6
    questions = QUESTIONS
    twins = ("heavy_red",)

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(
                ObjectSlot("red_ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["red"]),
                ObjectSlot("blue_ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["blue"]),
            ),
            statics=(FLOOR,),
            timestep=0.002,
            fps=25.0,
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.0, -2.1, 0.8), target=(0.0, 0.0, 0.1), width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        r = p["radius"]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, r),
                          friction=p["friction"], restitution=p["restitution"])
        # Centre the pair on x = 0 with the requested surface gap between them.
        half_span = 0.5 * (p["gap"] + r[0] + r[1])
        x = jnp.stack([-half_span, half_span])
        pos = jnp.stack([x, jnp.zeros(2), r], axis=-1)
        vx = jnp.stack([p["speed"][0], -p["speed"][1]])
        linvel = jnp.stack([vx, jnp.zeros(2), jnp.zeros(2)], axis=-1)
        # Rolling without slipping along x: angular velocity about +y is v / r.
        angvel = jnp.stack([jnp.zeros(2), vx / r, jnp.zeros(2)], axis=-1)
        return w.replace(pos=pos, linvel=linvel, angvel=angvel)

    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "heavy_red":
            return world.replace(mass=world.mass.at[0].multiply(HEAVIER))
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f = run.frames
        t_obs, t_end = run.observe_seconds, f.time[-1]
        hit = measure.first_touch(f, measure.pair(layout, 0, 1))
        collides = jnp.isfinite(hit)
        ahead = hit > t_obs  # not yet happened in the video the model sees
        speeds = jnp.stack([measure.speed(f, 0), measure.speed(f, 1)], axis=-1)
        after = measure.at_time(speeds, f.time, hit + AFTER)
        distinct = jnp.abs(after[0] - after[1]) > 0.1 * jnp.max(after)
        mass = run.world.mass
        twin = run.twins["heavy_red"]
        twin_hit = measure.first_touch(twin, measure.pair(layout, 0, 1))
        twin_after = measure.at_time(jnp.stack([measure.speed(twin, 0), measure.speed(twin, 1)], axis=-1),
                                     twin.time, twin_hit + AFTER)
        twin_ok = (jnp.isfinite(twin_hit) & (twin_hit + AFTER <= t_end)
                   & (jnp.abs(twin_after[0] - twin_after[1]) > 0.1 * jnp.max(twin_after)))
        return {
            "if_red_heavier": fact(jnp.argmax(twin_after), collides & ahead & twin_ok, twin_hit),
            "will_collide": fact(collides, ahead, hit),
            "collision_time": fact(jnp.where(collides, hit, 0.0), collides & ahead, hit),
            "faster_after": fact(jnp.argmax(after), collides & ahead & (hit + AFTER <= t_end) & distinct, hit),
            "heavier": fact(jnp.argmax(mass), collides & ~ahead & (jnp.max(mass) >= MASS_RATIO * jnp.min(mass)), hit),
        }
