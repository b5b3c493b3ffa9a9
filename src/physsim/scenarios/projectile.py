"""Two balls launched side by side from the floor, each at its own speed and elevation.

Slot 0 (red) flies in the lane at y = -LANE, slot 1 (blue) at y = +LANE, both
from x = 0 towards +x, so "which goes farther / higher" is seen in one video.
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

LANE = 0.25  # m either side of y = 0

PARAMS = (
    Param("speed", "m/s", "launch speed of each ball", train=(1.5, 3.5), ood=((4.0, 5.0),),
          valid=Interval(0.0, 20.0), per_object=True),
    Param("elevation", "deg", "launch angle above horizontal of each ball", train=(20.0, 70.0),
          ood=((75.0, 85.0),), valid=Interval(0.0, 90.0), per_object=True),
    mass_param("mass of each ball", per_object=True),
    Param("radius", "m", "radius of each ball", train=(0.08, 0.12), ood=((0.13, 0.16),),
          valid=Interval(0.01, 0.3), per_object=True),
    friction_param("sliding friction of each ball", (0.3, 0.8), per_object=True),
    restitution_param("bounciness on landing", (0.2, 0.7), per_object=True),
    GRAVITY,
)

BALLS = ("the red ball", "the blue ball")
DISTINCT = 0.1  # "farther" / "higher" are asked only when the two differ by at least 10%

QUESTIONS = (
    Template("landing_point", "state", "number", "landing_point", (
        "How far from its launch point will the red ball land?",
        "At what distance will the red ball first hit the floor?",
    ), unit="m", rel_tol=0.1, abs_tol=0.05),
    Template("apex_height", "state", "number", "apex_height", (
        "How high will the red ball rise?",
        "What is the greatest height the red ball will reach above its start?",
    ), unit="m", rel_tol=0.1, abs_tol=0.03),
    Template("flight_time", "state", "number", "flight_time", (
        "How long will the red ball fly before it lands?",
        "When will the red ball hit the floor?",
    ), unit="s", abs_tol=0.1),
    Template("landing_if_low_gravity", "counterfactual", "number", "landing_if_low_gravity", (
        "If gravity were half as strong, how far from its launch point would the red ball land?",
        "With half the gravity, at what distance would the red ball first hit the floor?",
    ), unit="m", rel_tol=0.1, abs_tol=0.05),
    Template("farther", "state", "choice", "farther", (
        "Which ball will land farther away?",
        "Which launch goes farther?",
    ), options=BALLS),
    Template("higher", "state", "choice", "higher", (
        "Which ball will fly higher?",
        "Which launch reaches the greater height?",
    ), options=BALLS),
)


def _flight(f, layout: SceneLayout, i: int):
    """Landing time, landing distance, apex rise and apex time of ball i, from its trajectory."""
    landing = measure.first_touch(f, measure.pair(layout, None, i))
    lands = jnp.isfinite(landing)
    where = measure.at_time(f.pos[:, i], f.time, landing)
    distance = jnp.linalg.norm((where - f.pos[0, i])[:2])
    z = f.pos[:, i, 2]
    in_flight = f.time <= jnp.where(lands, landing, f.time[-1])
    k = jnp.argmax(jnp.where(in_flight, z, -jnp.inf))
    return landing, lands, distance, z[k] - z[0], f.time[k]


def _differ(a, b):
    return jnp.abs(a - b) >= DISTINCT * jnp.maximum(a, b)


@register
class Projectile(Scenario):
    name = "projectile"
    description = "two balls launched side by side at random speeds and elevations"
    params = PARAMS
    default_seconds = 2.0
    observe_seconds = 0.2
    questions = QUESTIONS
    twins = ("half_gravity",)

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
        return Camera(position=(0.7, -2.1, 0.5), target=(0.7, 0.0, 0.35), fovy=50.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        r = p["radius"]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, r),
                          friction=p["friction"], restitution=p["restitution"])
        phi = jnp.deg2rad(p["elevation"])
        zero = jnp.zeros(2)
        velocity = p["speed"][:, None] * jnp.stack([jnp.cos(phi), zero, jnp.sin(phi)], axis=-1)
        # Start just above the floor so the launch is not a contact.
        pos = jnp.stack([zero, jnp.array([-LANE, LANE]), r + 1e-3], axis=-1)
        return w.replace(pos=pos, linvel=velocity)

    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "half_gravity":
            return world.replace(gravity=0.5 * world.gravity)
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        t_obs = run.observe_seconds
        red_land, red_lands, red_dist, red_apex, red_apex_t = _flight(run.frames, layout, 0)
        blue_land, blue_lands, blue_dist, blue_apex, _ = _flight(run.frames, layout, 1)
        _, low_lands, low_dist, _, _ = _flight(run.twins["half_gravity"], layout, 0)
        both = red_lands & blue_lands
        return {
            "landing_point": fact(red_dist, red_lands & (red_land > t_obs), red_land),
            "apex_height": fact(red_apex, red_apex_t > t_obs, red_apex_t),
            "flight_time": fact(jnp.where(red_lands, red_land, 0.0), red_lands & (red_land > t_obs), red_land),
            "landing_if_low_gravity": fact(low_dist, low_lands & red_lands & (red_land > t_obs), red_land),
            "farther": fact(jnp.where(blue_dist > red_dist, 1, 0),
                            both & (jnp.minimum(red_land, blue_land) > t_obs) & _differ(red_dist, blue_dist)),
            "higher": fact(jnp.where(blue_apex > red_apex, 1, 0), _differ(red_apex, blue_apex)),
        }
