"""XLA:CPU runtime flag that batched MJX needs on jaxlib 0.10.2.

Measured here: a vmapped `mjx.step` over two spheres and a plane hangs forever
on the CPU from ~512 worlds up (all threads asleep, `block_until_ready` never
returns), with Newton and CG solvers alike, and so does the `ramp` family at
1024 worlds. Turning off XLA:CPU's concurrency-optimised scheduler removes the
hang (`--xla_cpu_multi_thread_eigen=false`, a flag others use against similar
hangs, does not). The flag only affects the CPU backend, and must be set before
JAX initialises it, which is why `import physsim` does it.
"""

from __future__ import annotations

import os
import warnings

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def avoid_cpu_scheduler_hang() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return  # the user chose a value themselves
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        warnings.warn(
            f"JAX was initialised before physsim was imported, so {FLAG} is not set; large batched "
            "MJX rollouts on the CPU may hang. Import physsim first or set XLA_FLAGS yourself.",
            stacklevel=3,
        )
        return
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
