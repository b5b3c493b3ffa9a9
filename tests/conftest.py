"""Shared, compiled-once fixtures. Importing physsim turns on the persistent
JAX compilation cache (~/.cache/physsim/jax), so reruns skip MJX compiles."""

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
