"""A ball launched from the floor at a random speed and elevation."""

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
    register,
    restitution_param,
)
from physsim.render.camera import Camera
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

PARAMS = (
    Param("speed", "m/s", "launch speed", train=(2.0, 6.0), ood=((7.0, 9.0),), valid=Interval(0.0, 20.0)),
    Param("elevation", "deg", "launch angle above horizontal", train=(20.0, 70.0), ood=((75.0, 85.0),),
          valid=Interval(0.0, 90.0)),
    mass_param("mass of the ball"),
    Param("radius", "m", "radius of the ball", train=(0.04, 0.1), ood=((0.13, 0.18),), valid=Interval(0.01, 0.3)),
    friction_param("sliding friction of the ball", (0.3, 0.8)),
    restitution_param("bounciness on landing", (0.2, 0.7)),
    GRAVITY,
)


@register
class Projectile(Scenario):
    name = "projectile"
    description = "a ball launched from the floor at a random speed and elevation"
    params = PARAMS
    default_seconds = 2.0

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(ObjectSlot("ball", "sphere", (0.08, 0.08, 0.08), rgba=(0.9, 0.6, 0.1, 1.0)),),
            statics=(FLOOR,),
            timestep=0.002,
            fps=25.0,
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(1.6, -2.6, 0.8), target=(1.6, 0.0, 0.6), fovy=75.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        r = p["radius"][None]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"][None], size=cube_sizes(layout, r),
                          friction=p["friction"][None], restitution=p["restitution"][None])
        phi = jnp.deg2rad(p["elevation"])
        velocity = p["speed"] * jnp.stack([jnp.cos(phi), 0.0, jnp.sin(phi)])
        # Start just above the floor so the launch is not a contact.
        pos = jnp.stack([jnp.zeros(()), jnp.zeros(()), r[0] + 1e-3])[None]
        return w.replace(pos=pos, linvel=velocity[None])
