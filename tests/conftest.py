"""Shared, compiled-once fixtures. Importing physsim turns on the persistent
JAX compilation cache (~/.cache/physsim/jax), so reruns skip MJX compiles."""

import gc

import jax
import pytest

import physsim.env


@pytest.fixture(scope="session")
def ramp_env():
    return physsim.env.make("ramp")


@pytest.fixture(scope="session")
def collision_env():
    return physsim.env.make("collision")


@pytest.fixture(scope="session")
def validation_rows():
    from physsim import validate

    return validate.run_all()


@pytest.fixture(scope="session")
def key():
    return jax.random.key(0)


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Drop every compiled program at the end of each test module. Each loaded XLA:CPU executable keeps
    its code in its own memory mappings (an MJX program: hundreds), and one pytest process holding every
    module's programs passed the kernel's limit of 65,530 mappings (vm.max_map_count): XLA then crashed
    with SIGSEGV while compiling or loading the next program (twice on a fresh clone, in test_reliability,
    at a different test each time). A later module that needs a program again loads it from the
    persistent cache."""
    yield
    jax.clear_caches()
    gc.collect()
