"""Reading a free-text answer and judging it against the measured one.

Used for our model's decoded answers and, by `physsim.score`, for any other
model's: "Yes.", "I think no", "the red ball", "about 1.2 seconds" and
"1200 mm" (for an answer in metres) are all understood.
"""

from __future__ import annotations

import re

import numpy as np
from scipy import stats

from physsim.questions.templates import YES_NO, Template

# unit word -> (canonical unit, factor to it)
UNITS = {
    "m": ("m", 1.0), "meter": ("m", 1.0), "meters": ("m", 1.0), "metre": ("m", 1.0), "metres": ("m", 1.0),
    "cm": ("m", 1e-2), "centimeters": ("m", 1e-2), "centimetres": ("m", 1e-2), "mm": ("m", 1e-3),
    "millimeters": ("m", 1e-3), "millimetres": ("m", 1e-3), "km": ("m", 1e3),
    "s": ("s", 1.0), "sec": ("s", 1.0), "secs": ("s", 1.0), "second": ("s", 1.0), "seconds": ("s", 1.0),
    "ms": ("s", 1e-3), "milliseconds": ("s", 1e-3),
    "m/s": ("m/s", 1.0), "cm/s": ("m/s", 1e-2), "km/h": ("m/s", 1 / 3.6),
    "kg": ("kg", 1.0), "g": ("kg", 1e-3), "grams": ("kg", 1e-3),
}
_NUMBER = re.compile(
    r"(?<![\w.])(-?\d+(?:[.,]\d+)?)\s*(" + "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True)) + r")?(?![\w/])",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]+")


def parse_number(text: str) -> tuple[float, str | None] | None:
    """The first number in `text` and its canonical unit (None when none is written), or None."""
    match = _NUMBER.search(text)
    if not match:
        return None
    value = float(match.group(1).replace(",", "."))
    unit = match.group(2)
    if unit is None:
        return value, None
    canonical, factor = UNITS[unit.lower()]
    return value * factor, canonical


def parse_yes_no(text: str) -> int | None:
    """1 for yes, 0 for no: the first of the two words that occurs; None if neither does."""
    for word in _WORD.findall(text.lower()):
        if word in ("yes", "yeah", "yep", "true"):
            return 1
        if word in ("no", "not", "nope", "false", "never"):
            return 0
    return None


def parse_choice(text: str, options: tuple[str, ...]) -> int | None:
    """The option whose distinguishing words (e.g. 'red') the text names, if exactly one does."""
    option_words = [set(_WORD.findall(o.lower())) for o in options]
    common = set.intersection(*option_words)
    said = set(_WORD.findall(text.lower()))
    named = [i for i, ws in enumerate(option_words) if (ws - common) and (ws - common) <= said]
    return named[0] if len(named) == 1 else None


def check_answer(pred_text: str, template: Template, value: float) -> bool:
    """Whether the free-text `pred_text` answers `template` correctly, the measured answer being `value`."""
    if template.kind == "yesno":
        return parse_yes_no(pred_text) == int(bool(value))
    if template.kind == "choice":
        return parse_choice(pred_text, template.options) == int(value)
    parsed = parse_number(pred_text)
    if parsed is None:
        return False
    number, unit = parsed
    if unit is not None and unit != UNITS.get(template.unit, (template.unit,))[0]:
        return False
    return abs(number - value) <= template.tolerance(value) + 1e-9


__all__ = ["UNITS", "YES_NO", "check_answer", "parse_choice", "parse_number", "parse_yes_no"]


def best_constant(template: Template, values) -> tuple[float, np.ndarray]:
    """The one number that answers the most of `values` right within the template's tolerance (what a model
    that ignores the video can at best learn to say), and which values it answers right. A constant c is right
    for v when |c - v| <= tolerance(v): an interval around each v, so the best c is an end of one of them."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan"), np.zeros(0, bool)
    tol = np.maximum(template.abs_tol, template.rel_tol * np.abs(values)) + 1e-9
    candidates = np.concatenate([values - tol, values + tol])
    hits = np.abs(candidates[:, None] - values[None, :]) <= tol[None, :]
    best = int(hits.sum(axis=1).argmax())
    return float(candidates[best]), hits[best]


def interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion (NaNs for no trials): of right answers, of an answer's share."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)
