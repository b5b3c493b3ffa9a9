"""The optional MJX-Warp implementation (warp-lang + mujoco-warp; runs on the CPU too)."""

import jax
import numpy as np
import pytest

pytest.importorskip("mujoco_warp")

import physsim.env


def test_warp_rollout_matches_jax_in_flight_and_marks_contacts_unmeasured():
    key = jax.random.key(5)
    jax_env = physsim.env.make("projectile")
    warp_env = physsim.env.make("projectile", impl="warp")
    # Steep, fast launches: every ball is still in the air at 0.4 s.
    state = jax_env.reset(key, batch_size=4, elevation=70.0, speed=[5.0, 5.5, 6.0, 4.5])
    by_jax = jax_env.rollout(state, 0.4)
    by_warp = warp_env.rollout(state, 0.4)
    np.testing.assert_allclose(np.asarray(by_warp.frames.pos), np.asarray(by_jax.frames.pos), atol=1e-4)
    assert np.isnan(np.asarray(by_warp.frames.contact_impulse)).all()
    assert not np.asarray(by_warp.frames.contact_touch).any()
