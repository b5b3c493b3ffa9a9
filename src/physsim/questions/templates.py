"""Question templates: what is asked, of which fact, and how the answer is read.

A template belongs to one scene family and one task type, reads one fact the
family measures from its trajectories, and has several paraphrases. Answers
are yes/no, a choice among fixed options (objects by colour and shape, or
words such as "rolls"), or a number with a unit and a stated tolerance.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

TASKS = ("state", "property", "causal", "counterfactual")
TASK_TITLES = {
    "state": "physical state prediction",
    "property": "physical property inference",
    "causal": "causal reasoning",
    "counterfactual": "counterfactual reasoning",
}
KINDS = ("yesno", "choice", "number")
YES_NO = ("no", "yes")  # class 0 = no, class 1 = yes


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

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"template {self.name!r}: task {self.task!r} is not one of {TASKS}")
        if self.kind not in KINDS:
            raise ValueError(f"template {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
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
        """Accuracy of guessing uniformly (None for numbers: no finite set to guess from)."""
        return None if self.kind == "number" else 1.0 / self.n_classes

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

    def explain(self, value: float, time: float) -> str:
        if not self.explanation:
            return ""
        text = self.explanation[0 if len(self.explanation) == 1 else int(round(value))]
        when = f"{format_number(time)} s" if np.isfinite(time) else "no time"
        return text.format(answer=self.answer_text(value), time=when)


def format_number(value: float) -> str:
    """Two decimals, as the tokenizer writes numbers."""
    return f"{value:.2f}"


WORD = re.compile(r"[a-z]+(?:/[a-z0-9]+)?|\d|[.,?%²/\-]")


def words(text: str) -> list[str]:
    """The tokenizer's split of a text: lower-case words, single digits and punctuation."""
    return WORD.findall(text.lower())
