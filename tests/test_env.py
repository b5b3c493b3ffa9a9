"""The notebook API: names, overrides, errors, determinism, batched randomisation."""

import jax
import numpy as np
import pytest

import physsim.env
from physsim.sim import params as params_lib
from physsim.sim.scene import SceneLayout

RAMP_BATCH, RAMP_SECONDS = 8, 1.0  # one compiled ramp program shared by these tests


def test_list_names_every_family():
    assert {"ramp", "collision", "projectile", "stack", "compare", "chain"} <= set(physsim.env.list())


def test_unknown_scenario_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown scenario 'rmap'.*did you mean 'ramp'"):
        physsim.env.make("rmap")


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"mas": 1.0}, r"unknown parameter.*'mas'.*did you mean 'mass'"),
        ({"mass": -1.0}, r"ramp\.mass=-1 kg is outside the allowed range \(0, inf\)"),
        ({"mass": 0.0}, r"mass=0 kg is outside the allowed range \(0, inf\)"),
        ({"friction": -0.1}, r"friction=-0\.1 .*allowed range \[0\.03, inf\)"),
        ({"friction": 0.0}, r"friction=0 .*allowed range \[0\.03, inf\)"),
        ({"angle": 95.0}, r"angle=95 deg .*\[0, 80\]"),
        ({"restitution": 1.2}, r"restitution=1\.2 .*\[0\.2, 0\.95\]"),
        ({"gravity": float("nan")}, r"gravity=nan is not finite"),
        ({"shape": 0.5}, r"shape=0\.5 must be one of \(0, 1\)"),
        ({"mass": [1.0, 2.0, 3.0]}, r"shape \(3,\) does not fit the parameter's shape \(2,\)"),
        ({"mass": "heavy"}, r"expected a number or array"),
    ],
)
def test_bad_overrides_name_the_value_and_range(ramp_env, key, overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        ramp_env.reset(key, batch_size=2, **overrides)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"timestep": 0.0}, r"timestep=0\.0 s must be in \(0, inf\)"),
        ({"timestep": -0.001}, r"timestep=-0\.001 s must be in \(0, inf\)"),
        ({"timestep": 0.003}, r"not a whole number of timesteps"),
        ({"fps": 0.0}, r"fps=0\.0 must be in \(0, inf\)"),
        ({"split": "test"}, r"unknown split 'test'"),
        ({"impl": "cuda"}, r"unknown MJX impl 'cuda'"),
    ],
)
def test_bad_make_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        physsim.env.make("ramp", **kwargs)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size(ramp_env, key, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        ramp_env.reset(key, batch_size=batch_size)


def test_bad_duration(ramp_env, key):
    state = ramp_env.reset(key, batch_size=RAMP_BATCH)
    for seconds, pattern in [(0.0, r"seconds=0\.0 must be"), (0.01, r"not a whole number of frames")]:
        with pytest.raises(ValueError, match=pattern):
            ramp_env.rollout(state, seconds)


@pytest.fixture(scope="session")
def ramp_traj(ramp_env, key):
    state = ramp_env.reset(key, batch_size=RAMP_BATCH)
    return state, ramp_env.rollout(state, RAMP_SECONDS)


def test_trajectory_shapes_and_frame_times(ramp_env, ramp_traj):
    state, traj = ramp_traj
    n_frames = int(RAMP_SECONDS * ramp_env.layout.fps) + 1
    n_obj = ramp_env.layout.n_objects
    assert traj.frames.pos.shape == (RAMP_BATCH, n_frames, n_obj, 3)
    assert traj.frames.linvel.shape == (RAMP_BATCH, n_frames, n_obj, 3)
    assert traj.frames.contact_impulse.shape == (RAMP_BATCH, n_frames, len(ramp_env.pair_names))
    # Frames are recorded at the layout's frame rate, not every physics step.
    np.testing.assert_allclose(np.asarray(traj.time), np.arange(n_frames) / ramp_env.layout.fps, atol=1e-5)
    assert set(traj.params) == {p.name for p in ramp_env.param_specs}
    assert bool(np.asarray(traj.frames.valid).all())


def test_same_key_same_worlds_and_trajectory(ramp_env, key, ramp_traj):
    state, traj = ramp_traj
    again = ramp_env.reset(key, batch_size=RAMP_BATCH)
    for name in state.params:
        np.testing.assert_array_equal(np.asarray(state.params[name]), np.asarray(again.params[name]))
    np.testing.assert_array_equal(np.asarray(ramp_env.rollout(again, RAMP_SECONDS).frames.pos), np.asarray(traj.frames.pos))
    other = ramp_env.reset(jax.random.key(1), batch_size=RAMP_BATCH)
    assert not np.allclose(np.asarray(other.params["angle"]), np.asarray(state.params["angle"]))


def test_sampled_parameters_stay_in_their_ranges(key):
    for split in ("train", "ood"):
        env = physsim.env.make("ramp", split=split)
        params = env.reset(key, batch_size=512).params
        for spec in env.param_specs:
            values = np.asarray(params[spec.name])
            ranges = spec.ood if (split == "ood" and spec.ood) else spec.train_segments()
            inside = np.zeros(values.shape, bool)
            for lo, hi in ranges:
                inside |= (values >= lo - 1e-5) & (values <= hi + 1e-5)
            assert inside.all(), (split, spec.name)
    ood_gravity = np.asarray(physsim.env.make("ramp", split="ood").reset(key, batch_size=64).params["gravity"])
    assert ood_gravity.min() >= 1.6 and ood_gravity.max() <= 3.7 and ood_gravity.std() > 0.1


def test_a_gap_in_a_training_range_is_never_drawn_and_the_rest_is_uniform(key):
    spec = params_lib.Param("x", "", "", train=(-1.0, 2.0), valid=params_lib.Interval(-5.0, 5.0),
                            gaps=((1.0, 1.5), (-0.5, 0.0)))
    x = np.asarray(spec.sample(key, (40_000,), "train"))
    assert ((x >= -1.0) & (x <= 2.0)).all()
    assert not (((x > 1.0) & (x < 1.5)) | ((x > -0.5) & (x < 0.0))).any()
    # Uniform over the 2 units left: each half-unit bin holds a quarter (binomial sd 0.0022 at this size).
    for lo in (-1.0, 0.0, 0.5, 1.5):
        assert abs(np.mean((x >= lo) & (x < lo + 0.5)) - 0.25) < 0.01, lo
    for gaps in (((1.0, 3.0),), ((0.0, 1.0), (0.5, 1.5))):
        with pytest.raises(ValueError, match="gap"):
            params_lib.Param("x", "", "", train=(-1.0, 2.0), valid=params_lib.Interval(-5.0, 5.0), gaps=gaps)


def test_stack_draws_no_block_with_its_centre_near_its_supports_edge(key):
    """The stack family's knife-edge band (a block shifted half a width) is left out of every split."""
    from physsim.scenarios import stack

    spec = next(p for p in stack.PARAMS if p.name == "shift")
    for split in ("train", "ood"):
        shift = np.abs(np.asarray(spec.sample(key, (4096, 5), split)))
        assert not ((shift > 0.45) & (shift < 0.55)).any() and (shift > 0.55).mean() > 0.1, split


def test_parameters_change_the_motion(ramp_env, key):
    # Same cube on the same 30 degree slope; only friction or gravity differs.
    friction = np.array([0.1, 0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1])
    gravity = np.array([9.81, 3.0, 9.81, 9.81, 9.81, 9.81, 9.81, 9.81])
    state = ramp_env.reset(key, batch_size=RAMP_BATCH, shape=1, angle=30.0, start=1.2, size=0.06,
                           friction=friction, gravity=gravity)
    traj = ramp_env.rollout(state, RAMP_SECONDS)
    travelled = np.linalg.norm(np.asarray(traj.frames.pos[:, 10, 1] - traj.frames.pos[:, 0, 1]), axis=-1)
    assert travelled[2] < 0.8 * travelled[0]  # more friction, less distance
    assert travelled[1] < 0.5 * travelled[0]  # weaker gravity, slower slide
    # Worlds 3..7 are identical except for sampled mass and restitution: on the slope,
    # before landing, a sliding block's motion does not depend on its mass.
    np.testing.assert_allclose(travelled[3:], travelled[3], rtol=1e-2)


def test_overrides_reach_the_physics(ramp_env, key):
    state = ramp_env.reset(key, batch_size=RAMP_BATCH, mass=2.5, friction=0.4)
    traj = ramp_env.rollout(state, RAMP_SECONDS)
    np.testing.assert_allclose(np.asarray(traj.world.mass), 2.5)
    np.testing.assert_allclose(np.asarray(traj.world.friction), 0.4)


@pytest.mark.slow
def test_1024_different_worlds_in_one_jitted_call(key):
    env = physsim.env.make("ramp", split="ood")  # gravity varies in the ood split
    state = env.reset(key, batch_size=1024)
    traj = env.rollout(state, 0.2)  # 0.2 s: 6 frames, 100 steps (the worlds differ from the first frame on)
    for name in ("mass", "friction", "gravity"):
        assert np.unique(np.asarray(state.params[name])).size > 1000
    assert traj.frames.pos.shape[:2] == (1024, round(0.2 * env.layout.fps) + 1)
    assert bool(np.asarray(traj.frames.valid).all())
    final = np.asarray(traj.frames.pos[:, -1]).reshape(1024, -1)
    assert np.unique(np.round(final, 6), axis=0).shape[0] > 1000


@pytest.mark.slow
def test_exploding_world_is_reported_with_its_parameters(key):
    env = physsim.env.make("projectile")
    state = env.reset(key, batch_size=2)
    # Bypass the range check on purpose: a launch at 500 m/s is beyond any sane scene.
    speed = np.asarray(state.params["speed"]).copy()
    speed[1, 0] = 500.0
    broken = state.replace(params={**state.params, "speed": jax.numpy.asarray(speed)})
    with pytest.raises(physsim.env.InvalidWorldError, match=r"1 of 2 'projectile' worlds exploded.*world 1: speed=\[500"):
        env.rollout(broken, 0.4)
    traj = env.rollout(broken, 0.4, check=False)
    assert np.asarray(traj.frames.valid).all(axis=1).tolist() == [True, False]


def test_layout_rejects_inconsistent_timing():
    with pytest.raises(ValueError, match="not a whole number of timesteps"):
        SceneLayout(objects=(), statics=(), timestep=0.002, fps=30.0)


def test_per_object_override_shapes(collision_env, key):
    # Batch size equals the object count on purpose: a 1-D value is per object, never per world.
    state = collision_env.reset(key, batch_size=2, speed=[2.0, 0.5], mass=[[1.0], [3.0]])
    np.testing.assert_allclose(np.asarray(state.params["speed"]), [[2.0, 0.5], [2.0, 0.5]])
    np.testing.assert_allclose(np.asarray(state.params["mass"]), [[1.0, 1.0], [3.0, 3.0]])


def test_render_video_and_files(ramp_env, ramp_traj, tmp_path):
    from PIL import Image

    _, traj = ramp_traj
    images = ramp_env.render_images(traj, width=32, height=24)
    n_frames = traj.frames.pos.shape[1]
    assert images.rgb.shape == (RAMP_BATCH, n_frames, 24, 32, 3) and images.rgb.dtype == np.uint8
    assert images.depth.shape == (RAMP_BATCH, n_frames, 24, 32)
    seg = np.asarray(images.segmentation)
    # Every world shows its active object (slot 0 ball or slot 1 cube), the floor and the ramp.
    shape = np.asarray(traj.params["shape"]).astype(int)
    for b in range(RAMP_BATCH):
        assert (seg[b, 0] == shape[b]).any()
        assert not (seg[b, 0] == 1 - shape[b]).any()  # the parked slot is out of view
    assert {2, 3} <= set(np.unique(seg).tolist())
    # The video is the RGB of the same render.
    np.testing.assert_array_equal(np.asarray(ramp_env.render(traj, width=32, height=24)), np.asarray(images.rgb))

    gif = physsim.env.save_video(images.rgb, tmp_path / "ramp.gif", fps=25.0)
    with Image.open(gif) as im:
        assert im.size == (32, 24)
        # GIF merges identical consecutive frames (a block that sticks); the duration adds up.
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        assert sum(durations) == n_frames * 40
        last = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(last - np.asarray(images.rgb[0, -1]).astype(int)).mean() < 3  # palette rounding only
    paths = physsim.env.save_frames(images.rgb[1], tmp_path / "frames")
    assert len(paths) == n_frames
    np.testing.assert_array_equal(np.asarray(Image.open(paths[3])), np.asarray(images.rgb[1, 3]))
    # MP4 (H.264): odd sides are padded to even by repeating the edge; lossy, so compare loosely.
    import imageio.v3 as iio

    mp4 = physsim.env.save_video(images.rgb[:, :, :23, :31], tmp_path / "ramp.mp4", fps=25.0)
    decoded = iio.imread(mp4)
    assert decoded.shape == (n_frames, 24, 32, 3)
    assert iio.immeta(mp4)["fps"] == 25.0
    error = np.abs(decoded[:, :23, :31].astype(int) - np.asarray(images.rgb[0, :, :23, :31]).astype(int))
    assert error.mean() < 8
    with pytest.raises(ValueError, match="not '.avi'"):
        physsim.env.save_video(images.rgb, tmp_path / "ramp.avi")
    with pytest.raises(ValueError, match="fps=0"):
        physsim.env.save_video(images.rgb, tmp_path / "ramp.gif", fps=0)
    with pytest.raises(ValueError, match="uint8 video"):
        physsim.env.save_frames(np.zeros((4, 4)), tmp_path / "bad")


def test_camera_jitter_moves_each_world_view_reproducibly(ramp_env, ramp_traj):
    _, traj = ramp_traj
    plain = np.asarray(ramp_env.render(traj, width=32, height=24))
    key = jax.random.key(9)
    jittered = np.asarray(ramp_env.render(traj, width=32, height=24, jitter_key=key))
    again = np.asarray(ramp_env.render(traj, width=32, height=24, jitter_key=key))
    still = np.asarray(ramp_env.render(traj, width=32, height=24, jitter_key=key, jitter=0.0))
    np.testing.assert_array_equal(jittered, again)
    np.testing.assert_array_equal(still, plain)
    changed = [(jittered[b, 0] != plain[b, 0]).any() for b in range(RAMP_BATCH)]
    assert all(changed)
    with pytest.raises(ValueError, match="jitter=-1"):
        ramp_env.render(traj, jitter_key=key, jitter=-1.0)
