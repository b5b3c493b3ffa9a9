"""Throughput of each stage: `python -m physsim.bench [--quick] [--sections ...] [--json PATH] [--plot PATH]`.

Sections: `physics` (world-steps per second of each scene family vs batch
size), `render` (frames per second of each render backend — the JAX ray
caster and, when installed, MuJoCo Warp — vs resolution and batch size),
`questions` (valid QA samples per second of the whole jitted pipeline:
sample, simulate with twins, measure facts, pick questions, render 64x64
video), `model` (the model's jitted training step on random inputs: examples
per second, achieved FLOP/s from `physsim.model.flops`, and model FLOP
utilisation where the device's peak is known), `train` (the real training
step of a config, `physsim.train.step`: examples per second and the share of
its time spent simulating, rendering and in the model) and `reference` (the
conventional pipeline of `physsim.reference` — MuJoCo C one scene at a time,
`mujoco.Renderer`, PNG + JSON on disk — on the same families and image size,
and physsim's ratio to it in QA samples per second).

Compilation and a warm-up call are excluded; each figure is the median of
several timed calls. Device and versions are printed and written with the
results; every result row names its section, figure, unit, batch size and
device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from physsim import _names
from physsim import env as env_lib
from physsim import render as render_lib
from physsim.sim.scene import warp_available

SECTIONS = ("physics", "render", "questions", "model", "train", "reference")


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


def bench_physics(batch_sizes, seconds: float, repeats: int, families=None) -> list[dict]:
    rows = []
    for name in families or env_lib.list():
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


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # in a checkout


def bench_train(config_path: str, repeats: int) -> list[dict]:
    """The real training step of a config: examples/s and where its time goes.

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

    config = config_lib.load(config_path)
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
    row = {"section": "train", "config": config_path,
           "size": config.model.size, "batch_size": n_trained,
           "figure": n_trained / t_step, "unit": "examples/s", "fresh_qa_per_s": n_fresh / t_step,
           "steps_per_s": 1 / t_step, "fresh_questions_per_step": n_fresh, "blind_baseline": config.train.blind_baseline,
           "seconds": {"step": t_step, "data": t_data, "simulation": t_sim, "rendering": t_render},
           "share": shares, "devices": mesh.size, "device": device_name()}
    print(f"train    {Path(config_path).stem:<8} {config.model.size} {n_trained} examples/step  {n_trained / t_step:>8,.1f} examples/s  "
          f"{n_fresh / t_step:,.1f} fresh QA/s  step {t_step:.3f} s: " +
          "  ".join(f"{k} {v:.0%}" for k, v in shares.items()), flush=True)
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
    did not run).
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


def plot_scaling(rows: list[dict], path: Path, title: str) -> None:
    """Log-log throughput vs batch size: physics per family, rendering per backend and resolution,
    and QA samples/s of physsim vs the reference pipeline per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    physics = [r for r in rows if r["section"] == "physics"]
    for name in sorted({r["scenario"] for r in physics}):
        mine = sorted((r["batch_size"], r["figure"]) for r in physics if r["scenario"] == name)
        axes[0].plot(*zip(*mine), marker="o", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="worlds per call", ylabel="world-steps/s", title="physics")
    render = [r for r in rows if r["section"] == "render"]
    for case in sorted({(r["backend"], r["resolution"]) for r in render}):
        mine = sorted((r["batch_size"], r["figure"]) for r in render if (r["backend"], r["resolution"]) == case)
        axes[1].plot(*zip(*mine), marker="o", label=" ".join(case))
    axes[1].set(xscale="log", yscale="log", xlabel="frames per call", ylabel="frames/s", title="rendering")
    ref = [r for r in rows if r["section"] == "reference"]
    if ref:
        x = np.arange(len(ref))
        axes[2].bar(x - 0.2, [r["physsim_qa_per_s"] for r in ref], 0.4, label="physsim (batched, jitted)")
        axes[2].bar(x + 0.2, [r["figure"] for r in ref], 0.4, label="reference (MuJoCo C + GL, PNG/JSON)")
        axes[2].set_xticks(x, [r["scenario"] for r in ref])
        axes[2].set(yscale="log", ylabel="QA samples/s", title="questions, 64x64")
    for ax in axes:
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of every section: one family, small batches, one timed call each")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--update", type=Path,
                        help="merge the results into this JSON file (rows of the same case are replaced)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="scaling plot (PNG); default: next to --json / --update with a .png suffix")
    parser.add_argument("--physics-batches", nargs="+", type=int, default=None,
                        help="world batch sizes of the physics section (default 16 64 256 1024)")
    parser.add_argument("--questions-batches", nargs="+", type=int, default=None,
                        help="worlds per device of the questions section (default 16 32 64; 16 with --quick)")
    parser.add_argument("--render-backends", nargs="+", choices=render_lib.BACKENDS, default=None,
                        help="render backends to time (default: every installed one)")
    parser.add_argument("--model-sizes", nargs="+", default=None,
                        help="model sizes of the model section (default: tiny on CPU; tiny small base on accelerators)")
    parser.add_argument("--model-batch", type=int, default=None, help="examples per training step (default 32; 8 with --quick)")
    parser.add_argument("--train-config", default=None,
                        help="config of the train section (default: experiments/quick.py with --quick, else "
                             "experiments/tiny.py on CPU, experiments/gpu_small.py on accelerators)")
    parser.add_argument("--families", nargs="+", default=None,
                        help="scene families of the physics, questions and reference sections, the first also of "
                             "the render section (default: every registered one; with --quick, those of "
                             "experiments/quick.py)")
    parser.add_argument("--table", type=Path, default=None, metavar="RESULTS_JSON",
                        help="print recorded results as a Markdown table and exit")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="split the CPU into this many XLA devices (one per core is fastest for the "
                             "questions pipeline; the train section needs its config's shards to divide it)")
    parser.add_argument("--reference-scenes", type=int, default=None,
                        help="scenes the reference pipeline makes per family (default 64; 8 with --quick)")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return 0
    if args.cpu_devices is not None:
        if args.cpu_devices < 1:
            parser.error(f"--cpu-devices {args.cpu_devices} must be at least 1")
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            parser.error("--cpu-devices must be set before JAX starts; run python -m physsim.bench")
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
        jax.config.update("jax_platforms", "cpu")
    on_cpu = jax.devices()[0].platform == "cpu"
    train_config = args.train_config or str(EXPERIMENTS / ("quick.py" if args.quick else "tiny.py" if on_cpu
                                                           else "gpu_small.py"))
    needs_config = "train" in args.sections or (args.quick and not args.families)
    if needs_config and not Path(train_config).is_file():
        parser.error(f"--train-config {train_config}: no such file (run from a checkout, or pass a config)")
    if args.families:
        families = args.families
    elif args.quick:  # the quick config's families: one cheap one
        from physsim.train import config as config_lib

        families = [name for name, _ in config_lib.load(train_config).data.families]
    else:
        families = env_lib.list()
    for name in families:
        if name not in env_lib.list():
            parser.error(f"--families: {_names.unknown('scene family', name, env_lib.list())}")
    header = {"device": device_name(), "devices": jax.device_count(), "jax": jax.__version__,
              "mujoco": mujoco.__version__, "numpy": np.__version__, "python": platform.python_version(),
              "cpu_cores": os.cpu_count(), "quick": args.quick}
    print(" ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    repeats = 1 if args.quick else 3
    rows: list[dict] = []
    if "physics" in args.sections:
        batches = args.physics_batches or ([16] if args.quick else [16, 64, 256, 1024])
        rows += bench_physics(batches, 0.4, repeats, families)
    if "render" in args.sections:
        batches = [8] if args.quick else [8, 32, 128, 512]  # x2 frames each: 16 ... 1024 frames
        backends = args.render_backends or (["jax"] if args.quick else render_backends())
        if "warp" in backends and not warp_available():
            parser.error("--render-backends warp: warp-lang and mujoco-warp are not installed")
        rows += bench_render(batches, [64] if args.quick else [64, 128], repeats, backends, families[0])
    questions_batch = 16 if args.quick else 64
    if "questions" in args.sections:
        for b in args.questions_batches or ([16] if args.quick else [16, 32, 64]):
            rows += bench_questions(b, repeats, families)
    if "model" in args.sections:
        sizes = args.model_sizes or (["tiny"] if on_cpu or args.quick else ["tiny", "small", "base"])
        rows += bench_model(sizes, args.model_batch or (8 if args.quick else 32), repeats)
    if "train" in args.sections:
        rows += bench_train(train_config, repeats)
    if "reference" in args.sections:
        scenes = args.reference_scenes or (8 if args.quick else 64)
        rows += bench_reference(families, scenes, rows, questions_batch, repeats)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "results": rows}, indent=2))
    if args.update:
        rows = merge_results(args.update, header, rows)
    plot = args.plot or next((p.with_suffix(".png") for p in (args.update, args.json) if p), None)
    if plot:
        plot_scaling(rows, plot, f"physsim throughput on {header['device']} ({header['cpu_cores']} CPU cores)")
    return 0


def _num(x: float) -> str:
    return f"{x / 1000:,.1f}k" if x >= 10_000 else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def markdown_table(report: dict) -> str:
    """The recorded results as the README's Markdown table (one line per case group)."""
    rows = report["results"]
    lines = ["| stage | batch | figure |", "|---|---|---|"]

    def series(items, fmt):
        items = sorted(items, key=lambda r: r["batch_size"])
        return " / ".join(str(r["batch_size"]) for r in items), " / ".join(fmt(r) for r in items)

    for name in sorted({r["scenario"] for r in rows if r["section"] == "physics"}):
        b, f = series([r for r in rows if r["section"] == "physics" and r["scenario"] == name],
                      lambda r: _num(r["figure"]))
        lines.append(f"| physics, `{name}` | {b} worlds | {f} world-steps/s |")
    for backend, res in sorted({(r["backend"], r["resolution"]) for r in rows if r["section"] == "render"}):
        b, f = series([r for r in rows if r["section"] == "render" and (r["backend"], r["resolution"]) == (backend, res)],
                      lambda r: _num(r["figure"]))
        lines.append(f"| render, {backend}, {res} | {b} frames | {f} frames/s |")
    for name, n in sorted({(r["scenario"], r["devices"]) for r in rows if r["section"] == "questions"}):
        mine = [r for r in rows if r["section"] == "questions" and (r["scenario"], r["devices"]) == (name, n)]
        b, f = series(mine, lambda r: _num(r["figure"]))
        lines.append(f"| questions, `{name}` ({mine[0]['video_frames']} frames 64×64; {n} "
                     f"CPU device{'s' * (n > 1)}) | {b} worlds | {f} QA samples/s |")
    for r in rows:
        if r["section"] == "model":
            lines.append(f"| model training step, `{r['size']}` (random inputs) | {r['batch_size']} examples | "
                         f"{_num(r['figure'])} examples/s ({r['achieved_flops_per_s'] / 1e12:.3f} TFLOP/s) |")
        if r["section"] == "train":
            share = ", ".join(f"{k} {v:.0%}" for k, v in r["share"].items())
            lines.append(f"| whole training step, `{Path(r['config']).name}` | {r['batch_size']} examples "
                         f"({r['fresh_questions_per_step']} fresh) | {_num(r['figure'])} examples/s, "
                         f"{_num(r['fresh_qa_per_s'])} fresh QA/s; {share} |")
    for r in rows:
        if r["section"] == "reference":
            lines.append(f"| reference (MuJoCo C + {r['renderer']}, PNG/JSON), `{r['scenario']}` | 1 scene | "
                         f"{_num(r['figure'])} QA samples/s; physsim {_num(r['physsim_qa_per_s'])}: "
                         f"**{r['ratio']:.1f}×** |")
    return "\n".join(lines)


def _case(row: dict) -> tuple:
    return tuple(str(row.get(k)) for k in ("section", "scenario", "backend", "size", "config", "batch_size",
                                           "devices", "resolution", "device"))


def merge_results(path: Path, header: dict, rows: list[dict]) -> list[dict]:
    """Adds `rows` to the results file at `path`, replacing earlier rows of the same case; returns all rows."""
    old = json.loads(path.read_text()) if path.exists() else {**header, "results": []}
    if old.get("device") != header["device"]:
        raise SystemExit(f"--update {path}: it holds results of {old.get('device')}, this is {header['device']}")
    new_cases = {_case(r) for r in rows}
    kept = [r for r in old["results"] if _case(r) not in new_cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**old, **header, "results": kept + rows}, indent=2))
    return kept + rows


if __name__ == "__main__":
    sys.exit(main())
