"""Shared, compiled-once fixtures. Importing physsim turns on the persistent
JAX compilation cache (~/.cache/physsim/jax), so reruns skip MJX compiles.

`make test` runs two pytest-xdist workers (`--dist loadgroup`): tests that share an expensive fixture are
kept on one worker, the rest go wherever a worker is free; which tests are slow (left out of `make test-fast`)
is decided there too. The hook lives in tests/grouping.py, free of jax and physsim imports, so that
tests/test_grouping.py can run it in a small suite of its own in seconds."""

import jax
import pytest

import physsim.env
from grouping import pytest_collection_modifyitems  # noqa: F401 (the hook, registered from here)
from physsim import _cache


@pytest.fixture(scope="session")
def ramp_env():
    return physsim.env.make("ramp")


@pytest.fixture(scope="session")
def collision_env():
    return physsim.env.make("collision")


@pytest.fixture(scope="session")
def validation_rows():
    from physsim import validate

    return validate.run_all(float32_row=False)  # the tests check the gated rows; `make validate` reports it


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """The small config of tests/helpers.py trained in this process, 16 steps without a stop: the reference
    the resume tests (test_train) and the kill-and-signal test (test_reliability) compare their losses to."""
    from helpers import small_config

    from physsim.train import run

    config = small_config(tmp_path_factory.mktemp("runs"), **{"run.name": "straight"})
    return config, run.train(config)


@pytest.fixture(scope="session")
def key():
    return jax.random.key(0)


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Drop every compiled program at the end of each test module (`physsim._cache.release_compiled_programs`
    says why: one pytest process holding every module's programs passed vm.max_map_count and XLA crashed with
    SIGSEGV while loading the next program, twice on a fresh clone, in test_reliability). A later module that
    needs a program again loads it from the persistent cache."""
    yield
    _cache.release_compiled_programs()

