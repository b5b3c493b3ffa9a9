"""Simulation plumbing: inertias, restitution calibration, contact events, layout checks."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from physsim.sim import contact, randomize
from physsim.sim.scene import OBJECT_SHAPES, ObjectSlot, SceneLayout, StaticGeom, put_model


@pytest.mark.parametrize(
    "shape, size",
    [("sphere", (0.07, 0, 0)), ("box", (0.05, 0.1, 0.2)), ("ellipsoid", (0.05, 0.1, 0.2)),
     ("cylinder", (0.05, 0.2, 0)), ("capsule", (0.05, 0.2, 0))],
)
def test_inertia_matches_mujoco_compiler(shape, size):
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body()
    body.add_freejoint()
    body.add_geom(type=OBJECT_SHAPES[shape], size=list(size), mass=1.7)
    m = spec.compile()
    ours = np.asarray(randomize.inertia(shape, jnp.asarray(size, jnp.float32), jnp.float32(1.7)))
    # MuJoCo orders principal axes by its own convention; compare as sets.
    np.testing.assert_allclose(np.sort(ours), np.sort(m.body_inertia[1]), rtol=1e-4)


def test_restitution_table_is_monotone_and_covers_the_declared_range():
    rebound, damping = contact.restitution_table(0.002)
    assert np.all(np.diff(rebound) < 0) and np.all(np.diff(damping) > 0)
    lo, hi = contact.RESTITUTION_RANGE
    assert rebound.min() <= lo and rebound.max() >= hi
    # Interpolation returns a damping whose measured rebound is the one asked for.
    for e in (0.25, 0.5, 0.9):
        b = float(contact.restitution_to_damping(jnp.float32(e), 0.002))
        i = np.searchsorted(damping, b)
        assert rebound[i] <= e + 1e-6 <= rebound[i - 1] + 2e-6


def test_unsupported_geom_pair_fails_at_build_time():
    layout = SceneLayout(
        objects=(ObjectSlot("can", "cylinder", (0.05, 0.1, 0.0)), ObjectSlot("crate", "box", (0.1, 0.1, 0.1))),
        statics=(StaticGeom("floor", "plane", (0.0, 0.0, 0.05)),),
    )
    with pytest.raises(ValueError, match="CYLINDER.*BOX.*not implemented"):
        put_model(layout)


@pytest.mark.parametrize(
    "objects, pattern",
    [
        ((ObjectSlot("a", "cone", (0.1, 0.1, 0.1)),), "unknown shape 'cone'"),
        ((ObjectSlot("a", "sphere", (0.1, 0.1, 0.1), condim=2),), "condim=2"),
        ((ObjectSlot("a", "sphere", (0.1, 0.1, 0.1)), ObjectSlot("a", "box", (0.1, 0.1, 0.1))), "duplicate"),
    ],
)
def test_layout_validation(objects, pattern):
    with pytest.raises(ValueError, match=pattern):
        SceneLayout(objects=objects, statics=())


@pytest.fixture(scope="session")
def head_on(collision_env, key):
    # The slipperiest balls allowed: floor friction barely changes the momentum the push gives.
    state = collision_env.reset(key, batch_size=4, speed=[2.0, 0.0], gap=0.5, radius=0.08, friction=0.03,
                                mass=[[1.0, 1.0], [1.0, 3.0], [3.0, 1.0], [1.0, 1.0]], restitution=0.8)
    return state, collision_env.rollout(state)  # the default 2 s: the program test_bench's rollout compiles


def test_contact_events_name_the_pair_and_the_time(collision_env, head_on):
    state, traj = head_on
    pair = collision_env.pair_names.index("red_ball/blue_ball")
    touch = np.asarray(traj.frames.contact_touch[:, :, pair])
    first_frame = touch.argmax(axis=1)
    assert touch.any(axis=1).all()
    first_time = np.asarray(traj.frames.contact_time[np.arange(4), first_frame, pair])
    # Red covers the 0.5 m gap at 2 m/s: contact at 0.25 s, within one contact duration.
    np.testing.assert_allclose(first_time, 0.25, atol=0.02)
    assert np.isinf(np.asarray(traj.frames.contact_time[:, 0, pair])).all()


def test_contact_impulse_equals_momentum_change(collision_env, head_on):
    state, traj = head_on
    pair = collision_env.pair_names.index("red_ball/blue_ball")
    # Impact at 0.25 s falls in the frame interval (0.24, 0.28]; the blue ball is at rest before it.
    before, after = 6, 7
    assert np.asarray(traj.frames.contact_touch[:, after, pair]).all()
    impulse = np.asarray(traj.frames.contact_impulse[:, after, pair])
    blue_mass = np.asarray(traj.world.mass[:, 1])
    gained = blue_mass * np.asarray(traj.frames.linvel[:, after, 1, 0] - traj.frames.linvel[:, before, 1, 0])
    # Floor friction takes mu * m * g * ~30 ms, about 1% of it, in this interval.
    np.testing.assert_allclose(impulse, gained, rtol=0.02)
    # A heavier target gets a larger push from the same ball.
    assert impulse[1] > impulse[0] and impulse[2] > impulse[0]


def test_heavier_ball_changes_the_outcome(head_on):
    _, traj = head_on
    v = np.asarray(traj.frames.linvel[:, 10, :, 0])  # 0.4 s: after the impact
    assert v[1, 1] < v[0, 1] < v[2, 1]  # blue ball is slower when heavier, faster when hit by a heavier ball
    assert v[1, 0] < 0 < v[2, 0]  # a light red ball bounces back off a heavy blue one


@pytest.mark.slow
def test_speed_bound_marks_invalid_worlds():
    from physsim.scenarios import get
    from physsim.sim import simulate

    scenario = get("projectile")
    layout = scenario.layout()
    params = scenario.sample(jax.random.key(3), 2)
    world = jax.vmap(lambda p: scenario.world(p, layout))(params)
    world = world.replace(linvel=world.linvel.at[0, 0, 0].set(1e3))
    frames = simulate.rollout(world, layout=layout, n_frames=3)
    assert np.asarray(frames.valid).tolist() == [[False] * 3, [True] * 3]
