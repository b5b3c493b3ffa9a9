"""Checkpoints: orbax `CheckpointManager` directories holding the model and what it takes to use it.

Each step directory holds the items

    params  the model's parameters (nnx.Param state as a nested dict)
    meta    JSON: format version, model config, tokenizer vocabulary, and what the caller adds

and the trainer adds its own (optimiser state, PRNG key, ...) through
`extra_handlers` and `extra_args`; readers that need only the model
(`physsim.predict`, exports) restore `params` and `meta` alone. Orbax writes
each step under a temporary name and renames it when complete, so a step that
is listed is whole. Shapes are compared with the stored metadata before any
restore, and every differing parameter is named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from physsim.model import config as config_lib
from physsim.model.vlm import VLM, abstract

FORMAT = 2  # 2: each tower's blocks stacked along a leading axis (`layers.Stack`); 1 held them one by one
PARAMS, META = "params", "meta"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model asked for."""


def handlers(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {PARAMS: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler(), **(extra or {})}


def open_manager(directory: str | Path, *, max_to_keep: int | None = None, extra_handlers: dict | None = None,
                 read_only: bool = False) -> ocp.CheckpointManager:
    directory = Path(directory).absolute()
    if read_only and not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory at {directory}")
    # A temporary directory left by a save that was killed is never complete (orbax renames a step into place
    # only once every file is written): opening the manager for writing deletes it.
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers(extra_handlers))


def param_tree(model: VLM) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def save_args(config: config_lib.ModelConfig, params: dict, tokenizer, meta: dict | None = None
              ) -> dict[str, ocp.args.CheckpointArgs]:
    """The model's items of one step (parameters as a pure dict); the trainer adds its own to the same `Composite`."""
    return {
        PARAMS: ocp.args.StandardSave(params),
        META: ocp.args.JsonSave({"format": FORMAT, "model": config_lib.to_dict(config),
                                 "tokenizer": tokenizer.to_json(), **(meta or {})}),
    }


def save(directory: str | Path, step: int, model: VLM, tokenizer, meta: dict | None = None) -> Path:
    """Writes one step (and waits for it): the model, its config and the tokenizer."""
    with open_manager(directory) as manager:
        manager.save(step, args=ocp.args.Composite(**save_args(model.config, param_tree(model), tokenizer, meta)))
        manager.wait_until_finished()
        return Path(manager.directory) / str(step)


def _step(manager: ocp.CheckpointManager, step: int | None) -> int:
    steps = manager.all_steps()
    if not steps:
        raise CheckpointError(f"no complete checkpoint in {manager.directory}")
    if step is None:
        return max(steps)
    if step not in steps:
        raise CheckpointError(f"no checkpoint of step {step} in {manager.directory}; it has steps {sorted(steps)}")
    return step


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    try:
        meta = manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]
    except (OSError, ValueError, json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"checkpoint step {step} in {manager.directory}: unreadable metadata ({e})") from e
    if not isinstance(meta, dict) or "format" not in meta:
        raise CheckpointError(f"checkpoint step {step} in {manager.directory} is not a physsim checkpoint of format {FORMAT}")
    if meta["format"] != FORMAT:
        why = (" (format 1 held each tower's blocks one by one; format 2 stacks them for nnx.scan: train again, or "
               "read it with the physsim version that wrote it)") if meta["format"] == 1 else ""
        raise CheckpointError(f"checkpoint step {step} in {manager.directory} is a physsim checkpoint of format "
                              f"{meta['format']!r}; this version reads format {FORMAT}{why}")
    return meta


def shape_mismatches(stored: dict, expected: dict, prefix: str = "") -> list[str]:
    """Paths where two nested dicts of arrays differ in presence or shape."""
    problems = []
    for name in sorted(set(map(str, stored)) | set(map(str, expected))):
        s = stored.get(name, stored.get(int(name)) if name.isdigit() else None)
        e = expected.get(name, expected.get(int(name)) if name.isdigit() else None)
        path = f"{prefix}{name}"
        if s is None or e is None:
            problems.append(f"{path}: {'only in the checkpoint' if e is None else 'missing from the checkpoint'}")
        elif isinstance(e, dict) or isinstance(s, dict):
            if not (isinstance(e, dict) and isinstance(s, dict)):
                problems.append(f"{path}: a group in one, an array in the other")
            else:
                problems += shape_mismatches(s, e, path + ".")
        elif tuple(s.shape) != tuple(e.shape):
            problems.append(f"{path}: {tuple(s.shape)} in the checkpoint, {tuple(e.shape)} in the model")
    return problems


def check_params_fit(manager: ocp.CheckpointManager, step: int, expected: dict) -> None:
    """Raises CheckpointError naming each parameter whose shape differs (before anything is restored)."""
    try:
        stored = manager.item_metadata(step)[PARAMS]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint step {step} in {manager.directory}: unreadable parameters ({e})") from e
    tree = getattr(stored, "tree", stored)
    if not isinstance(tree, dict):
        raise CheckpointError(f"checkpoint step {step} in {manager.directory} holds no parameter tree")
    problems = shape_mismatches(tree, expected)
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise CheckpointError(
            f"checkpoint step {step} in {manager.directory} holds a model of another shape:\n  {shown}"
        )


def latest_step(manager: ocp.CheckpointManager) -> int | None:
    steps = manager.all_steps()
    return max(steps) if steps else None


def restore_params(manager: ocp.CheckpointManager, step: int, model: VLM) -> None:
    """Writes the step's parameters into `model` (in place) after checking every shape."""
    expected = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), param_tree(model))
    check_params_fit(manager, step, expected)
    restored = manager.restore(step, args=ocp.args.Composite(**{PARAMS: ocp.args.StandardRestore(expected)}))[PARAMS]
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)


def load(directory: str | Path, step: int | None = None) -> tuple[VLM, Any, dict]:
    """(model, tokenizer, meta) of a checkpoint directory's `step` (default: the latest complete one)."""
    from physsim.questions.tokenizer import Tokenizer

    with open_manager(directory, read_only=True) as manager:
        step = _step(manager, step)
        meta = read_meta(manager, step)
        try:
            cfg = config_lib.from_dict(meta["model"])
            tokenizer = Tokenizer.from_json(meta["tokenizer"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint step {step} in {manager.directory}: bad metadata ({e})") from e
        model = abstract(cfg)  # shapes only; the restore fills in every parameter
        restore_params(manager, step, model)
    return model, tokenizer, {**meta, "step": step}
