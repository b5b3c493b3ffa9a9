"""The bench's sections: each times one stage (or the whole step) and returns result rows."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from physsim import env as env_lib
from physsim import scenarios
from physsim import render as render_lib
from physsim.sim.scene import DEFAULT_PHYSICS, warp_available


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile + warm-up, not timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '') or platform.processor() or 'cpu'}"


def bench_physics(batch_sizes, seconds: float, repeats: int, families=None, physics: dict | None = None) -> list[dict]:
    """World-steps and simulated world-seconds per second of each family's factual rollouts, at its declared
    physics settings or at `physics` (timestep, solver and line-search iterations) for every family."""
    rows = []
    for name in families or env_lib.list():
        env = env_lib.make(name, **(physics or {}))
        settings = {k: getattr(env.layout, k) for k in DEFAULT_PHYSICS}
        steps = int(round(seconds / env.layout.timestep))
        for b in batch_sizes:
            state = env.reset(jax.random.key(0), batch_size=b)
            elapsed = _median_seconds(lambda: env.rollout(state, seconds, check=False).frames.pos, repeats)
            rows.append({"section": "physics", "scenario": name, "batch_size": b, "figure": b * steps / elapsed,
                         "unit": "world-steps/s", "world_seconds_per_s": b * seconds / elapsed,
                         "seconds_simulated": seconds, "physics": settings, "settings": _label(settings),
                         "declared": settings == scenarios.get(name).config.physics(),
                         "device": device_name()})
            print(f"physics  {name:<11} B={b:<5} {b * steps / elapsed:>12,.0f} world-steps/s "
                  f"{b * seconds / elapsed:>9,.1f} world-s/s  ({_label(settings)})", flush=True)
    return rows


def _label(physics: dict) -> str:
    return (f"{1000 * physics['timestep']:g} ms, {physics['solver_iterations']}/{physics['linesearch_iterations']} "
            "iterations")


def render_backends() -> list[str]:
    """The render backends installed here ('warp' needs warp-lang and mujoco-warp)."""
    return [b for b in render_lib.BACKENDS if b != "warp" or warp_available()]


def bench_render(batch_sizes, resolutions, repeats: int, backends, scenario: str) -> list[dict]:
    env = env_lib.make(scenario)
    rows = []
    for b in batch_sizes:
        state = env.reset(jax.random.key(0), batch_size=b)
        traj = env.rollout(state, 1.0 / env.layout.fps, check=False)  # frames 0 and 1
        frames = traj.frames.pos.shape[1]
        for backend in backends:
            for res in resolutions:
                elapsed = _median_seconds(lambda: env.render(traj, width=res, height=res, backend=backend), repeats)
                fps = b * frames / elapsed
                rows.append({"section": "render", "backend": backend, "scenario": scenario,
                             "batch_size": b * frames, "resolution": f"{res}x{res}", "figure": fps,
                             "unit": "frames/s", "device": device_name()})
                print(f"render   {backend:<4} {res}x{res:<4} frames={b * frames:<5} {fps:>12,.0f} frames/s",
                      flush=True)
    return rows


def bench_questions(n_worlds: int, repeats: int, families=None) -> list[dict]:
    """Valid QA samples per second of the whole jitted pipeline per family (64x64, the family's window).

    Every device simulates its own `n_worlds` worlds from its own key (one
    question slot per world), as the training step's scene shards do; slots
    the balancer could not fill with a well-posed question (and worlds whose
    simulation was unsound) are not counted, as the reference pipeline does
    not count scenes it could ask nothing about.
    """
    from jax.sharding import Mesh, PartitionSpec

    from physsim import episode

    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    n = mesh.size
    tok = episode.default_tokenizer()
    rows = []
    for name in families or env_lib.list():
        spec = episode.BatchSpec(name, n_worlds=n_worlds, n_questions=n_worlds).resolved()

        def shard(keys, spec=spec):
            qa = episode.make_batch(keys[0], spec, tok)[0]
            return qa.video, qa.valid

        fn = jax.jit(jax.shard_map(shard, mesh=mesh, in_specs=PartitionSpec("data"), out_specs=PartitionSpec("data"),
                                   check_vma=False))
        keys = iter(jax.random.split(jax.random.key(0), (repeats + 2, n)))
        valid = []

        def call():
            video, ok = fn(next(keys))
            valid.append(ok)
            return video

        elapsed = _median_seconds(call, repeats)
        share = float(np.mean([np.asarray(v).mean() for v in valid[1:]]))
        total = n * n_worlds
        rate = share * total / elapsed
        rows.append({"section": "questions", "scenario": name, "batch_size": total, "devices": n,
                     "figure": rate, "unit": "QA samples/s", "question_slots_per_s": total / elapsed,
                     "valid_share": share, "video_frames": len(spec.video_frames()), "resolution": "64x64",
                     "device": device_name()})
        print(f"questions {name:<11} B={total:<5} ({n} device{'s' * (n > 1)}) {rate:>10,.1f} QA samples/s "
              f"({share:.0%} of slots valid; simulate + twins + facts + render {len(spec.video_frames())} frames)",
              flush=True)
    return rows


def bench_model(sizes, batch_size: int, repeats: int) -> list[dict]:
    """Training steps per second of each model size on random inputs (forward, backward, AdamW update)."""
    import optax
    from flax import nnx

    from physsim import model as model_lib
    from physsim.model import flops
    from physsim.episode import default_tokenizer

    tok = default_tokenizer()
    kind = jax.devices()[0].device_kind
    peak = flops.peak_flops(kind)
    rows = []
    for size in sizes:
        cfg = model_lib.config.get(size, vocab_size=tok.size)
        vlm = nnx.jit(lambda cfg=cfg: model_lib.VLM(cfg, rngs=nnx.Rngs(0)))()
        optimizer = nnx.Optimizer(vlm, optax.adamw(1e-4), wrt=nnx.Param)
        k = jax.random.split(jax.random.key(0), 3)
        video = jax.random.randint(k[0], (batch_size, cfg.frames, cfg.height, cfg.width, 3), 0, 256).astype("uint8")
        mask = jax.numpy.ones((batch_size, cfg.frames), bool)
        question = jax.random.randint(k[1], (batch_size, cfg.question_length), 4, tok.size)
        answer = jax.random.randint(k[2], (batch_size, cfg.answer_length), 4, tok.size)
        answer_in = model_lib.teacher_forcing_inputs(answer, tok.bos_id)

        @nnx.jit
        def step(m, opt, video, mask, question, answer, answer_in):  # inputs as arguments, not baked-in constants
            def loss(m):
                outputs = m(video, mask, question, answer_in)
                return model_lib.loss_and_metrics(outputs, model_lib.Targets(answer=answer), model_lib.LossWeights())[0]

            value, grads = nnx.value_and_grad(loss)(m)
            opt.update(m, grads)
            return value

        elapsed = _median_seconds(lambda: step(vlm, optimizer, video, mask, question, answer, answer_in), repeats)
        achieved = flops.train_flops_per_example(cfg) * batch_size / elapsed
        rows.append({"section": "model", "size": size, "batch_size": batch_size, "figure": batch_size / elapsed,
                     "unit": "examples/s", "train_flops_per_example": flops.train_flops_per_example(cfg),
                     "achieved_flops_per_s": achieved, "mfu": None if peak is None else achieved / peak,
                     "dtype": cfg.dtype, "device": device_name()})
        mfu = "MFU unknown (no peak for this device)" if peak is None else f"MFU {achieved / peak:.1%}"
        print(f"model    {size:<6} B={batch_size:<4} {batch_size / elapsed:>10,.1f} examples/s  "
              f"{achieved / 1e12:.3f} TFLOP/s  {mfu}", flush=True)
    return rows


def bench_train(config_path: str, repeats: int, overrides: dict | None = None) -> list[dict]:
    """The real training step of a config (with `overrides`, dotted keys as the trainer takes them): examples/s
    and where its time goes.

    Besides the whole step, the same step's pieces are jitted and timed on
    their own with the same shapes: simulation (sample, simulate with twins,
    measure facts), rendering (the observation windows of those worlds) and
    the whole data pipeline (simulation, questions, rendering, padding). The
    model's share is the step minus the data pipeline (forward, backward and
    optimiser updates, the blind baseline's included when the config trains
    one); what is left of the data pipeline after simulation and rendering is
    reported as questions.
    """
    from physsim import episode
    from physsim.train import config as config_lib
    from physsim.train import data as data_lib
    from physsim.train import mesh as mesh_lib
    from physsim.train import step as step_lib

    config = config_lib.replace(config_lib.load(config_path), overrides or {})
    # As many devices as divide the config's scene shards (a 1-shard config on a CPU split into 2 uses 1).
    n = max(d for d in range(1, jax.device_count() + 1) if config.data.shards % d == 0)
    mesh = mesh_lib.make_mesh(config.train.fsdp, devices=jax.devices()[:n])
    data_lib.check(config, mesh.size)
    specs = data_lib.checked_specs(config)
    shards = config.data.shards
    graphdef, state, shardings = step_lib.init_state(config, mesh)
    step = step_lib.make_step(config, graphdef, mesh, shardings)
    carried = [state]  # the step donates its input buffers: thread the state through the timed calls

    def one_step():
        carried[0], metrics = step(carried[0])
        return metrics

    t_step = _median_seconds(one_step, repeats)

    key = jax.random.key(1)
    data_fn = jax.jit(lambda k: data_lib.global_batch(k, config, mesh))
    t_data = _median_seconds(lambda: data_fn(key)[0].video, repeats)

    def simulate_all(k):
        keys = data_lib.shard_keys(k, 0, shards)
        return [jax.lax.map(lambda kk, s=s: episode.simulate_and_measure(kk, s), keys) for s in specs]

    sim_fn = jax.jit(simulate_all)
    t_sim = _median_seconds(lambda: [m.frames.pos for m in sim_fn(key)], repeats)

    measured = sim_fn(key)

    def render_all(measured):
        videos = []
        for spec, m in zip(specs, measured):
            drawn = jnp.arange(min(spec.n_questions, spec.n_worlds))  # make_batch's count of drawn videos
            videos.append(jax.lax.map(lambda mm, spec=spec: episode.render_worlds(spec, mm, drawn), m))
        return videos

    render_fn = jax.jit(render_all)
    t_render = _median_seconds(lambda: render_fn(measured), repeats)

    n_trained, n_fresh = data_lib.n_trained(config), data_lib.n_questions(config)
    shares = {"simulation": t_sim / t_step, "rendering": t_render / t_step,
              "questions": max(t_data - t_sim - t_render, 0.0) / t_step, "model": max(t_step - t_data, 0.0) / t_step}
    # Model FLOPs of the step (forward and backward of every example trained, the blind copy's too) per second,
    # against the device's bf16 peak: the model's utilisation of the whole step, simulation and rendering included.
    from physsim.model import flops

    copies = 2 if config.train.blind_baseline else 1
    achieved = flops.train_flops_per_example(config.model) * n_trained * copies / t_step
    peak = flops.peak_flops(jax.devices()[0].device_kind)
    peak = None if peak is None else peak * mesh.size
    row = {"section": "train", "config": config_path, "overrides": dict(overrides or {}),
           "size": config.model.size, "batch_size": n_trained,
           "achieved_flops_per_s": achieved, "mfu": None if peak is None else achieved / peak,
           "figure": n_trained / t_step, "unit": "examples/s", "fresh_qa_per_s": n_fresh / t_step,
           "steps_per_s": 1 / t_step, "fresh_questions_per_step": n_fresh, "blind_baseline": config.train.blind_baseline,
           "seconds": {"step": t_step, "data": t_data, "simulation": t_sim, "rendering": t_render},
           "share": shares, "devices": mesh.size, "device": device_name()}
    print(f"train    {Path(config_path).stem:<8} {config.model.size} {n_trained} examples/step  {n_trained / t_step:>8,.1f} examples/s  "
          f"{n_fresh / t_step:,.1f} fresh QA/s  step {t_step:.3f} s: " +
          "  ".join(f"{k} {v:.0%}" for k, v in shares.items()) +
          (f"  MFU {achieved / peak:.1%}" if peak else "  MFU unknown (no peak for this device)"), flush=True)
    return [row]


def _reference_child(family: str, scenes: int, renderer: str, size: int) -> dict:
    """Runs `physsim.reference` in a child process (mujoco picks its OpenGL when imported)."""
    import os
    import subprocess

    env = dict(os.environ)
    if renderer in ("egl", "osmesa"):
        env["MUJOCO_GL"] = renderer
        env.pop("PYOPENGL_PLATFORM", None)
    cmd = [sys.executable, "-m", "physsim.reference", "--family", family, "--scenes", str(scenes), "--gl", renderer,
           "--size", str(size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}", "renderer": renderer}
    return json.loads(lines[-1])


def bench_reference(families, scenes: int, physsim_rows: list[dict], physsim_batch: int, repeats: int,
                    renderers=("egl", "osmesa", "jax")) -> list[dict]:
    """The conventional pipeline's QA samples/s per family, and physsim's ratio to it.

    Tries EGL, then OSMesa; when neither OpenGL works it says so and draws
    with physsim's ray caster one scene at a time. physsim's rate is the
    `questions` section's for the same family (measured here if that section
    did not run, and then returned too: the ratio's basis is in the record).
    """
    rows = []
    for family in families:
        result, failures = None, []
        for renderer in renderers:
            result = _reference_child(family, scenes, renderer, 64)
            if "error" not in result:
                break
            failures.append(f"{renderer}: {result['error']}")
            print(f"reference {family}: renderer {renderer} unavailable ({result['error'][:200]})", flush=True)
        if "error" in result:
            raise RuntimeError(f"the reference pipeline failed for {family}: " + "; ".join(failures))
        ours = [r for r in physsim_rows if r["section"] == "questions" and r["scenario"] == family]
        if not ours:
            ours = bench_questions(physsim_batch, repeats, [family])
            rows += ours
        ours = sorted(ours, key=lambda r: r["figure"])[-1:]
        rate = ours[0]["figure"]
        ratio = rate / result["qa_per_s"]
        rows.append({"section": "reference", "scenario": family, "batch_size": 1, "figure": result["qa_per_s"],
                     "unit": "QA samples/s", "renderer": result["renderer"], "unavailable_renderers": failures,
                     "scenes": result["scenes"], "samples": result["samples"], "stage_seconds": result["stages"],
                     "video_frames": result["video_frames"], "resolution": result["resolution"],
                     "physsim_qa_per_s": rate, "physsim_batch_size": ours[0]["batch_size"],
                     "physsim_devices": ours[0]["devices"],
                     "ratio": ratio, "device": device_name()})
        stages = ", ".join(f"{k} {v / result['seconds']:.0%}" for k, v in result["stages"].items())
        print(f"reference {family:<11} one scene at a time ({result['renderer']}) {result['qa_per_s']:>8,.1f} "
              f"QA samples/s ({stages}); physsim {rate:,.1f}: ratio {ratio:.2f}x", flush=True)
    return rows
