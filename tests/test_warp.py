"""The optional MJX-Warp implementation (warp-lang + mujoco-warp; runs on the CPU too).

`make test` runs this module in its own pytest process: in a whole-suite
process, XLA crashed compiling (or caching) a JAX program here after Warp,
which brings its own LLVM, had run (3 of 4 fresh-clone runs, jaxlib 0.10.2).
"""

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
    state = jax_env.reset(key, batch_size=4, elevation=70.0, speed=[[5.0, 5.5], [6.0, 4.5], [5.2, 5.8], [4.6, 5.1]])
    by_jax = jax_env.rollout(state, 0.4)
    by_warp = warp_env.rollout(state, 0.4)
    np.testing.assert_allclose(np.asarray(by_warp.frames.pos), np.asarray(by_jax.frames.pos), atol=1e-4)
    assert np.isnan(np.asarray(by_warp.frames.contact_impulse)).all()
    assert not np.asarray(by_warp.frames.contact_touch).any()


@pytest.mark.parametrize("family", physsim.env.list())
def test_warp_renderer_agrees_with_jax_ray_caster(family):
    """Same randomised worlds and jittered cameras: masks agree (IoU >= 0.97 per object), depth within 1%."""
    env = physsim.env.make(family)
    traj = env.rollout(env.reset(jax.random.key(11), batch_size=3), 0.4)
    kwargs = dict(width=48, height=40, jitter_key=jax.random.key(2))
    by_jax = env.render_images(traj, **kwargs)
    by_warp = env.render_images(traj, backend="warp", **kwargs)
    seg_j, seg_w = np.asarray(by_jax.segmentation), np.asarray(by_warp.segmentation)
    visible = [s for s in np.unique(seg_j) if s >= 0]
    in_play = {i for i in range(env.layout.n_objects) if (np.asarray(traj.frames.pos)[:, 0, i, 0] < 40).any()}
    assert in_play and in_play <= set(visible), "every object in play should be in view somewhere"
    for s in visible:
        a, b = seg_j == s, seg_w == s
        iou = (a & b).sum() / (a | b).sum()
        assert iou >= 0.97, f"{family}: segment {s} IoU {iou:.3f}"
    d_j, d_w = np.asarray(by_jax.depth), np.asarray(by_warp.depth)
    both = np.isfinite(d_j) & np.isfinite(d_w)
    assert both.mean() > 0.5
    np.testing.assert_allclose(d_w[both], d_j[both], rtol=0.01)
    # Where one sees sky, so does the other (up to a few grazing-angle pixels).
    assert (np.isinf(d_j) != np.isinf(d_w)).mean() < 0.005
    # Colours are not expected to match exactly (lighting models differ) but objects keep their hue.
    rgb_j, rgb_w = np.asarray(by_jax.rgb, np.float32), np.asarray(by_warp.rgb, np.float32)
    for s in sorted(in_play):
        mask = (seg_j == s) & (seg_w == s)
        mean_j, mean_w = rgb_j[mask].mean(0), rgb_w[mask].mean(0)
        assert np.argmax(mean_j) == np.argmax(mean_w), f"{family}: object {s} colour {mean_j} vs {mean_w}"
