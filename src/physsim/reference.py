"""The conventional pipeline that `physsim.bench` measures physsim against.

How such datasets are usually made: one scene at a time on the CPU, MuJoCo C
(`mujoco.mj_step`) simulates the factual world and its counterfactual twins,
`mujoco.Renderer` (OpenGL through EGL or OSMesa) draws the observation
window while the simulation runs, the answers are computed on the host, and
every sample goes to disk as PNG frames plus a JSON record. Then a trainer
would read them back.

It asks the same questions of the same families as physsim: worlds are drawn
from the family's own sampler and its facts are measured by the family's own
`facts` (jitted once for a single world, called once per scene), so the two
pipelines differ only in how they simulate, render and store. The reference is
given a fair configuration: no multisampling, no reflections, a shadow map
sized for a small image (MuJoCo's default 4096² shadow map alone costs ~30 ms a
frame in software GL), and contact events read with vectorised NumPy.

The GL backend is chosen when `mujoco` is first imported (`MUJOCO_GL`), so
the benchmark runs this module in a child process: `python -m physsim.reference
--family collision --scenes 32 --gl egl --out DIR` prints one JSON object.
With `--gl jax` (what the benchmark falls back to when neither EGL nor OSMesa
can be had) frames are drawn by physsim's own ray caster, one scene at a time.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import mujoco
import numpy as np
from PIL import Image

from physsim import _names
from physsim import episode
from physsim import render as render_lib
from physsim import scenarios
from physsim.scenarios.base import Run
from physsim.sim.scene import build_mj_model, scene_index
from physsim.sim.simulate import n_frames_for, rollout_mj

GL_BACKENDS = ("egl", "osmesa")
RENDERERS = GL_BACKENDS + ("jax",)
SHADOW_MAP = 256  # texels; plenty for a 64x64 image


@dataclasses.dataclass
class Timer:
    """Seconds spent per stage of the reference pipeline."""
    stages: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - since
        return now


def free_camera(camera) -> mujoco.MjvCamera:
    """A MuJoCo free camera with the pose of a physsim `Camera` (the model's fovy must be set to match)."""
    eye, target = np.asarray(camera.position, float), np.asarray(camera.target, float)
    forward = (target - eye) / np.linalg.norm(target - eye)
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = target
    cam.distance = float(np.linalg.norm(target - eye))
    cam.azimuth = float(np.degrees(np.arctan2(forward[1], forward[0])))
    cam.elevation = float(np.degrees(np.arcsin(forward[2])))
    return cam


class GLRenderer:
    """`mujoco.Renderer` drawing one family's scenes through the family camera."""
    def __init__(self, family: str, width: int, height: int):
        scenario = scenarios.get(family)
        self.layout = scenario.layout()
        camera = scenario.camera(width, height)
        self.model = copy.deepcopy(build_mj_model(self.layout))  # its own copy: geom sizes change per scene
        self.model.vis.global_.fovy = camera.fovy
        self.model.vis.quality.shadowsize = SHADOW_MAP
        self.model.vis.quality.offsamples = 0
        self.renderer = mujoco.Renderer(self.model, height, width)
        self.camera = free_camera(camera)

    def set_world(self, geom_size) -> None:
        self.model.geom_size[scene_index(self.layout).object_geom] = geom_size

    def frame(self, data):
        self.renderer.update_scene(data, camera=self.camera)
        scene = self.renderer.scene
        scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self.renderer.render()


class JaxRenderer:
    """physsim's ray caster, one frame at a time (the fallback when no OpenGL can be had)."""
    def __init__(self, family: str, width: int, height: int):
        scenario = scenarios.get(family)
        layout, camera = scenario.layout(), scenario.camera(width, height)
        self._render = jax.jit(lambda xpos, xmat, size: render_lib.render(
            xpos[None, None], xmat[None, None], size[None], None, layout=layout, camera=camera).rgb[0, 0])
        self._size = None

    def set_world(self, geom_size) -> None:
        self._size = geom_size

    def frame(self, data):
        return np.asarray(self._render(data.geom_xpos.astype("float32"), data.geom_xmat.reshape(-1, 3, 3)
                                             .astype("float32"), self._size.astype("float32")))


def simulate(layout, world, n_frames: int, *, render=None, render_frames=(), cache=None):
    """One world by MuJoCo C (`physsim.sim.simulate.rollout_mj`), drawing `render_frames` as it reaches them.

    Returns (Frames, list of images, seconds spent rendering).
    """
    drawn, images, seconds = set(render_frames), [], [0.0]

    def on_frame(k, data):
        if render is not None and k in drawn:
            start = time.perf_counter()
            images.append(render.frame(data))
            seconds[0] += time.perf_counter() - start

    frames = rollout_mj(world, layout=layout, n_frames=n_frames, on_frame=on_frame, cache=cache)
    return frames, images, seconds[0]


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def run(family: str, n_scenes: int, out: Path, *, gl: str = "egl", seed: int = 0, split: str = "train",
        width: int = 64, height: int = 64) -> dict:
    """Makes `n_scenes` question samples of `family` the conventional way; returns rates and stage times.

    A scene with no well-posed question is simulated and rendered like any
    other but yields no sample (physsim's count is of valid questions too).
    """
    if gl not in RENDERERS:
        raise _names.unknown("reference renderer", gl, RENDERERS)
    spec = episode.BatchSpec(family, split=split, n_worlds=1, n_questions=1, width=width, height=height).resolved()
    scenario = scenarios.get(family)
    layout = scenario.layout()
    n_frames = n_frames_for(layout, spec.seconds)
    shown = [int(k) for k in spec.video_frames()]
    templates = scenario.questions

    renderer = (JaxRenderer if gl == "jax" else GLRenderer)(family, width, height)

    view = episode.View.of(spec)

    @jax.jit
    def facts_of(params, world, frames, twins):
        return scenario.facts(Run(params=params, world=world, frames=frames, twins=twins,
                                  observe_seconds=view.observe_seconds, frame_stride=view.frame_stride,
                                  camera=view.camera, camera_jitter=view.camera_jitter), layout)

    @jax.jit
    def worlds_of(key):
        """Each scene, its twins, and its knife-edge shadow with the shadow's twins (as physsim asks)."""
        params = scenario.sample(key, n_scenes, split)
        world = jax.vmap(lambda p: scenario.world(p, layout))(params)
        shadow = episode.shadow_world(world)
        return (params, world, episode.twin_worlds(family, params, world), shadow,
                episode.twin_worlds(family, params, shadow))

    def labels(p, w, tws, sh, sh_tws, frames, cache):
        """The scene's facts, and which templates are well posed and not knife-edge (physsim's rule)."""
        twins = {name: simulate(layout, tw, n_frames, cache=cache)[0] for name, tw in zip(scenario.twins, tws)}
        shadow = simulate(layout, sh, n_frames, cache=cache)[0]
        shadow_twins = {name: simulate(layout, tw, n_frames, cache=cache)[0]
                        for name, tw in zip(scenario.twins, sh_tws)}
        facts, shadow_facts = _host((facts_of(p, w, frames, twins), facts_of(p, sh, shadow, shadow_twins)))
        sound = all(fr.valid.all() for fr in (frames, shadow, *twins.values(), *shadow_twins.values()))
        batch = lambda f: jax.tree.map(lambda x: np.asarray(x)[None], f)  # noqa: E731
        askable = [tpl for tpl in templates if sound and bool(facts[tpl.fact].valid)
                   and bool(episode.stable(tpl, batch(facts[tpl.fact]), batch(shadow_facts[tpl.fact]))[0])]
        return facts, askable

    # Warm-up, not timed: compile the facts and renderer on one throw-away scene.
    warm = _host(worlds_of(jax.random.key(seed + 1)))
    one = jax.tree.map(lambda x: x[0], warm)
    renderer.set_world(one[1].size)
    frames, _, _ = simulate(layout, one[1], n_frames, render=renderer, render_frames=shown[:1])
    labels(*one, frames, {})

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    timer = Timer()
    start = t = time.perf_counter()
    scenes = _host(worlds_of(jax.random.key(seed)))
    t = timer.add("answers", t)
    samples, cache = 0, {}
    for i in range(n_scenes):
        p, w, tws, sh, sh_tws = jax.tree.map(lambda x, i=i: x[i], scenes)
        renderer.set_world(w.size)
        frames, images, drawing = simulate(layout, w, n_frames, render=renderer, render_frames=shown, cache=cache)
        timer.stages["render"] = timer.stages.get("render", 0.0) + drawing
        facts, askable = labels(p, w, tws, sh, sh_tws, frames, cache)
        t = timer.add("simulate", t)
        timer.stages["simulate"] -= drawing
        record = None
        if askable:
            tpl = askable[rng.integers(len(askable))]
            f = facts[tpl.fact]
            paraphrase = int(rng.integers(len(tpl.paraphrases)))
            record = {"id": f"{family}-{seed}-{i:06d}",
                      **episode.describe(spec, tpl, float(f.value), float(f.time), paraphrase),
                      "params": {k: np.asarray(v).tolist() for k, v in p.items()}}
        t = timer.add("answers", t)
        if record is not None:
            paths = []
            for k, image in zip(shown, images):
                path = out / "images" / f"{i:06d}_{k:02d}.png"
                Image.fromarray(image).save(path)
                paths.append(str(path.relative_to(out)))
            record["frames"] = paths
            (out / "samples" / f"{i:06d}.json").write_text(json.dumps(record))
            samples += 1
        t = timer.add("write", t)
    elapsed = time.perf_counter() - start
    return {"family": family, "scenes": n_scenes, "samples": samples, "seconds": elapsed,
            "qa_per_s": samples / elapsed, "renderer": gl, "video_frames": len(shown),
            "resolution": f"{width}x{height}", "stages": timer.stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, choices=scenarios.names())
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--gl", choices=RENDERERS, default=os.environ.get("MUJOCO_GL", "egl"),
                        help="egl / osmesa: mujoco.Renderer through that OpenGL; jax: physsim's ray caster")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--out", type=Path, default=None, help="where samples are written (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.gl in GL_BACKENDS and os.environ.get("MUJOCO_GL") != args.gl:
        parser.error(f"--gl {args.gl} needs MUJOCO_GL={args.gl} in the environment (mujoco reads it on import)")
    if args.scenes < 1:
        parser.error(f"--scenes {args.scenes} must be at least 1")
    try:
        with tempfile.TemporaryDirectory(prefix="physsim-reference-") as tmp:
            result = run(args.family, args.scenes, args.out or Path(tmp), gl=args.gl, seed=args.seed,
                         width=args.size, height=args.size)
    except Exception as err:  # e.g. no EGL device: the caller falls back to another renderer
        print(json.dumps({"error": f"{type(err).__name__}: {err}", "renderer": args.gl}))
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
