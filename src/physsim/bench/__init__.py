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
from pathlib import Path

import jax
import mujoco
import numpy as np

from physsim import _names, scenarios
from physsim import env as env_lib
from physsim import render as render_lib
from physsim.bench.report import markdown_table, merge_results, plot_scaling, write_atomically
from physsim.bench.sections import (
    bench_model,
    bench_physics,
    bench_questions,
    bench_reference,
    bench_render,
    bench_train,
    device_name,
    render_backends,
)
from physsim.sim.scene import DEFAULT_PHYSICS, warp_available
from physsim.train import config as config_lib

SECTIONS = ("physics", "render", "questions", "model", "train", "reference")
EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"  # in a checkout


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
    parser.add_argument("--default-physics", action="store_true",
                        help="physics section: also time every family that declares its own physics settings at "
                             "the settings every family used before (physsim.sim.scene.DEFAULT_PHYSICS)")
    parser.add_argument("--render-batches", nargs="+", type=int, default=None,
                        help="worlds of the render section, two frames each (default 8 32 128 512; 8 with --quick)")
    parser.add_argument("--render-resolutions", nargs="+", type=int, default=None,
                        help="square image sizes of the render section (default 64 128; 64 with --quick)")
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
    parser.add_argument("--train-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of the train section's config, as the trainer takes them (e.g. "
                             "data.shards=1: one GPU simulating what each GPU of an 8-GPU node would)")
    parser.add_argument("--families", nargs="+", default=None,
                        help="scene families of the physics, questions and reference sections, the first also of "
                             "the render section (default: every registered one; with --quick, those of "
                             "experiments/quick.py)")
    parser.add_argument("--table", type=Path, default=None, metavar="RESULTS_JSON",
                        help="print recorded results as a Markdown table (and draw them with --plot) and exit")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="split the CPU into this many XLA devices (one per core is fastest for the "
                             "questions pipeline; the train section needs its config's shards to divide it)")
    parser.add_argument("--reference-scenes", type=int, default=None,
                        help="scenes the reference pipeline makes per family (default 64; 8 with --quick)")
    args = parser.parse_args(argv)
    for flag in ("physics_batches", "render_batches", "render_resolutions", "questions_batches"):
        bad = [v for v in getattr(args, flag) or () if v < 1]
        if bad:
            parser.error(f"--{flag.replace('_', '-')} {bad[0]}: sizes must be positive")
    if args.table:
        recorded = json.loads(args.table.read_text())
        print(markdown_table(recorded))
        if args.plot and not plot_scaling(recorded["results"], args.plot, f"physsim throughput on {recorded['device']}"
                                          f" ({recorded.get('cpu_cores')} CPU cores)"):
            parser.error("--plot: matplotlib is not installed")
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
    try:
        train_overrides = config_lib.parse_overrides([f"--{kv}" for kv in args.train_set])
    except config_lib.ConfigError as e:
        parser.error(f"--train-set: {e}")
    on_cpu = jax.devices()[0].platform == "cpu"
    train_config = args.train_config or str(EXPERIMENTS / ("quick.py" if args.quick else "tiny.py" if on_cpu
                                                           else "gpu_small.py"))
    needs_config = "train" in args.sections or (args.quick and not args.families)
    if needs_config and not Path(train_config).is_file():
        parser.error(f"--train-config {train_config}: no such file (run from a checkout, or pass a config)")
    if "train" in args.sections:  # a wrong key or value is refused before anything is measured
        try:
            config_lib.replace(config_lib.load(train_config), train_overrides)
        except config_lib.ConfigError as e:
            parser.error(f"--train-set: {e}")
    if args.families:
        families = args.families
    elif args.quick:  # the quick config's families: one cheap one
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
    plot = args.plot or next((p.with_suffix(".png") for p in (args.update, args.json) if p), None)
    # What the plot draws: this run's rows, or with --update the whole record they are merged into (read here, so a
    # record of another device is refused before anything is measured).
    drawn = merge_results(args.update, header, []) if args.update else rows

    def emit(new_rows: list[dict]) -> None:
        """Keep rows as they are measured: a run stopped by a time limit (the GPU check's stages) keeps what
        it finished."""
        nonlocal drawn
        rows.extend(new_rows)
        if args.json:
            write_atomically(args.json, json.dumps({**header, "results": rows}, indent=2))
        if args.update:
            drawn = merge_results(args.update, header, rows)

    if "physics" in args.sections:
        batches = args.physics_batches or ([16] if args.quick else [16, 64, 256, 1024])
        for name in families:
            emit(bench_physics(batches, 0.4, repeats, [name]))
        if args.default_physics:  # before / after: the families that declare their own settings, at the old ones
            for name in [f for f in families if scenarios.get(f).config.physics() != DEFAULT_PHYSICS]:
                emit(bench_physics(batches, 0.4, repeats, [name], physics=DEFAULT_PHYSICS))
    if "render" in args.sections:
        batches = args.render_batches or ([8] if args.quick else [8, 32, 128, 512])  # x2 frames each
        backends = args.render_backends or (["jax"] if args.quick else render_backends())
        if "warp" in backends and not warp_available():
            parser.error("--render-backends warp: warp-lang and mujoco-warp are not installed")
        resolutions = args.render_resolutions or ([64] if args.quick else [64, 128])
        for b in batches:
            emit(bench_render([b], resolutions, repeats, backends, families[0]))
    questions_batch = 16 if args.quick else 64
    if "questions" in args.sections:
        for b in args.questions_batches or ([16] if args.quick else [16, 32, 64]):
            emit(bench_questions(b, repeats, families))
    if "model" in args.sections:
        sizes = args.model_sizes or (["tiny"] if on_cpu or args.quick else ["tiny", "small", "base"])
        emit(bench_model(sizes, args.model_batch or (8 if args.quick else 32), repeats))
    if "train" in args.sections:
        emit(bench_train(train_config, repeats, train_overrides))
    if "reference" in args.sections:
        scenes = args.reference_scenes or (8 if args.quick else 64)
        emit(bench_reference(families, scenes, rows, questions_batch, repeats))
    if plot:
        if not plot_scaling(drawn, plot, f"physsim throughput on {header['device']} ({header['cpu_cores']} CPU cores)"):
            print(f"no scaling plot: matplotlib is not installed here (draw it where it is: "
                  f"python -m physsim.bench --table {args.update or args.json or 'RESULTS.json'} --plot {plot})",
                  flush=True)
    return 0


__all__ = ["SECTIONS", "main", "markdown_table", "merge_results"]
