"""What a question batch is, before anything is simulated: `BatchSpec` (family, split, sizes, the video's window,
task types and their weights, where answers are balanced) and `View` (how the video is made, which facts need).

Both are hashable: one compiled program per spec.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from physsim import _names, scenarios
from physsim.questions import tokenizer as tok_lib
from physsim.questions.templates import DISTANCE_UNITS, TASKS, Template, context
from physsim.render import Camera
from physsim.render.raycast import CHECKER_SIZE
from physsim.scenarios.base import FamilyConfig
from physsim.sim import params as params_lib
from physsim.sim import simulate

BALANCE_MODES = ("shard", "replay")  # see BatchSpec.balance


def all_templates() -> list[Template]:
    """Every template of every registered family, in a fixed order."""
    return [t for name in scenarios.names() for t in scenarios.get(name).questions]


def default_tokenizer() -> tok_lib.Tokenizer:
    """The vocabulary of every registered family's templates (built once per set of registered families, so a
    family registered later, e.g. in a notebook or a test, gets its words)."""
    return _tokenizer_of(tuple(scenarios.names()))


@functools.lru_cache(maxsize=4)
def _tokenizer_of(families: tuple[str, ...]) -> tok_lib.Tokenizer:
    return tok_lib.build([t for name in families for t in scenarios.get(name).questions])


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """Static description of a question batch (hashable: one compile per spec)."""

    family: str
    # The family's tunable values (`Scenario.configured`); None: as the family declares them.
    family_config: FamilyConfig | None = None
    split: str = "train"
    n_worlds: int = 64  # simulated factual worlds (each with its twins)
    n_questions: int = 64
    seconds: float | None = None  # rollout length (default: the family's)
    # Video shown to the model (default: the family's). Resolving rounds it down to the time of the last
    # frame shown, which is what facts and targets treat as the end of what was seen.
    observe_seconds: float | None = None
    frame_stride: int = 2  # video frame = every k-th recorded frame
    width: int = 64
    height: int = 64
    horizons: tuple[float, ...] = (0.25, 0.5, 1.0)  # s after the window, for dense state targets
    tasks: tuple[str, ...] | None = None  # default: every task type the family asks
    # Relative frequency of each task type in `tasks` (default: equal); a template's
    # share is its task's weight divided among that task's templates.
    task_weights: tuple[float, ...] | None = None
    camera_jitter: float = 0.0  # m; 0 keeps the family camera fixed
    impl: str = "jax"
    # Where answers are balanced. "shard": within this batch (only configurations with every allowed answer
    # in it are drawn). "replay": across the trainer's replay ring (`train.replay.draw_weights`), so that a
    # batch of 2-6 worlds, which rarely holds every answer, still asks the templates its weights ask for: a slot
    # asks any askable world, its answer drawn uniformly among those its configuration has in the batch.
    balance: str = "shard"

    def scenario(self) -> type[scenarios.Scenario]:
        """The family, configured as `family_config` says."""
        return scenarios.get(self.family).configured(self.family_config)

    def resolved(self) -> BatchSpec:
        """Defaults filled in and every value checked, with errors naming the problem."""
        scenario = self.scenario()
        params_lib.check_split(self.split)
        if self.balance not in BALANCE_MODES:
            raise _names.unknown("balance mode", self.balance, BALANCE_MODES)
        seconds = scenario.default_seconds if self.seconds is None else self.seconds
        observe = scenario.observe_seconds if self.observe_seconds is None else self.observe_seconds
        for name, v in (("n_worlds", self.n_worlds), ("n_questions", self.n_questions),
                        ("frame_stride", self.frame_stride), ("width", self.width), ("height", self.height)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        if not 0 < observe <= seconds:
            raise ValueError(
                f"observation window {observe} s must be positive and not longer than the {seconds} s rollout"
            )
        if max(self.horizons, default=0.0) + observe > seconds + 1e-9 or min(self.horizons, default=1.0) <= 0:
            raise ValueError(f"horizons {self.horizons} s after the {observe} s window must lie in the {seconds} s rollout")
        offered = {t.task for t in scenario.questions}
        tasks = tuple(t for t in TASKS if t in offered) if self.tasks is None else tuple(self.tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise _names.unknown("task type", unknown[0], TASKS)
        missing = [t for t in tasks if t not in offered]
        if missing:
            raise ValueError(
                f"family {self.family!r} asks no {missing[0]!r} questions; it supports {sorted(offered)}"
            )
        layout = scenario.layout()
        if layout.n_objects < 1:
            raise ValueError(f"family {self.family!r} has no objects to ask about")
        simulate.n_frames_for(layout, seconds)  # whole number of frames, or a clear error
        last_shown = int(np.floor(observe * layout.fps + 1e-6)) // self.frame_stride * self.frame_stride
        observe = last_shown / layout.fps
        if last_shown == 0:
            raise ValueError(f"the {self.observe_seconds or scenario.observe_seconds} s window at frame_stride="
                             f"{self.frame_stride} shows only the first frame of {self.family!r}")
        if not tasks:
            raise ValueError(f"no task types chosen for family {self.family!r}")
        weights = (1.0,) * len(tasks) if self.task_weights is None else tuple(float(w) for w in self.task_weights)
        if len(weights) != len(tasks) or not all(w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise ValueError(f"task_weights {self.task_weights} must be one non-negative weight per task type "
                             f"{tasks}, not all zero")
        return dataclasses.replace(self, seconds=float(seconds), observe_seconds=float(observe), tasks=tasks,
                                   task_weights=weights)

    def templates(self) -> tuple[Template, ...]:
        return tuple(t for t in self.scenario().questions if t.task in self.tasks)

    def template_weights(self) -> np.ndarray:
        """Probability of drawing each of `templates()` (resolved specs only)."""
        templates = self.templates()
        weight = dict(zip(self.tasks, self.task_weights))
        per_task = {task: sum(t.task == task for t in templates) for task in self.tasks}
        w = np.asarray([weight[t.task] / per_task[t.task] for t in templates], np.float64)
        return w / w.sum()

    def video_frames(self) -> np.ndarray:
        """Indices of the recorded frames the video shows (resolved specs: the last is at observe_seconds)."""
        layout = self.scenario().layout()
        last = int(round(self.observe_seconds * layout.fps))
        return np.arange(0, last + 1, self.frame_stride)

    def frame_interval(self) -> float:
        """Seconds between two frames of the video."""
        return self.frame_stride / self.scenario().layout().fps

    def context(self, template: Template) -> str:
        """What a viewer needs beside the question: the frames' times and, for distances, a scale."""
        scale = CHECKER_SIZE if template.unit in DISTANCE_UNITS else None
        return context(self.frame_interval(), self.observe_seconds, scale)

    def prompt(self, template: Template, paraphrase: int) -> str:
        """The question as the model reads it: context, then the paraphrase."""
        return f"{self.context(template)} {template.paraphrases[paraphrase % len(template.paraphrases)]}"

    def horizon_frames(self) -> np.ndarray:
        layout = self.scenario().layout()
        return np.asarray([round((self.observe_seconds + h) * layout.fps) for h in self.horizons], np.int32)


@dataclasses.dataclass(frozen=True)
class View:
    """How the video is made, which facts about what it shows need: the time of its last frame, which
    recorded frames it shows, the camera and how far its position may be jittered (m)."""

    observe_seconds: float
    frame_stride: int
    camera: Camera
    camera_jitter: float = 0.0

    @classmethod
    def of(cls, spec: BatchSpec) -> View:
        camera = spec.scenario().camera(spec.width, spec.height)
        return cls(spec.observe_seconds, spec.frame_stride, camera, spec.camera_jitter)
