"""Facts against independent measurements, and the answer-balance statistic.

Each family's facts are checked by its own `Scenario.checks` against
something measured another way (geometry instead of contact events, a
physical law, what else could have caused an event, the twin world's own
record), on both parameter splits. Run by `python -m physsim.validate` and
asserted by the tests.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from physsim import episode, scenarios
from physsim._cache import release_compiled_programs
from physsim.questions import answers


@dataclasses.dataclass(frozen=True)
class Check:
    family: str
    name: str
    agree: float  # fraction of the worlds checked that agree
    n: int  # worlds checked
    required: float  # fraction needed to pass

    @property
    def passed(self) -> bool:
        """Enough of the worlds it applies to agree (none applying is no failure: the report shows n = 0)."""
        return self.n == 0 or self.agree >= self.required


def _fraction(ok: np.ndarray, where: np.ndarray) -> tuple[float, int]:
    n = int(where.sum())
    return (float(ok[where].mean()) if n else 0.0), n


def _np(tree):
    return jax.tree.map(np.asarray, tree)


@functools.lru_cache(maxsize=None)  # validate reads each batch twice (facts and balance, then balance per config)
def measured_batch(family: str, n_worlds: int = 64, seed: int = 0, split: str = "train"):
    spec = episode.BatchSpec(family, split=split, n_worlds=n_worlds).resolved()
    params = sample_params(jax.random.key(seed), family, n_worlds, split)
    return spec, measure_given(params, dataclasses.replace(spec, split="train"))


sample_params = jax.jit(lambda key, family, n, split: scenarios.get(family).sample(key, n, split), static_argnums=(1, 2, 3))
# Simulates and measures given parameters. The spec's split only matters for sampling: measured_batch passes
# the train spec, so that other callers with any parameters of the same shape reuse this one compiled program.
measure_given = jax.jit(episode.measure_params, static_argnums=1)


def fact_checks(family: str, measured: episode.Measured, scenario: type[scenarios.Scenario] | None = None
                ) -> list[Check]:
    """The family's `checks` on a measured batch (of `scenario`, a configured family, when given)."""
    scenario = scenario or scenarios.get(family)
    layout = scenario.layout()
    m = _np(measured)
    out = []
    for name, ok, where, required in scenario.checks(m, layout):
        agree, n = _fraction(np.asarray(ok), np.asarray(where, bool) & m.sound)
        out.append(Check(family, name, agree, n, required))
    return out


def balance_rows(spec: episode.BatchSpec, picked: dict, min_group: int = 50) -> dict[str, dict]:
    """Per template of the spec, from flat arrays of drawn questions: how many were drawn, their answer
    distribution and the largest excess of an answer over its chance, and deviation from it, within a visible
    configuration (over all configurations for a question that asks for the configuration itself;
    configurations drawn fewer than `min_group` times are too few to tell: `groups_measured` counts the others)."""
    templates = spec.templates()
    out = {}
    for i, t in enumerate(templates):
        mine = (picked["template"] == i) & picked["valid"]
        row = {"family": spec.family, "task": t.task, "kind": t.kind, "samples": int(mine.sum()),
               "chance": float(picked["chance"][mine].mean()) if mine.any() and t.kind != "number" else t.chance}
        if t.kind == "number":
            values = picked["value"][mine]
            row.update(mean=float(values.mean()) if mine.any() else None, std=float(values.std()) if mine.any() else None)
        else:
            classes = picked["answer_class"][mine]
            counts = np.bincount(classes, minlength=t.n_classes)
            row["fractions"] = dict(zip(t.options_text, (counts / max(counts.sum(), 1)).round(4).tolist()))
            groups = [np.ones_like(classes, bool)] if t.reads_configuration else [
                picked["configuration"][mine] == c for c in np.unique(picked["configuration"][mine])]
            excess, deviation, low, measured = 0.0, 0.0, 0.0, 0
            for g in groups:
                if g.sum() < min_group:  # too few draws of a configuration to tell
                    continue
                measured += 1
                counts = np.bincount(classes[g], minlength=t.n_classes)
                fractions = counts / g.sum()
                chance = float(picked["chance"][mine][g].mean()) if not t.reads_configuration else 1.0 / t.n_classes
                excess = max(excess, float(fractions.max() - chance))
                # Uniform over the 1 / chance answers the configuration allows: those are its most drawn classes
                # (the others are never drawn; an allowed one never drawn is among them at 0, off by `chance`).
                top = np.sort(counts)[::-1][:round(1.0 / chance)]
                deviation = max(deviation, float(np.abs(top / g.sum() - chance).max()))
                for c in top:  # how far from chance the share's 95% interval lies (0: it holds chance)
                    ci_low, ci_high = answers.interval(c, g.sum())
                    low = max(low, ci_low - chance, chance - ci_high)
            row["max_excess"] = excess
            row["max_deviation"] = deviation
            row["deviation_low"] = low  # the least deviation from uniform the draws are consistent with (95%)
            row["groups_measured"] = measured
        out[t.name] = row
    return out


def answer_balance(spec: episode.BatchSpec, measured: episode.Measured, n_samples: int = 8000, seed: int = 1
                   ) -> dict[str, dict]:
    """Answer distribution per template over `n_samples` balanced draws from one measured batch (see
    `balance_rows`), every template drawn equally often."""
    templates = spec.templates()
    tok = episode.default_tokenizer()
    # Weight each task by its number of templates, so that every template is drawn equally often.
    per_task = tuple(float(sum(t.task == task for t in templates)) for task in spec.tasks)
    draws = dataclasses.replace(spec, n_questions=n_samples * len(templates), task_weights=per_task)
    picked = _np(jax.jit(episode.pick_questions, static_argnums=(1, 3))(jax.random.key(seed), draws, measured, tok))
    return balance_rows(spec, picked)


def askability(spec: episode.BatchSpec, measured: episode.Measured) -> dict[str, dict]:
    """Per template: the fraction of the batch's worlds it is asked of (well posed, sound, not knife-edge) and
    the raw distribution of their answers before any balancing (class shares; mean and spread for numbers)."""
    valid, _ = _np(episode.askable(spec, measured))
    out = {}
    for i, t in enumerate(spec.templates()):
        values = np.asarray(measured.facts[t.fact].value)[valid[i]]
        row = {"family": spec.family, "split": spec.split, "task": t.task, "kind": t.kind,
               "asked_fraction": float(valid[i].mean()), "asked": int(valid[i].sum()), "worlds": int(valid.shape[1])}
        if t.kind == "number":
            row |= {"mean": float(values.mean()) if values.size else None,
                    "std": float(values.std()) if values.size else None}
        else:
            counts = np.bincount(np.round(values).astype(int), minlength=t.n_classes)
            row["answers"] = dict(zip(t.options_text, (counts / max(counts.sum(), 1)).round(4).tolist()))
        out[t.name] = row
    return out


def self_check_all(n_worlds: int = 64, n_samples: int = 8000, splits: tuple[str, ...] = ("train", "ood"),
                   families: tuple[str, ...] | None = None) -> tuple[list[Check], list[dict]]:
    """Fact checks and balance rows for every registered family (or those named), on each parameter split."""
    checks, balance = [], []
    for split in splits:
        for family in families or scenarios.names():
            spec, measured = measured_batch(family, n_worlds, split=split)
            checks += [dataclasses.replace(c, family=f"{family} ({split})") for c in fact_checks(family, measured)]
            for name, row in answer_balance(spec, measured, n_samples).items():
                balance.append({"template": f"{family}/{name}", "split": split, **row})
            release_compiled_programs()
    return checks, balance
