"""Run configuration: nested frozen dataclasses, Python config files, dotted command-line overrides.

An experiment is a Python file with `get_config() -> Config` (big_vision and
mujoco_playground style: readable, diffable). Any value can be overridden on
the command line as `--section.key=value` (`--train.steps=200`,
`--data.families="{'collision': 2, 'projectile': 1}"`); values are read as
Python literals and checked against the field's type, and an unknown key is an
error that names it and suggests the closest valid one.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import types
import typing
from pathlib import Path
from typing import Any

from physsim import _names, scenarios
from physsim.model.config import ModelConfig
from physsim.model.loss import LossWeights


def every_family(weight: float = 1.0) -> tuple[tuple[str, float], ...]:
    """Every registered scene family at one weight: the default of `data.families`, and what a config means
    by "all families" (a family added to `physsim/scenarios/` joins them without an edit to any config)."""
    return tuple((name, float(weight)) for name in scenarios.names())


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What each training step simulates and asks."""

    # Scene families and their relative weight: each shard simulates this share of its worlds per family.
    families: tuple[tuple[str, float], ...] = dataclasses.field(default_factory=lambda: every_family())
    worlds_per_shard: int = 16  # factual worlds per scene shard (each with its counterfactual twins)
    questions_per_world: int = 4  # questions asked per simulated world (balanced draws, see episode)
    shards: int = 1  # scene shards per step, each from its own key; a multiple of the device count
    task_weights: tuple[tuple[str, float], ...] = (("descriptive", 1.0), ("state", 1.0), ("property", 1.0),
                                                    ("causal", 1.0), ("counterfactual", 1.0))
    # Rolling replay (train.replay): questions kept per scene shard (0: off, every update trains on the
    # step's fresh questions) and questions drawn from it per shard for each update.
    replay: int = 0
    replay_sample: int = 64
    camera_jitter: float = 0.0  # m, per world
    frame_stride: int = 2  # every k-th simulated frame (25 fps) is shown: 12.5 fps
    horizons: tuple[float, ...] = (0.25, 0.5, 1.0)  # s after the clip, for the state head
    # Per family, tunable values that replace its declared ones (`Scenario.default_config()`: the rollout,
    # the window shown, sampling ranges, intervention factors), e.g. {'collision': {'heavier': 2.0}} or
    # {'ramp': {'train': {'angle': (20.0, 30.0)}}}; each value is checked against the family's field type.
    family_config: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def family_weights(self) -> dict[str, float]:
        return dict(self.families)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 200  # simulated batches
    # Optimiser updates per simulated batch ("data echoing": simulation is the expensive part on a
    # CPU, and repeated questions push the decoder to read the video; see docs/DESIGN.md).
    updates_per_batch: int = 1
    seed: int = 0
    learning_rate: float = 1e-3
    warmup_steps: int = 20  # optimiser updates
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    blind_baseline: bool = True  # train the same model on zeroed video, on the same batches, beside it
    fsdp: int = 1  # devices that share one copy of the parameters (1: data parallel)
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    # Stop (keeping the checkpoints as they are) when more than this fraction of one family's worlds in a
    # step had exploding or non-finite simulations (they are masked out of the loss either way) ...
    max_invalid_fraction: float = 0.5
    # ... or when this many updates in a row had non-finite loss or gradients (each was skipped).
    max_consecutive_skips: int = 20


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    every: int = 100  # steps between evaluations (and one at the end)
    questions: int = 64  # per family and split; the held-out suite is simulated once per run
    questions_per_world: int = 1  # the suite simulates questions / questions_per_world worlds
    splits: tuple[str, ...] = ("train", "ood")  # parameter ranges: in-distribution and out-of-distribution
    # "test": the held-out suites a run reports. "validation": suites of the training ranges from a stream of
    # their own (physsim.streams), for tuning a config without looking at the held-out suites (splits ("train",)).
    suites: str = "test"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str = "tiny"
    out_dir: str = "runs"
    tensorboard: bool = False  # also write TensorBoard event files (needs tensorboardX)
    progress: bool = True  # a rich progress line


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    loss: LossWeights = LossWeights()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    run: RunConfig = RunConfig()

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name


class ConfigError(ValueError):
    """A config file or override that cannot be used, with the reason."""


def keys(config: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of a config (`train.steps`, `model.dec_depth`, ...)."""
    config = Config() if config is None else config
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += keys(value, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _unknown(key: str, valid: list[str]) -> ConfigError:
    return _names.unknown("config key", key, valid, ConfigError, list_known=False)


def _frozen(value: Any) -> Any:
    """Dicts as tuples of (key, value) pairs and lists as tuples, all the way down (configs stay hashable)."""
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """`value` as the field's type, or a ConfigError saying what was expected."""
    if annotation is Any:
        return _frozen(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: expected True or False")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: expected an integer")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}={value!r}: expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r}: expected a string")
    if origin is tuple:
        if isinstance(value, dict) and args and typing.get_origin(args[0]) is tuple:
            value = list(value.items())  # {'collision': 1} for a tuple of (name, weight) pairs
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r}: expected a sequence")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}={value!r}: expected {len(args)} entries")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    return value


def _hints(cls) -> dict[str, Any]:
    import physsim.model.config as model_config
    import physsim.model.loss as loss

    return typing.get_type_hints(cls, globalns={**vars(model_config), **vars(loss), **globals()})


def field_type(key: str) -> Any:
    """The annotated type of a dotted config key (`train.steps` -> int)."""
    valid = keys()
    if key not in valid:
        raise _unknown(key, valid)
    section, name = key.split(".", 1)
    return _hints(type(getattr(Config(), section)))[name]


def replace(config: Config, overrides: dict[str, Any]) -> Config:
    """`config` with dotted `overrides` applied; each key and value is checked (ConfigError)."""
    valid = keys(config)
    for key in overrides:
        if key not in valid:
            raise _unknown(key, valid)
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        cls = type(getattr(config, section))
        sections.setdefault(section, {})[name] = _coerce(key, value, _hints(cls)[name])
    try:
        return dataclasses.replace(config, **{
            section: dataclasses.replace(getattr(config, section), **changes) for section, changes in sections.items()
        })
    except ValueError as e:  # a section's own checks (e.g. model shapes)
        raise ConfigError(str(e)) from e


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--train.steps=200` / `--train.steps 200` strings -> {'train.steps': 200} (Python literals, else strings)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --train.steps=200")
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
        elif i + 1 < len(args):
            key, text = arg[2:], args[i + 1]
            i += 1
        else:
            raise ConfigError(f"{arg} needs a value, e.g. {arg}=1")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
        i += 1
    return out


def load(path: str | Path) -> Config:
    """`get_config()` of a Python config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"physsim_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file: report any failure as a config error
        raise ConfigError(f"config file {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config()")
    config = module.get_config()
    if not isinstance(config, Config):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not physsim.train.config.Config")
    try:
        return validated(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def family_configs(data: DataConfig) -> dict[str, Any]:
    """Per family named in `data.family_config`, its `FamilyConfig` with the given values (each coerced to the
    field's type); a ConfigError names an unknown family or key, a wrong type or an impossible value."""
    out = {}
    for family, values in data.family_config:
        if family not in data.family_weights():
            raise _names.unknown("family", family, list(data.family_weights()), ConfigError,
                                 where=" in data.family_config (it names families of data.families)")
        out[family] = scenarios.get(family).tuned(
            values, error=ConfigError, label=f"data.family_config.{family}",
            coerce=lambda key, value, hint, family=family: _coerce(f"data.family_config.{family}.{key}", value, hint))
    return out


def validated(config: Config) -> Config:
    """`config` with every value checked against its field's type (a ConfigError names the first wrong one)."""
    defaults = Config()
    for f in dataclasses.fields(Config):
        section = getattr(config, f.name)
        if type(section) is not type(getattr(defaults, f.name)):
            raise ConfigError(f"config section {f.name!r} is a {type(section).__name__}, "
                              f"not a {type(getattr(defaults, f.name)).__name__}")
    values = {}
    for key in keys(config):
        section, name = key.split(".", 1)
        values[key] = getattr(getattr(config, section), name)
    return replace(config, values)


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_json(config: Config) -> str:
    return json.dumps(to_dict(config), indent=2)
