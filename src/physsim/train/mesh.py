"""The device mesh and how parameters and batches are laid out on it.

One mesh over every device of every host, with axes ('data', 'fsdp'). The
batch is split over both axes (every device holds its own questions).
Parameters are replicated over 'data' and, when `train.fsdp` > 1, split over
'fsdp' along their `embed` axis (the logical names the model's parameters
carry; see `physsim.model.layers`).

Multi-host: call `initialize_distributed()` first (done by `python -m
physsim.train` when a coordinator is configured); `jax.devices()` then lists
every host's devices and the same program runs on each.
"""

from __future__ import annotations

import os

import jax
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from physsim.train.data import BATCH_AXES


def initialize_distributed() -> bool:
    """`jax.distributed.initialize()` when this process is one of several (env-configured), else nothing.

    GPU clusters: set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID on every process (or run under SLURM, which JAX detects).
    TPU pods: JAX finds its peers itself; set PHYSSIM_DISTRIBUTED=1.
    """
    wanted = any(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID")) or \
        os.environ.get("PHYSSIM_DISTRIBUTED") == "1"
    if not wanted or jax.distributed.is_initialized():
        return False
    kwargs = {}
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
        kwargs = dict(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                      num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                      process_id=int(os.environ["JAX_PROCESS_ID"]))
    jax.distributed.initialize(**kwargs)
    return True


def make_mesh(fsdp: int = 1, devices: list | None = None) -> jax.sharding.Mesh:
    """A ('data', 'fsdp') mesh over `devices` (default: every device of every host)."""
    devices = jax.devices() if devices is None else devices
    n = len(devices)
    # Explicit Auto axes: jax >= 0.8 defaults make_mesh to explicit sharding (measured; docs/DESIGN.md).
    return jax.make_mesh((n // fsdp, fsdp), ("data", "fsdp"), axis_types=(AxisType.Auto, AxisType.Auto),
                         devices=devices)


def logical_rules(fsdp: int) -> list[tuple[str, str | None]]:
    return [("embed", "fsdp" if fsdp > 1 else None), ("mlp", None), ("heads", None), ("vocab", None), ("norm", None),
            ("layers", None)]


def param_shardings(mesh: jax.sharding.Mesh, params: nnx.State, fsdp: int) -> nnx.State:
    """NamedSharding of every parameter from its logical axis names."""
    with nnx.logical_axis_rules(logical_rules(fsdp)):
        specs = nnx.get_partition_spec(params)
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), nnx.to_pure_dict(specs))


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
