"""Building blocks the scene families share: the colour palette, the floor, the common randomised parameters
(gravity, mass, restitution, friction) and helpers that turn sampled values into a `WorldParams`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.sim.contact import RESTITUTION_RANGE
from physsim.sim.params import FRICTION, POSITIVE, Interval, Param
from physsim.sim.randomize import WorldParams, static_defaults
from physsim.sim.scene import PARKING_X, SceneLayout, StaticGeom


# Object colours by name (questions name objects by colour); families pick from these.
PALETTE = {
    "red": (0.85, 0.2, 0.2, 1.0),
    "green": (0.2, 0.7, 0.3, 1.0),
    "blue": (0.2, 0.4, 0.85, 1.0),
    "yellow": (0.9, 0.8, 0.15, 1.0),
    "purple": (0.6, 0.3, 0.75, 1.0),
}


# Parameters every family declares the same way ------------------------------------------

FLOOR = StaticGeom("floor", "plane", (0.0, 0.0, 0.05), rgba=(0.8, 0.8, 0.8, 1.0))

def gravity_param(ood: tuple[tuple[float, float], ...] = ((1.6, 3.7),)) -> Param:
    """Earth gravity in distribution; held out: Moon-to-Mars gravity by default, or a family's own range (one
    whose events must still happen inside its rollout under the held-out gravity)."""
    return Param("gravity", "m/s^2", "magnitude of gravity", train=(9.81, 9.81), ood=ood,
                 valid=Interval(0.0, 30.0, lo_open=True))


GRAVITY = gravity_param()


def mass_param(doc: str, per_object: bool = False, ood: tuple[tuple[float, float], ...] = ((4.0, 10.0),)) -> Param:
    """Masses spread over a decade in distribution; heavier ones held out by default, or a family's own ranges."""
    return Param("mass", "kg", doc, train=(0.2, 2.0), ood=ood, valid=POSITIVE, log=True, per_object=per_object)


def restitution_param(doc: str, train: tuple[float, float], per_object: bool = False) -> Param:
    return Param("restitution", "", doc, train=train, valid=Interval(*RESTITUTION_RANGE), per_object=per_object)


def friction_param(doc: str, train: tuple[float, float], ood: tuple[tuple[float, float], ...] = (),
                   per_object: bool = False) -> Param:
    return Param("friction", "", doc, train=train, ood=ood, valid=FRICTION, per_object=per_object)


# Helpers shared by scene families --------------------------------------------------------


def quat_about_y(angle: jax.Array) -> jax.Array:
    """(4,) quaternion of a rotation by `angle` radians about +y."""
    return jnp.stack([jnp.cos(angle / 2), jnp.zeros_like(angle), jnp.sin(angle / 2), jnp.zeros_like(angle)])


def parked_positions(layout: SceneLayout, half_height: jax.Array) -> jax.Array:
    """(N, 3) resting places far from the action for every slot (unused slots go here)."""
    n = layout.n_objects
    x = PARKING_X + 2.0 * jnp.arange(n, dtype=jnp.float32)
    return jnp.stack([x, jnp.zeros(n), half_height], axis=-1)


def default_world(layout: SceneLayout, *, gravity: jax.Array, mass, size, friction, restitution) -> WorldParams:
    """A world with every object parked at rest; scenarios then place the active ones."""
    n = layout.n_objects
    static_pos, static_quat = static_defaults(layout)
    size = jnp.asarray(size, jnp.float32)
    return WorldParams(
        gravity=jnp.stack([jnp.zeros_like(gravity), jnp.zeros_like(gravity), -gravity]).astype(jnp.float32),
        mass=jnp.asarray(mass, jnp.float32),
        size=size,
        friction=jnp.asarray(friction, jnp.float32),
        restitution=jnp.asarray(restitution, jnp.float32),
        pos=parked_positions(layout, size[:, 2]),
        quat=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (n, 1)),
        linvel=jnp.zeros((n, 3), jnp.float32),
        angvel=jnp.zeros((n, 3), jnp.float32),
        static_pos=jnp.asarray(static_pos),
        static_quat=jnp.asarray(static_quat),
    )


def remove_object(world: WorldParams, layout: SceneLayout, i: int) -> WorldParams:
    """The world without object `i`: parked at rest far away (slots are static, so nothing is deleted)."""
    parked = parked_positions(layout, world.size[:, 2])
    return world.replace(
        pos=world.pos.at[i].set(parked[i]),
        quat=world.quat.at[i].set(jnp.array([1.0, 0.0, 0.0, 0.0])),
        linvel=world.linvel.at[i].set(0.0),
        angvel=world.angvel.at[i].set(0.0),
    )


def cube_sizes(layout: SceneLayout, half_extent: jax.Array) -> jax.Array:
    """(N, 3) MuJoCo sizes for sphere / cube / round-ellipsoid slots from one radius each."""
    for o in layout.objects:
        if o.shape not in ("sphere", "box", "ellipsoid"):
            raise ValueError(f"cube_sizes: slot {o.name!r} has shape {o.shape!r}; give its sizes explicitly")
    return jnp.repeat(jnp.asarray(half_extent, jnp.float32)[:, None], 3, axis=1)
