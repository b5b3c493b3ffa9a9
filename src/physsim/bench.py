"""Throughput of each stage: `python -m physsim.bench [--quick] [--sections ...] [--json PATH]`.

Sections so far: `physics` (world-steps per second of each scene family vs
batch size), `render` (frames per second of each render backend — the JAX
ray caster and, when installed, MuJoCo Warp — vs resolution and batch size),
`questions` (QA samples per second of the whole jitted pipeline: sample,
simulate with twins, measure facts, pick questions, render 64x64 video) and
`model` (the model's jitted training step on random inputs: examples per
second, achieved FLOP/s from `physsim.model.flops`, and model FLOP
utilisation where the device's peak is known).
Compilation and a warm-up call are excluded; each
figure is the median of several timed calls. Device and versions are printed
and written with the results.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import mujoco
import numpy as np

from physsim import env as env_lib
from physsim import render as render_lib
from physsim.sim.scene import warp_available

SECTIONS = ("physics", "render", "questions", "model")


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


def bench_physics(batch_sizes, seconds: float, repeats: int) -> list[dict]:
    rows = []
    for name in env_lib.list():
        env = env_lib.make(name)
        steps = int(round(seconds / env.layout.timestep))
        for b in batch_sizes:
            state = env.reset(jax.random.key(0), batch_size=b)
            elapsed = _median_seconds(lambda: env.rollout(state, seconds, check=False).frames.pos, repeats)
            rows.append({"section": "physics", "scenario": name, "batch_size": b, "figure": b * steps / elapsed,
                         "unit": "world-steps/s", "seconds_simulated": seconds, "device": device_name()})
            print(f"physics  {name:<11} B={b:<5} {b * steps / elapsed:>12,.0f} world-steps/s", flush=True)
    return rows


def render_backends() -> list[str]:
    """The render backends installed here ('warp' needs warp-lang and mujoco-warp)."""
    return [b for b in render_lib.BACKENDS if b != "warp" or warp_available()]


def bench_render(batch_sizes, resolutions, repeats: int, backends, scenario: str = "ramp") -> list[dict]:
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
    """QA samples per second of the whole jitted pipeline per family (64x64, the family's observation window)."""
    from physsim.questions import pipeline

    rows = []
    for name in families or env_lib.list():
        spec = pipeline.BatchSpec(name, n_worlds=n_worlds, n_questions=n_worlds)
        keys = iter(jax.random.split(jax.random.key(0), repeats + 1))
        video_frames = len(spec.resolved().video_frames())
        elapsed = _median_seconds(lambda: pipeline.qa_batch(next(keys), spec).video, repeats)
        rate = n_worlds / elapsed
        rows.append({"section": "questions", "scenario": name, "batch_size": n_worlds, "figure": rate,
                     "unit": "QA samples/s", "video_frames": video_frames, "resolution": "64x64",
                     "device": device_name()})
        print(f"questions {name:<11} B={n_worlds:<5} {rate:>12,.1f} QA samples/s "
              f"(simulate + twins + facts + render {video_frames} frames)", flush=True)
    return rows


def bench_model(sizes, batch_size: int, repeats: int) -> list[dict]:
    """Training steps per second of each model size on random inputs (forward, backward, AdamW update)."""
    import optax
    from flax import nnx

    from physsim import model as model_lib
    from physsim.model import flops
    from physsim.questions.pipeline import default_tokenizer

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, one repeat: a smoke run")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--update", type=Path,
                        help="merge the results into this JSON file (rows of the same case are replaced)")
    parser.add_argument("--physics-batches", nargs="+", type=int, default=None,
                        help="world batch sizes of the physics section (default 16 64 256 1024)")
    parser.add_argument("--render-backends", nargs="+", choices=render_lib.BACKENDS, default=None,
                        help="render backends to time (default: every installed one)")
    parser.add_argument("--model-sizes", nargs="+", default=None,
                        help="model sizes of the model section (default: tiny on CPU; tiny small base on accelerators)")
    parser.add_argument("--model-batch", type=int, default=None, help="examples per training step (default 32; 8 with --quick)")
    args = parser.parse_args(argv)
    header = {"device": device_name(), "jax": jax.__version__, "mujoco": mujoco.__version__,
              "numpy": np.__version__, "python": platform.python_version(), "quick": args.quick}
    print(" ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    repeats = 1 if args.quick else 3
    rows: list[dict] = []
    if "physics" in args.sections:
        batches = args.physics_batches or ([16] if args.quick else [16, 64, 256, 1024])
        rows += bench_physics(batches, 0.4, repeats)
    if "render" in args.sections:
        batches = [8] if args.quick else [8, 32, 128, 512]  # x2 frames each: 16 ... 1024 frames
        backends = args.render_backends or render_backends()
        if "warp" in backends and not warp_available():
            parser.error("--render-backends warp: warp-lang and mujoco-warp are not installed")
        rows += bench_render(batches, [64] if args.quick else [64, 128], repeats, backends)
    if "questions" in args.sections:
        rows += bench_questions(16 if args.quick else 64, repeats, ["collision"] if args.quick else None)
    if "model" in args.sections:
        on_cpu = jax.devices()[0].platform == "cpu"
        sizes = args.model_sizes or (["tiny"] if on_cpu or args.quick else ["tiny", "small", "base"])
        rows += bench_model(sizes, args.model_batch or (8 if args.quick else 32), repeats)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "results": rows}, indent=2))
    if args.update:
        merge_results(args.update, header, rows)
    return 0


def _case(row: dict) -> tuple:
    return tuple(row.get(k) for k in ("section", "scenario", "backend", "size", "batch_size", "resolution", "device"))


def merge_results(path: Path, header: dict, rows: list[dict]) -> None:
    """Adds `rows` to the results file at `path`, replacing earlier rows of the same case."""
    old = json.loads(path.read_text()) if path.exists() else {**header, "results": []}
    if old.get("device") != header["device"]:
        raise SystemExit(f"--update {path}: it holds results of {old.get('device')}, this is {header['device']}")
    new_cases = {_case(r) for r in rows}
    kept = [r for r in old["results"] if _case(r) not in new_cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**old, **header, "results": kept + rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
