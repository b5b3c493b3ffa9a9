"""The notebook API: make a scene family, sample a batch of worlds, roll them out.

    import jax, physsim.env
    env = physsim.env.make("ramp")
    state = env.reset(jax.random.key(0), batch_size=64, friction=0.3)
    traj = env.rollout(state, seconds=2.0)
    traj.frames.pos        # (64, 51, N, 3) object positions per frame
    traj.params["angle"]   # (64,) the sampled slope angles

Every call is a pure function of its inputs; the same key gives the same worlds.
"""

from __future__ import annotations

import builtins
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from physsim import episode
from physsim import render as render_lib
from physsim import scenarios
from physsim.render import Camera, Images
from physsim.scenarios.base import FamilyConfig
from physsim.sim import params as params_lib
from physsim.sim import simulate
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import SceneLayout, put_model, scene_index


def list() -> builtins.list[str]:
    """Names of the registered scene families."""
    return scenarios.names()


@struct.dataclass
class EnvState:
    """A batch of sampled worlds before simulation."""

    params: dict[str, jax.Array]  # each (B,) or (B, N)

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.params.values())).shape[0])


@struct.dataclass
class Trajectory:
    """A simulated batch: sampled parameters, the physics they map to, recorded frames."""

    params: dict[str, jax.Array]  # each (B,) or (B, N)
    world: WorldParams  # leading (B,)
    frames: simulate.Frames  # (B, T, ...)

    @property
    def time(self) -> jax.Array:
        """(T,) frame times in seconds (the same for every world)."""
        return self.frames.time[0]


_rollout = jax.jit(episode.rollout, static_argnums=(0, 2), static_argnames=("layout", "impl"))
_measure_facts = jax.jit(episode.measure_facts, static_argnums=0, static_argnames=("view", "impl"))


class InvalidWorldError(ValueError):
    """Raised when simulated worlds exploded (non-finite state or absurd speed)."""


@dataclasses.dataclass(frozen=True)
class Env:
    """One scene family with fixed layout, split and MJX implementation."""

    name: str
    layout: SceneLayout
    split: str = "train"
    impl: str = "jax"
    config: FamilyConfig | None = None  # the family's tunable values (None: as declared)

    @property
    def scenario(self) -> type[scenarios.Scenario]:
        return scenarios.get(self.name).configured(self.config)

    @property
    def param_specs(self) -> tuple[params_lib.Param, ...]:
        return self.scenario.params

    @property
    def object_names(self) -> builtins.list[str]:
        return [o.name for o in self.layout.objects]

    @property
    def pair_names(self) -> builtins.list[str]:
        """Readable names of the contact-event pairs, e.g. 'environment/ball'."""
        entities = ["environment"] + self.object_names
        return [f"{entities[a]}/{entities[b]}" for a, b in scene_index(self.layout).pair_entities]

    def reset(self, key: jax.Array, batch_size: int = 1, **overrides: Any) -> EnvState:
        """Samples `batch_size` worlds; keyword overrides fix parameters (checked against their valid range)."""
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        sampled = self.scenario.sample(key, int(batch_size), self.split)
        return EnvState(params=params_lib.apply_overrides(self.scenario.params, sampled, overrides, self.name))

    def rollout(self, state: EnvState, seconds: float | None = None, *, check: bool = True) -> Trajectory:
        """Simulates every world of `state` for `seconds` (default: the family's own).

        With `check`, worlds whose simulation exploded raise `InvalidWorldError`
        naming the world and its parameters; pass `check=False` to get the
        trajectory anyway and inspect `traj.frames.valid`.
        """
        seconds = self.scenario.default_seconds if seconds is None else seconds
        n_frames = simulate.n_frames_for(self.layout, seconds)
        world, frames = _rollout(self.scenario, state.params, n_frames, layout=self.layout, impl=self.impl)
        traj = Trajectory(params=state.params, world=world, frames=frames)
        if check:
            self._raise_if_invalid(traj)
        return traj

    def camera(self, width: int = 64, height: int = 64) -> Camera:
        """The family's camera at the given resolution."""
        return self.scenario.camera(width, height)

    def render_images(
        self,
        traj: Trajectory,
        *,
        width: int = 64,
        height: int = 64,
        camera: Camera | None = None,
        jitter_key: jax.Array | None = None,
        jitter: float = 0.15,
        backend: str = "jax",
    ) -> Images:
        """RGB (B, T, H, W, 3) uint8, depth (B, T, H, W) metres, segmentation (B, T, H, W) int32.

        With `jitter_key`, each world's camera position moves by up to `jitter`
        metres along each axis (uniform), still aimed at the same target.
        `backend` is 'jax' (the ray caster, jit-able anywhere) or 'warp'
        (MuJoCo Warp's renderer, when installed).
        """
        camera = camera or self.camera(width, height)
        batch = traj.frames.geom_xpos.shape[0]
        # Always an array (zeros without a key): one compiled program, so a zero jitter is bit-identical.
        offsets = jnp.zeros((batch, 3), jnp.float32)
        if jitter_key is not None:
            if not (jitter >= 0 and np.isfinite(jitter)):
                raise ValueError(f"jitter={jitter} m must be a finite non-negative distance")
            offsets = episode.camera_jitter(jitter_key, batch, jitter)
        return render_lib.render_with(backend)(
            traj.frames.geom_xpos, traj.frames.geom_xmat, traj.world.size, offsets, layout=self.layout, camera=camera
        )

    def render(self, traj: Trajectory, **kwargs) -> jax.Array:
        """The video (B, T, H, W, 3) uint8 of a rollout; keyword arguments as for `render_images`."""
        return self.render_images(traj, **kwargs).rgb

    def ask(self, traj: Trajectory, key: jax.Array | None = None, observe_seconds: float | None = None,
            frame_stride: int = 2) -> builtins.list[builtins.list[dict]]:
        """Every question the family can ask of each world of a rollout, with its measured answer.

        Returns, per world, a list of dicts with 'question' (as written),
        'prompt' (with the context a viewer needs: frame times, a scale),
        'answer', 'explanation' (causal questions), 'task', 'template' and
        'tolerance'. Counterfactual twins and the knife-edge shadow worlds are
        simulated here; `key` picks paraphrases (the first one without a key).
        The video would show every `frame_stride`-th frame up to
        `observe_seconds` (default: the family's), rounded down to a frame shown.
        """
        seconds = (traj.frames.time.shape[1] - 1) / self.layout.fps  # float32 frame times drift off the grid
        spec = episode.BatchSpec(self.name, family_config=self.config, n_worlds=traj.frames.time.shape[0], seconds=seconds,
                                 observe_seconds=observe_seconds, frame_stride=frame_stride, horizons=(),
                                 impl=self.impl).resolved()
        # One compiled program (twins, shadows and facts) rather than the facts' operations one by one: 30%
        # faster on a first call (measured: collision, 4 worlds, 9.3 s against 12.7 s on 2 cores), and cached.
        measure = _measure_facts if self.impl == "jax" else episode.measure_facts
        measured = measure(self.scenario, traj.params, traj.world, traj.frames, view=episode.View.of(spec), impl=self.impl)
        asked, _ = jax.tree.map(np.asarray, episode.askable(spec, measured))
        facts = jax.tree.map(np.asarray, measured.facts)
        rng = np.random.default_rng(None if key is None else np.asarray(jax.random.key_data(key)).tolist())
        out = []
        for b in range(asked.shape[1]):
            world = []
            for i, t in enumerate(spec.templates()):
                if not asked[i, b]:
                    continue
                f = facts[t.fact]
                paraphrase = int(rng.integers(len(t.paraphrases))) if key is not None else 0
                world.append(episode.describe(spec, t, float(f.value[b]), float(f.time[b]), paraphrase))
            out.append(world)
        return out

    def _raise_if_invalid(self, traj: Trajectory) -> None:
        valid = np.asarray(traj.frames.valid).all(axis=1)
        if valid.all():
            return
        bad = np.flatnonzero(~valid)
        first = int(bad[0])
        described = ", ".join(f"{k}={np.asarray(v)[first].tolist()}" for k, v in traj.params.items())
        raise InvalidWorldError(
            f"{len(bad)} of {len(valid)} '{self.name}' worlds exploded (non-finite state or speed above "
            f"{simulate.MAX_SPEED:g} m/s); first is world {first}: {described}"
        )


def _frames_of(video) -> np.ndarray:
    video = np.asarray(video)
    if video.ndim == 5:
        video = video[0]  # the first world of a batch
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"expected a (T, H, W, 3) or (B, T, H, W, 3) uint8 video, got {video.shape} {video.dtype}")
    return video


VIDEO_SUFFIXES = (".gif", ".png", ".mp4")


def save_video(video, path, fps: float = 25.0) -> Path:
    """Writes a (T, H, W, 3) video (or the first world of a batch) as .gif, animated .png or .mp4 (H.264)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"save_video writes {', '.join(VIDEO_SUFFIXES)}; not {path.suffix!r}")
    if not (fps > 0 and np.isfinite(fps)):
        raise ValueError(f"fps={fps} must be a positive number")
    frames = _frames_of(video)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        import imageio.v3 as iio

        # H.264 in yuv420p needs even sides: repeat the last row / column where odd.
        pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
        frames = np.pad(frames, pad, mode="edge")
        with warnings.catch_warnings():
            # imageio starts ffmpeg with fork + exec; JAX's fork warning does not apply to that.
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1)
        return path
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return path


def save_frames(video, directory) -> builtins.list[Path]:
    """Writes each frame of a (T, H, W, 3) video (or the first world of a batch) as frame_###.png."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(_frames_of(video)):
        paths.append(directory / f"frame_{i:03d}.png")
        Image.fromarray(frame).save(paths[-1])
    return paths


def make(
    name: str,
    *,
    split: str = "train",
    impl: str = "jax",
    fps: float | None = None,
    **tunables: Any,
) -> Env:
    """The environment of scene family `name` (see `list()`).

    `split='ood'` samples from the out-of-distribution ranges; `impl` picks the
    MJX implementation ('jax', or 'warp' when installed); `fps` overrides the
    family's frame rate; other keywords set the family's tunable values
    (`scenarios.get(name).default_config()`: `seconds`, `observe_seconds`,
    `train` / `ood` ranges, intervention factors such as collision's
    `heavier=2.0`, the physics settings `timestep`, `solver_iterations` and
    `linesearch_iterations`).
    """
    scenario = scenarios.get(name)
    config = None
    if tunables:
        config = scenario.tuned(tunables)
        scenario = scenario.configured(config)
    params_lib.check_split(split)
    layout = scenario.layout()
    if fps is not None:
        layout = layout.replace(fps=fps)
    put_model(layout, impl)  # fails early on an unknown impl or unsupported geoms
    return Env(name=name, layout=layout, split=split, impl=impl, config=config)


__all__ = ["Env", "EnvState", "InvalidWorldError", "Trajectory", "list", "make", "save_frames", "save_video"]
