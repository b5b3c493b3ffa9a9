"""A sphere or a cube released on a slope of random angle and friction.

It rolls, slides or sticks, reaches the floor at some speed and travels on.
Slot 0 is the sphere, slot 1 the cube; the unused one is parked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.scenarios.base import (
    FLOOR,
    GRAVITY,
    Scenario,
    cube_sizes,
    default_world,
    friction_param,
    mass_param,
    quat_about_y,
    register,
    restitution_param,
)
from physsim.render.camera import Camera
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
    Param("size", "m", "sphere radius or cube half-edge", train=(0.05, 0.1), ood=((0.13, 0.18),),
          valid=Interval(0.01, 0.3)),
    restitution_param("bounciness on landing", (0.2, 0.5)),
    GRAVITY,
    Param("start", "m", "release point, distance up the slope from its foot", train=(0.4, 1.4),
          valid=Interval(0.2, 2 * RAMP_HALF_LENGTH - 0.2)),
    Param("shape", "", "0 = sphere, 1 = cube", train=(0.0, 1.0), valid=Interval(0.0, 1.0), choices=(0, 1)),
)


@register
class Ramp(Scenario):
    name = "ramp"
    description = "a sphere or cube on a slope of random angle and friction"
    params = PARAMS
    default_seconds = 3.0

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(
                ObjectSlot("ball", "sphere", (0.08, 0.08, 0.08), rgba=(0.85, 0.2, 0.2, 1.0)),
                ObjectSlot("cube", "box", (0.08, 0.08, 0.08), rgba=(0.2, 0.4, 0.85, 1.0)),
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
        return Camera(position=(0.2, -2.6, 1.0), target=(0.0, 0.0, 0.3), fovy=55.0, width=width, height=height)

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


