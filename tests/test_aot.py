"""Every shipped accelerator config's training step compiles for its (scaled) mesh on forced CPU devices, with
the shardings of the golden file and a per-device memory estimate that fits its target (physsim.train.aot).

The golden file holds the layouts the step asks for (parameters, optimiser state, batch, mesh) and, from the
compiled model update, the arrays XLA returns in another layout than the state's (tpu_pod_large's slot-head norm
bias and its Adam moments, in the model and its blind copy); the whole step's other internal layouts are XLA's and
not compared."""

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from physsim.train import aot
from physsim.train import config as config_lib


@pytest.mark.slow
def test_every_accelerator_config_compiles_for_its_mesh_with_the_golden_shardings_and_fits(tmp_path):
    out = tmp_path / "aot.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)  # the module forces its 8 CPU devices itself
    proc = subprocess.run([sys.executable, "-m", "physsim.train.aot", "--part", "update", "--json", str(out), "--golden",
                           str(aot.GOLDEN)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["config"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == set(aot.TARGETS)
    for name, r in results.items():
        target = aot.TARGETS[name]
        assert r["fits"] and 0 < r["peak_bytes_per_device"] <= target["memory"], (name, r["memory_per_device"])
        # The state is donated: its buffers are the outputs' (aliases), so the estimate does not count it twice.
        assert r["memory_per_device"]["alias_size_in_bytes"] > 0, name
        config = config_lib.load(ROOT / "experiments" / f"{name}.py")
        assert r["mesh"] == {"data": 8 // config.train.fsdp, "fsdp": config.train.fsdp}, name


def test_the_pod_config_is_scaled_to_the_pod_s_per_device_work():
    config = config_lib.load(ROOT / "experiments" / "tpu_pod_large.py")
    small, note = aot.scaled("tpu_pod_large", config, 8)
    target = aot.TARGETS["tpu_pod_large"]["devices"]
    assert note and small.train.fsdp == config.train.fsdp
    assert small.data.shards / 8 == config.data.shards / target  # scene shards per device: the pod's
    gpu = config_lib.load(ROOT / "experiments" / "gpu_small.py")
    assert aot.scaled("gpu_small", gpu, 8) == (gpu, None)
    with pytest.raises(ValueError, match="cannot hold its fsdp=8 axis"):
        aot.scaled("tpu_pod_large", config, 4)


def test_the_golden_comparison_names_every_changed_sharding():
    """The check has the power it claims: a parameter moved off the fsdp axis, a new parameter, a changed mesh
    and a changed batch layout are each reported, and an identical layout is not."""
    golden = json.loads(aot.GOLDEN.read_text())["tpu_pod_large"]
    assert aot.compare(golden, golden) == []
    path = next(p for p, spec in golden["params"].items() if "fsdp" in json.dumps(spec))
    changed = json.loads(json.dumps(golden))
    changed["params"][path] = [None] * len(golden["params"][path])
    changed["params"]["['new']['kernel']"] = [None, None]
    changed["mesh"] = {"data": 8, "fsdp": 1}
    changed["batch"] = [["data"]]
    lines = aot.compare(golden, changed)
    assert any(path in line and "fsdp" in line for line in lines), lines
    assert any("['new']['kernel']" in line and "missing" in line for line in lines), lines
    assert any(line.startswith("mesh") for line in lines) and any(line.startswith("batch") for line in lines)
    # What XLA's compiled update returns in another layout than the state's (`--part update`; a planted
    # constraint replicating tpu_pod_large's updated parameters made 70 of them so, 35 per copy): a new one and one no
    # longer moved are both reported; a whole-step comparison, which has no such list, does not look.
    planted = "params['x']: held as ['fsdp'], returned as [None]"
    moved = dict(golden, moved_by_update=golden["moved_by_update"][1:] + [planted])
    lines = aot.compare(golden, moved)
    assert any("not in the golden file: params['x']" in line for line in lines), lines
    assert any("no longer moved" in line and golden["moved_by_update"][0] in line for line in lines), lines
    whole_step = {k: v for k, v in golden.items() if k != "moved_by_update"}
    assert aot.compare(golden, whole_step) == []
