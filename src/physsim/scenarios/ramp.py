"""A sphere or a cube released on a slope of random angle and friction.

It rolls, slides or sticks, reaches the floor at some speed and travels on.
Slot 0 is the sphere, slot 1 the cube; the unused one is parked.
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
    quat_about_y,
    register,
    restitution_param,
)
from physsim.render.camera import Camera
from physsim.sim.contact import MIN_FRICTION
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout, StaticGeom

RAMP_HALF_LENGTH = 0.9
RAMP_HALF_THICKNESS = 0.05

PARAMS = (
    Param("angle", "deg", "slope angle above horizontal", train=(10.0, 40.0), ood=((45.0, 55.0),),
          valid=Interval(0.0, 80.0)),
    friction_param("sliding friction of the object on the slope and floor", (0.05, 0.9),
                   ood=((0.03, 0.045), (1.0, 1.5))),
    mass_param("mass of the object"),
    Param("size", "m", "sphere radius or cube half-edge", train=(0.07, 0.12), ood=((0.13, 0.18),),
          valid=Interval(0.01, 0.3)),
    restitution_param("bounciness on landing", (0.2, 0.5)),
    GRAVITY,
    Param("start", "m", "release point, distance up the slope from its foot", train=(0.4, 1.4),
          valid=Interval(0.2, 2 * RAMP_HALF_LENGTH - 0.2)),
    Param("shape", "", "0 = sphere, 1 = cube", train=(0.0, 1.0), valid=Interval(0.0, 1.0), choices=(0, 1)),
)

MOTIONS = ("it rolls", "it slides", "it stays still")
SLIPPERIER = 0.5  # the counterfactual twin's friction factor
ROLLING = 0.7  # |w| r / |v| above this on the slope counts as rolling (1 = no slip)

QUESTIONS = (
    Template("motion", "state", "choice", "motion", (
        "Will the object roll, slide or stay still on the slope?",
        "How does the object move on the slope?",
        "Does the object roll down the slope, slide down it, or stay where it is?",
    ), options=MOTIONS),
    Template("if_slippery", "counterfactual", "choice", "if_slippery", (
        "If the surfaces were twice as slippery, would the object roll, slide or stay still?",
        "Suppose friction were half of what it is: how would the object move on the slope?",
    ), options=MOTIONS),
    Template("speed_at_bottom", "state", "number", "speed_at_bottom", (
        "How fast will the object be moving at the bottom of the slope?",
        "What speed will the object have when it reaches the floor?",
    ), unit="m/s", rel_tol=0.1, abs_tol=0.05),
    Template("floor_distance", "state", "number", "floor_distance", (
        "How far past the foot of the slope will the object be at the end?",
        "At the end of the video, how far along the floor from the slope is the object?",
    ), unit="m", rel_tol=0.1, abs_tol=0.05),
)


@register
class Ramp(Scenario):
    name = "ramp"
    description = "a sphere or cube on a slope of random angle and friction"
    params = PARAMS
    default_seconds = 3.0
    observe_seconds = 0.4
    questions = QUESTIONS
    twins = ("slippery",)

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(
                ObjectSlot("ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["red"]),
                ObjectSlot("cube", "box", (0.08, 0.08, 0.08), rgba=PALETTE["blue"]),
            ),
            statics=(
                FLOOR,
                StaticGeom("ramp", "box", (RAMP_HALF_LENGTH, 0.4, RAMP_HALF_THICKNESS), rgba=(0.6, 0.5, 0.35, 1.0)),
            ),
            timestep=0.002,
            fps=25.0,
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.3, -2.2, 0.9), target=(0.2, 0.0, 0.35), fovy=55.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        theta = jnp.deg2rad(p["angle"])
        up_slope = jnp.stack([jnp.cos(theta), 0.0, jnp.sin(theta)])
        normal = jnp.stack([-jnp.sin(theta), 0.0, jnp.cos(theta)])
        tilt = quat_about_y(-theta)  # the ramp's +x axis points up the slope
        # The slope's top surface starts at the origin and rises towards +x.
        ramp_pos = RAMP_HALF_LENGTH * up_slope - RAMP_HALF_THICKNESS * normal
        size = jnp.full((2,), p["size"])
        w = default_world(
            layout,
            gravity=p["gravity"],
            mass=jnp.full((2,), p["mass"]),
            size=cube_sizes(layout, size),
            friction=jnp.full((2,), p["friction"]),
            restitution=jnp.full((2,), p["restitution"]),
        )
        active = p["shape"].astype(jnp.int32)
        on_slope = p["start"] * up_slope + p["size"] * normal
        pos = w.pos.at[active].set(on_slope)
        quat = jnp.where(active == 1, w.quat.at[1].set(tilt), w.quat)
        return w.replace(
            pos=pos,
            quat=quat,
            static_pos=w.static_pos.at[1].set(ramp_pos),
            static_quat=w.static_quat.at[1].set(tilt),
        )



    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "slippery":
            return world.replace(friction=jnp.maximum(world.friction * SLIPPERIER, MIN_FRICTION))
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f = run.frames
        a = run.params["shape"].astype(jnp.int32)  # the active slot
        motion, pos, v = _motion(f, a, run.world.size[a, 0])
        twin_motion, _, _ = _motion(run.twins["slippery"], a, run.world.size[a, 0])
        # The foot of the slope is at x = 0; the object comes down towards -x.
        reached = pos[:, 0] <= 0.0
        t_bottom = measure.first_time(reached, f.time)
        arrives = jnp.isfinite(t_bottom)
        k = jnp.argmax(reached)
        ahead = t_bottom > run.observe_seconds
        return {
            "motion": fact(motion, True),
            "if_slippery": fact(twin_motion, True),
            "speed_at_bottom": fact(v[k], arrives & ahead, t_bottom),
            "floor_distance": fact(-pos[-1, 0], arrives, t_bottom),
        }


def _motion(f, a, radius):
    """0 rolls, 1 slides, 2 stays still; and the active object's positions and speeds."""
    pos, vel = f.pos[:, a], f.linvel[:, a]
    v = jnp.linalg.norm(vel, axis=-1)
    spin = jnp.linalg.norm(f.angvel[:, a], axis=-1) * radius
    on_slope = (pos[:, 0] > 0.0) & (v > 0.05)
    ratio = jnp.sum(jnp.where(on_slope, spin, 0.0)) / jnp.maximum(jnp.sum(jnp.where(on_slope, v, 0.0)), 1e-6)
    still = jnp.max(jnp.linalg.norm(pos - pos[0], axis=-1)) < measure.MOVED
    motion = jnp.where(still, 2, jnp.where(ratio > ROLLING, 0, 1))
    return motion, pos, v
