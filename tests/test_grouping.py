"""The suite's own scheduling: tests that share an expensive fixture run on one pytest-xdist worker.

With pytest 9.2 and pytest-xdist 3.8, `--dist loadgroup` stopped grouping without a word
(pytest-dev/pytest-xdist#1386): the shared model, runs and validation of tests/conftest.py were then
built on both workers, minutes of the suite. This runs a small suite through the same grouping hook."""

import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = '''
import importlib.util, os
import pytest

spec = importlib.util.spec_from_file_location("suite_grouping", SUITE_CONFTEST)
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_collection_modifyitems = suite.pytest_collection_modifyitems


@pytest.fixture(scope="session")
def validation_rows():  # a fixture the real hook groups by
    return os.environ["PYTEST_XDIST_WORKER"]
'''

TESTS = '''
from pathlib import Path
import pytest


@pytest.mark.parametrize("i", range(8))
def test_shared(validation_rows, i):
    (Path(OUT) / f"NAME_{i}").write_text(validation_rows)


@pytest.mark.parametrize("i", range(8))
def test_free(i):
    pass
'''


@pytest.mark.slow
def test_tests_sharing_a_fixture_run_on_one_worker(tmp_path):
    suite, out = tmp_path / "suite", tmp_path / "workers"
    suite.mkdir()
    out.mkdir()
    (suite / "conftest.py").write_text(CONFTEST.replace("SUITE_CONFTEST", repr(str(Path(__file__).with_name("grouping.py")))))
    for name in ("a", "b"):
        (suite / f"test_{name}.py").write_text(TESTS.replace("OUT", repr(str(out))).replace("NAME", name))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                           "--rootdir", str(suite), str(suite)], cwd=suite, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    workers = {p.name: p.read_text() for p in out.iterdir()}
    assert len(workers) == 16 and set(workers.values()) <= {"gw0", "gw1"}, workers
    assert len(set(workers.values())) == 1, f"tests sharing a fixture ran on several workers: {workers}"
