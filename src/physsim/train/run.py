"""The training run: state, checkpoints, the loop, evaluation and the files of `runs/<name>/`.

    runs/<name>/config.json     the resolved config
    runs/<name>/metrics.jsonl   one line per logged step ("kind": "train") and per evaluation ("kind": "eval")
    runs/<name>/eval.json       the final evaluation: per split x task and split x family x task tables
    runs/<name>/curves.png      loss and held-out accuracy (model and blind baseline) over steps
    runs/<name>/checkpoints/    orbax steps: params + meta (model config, tokenizer, run config) + train
                                (step, PRNG key, optimiser state, blind baseline)

A run restarts from its latest complete checkpoint by itself: the step
counter, key and optimiser state come back, so the next step is the one the
interrupted run would have taken (bit-identical on CPU). Lines of
`metrics.jsonl` past that step are dropped, as they are about to be
recomputed. SIGTERM or Ctrl-C ends the run after the current step with a
checkpoint.

Faults (see RELIABILITY.md): worlds whose simulation exploded are masked out
of the loss inside the step and counted; updates with non-finite gradients
are skipped. When more than `train.max_invalid_fraction` of one family's
worlds in a step are unsound, or `train.max_consecutive_skips` updates in a
row were skipped, the run raises `TrainingFault` naming the cause, and leaves
its checkpoints as they were (none is written from the faulty state).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from physsim import episode
from physsim.model import checkpoint
from physsim.sim.simulate import MAX_SPEED
from physsim.train import config as config_lib
from physsim.train import data as data_lib
from physsim.train import evaluate as eval_lib
from physsim.train import logs
from physsim.train import mesh as mesh_lib
from physsim.train import step as step_lib
from physsim.train.config import Config, ConfigError

TRAIN_ITEM = "train"


class TrainingFault(RuntimeError):
    """The run stopped at `step` because its simulations or its updates went wrong; its checkpoints are
    untouched."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


# ---------------------------------------------------------------- faults
def source_commit() -> str | None:
    """The git commit of the physsim source this run trains with (`<hash>-dirty` when it has uncommitted
    changes), so a recorded run names the code behind it; None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _describe(params: dict) -> str:
    def fmt(v):
        v = np.asarray(v)
        return f"{float(v):.4g}" if v.ndim == 0 else "[" + ", ".join(f"{float(x):.4g}" for x in v.ravel()) + "]"

    return ", ".join(f"{name}={fmt(value)}" for name, value in params.items())


def check_faults(step: int, metrics: dict, config: Config, worlds: dict[str, int],
                 last_checkpoint: Callable[[], int | None]) -> None:
    """Raises TrainingFault when a step's metrics (host values) show too many unsound worlds of a family
    (of the `worlds` each family simulates per step), or too many consecutive updates skipped for
    non-finite loss or gradients."""

    def kept() -> str:
        latest = last_checkpoint()
        return (f"checkpoints are left as they were (latest: step {latest})" if latest is not None
                else "no checkpoint had been written yet")

    for family, n_worlds in worlds.items():
        unsound = int(metrics[f"unsound_worlds/{family}"])
        if unsound / n_worlds > config.train.max_invalid_fraction:
            example = _describe(metrics[step_lib.FAULT_EXAMPLES][family])
            raise TrainingFault(step,
                f"step {step}: {unsound} of {n_worlds} {family!r} worlds were invalid (non-finite state or a speed "
                f"above {MAX_SPEED:g} m/s), more than train.max_invalid_fraction={config.train.max_invalid_fraction}; "
                f"one of them had {example}. Training stopped; {kept()}.")
    for prefix, who in (("", "model"), ("blind/", "blind baseline")):
        skipped = metrics.get(f"{prefix}consecutive_skipped_updates")
        if skipped is not None and int(skipped) >= config.train.max_consecutive_skips:
            raise TrainingFault(step,
                f"step {step}: the last {int(skipped)} updates of the {who} had a non-finite loss or gradients and "
                f"were skipped (train.max_consecutive_skips={config.train.max_consecutive_skips}). Training "
                f"stopped; {kept()}.")


def _fault_view(metrics: dict) -> dict:
    """The part of a step's metrics that check_faults reads (small: fetched every step)."""
    return {k: v for k, v in metrics.items()
            if k.startswith("unsound_worlds/") or k.endswith("consecutive_skipped_updates")
            or k == step_lib.FAULT_EXAMPLES}


# ---------------------------------------------------------------- checkpoints
def open_checkpoints(config: Config, read_only: bool = False) -> ocp.CheckpointManager:
    return checkpoint.open_manager(config.run_dir / "checkpoints", max_to_keep=config.train.keep_checkpoints,
                                   extra_handlers={TRAIN_ITEM: ocp.StandardCheckpointHandler()}, read_only=read_only)


def _train_item(state: step_lib.TrainState) -> dict:
    return {"step": state.step, "key": state.key, "opt_state": state.opt_state,
            "blind_params": state.blind_params, "blind_opt_state": state.blind_opt_state, "replay": state.replay}


def save_state(manager: ocp.CheckpointManager, state: step_lib.TrainState, config: Config, tokenizer) -> int:
    step = int(state.step)
    meta = {"run": config_lib.to_dict(config), "step": step}
    args = checkpoint.save_args(config.model, state.params, tokenizer, meta)
    manager.save(step, args=ocp.args.Composite(**args, **{TRAIN_ITEM: ocp.args.StandardSave(_train_item(state))}),
                 force=True)
    return step


def restore_state(manager: ocp.CheckpointManager, step: int, like: step_lib.TrainState, shardings, config: Config
                  ) -> step_lib.TrainState:
    """The checkpointed state at `step`, laid out like `like`; refuses (CheckpointError) one that does not fit."""
    checkpoint.check_params_fit(manager, step, like.params)
    saved = checkpoint.read_meta(manager, step).get("run", {})
    for section, key in (("train", "blind_baseline"), ("data", "replay")):
        was, now = saved.get(section, {}).get(key), getattr(getattr(config, section), key)
        if was is not None and was != now:
            raise checkpoint.CheckpointError(
                f"checkpoint step {step} in {manager.directory} was trained with {section}.{key}={was}; "
                f"this run has {now}: its state does not carry over (use another run.name)")
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), like, shardings)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**{
            checkpoint.PARAMS: ocp.args.StandardRestore(abstract.params),
            TRAIN_ITEM: ocp.args.StandardRestore(_train_item(abstract)),
        }))
    except (ValueError, KeyError, OSError) as e:
        raise checkpoint.CheckpointError(f"checkpoint step {step} in {manager.directory} cannot be restored: {e}") from e
    train = restored[TRAIN_ITEM]
    return step_lib.TrainState(step=train["step"], key=train["key"], params=restored[checkpoint.PARAMS],
                               opt_state=train["opt_state"], blind_params=train["blind_params"],
                               blind_opt_state=train["blind_opt_state"], replay=train["replay"])


# ---------------------------------------------------------------- the loop
class _StopRequest:
    """Set by SIGTERM / SIGINT; the loop checkpoints and ends after the current step."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class Result:
    step: int
    summary: dict | None
    run_dir: Path
    stopped_by_signal: bool = False


def train(config: Config, *, resume: bool = True, stop_at: int | None = None) -> Result:
    """Runs (or continues) the run described by `config`; see the module docstring for what it writes.

    `stop_at` ends this invocation after that step with a checkpoint, as an interruption would, and after the
    evaluation due at that step if there is one (the config, and so the learning-rate schedule, stay those of
    the whole run).
    """
    from rich.console import Console

    console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    lead = jax.process_index() == 0
    n_devices = jax.device_count()
    data_lib.check(config, n_devices)
    if stop_at is not None and not 1 <= stop_at <= config.train.steps:
        raise ConfigError(f"stop at step {stop_at}: the run has steps 1 to train.steps={config.train.steps}")
    if stop_at == config.train.steps:  # the run's own end: finished as any run is, evaluated, with its eval.json
        stop_at = None
    tokenizer = episode.default_tokenizer()
    if tokenizer.size > config.model.vocab_size:
        raise ConfigError(f"the tokenizer has {tokenizer.size} tokens; model.vocab_size={config.model.vocab_size} is too small")
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    mesh = mesh_lib.make_mesh(config.train.fsdp)
    graphdef, state, shardings = step_lib.init_state(config, mesh)
    manager = open_checkpoints(config)
    start = checkpoint.latest_step(manager) if resume else None
    if start is not None:
        state = restore_state(manager, start, state, shardings, config)
    elif not resume and checkpoint.latest_step(manager) is not None:
        raise checkpoint.CheckpointError(f"{manager.directory} already holds checkpoints; resume, or use another run.name")
    if start is not None and start >= config.train.steps and (run_dir / "eval.json").exists():
        manager.close()
        if lead:
            summary = json.loads((run_dir / "eval.json").read_text())
            console.print(f"run {config.run.name} is complete ({start} steps); its evaluation, from {run_dir}/eval.json:")
            logs.print_summary(summary, console)
        return Result(step=start, summary=summary, run_dir=run_dir)
    if stop_at is not None and start is not None and stop_at <= start:
        manager.close()
        raise ConfigError(f"stop at step {stop_at}: {run_dir} already holds a checkpoint of step {start}")
    if lead:
        (run_dir / "config.json").write_text(config_lib.to_json(config))
    log = logs.MetricsLog(run_dir / "metrics.jsonl", start) if lead else None
    writer = logs.tensorboard(config, run_dir) if lead else None
    per_step, trained = data_lib.n_questions(config), data_lib.n_trained(config)
    console.print(f"run {config.run.name}: {config.model.size} model, {n_devices} device(s) "
                  f"({jax.devices()[0].device_kind}), {per_step} fresh questions/step from "
                  f"{', '.join(data_lib.family_names(config.data))}, {config.train.updates_per_batch} update(s) of "
                  f"{trained // config.train.updates_per_batch} questions"
                  + (f" drawn from a replay of {config.data.replay * config.data.shards}" if config.data.replay else "")
                  + (f"; resuming after step {start}" if start is not None else ""))

    t0 = time.perf_counter()
    step_fn = step_lib.make_step(config, graphdef, mesh, shardings).lower(state).compile()
    console.print(f"training step compiled in {time.perf_counter() - t0:.0f} s")
    # Simulated when the first evaluation is due, not before: a start that stops before it (an interruption,
    # a fault) never pays for them. The suites come from their own stream, so when they are made changes nothing.
    suites: list = []
    suite_kind = eval_lib.suite_kind(config)

    def run_eval(step: int) -> dict:
        if not suites:
            t0 = time.perf_counter()
            console.print(f"step {step}: simulating the {suite_kind} suites (once per run)")
            suites.extend(eval_lib.make_suites(config, log=console.print))
            console.print(f"{suite_kind} suites: {len(suites)} x {config.eval.questions} questions simulated in "
                          f"{time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        summary = eval_lib.evaluate(graphdef, state.params, state.blind_params, suites, tokenizer)
        console.print(f"step {step}: evaluated on {len(suites)} {suite_kind} suite(s) in {time.perf_counter() - t0:.0f} s")
        if lead:
            log.write({"step": step, "kind": "eval", **summary})
            if writer:
                for r in summary["by_split_task"]:
                    writer.add_scalar(f"eval/{r['split']}/{r['task']}/accuracy", r["accuracy"], step)
        return summary

    summary = None
    first = int(state.step)
    stopped = False
    # A step's fault counters are read on the host one step late, once the next step is dispatched, so the
    # device is never idle waiting for the check; before anything is saved or evaluated they are read at once.
    unchecked: tuple[int, dict] | None = None
    worlds = data_lib.worlds_per_step(config)

    def settle() -> None:
        nonlocal unchecked
        if unchecked is not None:
            at, view = unchecked
            unchecked = None
            check_faults(at, jax.device_get(view), config, worlds, lambda: checkpoint.latest_step(manager))

    try:
        with _StopRequest() as stop, logs.Progress(console, config.train.steps, first, config.run.progress) as progress:
            t_start, t_log, step_at_log = time.perf_counter(), time.perf_counter(), first
            for step in range(first + 1, config.train.steps + 1):
                state, metrics = step_fn(state)
                settle()
                unchecked = (step, _fault_view(metrics))
                if step % config.train.log_every == 0 or step in (config.train.steps, stop_at) or stop.signal:
                    metrics = jax.device_get(metrics)
                    now = time.perf_counter()
                    rate = (step - step_at_log) / max(now - t_log, 1e-9)
                    t_log, step_at_log = now, step
                    entry = {"step": step, "kind": "train", "time_s": now - t_start, "steps_per_s": rate,
                             "questions_per_s": rate * trained, "fresh_questions_per_s": rate * per_step,
                             **{k: logs.finite(v) for k, v in metrics.items() if k != step_lib.FAULT_EXAMPLES}}
                    if lead:
                        log.write(entry)
                        if writer:
                            for k, v in entry.items():
                                if isinstance(v, float):
                                    writer.add_scalar(f"train/{k}", v, step)
                    progress.update(step, entry)
                interrupted = stop.signal is not None or step == stop_at
                if step % config.train.checkpoint_every == 0 or interrupted:
                    settle()
                    save_state(manager, state, config, tokenizer)
                # A --stop-at step that is an evaluation step is evaluated (a resumed run does not repeat it); a
                # signal stops without one.
                if step % config.eval.every == 0 and step < config.train.steps and not stop.signal:
                    settle()
                    summary = run_eval(step)
                if interrupted:
                    stopped = True
                    break
            settle()
        step = int(state.step)
        if not stopped:
            if checkpoint.latest_step(manager) != step:
                save_state(manager, state, config, tokenizer)
            summary = run_eval(step)
    except TrainingFault as fault:
        if lead:
            log.write({"step": fault.step, "kind": "fault", "error": str(fault)})
        raise
    finally:
        manager.wait_until_finished()  # an asynchronous save in flight completes (or is never renamed into place)
        manager.close()
    if lead and not stopped:
        (run_dir / "eval.json").write_text(json.dumps({
            "run": config.run.name, "step": step, "suites": config.eval.suites, "commit": source_commit(),
            "device": jax.devices()[0].device_kind, "devices": n_devices,
            "fresh_questions_per_step": per_step, "trained_questions_per_step": trained,
            "blind_baseline": config.train.blind_baseline, **summary}, indent=2))
        logs.plot_curves(log.entries(), run_dir / "curves.png")
        logs.print_summary(summary, console)
        console.print(f"wrote {run_dir}/eval.json, metrics.jsonl, curves.png and checkpoints/")
    elif lead:
        why = f"by signal {stop.signal}" if stop.signal else "as asked"
        console.print(f"stopped {why} after step {step}; checkpoint written to {run_dir}/checkpoints")
    if writer:
        writer.close()
    return Result(step=step, summary=summary, run_dir=run_dir, stopped_by_signal=stop.signal is not None)
