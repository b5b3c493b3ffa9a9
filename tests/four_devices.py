"""Run by tests/test_train.py in a subprocess with 4 forced CPU devices: one training step on a 1-device
mesh and on 4 devices with FSDP, from the same state and key; prints the metrics as JSON."""

import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"

import json  # noqa: E402

import jax  # noqa: E402

from physsim.train import config as config_lib  # noqa: E402
from physsim.train import data, mesh, step  # noqa: E402
from physsim.train.config import ConfigError  # noqa: E402


def main() -> None:
    config = config_lib.replace(config_lib.load(sys.argv[1]), config_lib.parse_overrides(sys.argv[2:]))
    assert jax.device_count() == 4, jax.devices()
    out = {}
    # One step from the same state and key on one device, and on four devices as a 2 x 2 mesh: two data
    # groups, the parameters split over the two devices of each (FSDP). The step compiled for four devices
    # with replicated parameters is left out for time (a compile of the whole step, ~40 s cold); the
    # two-process test (test_reliability) trains data-parallel with replicated parameters. (Comparing the
    # batches themselves, tokens and pixels, cost two more compiles of the simulation; the test compares the
    # losses, which read every question, answer and target of the batch.)
    for name, devices, fsdp in (("one", jax.devices()[:1], 1), ("fsdp", jax.devices(), 2)):
        cfg = config_lib.replace(config, {"train.fsdp": fsdp})
        m = mesh.make_mesh(fsdp, devices)
        graphdef, state, shardings = step.init_state(cfg, m)
        fn = step.make_step(cfg, graphdef, m, shardings)
        state, metrics = fn(state)
        out[name] = {k: float(v) for k, v in jax.device_get(metrics).items() if k != step.FAULT_EXAMPLES}
        out[name]["devices"] = len(state.params["embed"]["embedding"].sharding.device_set)
        out[name]["param_shard_shape"] = list(state.params["blocks"]["layers"]["mlp"]["fc1"]["kernel"].addressable_shards[0].data.shape)
    try:
        data.check(config_lib.replace(config, {"data.shards": 6}), jax.device_count())
        out["indivisible"] = "accepted"
    except ConfigError as e:
        out["indivisible"] = str(e)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
