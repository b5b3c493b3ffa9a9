"""The questions section of the fidelity report: facts against independent checks, answer balance (per family,
and at the shipped configs' per-shard world counts over a run's worth of steps), the held-out split's
askability per template, and the coverage of the configs' real held-out suites.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from physsim import _names, scenarios
from physsim._cache import release_compiled_programs

def print_question_tables(checks, balance) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    table = Table(title="facts against independent measurements (64 worlds per family and split)")
    for column in ("family", "check", "agree", "worlds", "needed", "result"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.family, c.name, f"{c.agree:.1%}", str(c.n), f"{c.required:.0%}",
                      "[green]pass[/green]" if c.passed else "[red]FAIL[/red]")
    console.print(table)
    table = Table(title="answer balance per template (8000 balanced draws each; excess within a configuration)")
    for column in ("template", "split", "task", "samples", "answers", "chance", "max excess"):
        table.add_column(column)
    for row in balance:
        if row["kind"] == "number":
            answers = f"mean {row['mean']:.3g}, std {row['std']:.3g} (number)"
            chance, excess = "-", "-"
        else:
            answers = ", ".join(f"{k}: {v:.1%}" for k, v in row["fractions"].items())
            chance, excess = f"{row['chance']:.1%}", f"{100 * row['max_excess']:+.1f} pp"
        table.add_row(row["template"], row.get("split", "train"), row["task"], str(row["samples"]), answers, chance,
                      excess)
    console.print(table)


BALANCE_LIMIT = 0.05  # an answer class may exceed chance by at most 5 points
EXPERIMENTS_DIR = Path(__file__).resolve().parents[3] / "experiments"
BALANCE_CONFIGS = ("tiny", "cpu_long")  # the CPU configs whose per-shard world counts balance is measured at
POOL_WORLDS = 64
MIN_GROUP = 400  # draws of a configuration needed to judge its balance (a fair class's share then within ~5 points)
# At most this share of the configured template mix may go unserved by the ring (a template with no visible
# configuration holding all its answers among the ring's questions gives its share to the others). Measured over
# a run: 0.8% (tiny), 2.2% (cpu_long); chain alone at cpu_long's 2 worlds per shard 8-12%, nearly all of it
# first_collision, whose "no" is the answer of ~5% of chain's worlds (about one in the ring at a time).
UNSERVED_LIMIT = 0.15


def run_balance(config, pools: dict | None = None, steps: int | None = None, seed: int = 2,
                only: str | None = None) -> list[dict]:
    """Answer balance and template mix as one of a config's runs trains on them: `steps` (default: the run's)
    steps of one scene shard at the config's per-shard world counts, each family's worlds drawn from a measured
    pool of 64 training worlds (`pools`: family -> (spec, Measured), else `selfcheck.measured_batch`), asked and
    drawn from the replay ring as the trainer does (`train.replay.simulated_draws`). One row per template:
    its answers within each visible configuration over the run's draws (`selfcheck.balance_rows`), its share of
    the draws against the share its weight asks for, and its family's fallback rate among the fresh slots.
    `only`: one family of the config alone, with its share of the ring and of each update's draws (its
    questions stay in the ring as long, and the template mix within it is the same)."""
    from physsim import episode, selfcheck
    from physsim.train import data as data_lib
    from physsim.train import replay

    specs = data_lib.family_specs(config)
    ring, sample = config.data.replay, config.data.replay_sample
    if only is not None:
        fresh_questions = sum(s.n_questions for s in specs)
        specs = tuple(s for s in specs if s.family == only)
        if not specs:
            raise _names.unknown("family of this config", only, data_lib.family_names(config.data))
        ring = ring // fresh_questions * specs[0].n_questions
        sample = max(1, round(sample * specs[0].n_questions / fresh_questions))
    measured = []
    for spec in specs:
        pool_spec, pool = (pools or {}).get(spec.family) or selfcheck.measured_batch(spec.family, POOL_WORLDS)
        if episode.View.of(pool_spec) != episode.View.of(spec):  # facts read what the video shows: the config's
            n = pool.sound.shape[0]
            params = selfcheck.sample_params(jax.random.key(0), spec.family, n, "train")
            pool = selfcheck.measure_given(params, dataclasses.replace(spec, n_worlds=n, balance="shard"))
        measured.append(pool)
    steps = steps or config.train.steps
    fresh, drawn, unserved = jax.device_get(replay.simulated_draws(
        jax.random.key(seed), tuple(measured), specs=specs, steps=steps, size=ring,
        updates=config.train.updates_per_batch if ring else 1, sample=sample if ring else 0))
    fresh, drawn = (jax.tree.map(lambda x: np.asarray(x).reshape(-1), t) for t in (fresh, drawn))
    wanted = np.asarray(replay.Mix.of(specs).weight)
    asked = max(int(drawn.valid.sum()), 1)
    rows = []
    for f, spec in enumerate(specs):
        mine = drawn.family == f
        picked = {k: getattr(drawn, k)[mine] for k in ("template", "configuration", "answer_class", "chance",
                                                        "value", "valid")}
        own = fresh.family == f
        fallback = float(fresh.fallback[own].mean())
        for i, (template, row) in enumerate(selfcheck.balance_rows(spec, picked, min_group=MIN_GROUP).items()):
            rows.append({"template": f"{spec.family}/{template}", "worlds_per_shard": spec.n_worlds, **row,
                         "share": row["samples"] / asked, "wanted_share": float(wanted[f, i]),
                         "fallback": fallback, "unserved": float(np.mean(unserved)), "steps": steps})
    return rows


def balance_passed(row: dict) -> bool:
    """A run's draws of a template: asked, and its answers within BALANCE_LIMIT of uniform in each configuration
    measured (judged by their 95% intervals: chance outside the interval by more than the limit)."""
    return bool(row["samples"] > 0 and (row["kind"] == "number" or row["deviation_low"] <= BALANCE_LIMIT))


def mix_passed(row: dict) -> bool:
    """The ring served all but UNSERVED_LIMIT of the config's template mix over the run (a config's rows share
    the value). Judged on validate's pools of 64 worlds per family: the tests' smaller pools hold too few of a
    rare answer (ramp's block that does not slide) to stand for the run."""
    return row["unserved"] <= UNSERVED_LIMIT


def config_balance(names: tuple[str, ...] = BALANCE_CONFIGS) -> list[dict]:
    """`run_balance` of each named config in experiments/, over a run's worth of its steps."""
    from physsim.train import config as config_lib

    rows = []
    for name in names:
        rows += [{"config": name, **row} for row in run_balance(config_lib.load(EXPERIMENTS_DIR / f"{name}.py"))]
        release_compiled_programs()
    return rows


OOD_ASKED_RATIO = 0.5  # out of distribution, a template is asked of at least half the fraction of worlds it is in
OOD_MAX_CLASS = 0.75  # and no answer is more than this share of its raw (unbalanced) answers
# Worlds per family and split for the askability rows: a template asked of 15% of worlds is then asked of ~38,
# so the ratio and the class shares are read to about +-5 points (at 64 worlds they were noise).
ASKABILITY_WORLDS = 256


def suite_coverage(names: tuple[str, ...] = BALANCE_CONFIGS) -> list[dict]:
    """Per config, family, split and template: the worlds of the config's real held-out suite (its seed's
    evaluation stream, as `evaluate.make_suites` draws it, without rendering) the template can be asked of, and
    the questions the suite asks with it. Every template must be asked of some world in every suite."""
    from physsim.train import config as config_lib
    from physsim.train import data as data_lib
    from physsim.train import evaluate

    rows = []
    for name in names:
        config = config_lib.load(EXPERIMENTS_DIR / f"{name}.py")
        for _, key, spec in evaluate.suite_specs(config):
            _, tables, picks = data_lib.suite_draw(key, spec)
            askable = np.asarray(tables["valid"], bool).sum(axis=1)
            for i, t in enumerate(spec.templates()):
                asked = int(((picks["template"] == i) & picks["valid"]).sum())
                rows.append({"config": name, "family": spec.family, "split": spec.split, "template": t.name,
                             "suite_worlds": spec.n_worlds, "askable": int(askable[i]), "questions": asked,
                             "passed": asked > 0})
            release_compiled_programs()
    return rows


def print_suite_coverage(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="held-out suites of the CPU configs: worlds each template can be asked of, questions asked")
    for column in ("config", "suite", "template", "worlds", "askable", "questions", "result"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["config"], f"{r['family']} ({r['split']})", r["template"], str(r["suite_worlds"]),
                      str(r["askable"]), str(r["questions"]), "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]")
    Console(width=150).print(table)


def split_askability(n_worlds: int = ASKABILITY_WORLDS, families: tuple[str, ...] | None = None) -> list[dict]:
    """Per template of every registered family (or those named): the fraction of worlds asked and the raw
    answers on each split (`selfcheck.askability`), and whether the out-of-distribution split still tests it
    (`askability_row`)."""
    from physsim import selfcheck

    rows = []
    for family in families or scenarios.names():
        by_split = {split: selfcheck.askability(*selfcheck.measured_batch(family, n_worlds, split=split))
                    for split in ("train", "ood")}
        rows += [askability_row(f"{family}/{name}", by_split["train"][name], ood)
                 for name, ood in by_split["ood"].items()]
        release_compiled_programs()
    return rows


def askability_row(template: str, train: dict, ood: dict) -> dict:
    """Whether the held-out split tests a template as training does: it is asked of at least OOD_ASKED_RATIO
    of the fraction of worlds it is asked of in distribution, and (choices) no answer is above OOD_MAX_CLASS
    of its raw answers. `train`, `ood`: rows of `selfcheck.askability`."""
    asked = ood["asked"] > 0 and ood["asked_fraction"] >= OOD_ASKED_RATIO * train["asked_fraction"]
    spread = ood["kind"] == "number" or (ood["asked"] > 0 and max(ood["answers"].values()) <= OOD_MAX_CLASS)
    return {"template": template, "kind": ood["kind"], "worlds": ood["worlds"], "train": train, "ood": ood,
            "passed": bool(asked and spread)}


def print_split_askability(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"asked fraction and raw answers per split ({ASKABILITY_WORLDS} worlds each; ood must ask at least "
                        f"{OOD_ASKED_RATIO:.0%} of the in-distribution fraction, no answer above {OOD_MAX_CLASS:.0%})")
    for column in ("template", "asked (train)", "asked (ood)", "answers (train)", "answers (ood)", "result"):
        table.add_column(column)

    def answers(row):
        if row["kind"] == "number":
            return "-" if row["mean"] is None else f"mean {row['mean']:.3g}, std {row['std']:.3g}"
        return ", ".join(f"{k}: {v:.0%}" for k, v in row["answers"].items())

    for r in rows:
        table.add_row(r["template"], f"{r['train']['asked_fraction']:.0%}", f"{r['ood']['asked_fraction']:.0%}",
                      answers(r["train"]), answers(r["ood"]), "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]")
    Console(width=170).print(table)


def print_config_balance(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="balance of a run's draws at the configs' per-shard world counts (one shard, the run's steps; "
                        "deviation from uniform within a configuration, and its least value at 95%)")
    for column in ("config", "template", "worlds/shard", "draws", "share", "wanted share", "fallback (family)",
                   "deviation", "at least", "result"):
        table.add_column(column)
    for r in rows:
        number = r["kind"] == "number"
        table.add_row(r["config"], r["template"], str(r["worlds_per_shard"]), str(r["samples"]), f"{r['share']:.1%}",
                      f"{r['wanted_share']:.1%}", f"{r['fallback']:.1%}",
                      "-" if number else f"{100 * r['max_deviation']:.1f} pp",
                      "-" if number else f"{100 * r['deviation_low']:.1f} pp",
                      "[green]pass[/green]" if balance_passed(r) and mix_passed(r) else "[red]FAIL[/red]")
    Console(width=150).print(table)
