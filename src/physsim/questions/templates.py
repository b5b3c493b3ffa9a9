"""Question templates: what is asked, of which fact, and how the answer is read.

A template belongs to one scene family and one task type, reads one fact the
family measures from its trajectories, and has several paraphrases. Answers
are yes/no, a choice among fixed options (objects by colour and shape, or
words such as "it slides down"), or a number with a unit and a stated tolerance.

Task types follow the label contract (../shared/DESIGN.md): `descriptive`
questions are about what the frames shown depict (counts, sizes, which
object moved), `property` about hidden properties revealed inside those
frames, `causal` about why events in those frames happened, `state` about
what happens after the last frame shown, `counterfactual` about a world
changed by an intervention (simulated beside the factual one). Each template
names the independent `route` by which `python -m physsim.audit` re-derives
its answer.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from physsim import _names

TASKS = ("descriptive", "state", "property", "causal", "counterfactual")
TASK_TITLES = {
    "descriptive": "description of what the video shows",
    "state": "physical state prediction",
    "property": "physical property inference",
    "causal": "causal reasoning",
    "counterfactual": "counterfactual reasoning",
}
KINDS = ("yesno", "choice", "number")
# How the audit re-derives an answer without the pipeline's code or simulation:
#   simulation: MuJoCo C in float64 over twice the rollout, read by the family's own numpy code;
#   pixels: geometry of the rendered segmentation of the frames the model is shown.
ROUTES = ("simulation", "pixels")
YES_NO = ("no", "yes")  # class 0 = no, class 1 = yes
DISTANCE_UNITS = ("m", "m/s")  # questions in these units get the floor's scale in their context
# Token budgets of every question and answer (the model's config must match them, `train.data.check`).
QUESTION_LENGTH = 56  # the context (frame times, a scale) and the question
ANSWER_LENGTH = 12  # an option ("the blue ball") or a number (-9999.99 m/s) + <eos>


@dataclasses.dataclass(frozen=True)
class Template:
    """One question of one family.

    `fact` names the entry of the family's facts that holds the answer:
    a bool for yes/no, an option index for choice, a float for number.
    `explanation`, for causal questions, holds one sentence per answer class
    (or one for all) with `{answer}` and `{time}` slots filled from the
    answer and the fact's `time` (seconds).
    """

    name: str
    task: str
    kind: str
    fact: str
    paraphrases: tuple[str, ...]
    options: tuple[str, ...] = ()
    unit: str = ""
    rel_tol: float = 0.0
    abs_tol: float = 0.0
    explanation: tuple[str, ...] = ()
    route: str = "simulation"
    # The answer is the visible configuration itself (e.g. how many balls there are): balanced over its
    # answers alone, not within each configuration (within one there would be a single answer).
    reads_configuration: bool = False

    def __post_init__(self):
        if self.route not in ROUTES:
            raise _names.unknown("route", self.route, ROUTES, where=f" of template {self.name!r}")
        if self.task not in TASKS:
            raise _names.unknown("task type", self.task, TASKS, where=f" of template {self.name!r}")
        if self.kind not in KINDS:
            raise _names.unknown("answer kind", self.kind, KINDS, where=f" of template {self.name!r}")
        if not self.paraphrases:
            raise ValueError(f"template {self.name!r} needs at least one paraphrase")
        if (self.kind == "choice") != bool(self.options):
            raise ValueError(f"template {self.name!r}: options are given exactly for choice questions")
        if self.kind == "choice" and len(self.options) < 2:
            raise ValueError(f"template {self.name!r}: a choice needs at least two options")
        if self.explanation and len(self.explanation) not in (1, self.n_classes):
            raise ValueError(f"template {self.name!r}: give one explanation, or one per answer class")
        if self.kind == "number" and not (self.unit and (self.rel_tol > 0 or self.abs_tol > 0)):
            raise ValueError(f"template {self.name!r}: a number answer needs a unit and a tolerance")

    @property
    def n_classes(self) -> int:
        """Answer classes for balancing: 2 for yes/no, one per option, 1 for numbers."""
        return {"yesno": 2, "choice": len(self.options), "number": 1}[self.kind]

    @property
    def chance(self) -> float | None:
        """Accuracy of guessing uniformly among all options (None for numbers). Where the possible answers
        depend on the visible configuration, a question's own chance is 1 / its possible answers
        (`QABatch.chance`)."""
        return None if self.kind == "number" else 1.0 / self.n_classes

    @property
    def options_text(self) -> tuple[str, ...]:
        """The answers a yes/no or choice question can have, as written."""
        return YES_NO if self.kind == "yesno" else self.options

    def tolerance(self, value):
        """Half-width of the interval of right answers around `value` (numbers only): a float for a float,
        an array for a (traced) array of values."""
        scaled = self.rel_tol * abs(value)
        return jnp.maximum(self.abs_tol, scaled) if isinstance(scaled, jax.Array) else max(self.abs_tol, scaled)

    def answer_text(self, value: float) -> str:
        if self.kind == "yesno":
            return YES_NO[int(bool(value))]
        if self.kind == "choice":
            return self.options[int(value)]
        return f"{format_number(value)} {self.unit}"

    def tolerance_text(self) -> str:
        parts = []
        if self.rel_tol:
            parts.append(f"±{self.rel_tol:.0%}")
        if self.abs_tol:
            parts.append(f"±{self.abs_tol:g} {self.unit}")
        return " or ".join(parts)

    def filled(self, words: dict[str, str]) -> Template:
        """This template with each `<name>` of its text replaced by `words[name]` (a family's tunable factors in
        words, e.g. "<heavier>" -> "four times"); an unfilled `<name>` is an error naming it."""
        def fill(text: str) -> str:
            for key, value in words.items():
                text = text.replace(f"<{key}>", value)
            left = re.findall(r"<(\w+)>", text)
            if left:
                raise ValueError(f"template {self.name!r}: no value for <{left[0]}> in {text!r}")
            return text

        return dataclasses.replace(self, paraphrases=tuple(map(fill, self.paraphrases)),
                                   explanation=tuple(map(fill, self.explanation)))

    def explain(self, value: float, time: float) -> str:
        if not self.explanation:
            return ""
        text = self.explanation[0 if len(self.explanation) == 1 else int(round(value))]
        when = f"{format_number(time)} s" if np.isfinite(time) else "no time"
        return text.format(answer=self.answer_text(value), time=when)


def context(frame_interval: float, last_frame: float, scale: float | None = None) -> str:
    """What a viewer of the video needs beside the question: when the frames were taken (the first frame
    is at 0 s, which is the origin of every time asked) and, where a distance is asked, a length to
    measure it by (the floor's checker squares)."""
    text = f"Frames are {format_number(frame_interval)} s apart, from 0.00 s to {format_number(last_frame)} s."
    if scale is not None:
        text += f" Floor squares are {format_number(scale)} m wide."
    return text


# Factors in words, as questions write them ("if it were four times as heavy", "with half the gravity"); any
# other factor is written with digits. The tokenizer knows these words whatever factors a config sets.
FACTOR_WORDS = {0.25: "a quarter", 0.5: "half", 2.0: "twice", 3.0: "three times", 4.0: "four times",
                5.0: "five times", 10.0: "ten times"}


def times(factor: float) -> str:
    """A factor in words: `FACTOR_WORDS`, else "1.5 times"."""
    for value, text in FACTOR_WORDS.items():
        if abs(factor - value) < 1e-9:
            return text
    return f"{factor:g} times"


def format_number(value: float) -> str:
    """Two decimals, as the tokenizer writes numbers."""
    return f"{value:.2f}"


WORD = re.compile(r"[a-z]+(?:/[a-z0-9]+)?|\d|[.,?%²/\-]")


def words(text: str) -> list[str]:
    """The tokenizer's split of a text: lower-case words, single digits and punctuation."""
    return WORD.findall(text.lower())
