"""Label audit: every template's answer re-derived by an independent route, per split.

    python -m physsim.audit [--families F ...] [--split train ood] [--worlds N] [--json PATH]

For N fresh worlds per family (a key stream no training, evaluation or
export draws from), the pipeline measures its facts as in training (MJX in
float32, knife-edge worlds dropped); then each family's `derive` answers the
same questions by the route its template names:

- `simulation`: MuJoCo C in float64 re-simulates the world and its
  interventions for twice the rollout, every physics step recorded, and the
  family's own NumPy code reads contacts from geometry (catches horizon,
  timing and float32 errors: a "no" that means "not yet" becomes a "yes");
- `pixels`: geometry of the rendered segmentation of exactly the frames the
  model is shown (catches answers the video does not show).

Reported per (split, family, template): the fraction of worlds asked, the
fraction dropped as knife-edge, the agreement on the asked worlds (a number
agrees within the template's tolerance), every disagreement with the world's
parameters, the raw answer distribution, and two baselines on balanced
questions about these worlds: the best answer per template (question only)
and per template and visible configuration (which object slots are in play),
against the chance the questions report; for a number, the best constant
answer (right within tolerance for the most worlds asked). Exit status 1 when
a template misses its bar (AGREEMENT), drops more than KNIFE_EDGE_LIMIT, a
baseline beats chance by more than BASELINE_MARGIN, or a number's best
constant is right on more than BEST_CONSTANT_LIMIT of its worlds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from physsim import episode, scenarios, selfcheck, streams
from physsim._cache import release_compiled_programs
from physsim.questions import answers as answer_lib
from physsim.questions.templates import Template
from physsim.scenarios.base import FamilyConfig, Record
from physsim.sim import params as params_lib
from physsim.sim import simulate

AGREEMENT = {"simulation": 0.99, "pixels": 0.97}  # the bar of each route, on the worlds asked
KNIFE_EDGE_LIMIT = 0.20  # no template may drop more than this fraction of its well-posed worlds
BASELINE_MARGIN = 0.05  # baselines must stay within this of the reported chance
# The best constant number may be right on at most this fraction of the worlds asked (issue 17). The tolerances
# were ±10% or ±0.1 s, which left it right on 32-60% of 512 training worlds; they are now ±5% with floors of
# 0.015 s / 0.015-0.03 m / 0.05 m/s, chosen on 256 worlds per split of the audit's stream (train and ood): the
# best constant is then right on 11-25% (collision_time 23% / 20%, flight_time 13% / 22%, apex_height 22% /
# 23%, floor_distance 20% / 24%), MuJoCo C agreeing as before except ramp's speed_at_bottom (see the README).
BEST_CONSTANT_LIMIT = 0.25
BATCH = 64  # worlds simulated per call
DRAWS = 2000  # balanced questions per template and batch for the baselines


# The spec's split only matters for sampling, which happens outside: every split shares one program, and the
# tests' measured batches (selfcheck) share it too.
sample_params, measure = selfcheck.sample_params, selfcheck.measure_given


@functools.partial(jax.jit, static_argnums=0)
def _segmentation(spec: episode.BatchSpec, measured: episode.Measured) -> jax.Array:
    """(B, F, H, W) int32 segmentation of the frames each world's video shows (no camera jitter)."""
    return episode.render_images(spec, measured, jnp.arange(spec.n_worlds)).segmentation


def batch_spec(family: str, n_worlds: int = BATCH, config: FamilyConfig | None = None) -> episode.BatchSpec:
    return episode.BatchSpec(family, family_config=config, n_worlds=n_worlds).resolved()


def measured_batch(family: str, split: str, seed: int = 0, batch: int = 0, n_worlds: int = BATCH,
                   config: FamilyConfig | None = None, stream=streams.audit
                   ) -> tuple[episode.BatchSpec, episode.Measured]:
    """Batch `batch` of the audit's worlds (or `stream`'s) of a family and split, simulated and measured by the
    pipeline with the family's tunables set to `config` (None: as declared)."""
    spec = batch_spec(family, n_worlds, config)
    params = sample_params(stream(seed, family, params_lib.SPLITS.index(split), batch), family, n_worlds, split)
    return spec, measure(params, spec)


def _host(tree):
    return jax.tree.map(np.asarray, tree)


def _world(tree, b: int):
    return jax.tree.map(lambda x: np.asarray(x[b]), tree)


def derive_batch(spec: episode.BatchSpec, measured: episode.Measured, worlds: np.ndarray) -> list[dict]:
    """Each listed world's answers by the independent routes (`Scenario.derive`)."""
    scenario = spec.scenario()
    layout = scenario.layout()
    seg = np.asarray(_segmentation(spec, measured))
    frame_times = spec.video_frames() / layout.fps
    n_steps = int(round(2 * spec.seconds / layout.timestep))
    twins = episode.twin_worlds(scenario, measured.params, measured.world)
    chosen = [int(b) for b in worlds]
    if not chosen:
        return []
    runs = simulate.rollout_mj_steps([_world(measured.world, b) for b in chosen], layout=layout, n_steps=n_steps)
    twin_runs = {name: simulate.rollout_mj_steps([_world(w, b) for b in chosen], layout=layout, n_steps=n_steps)
                 for name, w in zip(scenario.twins, twins)}
    out = []
    for i, b in enumerate(chosen):
        record = Record(params=_world(measured.params, b), world=_world(measured.world, b),
                        sim=_world(runs, i), twins={k: _world(v, i) for k, v in twin_runs.items()},
                        seconds=spec.seconds, observe_seconds=spec.observe_seconds, seg=seg[b],
                        frame_times=frame_times)
        out.append(scenario.derive(record, layout))
    return out


def agrees(template: Template, value: float, derived: float) -> bool:
    if not np.isfinite(derived):
        return False
    if template.kind == "number":
        return abs(derived - value) <= template.tolerance(value) + 1e-9
    return round(derived) == round(value)


def balanced_draws(spec: episode.BatchSpec, measured: episode.Measured, per_template: int, seed: int) -> dict:
    """Balanced questions about one measured batch, every template drawn equally often: template, answer
    class, the world's configuration and the chance it reports."""
    templates = spec.templates()
    per_task = tuple(float(sum(t.task == task for t in templates)) for task in spec.tasks)
    draws = dataclasses.replace(spec, n_questions=per_template * len(templates), task_weights=per_task)
    picked = _pick(jax.random.key(seed), draws, measured)
    return {k: np.asarray(picked[k]) for k in ("template", "answer_class", "configuration", "chance", "valid")}


@functools.partial(jax.jit, static_argnums=1)
def _pick(key, spec, measured):
    return episode.pick_questions(key, spec, measured, episode.default_tokenizer())


def baselines(template_index: int, fit: dict, test: dict) -> dict:
    """Accuracy on `test` draws of the best constant answer learnt from `fit` draws: per template (question
    only) and per template and configuration; and the chance the test questions report."""
    def rows(d):
        keep = (d["template"] == template_index) & d["valid"]
        return d["answer_class"][keep], d["configuration"][keep], d["chance"][keep]

    fit_class, fit_config, _ = rows(fit)
    test_class, test_config, test_chance = rows(test)
    if not len(fit_class) or not len(test_class):
        return {"baseline_question": None, "baseline_configuration": None, "chance": None, "draws": 0}
    overall = np.bincount(fit_class).argmax()
    per_config = {c: np.bincount(fit_class[fit_config == c]).argmax() for c in np.unique(fit_config)}
    guess = np.asarray([per_config.get(c, overall) for c in test_config])
    return {"baseline_question": float(np.mean(test_class == overall)),
            "baseline_configuration": float(np.mean(test_class == guess)),
            "chance": float(np.mean(test_chance)), "draws": int(len(test_class))}


def audit_family(family: str, split: str, n_worlds: int, seed: int = 0, batch: int = BATCH,
                 log=print, measured=None, config: FamilyConfig | None = None) -> list[dict]:
    """One row per template of `family` on `n_worlds` fresh worlds of `split` (see the module docstring), its
    tunables set to `config` (None: as declared). `measured(k)` may give batch k of `measured_batch` (the
    tests share theirs)."""
    spec = batch_spec(family, batch, config)
    measured = measured or (lambda k: measured_batch(family, split, seed, k, batch, config)[1])
    templates = spec.templates()
    n_batches = math.ceil(n_worlds / batch)
    stats = {t.name: defaultdict(int) | {"disagreements": [], "values": []} for t in templates}
    draws = []
    start = time.perf_counter()
    for k in range(n_batches):
        m = measured(k)
        take = min(batch, n_worlds - k * batch)
        valid, edge = (np.asarray(x)[:, :take] for x in episode.askable(spec, m))
        facts = _host({t.name: m.facts[t.fact] for t in templates})
        asked = np.flatnonzero(valid.any(axis=0))
        by_world = dict(zip(asked.tolist(), derive_batch(spec, m, asked)))
        params = _host(m.params)
        for i, t in enumerate(templates):
            s = stats[t.name]
            s["worlds"] += take
            s["posed"] += int(valid[i].sum() + edge[i].sum())
            s["knife_edge"] += int(edge[i].sum())
            for b in np.flatnonzero(valid[i]).tolist():
                value = float(facts[t.name].value[b])
                got = float(by_world[b].get(t.name, np.nan))
                s["asked"] += 1
                s["values"].append(value)
                if agrees(t, value, got):
                    s["agree"] += 1
                else:
                    s["disagreements"].append({"batch": k, "world": b, "pipeline": value, "derived": got,
                                               "params": {p: v[b].tolist() for p, v in params.items()}})
        draws.append(balanced_draws(spec, m, DRAWS, seed=k))
        log(f"audit {family} {split}: {min((k + 1) * batch, n_worlds)}/{n_worlds} worlds "
            f"({time.perf_counter() - start:.0f} s)")
    fit, test = _halves(draws)
    rows = []
    for i, t in enumerate(templates):
        s = stats[t.name]
        values = np.asarray(s["values"])
        answers = ({"mean": float(values.mean()), "std": float(values.std())} if t.kind == "number" and values.size
                   else {o: int(np.sum(np.round(values) == j)) for j, o in enumerate(t.options_text)}
                   if t.kind != "number" else {})
        row = {"split": split, "family": family, "template": t.name, "task": t.task, "kind": t.kind,
               "route": t.route, "worlds": s["worlds"], "asked": s["asked"],
               "asked_fraction": s["asked"] / max(s["worlds"], 1),
               "knife_edge": s["knife_edge"] / max(s["posed"], 1),
               "agreement": s["agree"] / s["asked"] if s["asked"] else None,
               "bar": AGREEMENT[t.route], "answers": answers, "reads_configuration": t.reads_configuration,
               "disagreements": s["disagreements"]}
        if t.kind != "number":
            row |= baselines(i, fit, test)
        else:  # a number's baseline: the one value right within tolerance for the most worlds asked
            constant, right = answer_lib.best_constant(t, values)
            row |= {"best_constant": constant, "best_constant_rate": float(right.mean()) if values.size else None}
        row["passed"] = passes(row)
        rows.append(row)
    return rows


def _halves(draws: list[dict]) -> tuple[dict, dict]:
    """Baselines are fitted on half of the draws and scored on the other: alternate batches, or alternate
    draws when there is one batch."""
    if len(draws) > 1:
        pick = lambda parity: {k: np.concatenate([d[k] for d in draws[parity::2]]) for k in draws[0]}  # noqa: E731
        return pick(0), pick(1)
    d = draws[0]
    return ({k: v[0::2] for k, v in d.items()}, {k: v[1::2] for k, v in d.items()})


def passes(row: dict) -> bool:
    """The row meets its bar: agreement, knife-edge drops and (where the answer is not the configuration
    itself) both baselines within the margin of chance."""
    ok = row["asked"] > 0 and row["agreement"] >= row["bar"] and row["knife_edge"] <= KNIFE_EDGE_LIMIT
    if row["kind"] == "number" and row.get("best_constant_rate") is not None:
        ok &= row["best_constant_rate"] <= BEST_CONSTANT_LIMIT
    if row["kind"] != "number" and row.get("chance") is not None:
        ok &= row["baseline_question"] <= row["chance"] + BASELINE_MARGIN
        if not row["reads_configuration"]:
            ok &= row["baseline_configuration"] <= row["chance"] + BASELINE_MARGIN
    return bool(ok)


def print_rows(rows: list[dict]) -> None:
    header = (f"{'split':<6}{'family':<11}{'template':<24}{'route':<11}{'asked':>7}{'knife':>7}{'agree':>8}"
              f"{'chance':>8}{'q|const':>8}{'q+conf':>8}  ok")
    print(header)
    for r in rows:
        def pct(x):
            return f"{x:.1%}" if x is not None else "-"
        print(f"{r['split']:<6}{r['family']:<11}{r['template']:<24}{r['route']:<11}{pct(r['asked_fraction']):>7}"
              f"{pct(r['knife_edge']):>7}{pct(r['agreement']):>8}{pct(r.get('chance')):>8}"
              f"{pct(r.get('baseline_question', r.get('best_constant_rate'))):>8}"
              f"{pct(r.get('baseline_configuration')):>8}  "
              f"{'yes' if r['passed'] else 'NO'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=None, help="default: every registered family")
    parser.add_argument("--split", nargs="+", default=list(params_lib.SPLITS), choices=params_lib.SPLITS)
    parser.add_argument("--worlds", type=int, default=512, help="worlds per family and split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every row, disagreements included, as JSON")
    args = parser.parse_args(argv)
    families = args.families or scenarios.names()
    for name in families:
        try:
            scenarios.get(name)
        except ValueError as e:
            parser.error(str(e))
    if args.worlds < 1:
        parser.error(f"--worlds={args.worlds} must be a positive integer")
    rows = []
    todo = [(family, split) for family in families for split in args.split]  # a family's splits share programs
    for i, (family, split) in enumerate(todo):
        new = audit_family(family, split, args.worlds, args.seed, log=lambda s: print(s, flush=True))
        print_rows(new)
        rows += new
        if args.json:  # rewritten after every family, so an interrupted audit keeps what it measured
            write_json(args.json, rows, args, complete=i + 1 == len(todo))
        if i + 1 < len(todo) and todo[i + 1][0] != family:
            release_compiled_programs()  # each loaded program holds hundreds of memory mappings
    if len(todo) > 1:
        print("\nall families:")
        print_rows(rows)
    return 0 if all(r["passed"] for r in rows) else 1


def write_json(path: Path, rows: list[dict], args: argparse.Namespace, complete: bool) -> None:
    payload = {"worlds": args.worlds, "seed": args.seed, "device": str(jax.devices()[0]), "complete": complete,
               "bars": AGREEMENT, "knife_edge_limit": KNIFE_EDGE_LIMIT, "baseline_margin": BASELINE_MARGIN,
               "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(payload, indent=1))
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
