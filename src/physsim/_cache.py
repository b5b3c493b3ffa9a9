"""Persistent JAX compilation cache.

MJX programs take tens of seconds to compile on a 2-core CPU. The cache lives in
the user's cache directory (not the checkout) so that it survives the fresh
clone that CI and new users start from. `PHYSSIM_JAX_CACHE` overrides the place;
setting it to an empty string turns the cache off.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import jax


def default_cache_dir() -> Path | None:
    override = os.environ.get("PHYSSIM_JAX_CACHE")
    if override is not None:
        return Path(override) if override else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "physsim" / "jax"


def enable_compilation_cache() -> Path | None:
    """Points JAX at the persistent cache unless the user already chose one."""
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = default_cache_dir()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Cache everything that took measurable time; small programs recompile fast.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def release_compiled_programs() -> None:
    """Drops every compiled program this process holds (a later call of the same function reloads it from
    the persistent cache). Each loaded XLA:CPU executable keeps its code in its own memory mappings (an MJX
    program: hundreds), and a process that loads every family's programs passes the kernel's limit of
    65,530 mappings (vm.max_map_count): XLA then fails with "LLVM ERROR: Unable to allocate section memory"
    or SIGSEGV while loading the next one (`make validate` after ~95 min; a pytest worker). Long loops over
    families call this between families."""
    jax.clear_caches()
    gc.collect()
