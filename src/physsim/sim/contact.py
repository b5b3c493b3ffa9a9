"""Restitution as a contact parameter, calibrated by simulation rather than by formula.

MuJoCo contacts are soft: with the direct reference `solref = (-k, -b)` a
contact behaves like a spring-damper in acceleration units, so its coefficient
of restitution does not depend on mass. The textbook formula for a damped
oscillator is off by 10-60% here, because the contact lets go when its force
reaches zero (not when penetration does) and because time is discrete, so
`restitution_table` measures the rebound of a sphere hitting a plane in zero
gravity with MuJoCo C, once per timestep, and `restitution_to_damping`
interpolates it. Tests check that the restitution measured in MJX matches.

The stiffness is fixed so that an undamped contact lasts `CONTACT_SUBSTEPS`
physics steps: fewer makes the explicit damping unstable (measured: damping
ratios above ~1.2 inject energy at 8 substeps), more lets objects sink deeper.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import mujoco
import numpy as np

CONTACT_SUBSTEPS = 8
# Restitution that the calibrated contact can represent faithfully: below ~0.2
# the damping needed is past the stable range; above 0.95 the discrete
# integration itself adds energy (measured e = 1.004 with zero damping).
RESTITUTION_RANGE = (0.2, 0.95)
# Low friction degenerates MuJoCo's friction pyramid. Measured: a ball resting
# on the floor vibrates without bound below ~0.005 (6 km/s within 0.2 s at
# mu = 0.001); cubes sliding down steep ramps explode below ~0.015 (20 of 1024
# out-of-distribution ramp worlds at mu = 0.011, none at 0.015). 0.03 keeps a
# factor of two of margin over the worst case.
MIN_FRICTION = 0.03
_DAMPING_RATIOS = np.linspace(0.0, 1.0, 51)
# Impedance close to 1 makes a contact follow its reference dynamics, so the
# restitution measured here is the one simulated.
OBJECT_SOLIMP = (0.99, 0.99, 0.001, 0.5, 2.0)


def contact_stiffness(timestep: float) -> float:
    """Stiffness (1/s²) for which an undamped contact lasts CONTACT_SUBSTEPS steps."""
    omega = np.pi / (CONTACT_SUBSTEPS * timestep)
    return float(omega * omega)


def _rebound(model: mujoco.MjModel, data: mujoco.MjData, damping: float, speed: float) -> float:
    model.geom_solref[1] = [-contact_stiffness(model.opt.timestep), -damping]
    mujoco.mj_resetData(model, data)
    radius = model.geom_size[1, 0]
    data.qpos[2] = radius + 1e-6
    data.qvel[2] = -speed
    for _ in range(10 * CONTACT_SUBSTEPS):
        mujoco.mj_step(model, data)
        if data.qpos[2] > radius + 1e-6:
            return float(data.qvel[2] / speed)
    return 0.0


@functools.lru_cache(maxsize=16)
def restitution_table(timestep: float) -> tuple[np.ndarray, np.ndarray]:
    """Measured (restitution, damping) pairs, restitution decreasing, for a timestep."""
    spec = mujoco.MjSpec()
    spec.option.timestep = timestep
    spec.option.gravity = [0.0, 0.0, 0.0]
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1, 1, 0.1])
    body = spec.worldbody.add_body(pos=[0, 0, 1])
    body.add_freejoint()
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.1, 0, 0], mass=1.0, priority=1,
                  solimp=list(OBJECT_SOLIMP))
    model = spec.compile()
    data = mujoco.MjData(model)
    omega = np.sqrt(contact_stiffness(timestep))
    damping = 2.0 * _DAMPING_RATIOS * omega
    rebound = np.array([_rebound(model, data, b, speed=2.0) for b in damping])
    # Keep the monotone (stable) branch only.
    stop = int(np.argmax(np.diff(rebound) >= 0)) + 1 if np.any(np.diff(rebound) >= 0) else len(rebound)
    rebound, damping = rebound[:stop], damping[:stop]
    lo, hi = RESTITUTION_RANGE
    if rebound.min() > lo or rebound.max() < hi:
        raise RuntimeError(
            f"contact calibration at timestep {timestep} covers restitution "
            f"[{rebound.min():.3f}, {rebound.max():.3f}], not {RESTITUTION_RANGE}"
        )
    return rebound, damping


def restitution_to_damping(restitution: jnp.ndarray, timestep: float) -> jnp.ndarray:
    """Direct-solref damping (1/s) giving `restitution` for contacts at this timestep."""
    rebound, damping = restitution_table(timestep)
    # jnp.interp wants increasing x.
    return jnp.interp(restitution, jnp.asarray(rebound[::-1]), jnp.asarray(damping[::-1]))


def restitution_to_solref(restitution: jnp.ndarray, timestep: float) -> jnp.ndarray:
    """(..., 2) direct solref `(-stiffness, -damping)` for each restitution value."""
    damping = restitution_to_damping(restitution, timestep)
    stiffness = jnp.full_like(damping, contact_stiffness(timestep))
    return jnp.stack([-stiffness, -damping], axis=-1)
