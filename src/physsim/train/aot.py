"""Every shipped accelerator config's training step compiled ahead of time for its mesh, on forced CPU devices.

    python -m physsim.train.aot [--configs gpu_small gpu_base tpu_pod_large] [--devices 8]
        [--json benchmarks/aot/cpu-8dev.json] [--golden tests/golden/shardings.json [--update-golden]]

Nothing is allocated: the train state is `jax.ShapeDtypeStruct`s carrying
their shardings (`jax.eval_shape` of the real initialiser), and the real step
(`train.step.make_step`: simulation, rendering, questions, model, optimiser)
is lowered and compiled for a ('data', 'fsdp') mesh of CPU devices shaped like
the target. Recorded per config: trace-and-lower and compile seconds, XLA's
per-device memory analysis (arguments, outputs, temporaries, donated aliases)
against the target device's memory, and the shardings of the parameters, the
optimiser state and the step's batch, which `--golden` compares with a golden
file (the test suite does too, `tests/test_aot.py`).

Scaling. A GPU node is 8 devices: the GPU configs run at their own size on 8
CPU devices. A TPU pod slice has more chips than a CPU can pretend to be: the
pod config keeps its fsdp axis (so every parameter and optimiser shard has
the size it has on the pod) and its scene shards per device (so every
device's batch is the pod's), with the 'data' axis shrunk to what the forced
devices leave (`scaled`). Per-device memory is then the pod's. Caveat: the
figures are XLA:CPU's buffer assignment; GPU and TPU compilers fuse and
rematerialise differently, so they are estimates, not measurements of the
target (`scripts/gpu_check.sh` records the GPU's own).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

# Targets: per-device memory (bytes) and the mesh the config is written for.
GIB = 1024**3
TARGETS = {
    "gpu_small": {"device": "NVIDIA H100 80GB", "memory": 80 * 10**9, "devices": 8},
    "gpu_base": {"device": "NVIDIA H100 80GB", "memory": 80 * 10**9, "devices": 8},
    "tpu_pod_large": {"device": "TPU v5e (16 GB per chip)", "memory": 16 * 10**9, "devices": 64},
}
EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "golden" / "shardings.json"


def force_cpu_devices(n: int) -> None:
    """Split the host CPU into `n` XLA devices; must run before JAX starts."""
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        import jax

        if jax.device_count() >= n and jax.devices()[0].platform == "cpu":
            return
        raise RuntimeError(f"{n} CPU devices are needed, and JAX has already started with {jax.device_count()}; "
                           "run `python -m physsim.train.aot` in a fresh process")
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    import jax

    jax.config.update("jax_platforms", "cpu")


def scaled(name: str, config, devices: int):
    """The config as compiled on `devices` CPU devices, and how it was scaled (None: at its own size)."""
    target = TARGETS[name]["devices"]
    if devices >= target:
        return config, None
    fsdp = config.train.fsdp
    if devices % fsdp:
        raise ValueError(f"{name}: {devices} devices cannot hold its fsdp={fsdp} axis")
    shards = config.data.shards * devices // target
    if shards < 1 or config.data.shards % target:
        raise ValueError(f"{name}: its {config.data.shards} scene shards do not split over {target} devices")
    data = dataclasses.replace(config.data, shards=shards)
    note = (f"{target} devices as (data {target // fsdp} x fsdp {fsdp}) scaled to {devices} as "
            f"(data {devices // fsdp} x fsdp {fsdp}): scene shards {config.data.shards} -> {shards}, so that each "
            f"device holds the target's {config.data.shards // target} shard(s) and parameter shards are the "
            "target's")
    return dataclasses.replace(config, data=data), note


def _spec(sharding) -> list:
    """A sharding as the golden file writes it: its PartitionSpec, one entry per array axis."""
    spec = getattr(sharding, "spec", None)
    return [None if a is None else list(a) if isinstance(a, tuple) else a for a in spec] if spec is not None else []


def _by_path(tree) -> dict[str, list]:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): _spec(leaf) for path, leaf in flat}


def abstract_state(config, mesh):
    """The step's graph, its train state as sharded ShapeDtypeStructs and the state's shardings."""
    import jax
    from flax import nnx

    from physsim import model as model_lib
    from physsim.train import step as step_lib

    graphdef, abstract_params = nnx.split(model_lib.abstract(config.model))
    shardings = step_lib.state_shardings(config, mesh, abstract_params)
    shapes = jax.eval_shape(lambda: step_lib.initial_state(config))
    state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
    return graphdef, state, shardings


def update_program(config, graphdef, state, mesh):
    """The step's model part alone, jitted for the mesh: the update of the model (and of its blind copy) on a
    batch of the step's shape and sharding, as abstract inputs."""
    import jax
    import jax.numpy as jnp

    from physsim import episode
    from physsim.train import compile as compile_lib
    from physsim.train import data as data_lib
    from physsim.train import mesh as mesh_lib
    from physsim.train import step as step_lib

    opt, bos = step_lib.optimizer(config), episode.default_tokenizer().bos_id
    sharding = mesh_lib.batch_sharding(mesh)
    batch = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                         compile_lib.abstract_batch(config.model, data_lib.n_trained(config)))

    def update(params, opt_state, blind_params, blind_opt_state, batch):
        out = step_lib._update(graphdef, params, opt_state, batch, batch.video, config, bos, opt, mesh)
        if blind_params is not None:
            out = (out, step_lib._update(graphdef, blind_params, blind_opt_state, batch, jnp.zeros_like(batch.video),
                                         config, bos, opt, mesh))
        return out

    program = jax.jit(update, donate_argnums=(0, 1, 2, 3))
    return program.lower(state.params, state.opt_state, state.blind_params, state.blind_opt_state, batch)


def compile_config(name: str, config, devices: int, part: str = "step") -> dict:
    """Lower and compile one config's step (`part="update"`: its model update alone) on `devices` CPU devices;
    its timings, memory and shardings."""
    import jax

    from physsim.train import data as data_lib
    from physsim.train import mesh as mesh_lib
    from physsim.train import step as step_lib

    config, note = scaled(name, config, devices)
    mesh = mesh_lib.make_mesh(config.train.fsdp, jax.devices()[:devices])
    start = time.perf_counter()
    graphdef, state, shardings = abstract_state(config, mesh)
    if part == "step":
        lowered = step_lib.make_step(config, graphdef, mesh, shardings).lower(state)
    else:
        lowered = update_program(config, graphdef, state, mesh)
    lowered_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    moved = moved_by_update(state, compiled.output_shardings) if part == "update" else []
    mem = compiled.memory_analysis()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes",
              "generated_code_size_in_bytes")
    memory = {f: int(getattr(mem, f)) for f in fields}
    # Donated state buffers are reused for the outputs (aliases), so they count once.
    peak = memory["argument_size_in_bytes"] + memory["output_size_in_bytes"] - memory["alias_size_in_bytes"] + \
        memory["temp_size_in_bytes"]
    target = TARGETS[name]
    params = jax.tree_util.tree_leaves(state.params)
    return {
        "config": name, "part": part, "devices": devices, "mesh": dict(mesh.shape), "scaled": note,
        "target": target, "trace_and_lower_s": lowered_s, "compile_s": compile_s,
        "parameters": int(sum(p.size for p in params)),
        "examples_per_step": data_lib.n_trained(config), "remat": config.model.remat,
        "memory_per_device": memory, "peak_bytes_per_device": int(peak),
        "fits": bool(peak <= target["memory"]), "share_of_target": peak / target["memory"],
        "shardings": shardings_of(state, mesh) | ({"moved_by_update": moved} if part == "update" else {}),
    }


def moved_by_update(state, output_shardings) -> list[str]:
    """The parameters and optimiser slots that the compiled update returns in another layout than the state holds
    them in: XLA's own choice, which the layouts the step asks for cannot show. The step pins its outputs to the
    state's layout, so each costs a resharding every step (a planted change that replicated the updated
    parameters of tpu_pod_large moved 70 arrays, 35 per copy); the golden file holds the list, so a change to it
    fails."""
    import jax

    # The update returns (params, opt_state, metrics), or that and the blind copy's: ((...), (blind_params, ...)).
    copies = (output_shardings,) if state.blind_params is None else output_shardings
    names = (("params", "opt_state"), ("blind_params", "blind_opt_state"))
    lines = []
    for parts, returned_copy in zip(names, copies):
        for part, returned in zip(parts, returned_copy[:2]):
            held = jax.tree_util.tree_flatten_with_path(getattr(state, part))[0]
            for (path, leaf), got in zip(held, jax.tree_util.tree_leaves(returned), strict=True):
                if not got.is_equivalent_to(leaf.sharding, len(leaf.shape)):
                    lines.append(f"{part}{jax.tree_util.keystr(path)}: held as {_spec(leaf.sharding)}, returned as "
                                 f"{_spec(got) or got}")
    return lines


def shardings_of(state, mesh) -> dict:
    """What the golden file holds for a config: mesh shape, and PartitionSpecs of parameters, optimiser state and
    the step's batch."""
    from physsim.train import mesh as mesh_lib

    return {"mesh": dict(mesh.shape), "params": _by_path(jax_shardings(state.params)),
            "opt_state": _by_path(jax_shardings(state.opt_state)),
            "batch": _spec(mesh_lib.batch_sharding(mesh))}


def jax_shardings(tree):
    import jax

    return jax.tree.map(lambda s: s.sharding, tree)


def compare(golden: dict, got: dict) -> list[str]:
    """Differences between a golden entry and what was compiled, one line each (empty: the same)."""
    out = []
    for part in ("mesh", "batch"):
        if golden.get(part) != got[part]:
            out.append(f"{part}: golden {golden.get(part)}, now {got[part]}")
    for part in ("params", "opt_state"):
        want, have = golden.get(part, {}), got[part]
        for path in sorted(set(want) | set(have)):
            if want.get(path, "missing") != have.get(path, "missing"):
                out.append(f"{part}{path}: golden {want.get(path, 'missing')}, now {have.get(path, 'missing')}")
    if "moved_by_update" in got:  # compiled with --part update: what XLA's update moves
        want, have = set(golden.get("moved_by_update", [])), set(got["moved_by_update"])
        out += [f"moved by the update, not in the golden file: {m}" for m in sorted(have - want)]
        out += [f"in the golden file, no longer moved by the update: {m}" for m in sorted(want - have)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.train.aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--devices", type=int, default=8, help="forced CPU devices (default 8: a GPU node)")
    parser.add_argument("--json", type=Path, help="write every config's result here")
    parser.add_argument("--golden", type=Path, default=None, help=f"compare shardings with this file ({GOLDEN})")
    parser.add_argument("--update-golden", action="store_true", help="write the shardings to --golden instead")
    parser.add_argument("--part", choices=("step", "update"), default="step",
                        help="compile the whole step (default) or its model update alone (the test's: the part "
                             "that holds nearly all the memory, compiled in a fraction of the step's time)")
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices={args.devices} must be at least 1")
    force_cpu_devices(args.devices)
    import jax

    from physsim.train import config as config_lib

    results, differences = [], {}
    golden = json.loads(args.golden.read_text()) if args.golden and args.golden.is_file() and not args.update_golden \
        else {}
    for name in args.configs:
        what = "training step" if args.part == "step" else "training step's model update"
        print(f"{name}: lowering and compiling the {what} on {args.devices} CPU devices", flush=True)
        r = compile_config(name, config_lib.load(EXPERIMENTS / f"{name}.py"), args.devices, args.part)
        m = r["memory_per_device"]
        print(f"{name}: mesh {r['mesh']}, {r['parameters'] / 1e6:.0f}M parameters, {r['examples_per_step']} "
              f"questions per step{', remat' if r['remat'] else ''}; {r['part']} lowered in {r['trace_and_lower_s']:.1f} s, compiled in {r['compile_s']:.1f} s; "
              f"per device: arguments {m['argument_size_in_bytes'] / GIB:.2f} GiB, outputs "
              f"{m['output_size_in_bytes'] / GIB:.2f} GiB (donated {m['alias_size_in_bytes'] / GIB:.2f} GiB), "
              f"temporaries {m['temp_size_in_bytes'] / GIB:.2f} GiB: peak {r['peak_bytes_per_device'] / GIB:.2f} "
              f"GiB, {r['share_of_target']:.1%} of {r['target']['device']}" + (f"; {r['scaled']}" if r["scaled"]
                                                                              else ""), flush=True)
        for m in r["shardings"].get("moved_by_update", []):
            print(f"{name}: the update returns another layout than the state's: {m}", flush=True)
        if args.golden and not args.update_golden:
            if name not in golden:
                differences[name] = [f"no golden entry for {name} in {args.golden} (write one with --update-golden)"]
            else:
                differences[name] = compare(golden[name], r["shardings"])
            for line in differences[name]:
                print(f"{name}: sharding differs from the golden file: {line}", flush=True)
        results.append(r)
    header = {"jax": jax.__version__, "device": "cpu", "cpu_cores": os.cpu_count(), "forced_devices": args.devices,
              "part": args.part}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "results": [{k: v for k, v in r.items() if k != "shardings"}
                                                                for r in results]}, indent=2))
    if args.update_golden and args.golden:
        old = json.loads(args.golden.read_text()) if args.golden.is_file() else {}
        args.golden.parent.mkdir(parents=True, exist_ok=True)
        # A whole-step run keeps the update's list of moved arrays (only --part update measures it).
        args.golden.write_text(json.dumps(old | {r["config"]: old.get(r["config"], {}) | r["shardings"]
                                                 for r in results}, indent=1, sort_keys=True) + "\n")
    failed = [r["config"] for r in results if not r["fits"]] + [n for n, d in differences.items() if d]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
