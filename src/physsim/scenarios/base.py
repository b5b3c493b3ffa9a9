"""The `Scenario` interface and the registry of scene families.

A scenario declares its randomised parameters (`params`, with in-distribution
and out-of-distribution ranges), its static layout, and a pure, vmappable
mapping from one world's sampled parameters to `WorldParams`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import typing
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from physsim import _names
from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.sim import params as params_lib
from physsim.sim.params import Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import DEFAULT_PHYSICS, SceneLayout
from physsim.sim.simulate import Frames

_REGISTRY: dict[str, type[Scenario]] = {}


@struct.dataclass
class Fact:
    """One measured fact of one world: its value, whether it can be asked about, an event time.

    `classes` marks the answers this world's visible configuration allows
    (e.g. in a tower of three blocks only the green and the blue one can be
    the lowest to fall); None allows every option. Questions are balanced
    over these, and a question's chance is 1 / their number.
    """

    value: jax.Array  # () float32: bool, option index or number
    valid: jax.Array  # () bool: the question is well posed for this world
    time: jax.Array  # () float32 s: the event behind it (for explanations); nan if none
    classes: jax.Array | None = None  # (n_classes,) bool, or None: every class possible
    # () bool: the world is knife-edge for this fact by a closed-form criterion (e.g. a tower's load within a
    # hair of its support's edge), found without the shadow world; it is dropped and counted like a shadow flip.
    edge: jax.Array | bool = False


def fact(value, valid=True, time=jnp.nan, classes=None, edge=False) -> Fact:
    return Fact(
        value=jnp.asarray(value, jnp.float32),
        valid=jnp.asarray(valid, bool),
        time=jnp.asarray(time, jnp.float32),
        classes=None if classes is None else jnp.asarray(classes, bool),
        edge=jnp.asarray(edge, bool),
    )


@struct.dataclass
class Run:
    """What a family's facts are measured from, for one world (no batch axis)."""

    params: dict[str, jax.Array]
    world: WorldParams
    frames: Frames  # the factual rollout
    twins: dict[str, Frames]  # the intervened rollouts, by intervention name
    # Time of the last frame the model is shown (s): facts treat what happens after it as unseen.
    observe_seconds: float = struct.field(pytree_node=False, default=0.0)
    frame_stride: int = struct.field(pytree_node=False, default=1)  # the video shows every k-th recorded frame
    camera: Camera | None = struct.field(pytree_node=False, default=None)  # what the video is filmed with
    camera_jitter: float = struct.field(pytree_node=False, default=0.0)  # m: its position may move this much

    @property
    def observed(self) -> jax.Array:
        """(T,) bool: recorded frames up to the last frame the model is shown."""
        return self.frames.time <= self.observe_seconds + 1e-6

    @property
    def shown(self) -> jax.Array:
        """(T,) bool: the recorded frames that are the video's frames."""
        index = jnp.arange(self.frames.time.shape[0])
        return self.observed & (index % self.frame_stride == 0)

    @property
    def frame_interval(self) -> jax.Array:
        """Seconds between two frames of the video."""
        return (self.frames.time[1] - self.frames.time[0]) * self.frame_stride

    @property
    def end(self) -> jax.Array:
        """Time of the last recorded frame (s): an event read "at" a time must come before it."""
        return self.frames.time[-1]


@dataclasses.dataclass
class Record:
    """What a family's independent derivation (`Scenario.derive`) reads for one world: NumPy, no batch axis.

    `sim` and `twins` are MuJoCo C rollouts in float64 of the same world
    (and its interventions), recorded at every physics step for twice the
    pipeline's rollout; `seg` is the rendered segmentation of the frames the
    model is shown (object slot i -> i), at the times `frame_times`.
    """

    params: dict[str, np.ndarray]
    world: WorldParams
    sim: Frames
    twins: dict[str, Frames]
    seconds: float  # the pipeline's rollout (s)
    observe_seconds: float  # time of the last frame shown (s)
    seg: np.ndarray  # (F, H, W) int32
    frame_times: np.ndarray  # (F,) s


@dataclasses.dataclass(frozen=True)
class ReferenceCase:
    """Worlds of a family that `python -m physsim.validate` rolls out in MJX and in MuJoCo C and compares
    (float64, positions over 2 s): the family's sampled worlds with `overrides` fixed (parameter name, value).
    Cases of one `label` are reported as one row, gated unless a case of it is not (`gated=False`: a known
    difference between the two, such as box-box collision algorithms, reported but not failed on)."""

    label: str
    overrides: tuple[tuple[str, float], ...] = ()
    gated: bool = True


@dataclasses.dataclass(frozen=True)
class FamilyConfig:
    """A family's tunable values: what an experiment config may change per family (`data.family_config`,
    type-checked like every config value). Families with interventions add their factors in a subclass,
    and name the words their questions write for them (`words`: "<heavier>" -> "four times")."""

    seconds: float = 2.0  # the rollout (s)
    observe_seconds: float = 0.6  # the video shows the first this many seconds; predictions are about the rest
    # Sampling ranges that replace a parameter's declared ones: in distribution, and held out.
    train: tuple[tuple[str, tuple[float, float]], ...] = ()
    ood: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    # Physics settings (MuJoCo's timestep and solver iterations): a family declares the cheapest that keep its
    # gates (`python -m physsim.settings`); the family's layout takes them (`physics`).
    timestep: float = DEFAULT_PHYSICS["timestep"]
    solver_iterations: int = DEFAULT_PHYSICS["solver_iterations"]
    linesearch_iterations: int = DEFAULT_PHYSICS["linesearch_iterations"]

    def __post_init__(self):
        if not 0 < self.observe_seconds <= self.seconds:
            raise ValueError(f"observe_seconds={self.observe_seconds} must be positive and at most "
                             f"seconds={self.seconds}")
        for name in ("solver_iterations", "linesearch_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")

    def physics(self) -> dict:
        """The physics settings as `SceneLayout` takes them (a family's `layout` passes `**config.physics()`)."""
        return {name: getattr(self, name) for name in DEFAULT_PHYSICS}

    def words(self) -> dict[str, str]:
        """What each `<name>` of the family's question text reads for these values."""
        return {}

    def check_factor(self, name: str, low: float = 0.0, high: float = float("inf")) -> None:
        """An intervention factor must change the world: within (low, high) and not 1."""
        value = getattr(self, name)
        if not (low < value < high and value != 1):
            raise ValueError(f"{name}={value}: an intervention factor must lie in ({low:g}, {high:g}) and not be 1")


def _frozen(value):
    """A tunable as the (hashable) config holds it: {"angle": (20, 30)} -> (("angle", (20, 30)),)."""
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class Scenario(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    # Its tunable values (`default_config`); a family sets its own, or just `default_seconds` and
    # `observe_seconds`, which always follow the config (`__init_subclass__`).
    config: ClassVar[FamilyConfig] = FamilyConfig()
    default_seconds: ClassVar[float] = 2.0
    # The video the model sees is the first `observe_seconds`; predictions are about what follows.
    observe_seconds: ClassVar[float] = 0.6
    # As declared, with `<name>` slots for the config's words; `questions` holds them filled.
    declared_questions: ClassVar[tuple[Template, ...]] = ()
    questions: ClassVar[tuple[Template, ...]] = ()
    # Interventions simulated beside every factual world (counterfactual twins).
    twins: ClassVar[tuple[str, ...]] = ()
    # Its worlds that validate compares between MJX and MuJoCo C (none: not compared).
    reference_cases: ClassVar[tuple[ReferenceCase, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "config" not in own and ("default_seconds" in own or "observe_seconds" in own):
            cls.config = dataclasses.replace(cls.config, seconds=cls.default_seconds,
                                             observe_seconds=cls.observe_seconds)
        cls.default_seconds, cls.observe_seconds = cls.config.seconds, cls.config.observe_seconds
        if "questions" in own:
            cls.declared_questions = own["questions"]
        cls.questions = tuple(t.filled(cls.config.words()) for t in cls.declared_questions)

    @classmethod
    def default_config(cls) -> FamilyConfig:
        """The family's tunable values as declared (a configured family's differ: `configured`)."""
        return registered(cls).config

    @classmethod
    def tuned(cls, values, *, coerce=None, error: type[Exception] = ValueError, label: str = "") -> FamilyConfig:
        """The family's declared tunables with `values` ((name, value) pairs or a dict) set: an unknown name gets
        the did-you-mean error, `coerce(name, value, annotation)` (if given) checks each value's type, and the
        result is checked as `configured` checks it (ranges inside the valid ones, factors that change the
        world). Every error is an `error` naming the family (or `label`) and the value. The one check behind
        `env.make(name, **tunables)` and an experiment config's `data.family_config`."""
        default = cls.default_config()
        name = registered(cls).name
        hints = typing.get_type_hints(type(default))
        fields = [f.name for f in dataclasses.fields(default)]
        changes = {}
        for key, value in dict(values).items():
            if key not in fields:
                raise _names.unknown("tunable", key, fields, error, where=f" of family {name!r}")
            changes[key] = coerce(key, value, hints[key]) if coerce else _frozen(value)
        try:
            config = dataclasses.replace(default, **changes)
            cls.configured(config).layout()  # physics settings the layout refuses (a timestep that skips frames)
        except (TypeError, ValueError) as e:
            raise error(f"{label or f'family {name!r}'}: {e}") from e
        return config

    @classmethod
    def configured(cls, config: FamilyConfig | None) -> type[Scenario]:
        """This family with its tunables set to `config` (None: as declared): a subclass, made once per config,
        whose parameters sample the config's ranges, whose rollout and window are the config's and whose
        interventions and question text use its factors. Errors name the parameter or value at fault."""
        base = registered(cls)
        if config is None or config == base.config:
            return base
        if type(config) is not type(base.config):
            raise TypeError(f"family {base.name!r} takes a {type(base.config).__name__}, not a "
                            f"{type(config).__name__}")
        return _configured(base, config)

    @classmethod
    @abc.abstractmethod
    def layout(cls) -> SceneLayout:
        """Static structure: object slots, static geoms, timestep, frame rate."""

    @classmethod
    @abc.abstractmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        """One world's physics from one world's sampled parameters (no batch axis)."""

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        """Where this family is filmed from; families override the pose."""
        return Camera(width=width, height=height)

    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        """The world changed by intervention `twin` (one of `twins`)."""
        raise ValueError(f"scenario {cls.name!r} has no intervention {twin!r}; it has {cls.twins}")

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        """Every fact its questions read, measured from one world's rollouts."""
        return {}

    @classmethod
    def checks(cls, measured, layout: SceneLayout) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
        """Laws the family's facts must obey, each measured another way than the fact: (what is checked,
        (B,) bool agreement, (B,) bool worlds it applies to, fraction required). `measured` is a batch
        of `episode.Measured` as NumPy arrays. Run by `python -m physsim.validate` and the tests."""
        return []

    @classmethod
    def derive(cls, record: Record, layout: SceneLayout) -> dict[str, float]:
        """Each template's answer for one world re-derived by its independent route (`Template.route`):
        from the MuJoCo C record or from the segmentation of the frames shown, in NumPy code of its
        own. NaN where that route cannot tell. Used by `python -m physsim.audit`."""
        return {}

    @classmethod
    def sample(cls, key: jax.Array, batch_size: int, split: str = "train") -> dict[str, jax.Array]:
        return params_lib.sample_params(cls.params, key, batch_size, cls.layout().n_objects, split)

    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        raise _names.unknown("parameter", name, [p.name for p in cls.params], where=f" of family {cls.name!r}")


def registered(cls: type[Scenario]) -> type[Scenario]:
    """The declared family of a configured one (itself for a declared family)."""
    return cls.__dict__.get("_declared", cls)


@functools.cache
def _configured(base: type[Scenario], config: FamilyConfig) -> type[Scenario]:
    params = {p.name: p for p in base.params}
    for name, train in config.train:
        params[name] = dataclasses.replace(base.param(name), train=tuple(map(float, train)))
    for name, ood in config.ood:
        params[name] = dataclasses.replace(params[base.param(name).name], ood=tuple(tuple(map(float, r)) for r in ood))
    return type(base.__name__, (base,), {"config": config, "params": tuple(params.values()), "_declared": base,
                                         "__module__": base.__module__, "__doc__": base.__doc__})


def resolve(family: str | type[Scenario]) -> type[Scenario]:
    """A family given by name (the registered one) or as a (possibly configured) class."""
    return family if isinstance(family, type) else get(family)


def register(cls: type[Scenario]) -> type[Scenario]:
    if cls.name in _REGISTRY:
        raise ValueError(f"scenario {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Removes a registered family (one defined in a notebook or a test, when it is done with it)."""
    if name not in _REGISTRY:
        raise _names.unknown("scenario", name, names())
    del _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[Scenario]:
    if name not in _REGISTRY:
        raise _names.unknown("scenario", name, names())
    return _REGISTRY[name]
