"""The suite's scheduling hook (imported by tests/conftest.py): groups the tests that share an expensive
fixture onto one pytest-xdist worker and marks the slow ones. No jax or physsim imports here: the grouping
test (tests/test_grouping.py) runs this hook in a small suite of its own."""

import pytest

# Fixtures that cost a compile and a simulation or a training run: every test that uses one runs on the same
# worker, so that it is built once. `measured` holds one batch per family: its tests are grouped by family
# (with the family's fuzz test, which runs the same compiled program).
SHARED = {"overfit": "model", "saved": "model", "random_tiny": "model", "uninterrupted": "runs",
          "validation_rows": "validation", "fresh_records": "records",
          "faulty": "faults"}  # not shared, but the fault tests compile one step: run apart, both compiled it
BY_FAMILY = ("test_questions.py", "test_reliability.py")
# `make test-fast` (the edit loop, under 3 minutes on 2 cores from an empty cache) leaves out every test marked
# slow: those that compile or run a scene family's rollout, a training step or more than a unit-size model, or
# start a subprocess (each ~10 s or more from an empty cache beside another worker). They are marked where they
# are defined, or here when it is their fixture that does it. What stays: unit tests on tiny layouts and
# synthetic inputs, the config and name checks, and one traced contract test per family (tests/test_plugin.py).
SLOW_FIXTURES = {"overfit", "saved", "uninterrupted", "validation_rows", "measured", "random_tiny", "faulty",
                 "fresh_records", "ramp_traj", "collision_traj", "head_on"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        family = getattr(item, "callspec", None) and item.callspec.params.get("family")
        per_family = bool(family) and item.path.name in BY_FAMILY  # a family's batch or its fuzzing
        names = set(item.fixturenames)
        if per_family:
            group = f"family-{family}"
        elif "measured" in names:  # which family's batch the test reads, as its marker says
            group = f"family-{item.get_closest_marker('batch_of').args[0]}"
        else:
            group = next((SHARED[n] for n in sorted(names) if n in SHARED), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        if names & SLOW_FIXTURES or per_family:
            item.add_marker(pytest.mark.slow)
