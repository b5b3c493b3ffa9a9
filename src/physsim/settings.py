"""The cheapest physics settings that keep a family's gates.

    python -m physsim.settings --families stack --candidates 2/20/10 2/4/4 4/4/4 [--worlds 128]
        [--audit-worlds 64] [--json PATH]
    python -m physsim.settings --profile --families stack --candidates 2/8/4   # where a step's time goes

A candidate is `timestep_ms/solver_iterations/linesearch_iterations`. For each
family and candidate this measures what the candidate buys and what it costs:

- speed: world-steps and simulated world-seconds per second of the family's
  factual rollouts (the bench's physics section: 64 worlds, 0.4 s, median of
  three timed calls after a compiled warm-up);
- the closed-form rows (`validate.closed_form`) at the candidate: free fall,
  ballistic flight, sliding, sticking and rolling on an incline, restitution and
  momentum of head-on collisions, a pendulum's period;
- MJX against MuJoCo C (float64) on the family's `reference_cases`, both at the
  candidate;
- the labels: on `--worlds` worlds per split (a stream of their own), every
  template's answer at the candidate against its answer at the reference
  settings (`DEFAULT_PHYSICS`, what every family used before), on the worlds
  asked at both: at least `LABEL_AGREEMENT` must agree (numbers within the
  template's tolerance), and at least `ASKED_KEPT` of the worlds asked at the
  reference must still be asked (cheaper physics must not turn well-posed
  worlds knife-edge);
- the family's own `checks` on the candidate's worlds: each passes, or agrees on
  at least the share it agrees on at the reference settings;
- with `--audit-worlds N`, the label audit at the candidate (`python -m
  physsim.audit`'s rows, every one must pass).

A candidate passes when every gate holds; the table ends with the fastest
passing candidate per family. The JSON holds every row.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from physsim import _names, audit, episode, scenarios, selfcheck, streams
from physsim._cache import release_compiled_programs
from physsim.sim import params as params_lib
from physsim.sim.scene import DEFAULT_PHYSICS
from physsim.validate.physics import Settings, closed_form, mjx_vs_mujoco_c

LABEL_AGREEMENT = 0.99  # the audit's bar for the simulation route
ASKED_KEPT = 0.95
BATCH = 64


def parse_candidate(text: str) -> Settings:
    """'2/4/4' -> 2 ms timestep, 4 solver iterations, 4 line-search iterations."""
    try:
        ms, iterations, linesearch = text.split("/")
        return Settings(float(ms) / 1000.0, int(iterations), int(linesearch))
    except ValueError:
        raise ValueError(f"candidate {text!r}: expected timestep_ms/solver_iterations/linesearch_iterations, "
                         "e.g. 2/4/4") from None


def config_with(family: str, settings: Settings):
    """The family's declared config with the physics settings replaced (checked as a config value is)."""
    return scenarios.get(family).tuned(dataclasses.asdict(settings))


def measured(family: str, settings: Settings, split: str, n_worlds: int, seed: int) -> list:
    """The settings stream's worlds of a family and split, measured by the pipeline at `settings`."""
    config = config_with(family, settings)
    out = []
    for k in range(-(-n_worlds // BATCH)):
        spec, m = audit.measured_batch(family, split, seed, k, BATCH, config, stream=streams.settings)
        out.append((spec, m))
    return out


def label_rows(family: str, reference: list, candidate: list, split: str) -> list[dict]:
    """Per template: worlds asked at the reference and at the candidate, asked at both, and the agreement of the
    candidate's answers with the reference's on those."""
    spec = candidate[0][0]
    rows = []
    for i, t in enumerate(spec.templates()):
        asked_ref = asked_cand = both = agree = 0
        disagreements = []
        for k, ((rspec, r), (cspec, c)) in enumerate(zip(reference, candidate)):
            rv, cv = (np.asarray(episode.askable(s, m)[0])[i] for s, m in ((rspec, r), (cspec, c)))
            asked_ref, asked_cand = asked_ref + int(rv.sum()), asked_cand + int(cv.sum())
            for b in np.flatnonzero(rv & cv).tolist():
                a, x = float(np.asarray(r.facts[t.fact].value)[b]), float(np.asarray(c.facts[t.fact].value)[b])
                both += 1
                if audit.agrees(t, a, x):
                    agree += 1
                else:
                    disagreements.append({"batch": k, "world": b, "reference": a, "candidate": x})
        agreement = agree / both if both else None
        kept = both / asked_ref if asked_ref else None
        rows.append({"family": family, "split": split, "template": t.name, "asked_reference": asked_ref,
                     "asked_candidate": asked_cand, "asked_both": both, "agreement": agreement, "kept": kept,
                     "disagreements": disagreements[:20],
                     "passed": bool(asked_ref == 0 or (agreement is not None and agreement >= LABEL_AGREEMENT
                                                       and kept >= ASKED_KEPT))})
    return rows


def speed(family: str, settings: Settings) -> dict:
    from physsim.bench.sections import bench_physics

    row = bench_physics([BATCH], 0.4, 3, [family], physics=dataclasses.asdict(settings))[0]
    return {"world_steps_per_s": row["figure"], "world_seconds_per_s": row["world_seconds_per_s"]}


def checks_hold(checks: list[dict], at_reference: list[dict]) -> bool:
    """Every check of the family passes, or agrees on at least the share it agrees on at the reference settings
    (a check that misses its bar on these worlds at the reference too is the family's, not the settings')."""
    before = {(c["split"], c["name"]): c["agree"] for c in at_reference}
    return all(c["passed"] or c["agree"] >= before.get((c["split"], c["name"]), 1.0) for c in checks)


def profile(family: str, settings: Settings, n_worlds: int = BATCH, seconds: float = 0.4, repeats: int = 3) -> dict:
    """Where one MJX physics step of a family's worlds goes, by subtraction: the step as configured, with one
    solver and one line-search iteration (the rest of the step's time is the solver's further iterations), and
    with contacts disabled as well (collision detection and the contact constraints' share). What is left is
    integration and the rest. Seconds per world-step; the shares are of the configured step."""
    import mujoco
    from mujoco import mjx

    from physsim.bench.sections import _median_seconds
    from physsim.sim import randomize
    from physsim.sim.scene import build_mj_model, scene_index

    scenario = scenarios.get(family).configured(config_with(family, settings))
    layout = scenario.layout()
    params = jax.jit(lambda k: scenario.sample(k, n_worlds, "train"))(jax.random.key(0))
    worlds = jax.vmap(lambda p: scenario.world(p, layout))(params)
    index, steps = scene_index(layout), int(round(seconds / layout.timestep))

    def seconds_per_step(iterations: int | None, contacts: bool) -> float:
        mj = build_mj_model(layout.replace(solver_iterations=iterations or layout.solver_iterations,
                                           linesearch_iterations=1 if iterations else layout.linesearch_iterations))
        if not contacts:
            mj = copy.deepcopy(mj)  # compiled models are cached and shared
            mj.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
        model = mjx.put_model(mj)

        @jax.jit
        def run(world):
            def one(w):
                m = randomize.apply_world(model, layout, index, w)
                qpos, qvel = randomize.initial_state(m, index, w)
                d = mjx.make_data(mj).replace(qpos=qpos, qvel=qvel, time=jnp.zeros((), qpos.dtype))
                d = jax.lax.fori_loop(0, steps, lambda _, d: mjx.step(m, d), d)
                return d.qpos
            return jax.vmap(one)(world)

        return _median_seconds(lambda: run(worlds), repeats) / (n_worlds * steps)

    full = seconds_per_step(None, True)
    one_iteration = seconds_per_step(1, True)
    no_contacts = seconds_per_step(1, False)
    return {"family": family, "settings": settings.label(), "worlds": n_worlds, "us_per_world_step": full * 1e6,
            "shares": {"solver iterations after the first": max(full - one_iteration, 0.0) / full,
                       "contacts (collision, constraints, one solver pass)": max(one_iteration - no_contacts, 0.0) / full,
                       "integration and the rest": no_contacts / full}}


def evaluate(family: str, settings: Settings, reference: dict, args, closed: dict,
             reference_checks: list[dict] | None = None) -> dict:
    """Every gate and the speed of one candidate for one family."""
    start = time.perf_counter()
    if settings not in closed:
        closed[settings] = [r.as_dict() for r in closed_form(settings)]
    result = {"family": family, "settings": dataclasses.asdict(settings), "label": settings.label(),
              "speed": speed(family, settings), "closed_form": closed[settings]}
    with_cases = bool(scenarios.get(family).reference_cases)
    result["mjx_vs_c"] = ([r.as_dict() for r in mjx_vs_mujoco_c(float32=False, families=[family],
                                                                   physics=dataclasses.asdict(settings))]
                          if with_cases else [])
    labels, checks = [], []
    for split in args.split:
        batches = reference[split] if settings == Settings.of(DEFAULT_PHYSICS) else \
            measured(family, settings, split, args.worlds, args.seed)
        labels += label_rows(family, reference[split], batches, split)
        scenario = batches[0][0].scenario()
        for _, m in batches:
            checks += [dict(vars(c), split=split, passed=c.passed)
                       for c in selfcheck.fact_checks(family, m, scenario)]
        release_compiled_programs()
    result["labels"], result["checks"] = labels, checks
    result["audit"] = []
    if args.audit_worlds:
        config = config_with(family, settings)
        for split in args.split:
            result["audit"] += [{k: v for k, v in r.items() if k != "disagreements"} | {
                "disagreements": r["disagreements"][:5]}
                for r in audit.audit_family(family, split, args.audit_worlds, args.seed, log=lambda _: None,
                                            config=config)]
            release_compiled_programs()
    gates = {
        "closed_form": all(r["passed"] for r in result["closed_form"] if r["gated"]),
        "mjx_vs_c": all(r["passed"] for r in result["mjx_vs_c"] if r["gated"]),
        "labels": all(r["passed"] for r in labels),
        "checks": checks_hold(checks, checks if reference_checks is None else reference_checks),
        "audit": all(r["passed"] for r in result["audit"]),
    }
    result |= {"gates": gates, "passed": all(gates.values()), "seconds": time.perf_counter() - start}
    return result


def print_result(r: dict, baseline: dict | None) -> None:
    ratio = f"{r['speed']['world_seconds_per_s'] / baseline['speed']['world_seconds_per_s']:.2f}x" if baseline else "-"
    worst = [x for x in r["labels"] if x["agreement"] is not None]
    low = min(worst, key=lambda x: x["agreement"]) if worst else None
    failed = [g for g, ok in r["gates"].items() if not ok]
    print(f"{r['family']:<11}{r['label']:<28}{r['speed']['world_steps_per_s']:>10,.0f}"
          f"{r['speed']['world_seconds_per_s']:>9,.1f}{ratio:>8}  "
          f"{'lowest label agreement ' + format(low['agreement'], '.1%') + ' (' + low['split'] + ' ' + low['template'] + ')' if low else ''}"
          f"  {'pass' if r['passed'] else 'FAIL: ' + ', '.join(failed)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=None, help="default: every registered family")
    parser.add_argument("--candidates", nargs="+", required=True, help="timestep_ms/solver_iterations/linesearch_iterations")
    parser.add_argument("--split", nargs="+", default=list(params_lib.SPLITS), choices=params_lib.SPLITS)
    parser.add_argument("--worlds", type=int, default=128, help="worlds per family and split for the label gate")
    parser.add_argument("--audit-worlds", type=int, default=0, help="also audit this many worlds per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true",
                        help="only profile each family's physics step (solver, contacts, the rest) at the reference "
                             "settings and at each candidate, no gates")
    args = parser.parse_args(argv)
    families = args.families or scenarios.names()
    for name in families:
        if name not in scenarios.names():
            parser.error(str(_names.unknown("scene family", name, scenarios.names())))
    try:
        candidates = [parse_candidate(c) for c in args.candidates]
        for family in families:
            for c in candidates:
                config_with(family, c)
    except ValueError as e:
        parser.error(str(e))
    if args.worlds < 1:
        parser.error(f"--worlds={args.worlds} must be a positive integer")
    default = Settings.of(DEFAULT_PHYSICS)
    results, closed = [], {}
    if args.profile:
        for family in families:
            for c in [default] + [c for c in candidates if c != default]:
                r = profile(family, c)
                results.append(r)
                print(f"{family:<11}{r['settings']:<28}{r['us_per_world_step']:>8.0f} us per world-step: " +
                      ", ".join(f"{k} {v:.0%}" for k, v in r["shares"].items()), flush=True)
                release_compiled_programs()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"device": str(jax.devices()[0]), "profiles": results}, indent=2))
        return 0

    def write(complete: bool) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"device": str(jax.devices()[0]), "jax": jax.__version__,
                                             "worlds": args.worlds, "audit_worlds": args.audit_worlds,
                                             "seed": args.seed, "splits": args.split, "complete": complete,
                                             "reference": dataclasses.asdict(default), "results": results},
                                            indent=2))

    print(f"{'family':<11}{'settings':<28}{'steps/s':>10}{'w-s/s':>9}{'speed':>8}", flush=True)
    for family in families:
        reference = {split: measured(family, default, split, args.worlds, args.seed) for split in args.split}
        release_compiled_programs()
        baseline = None
        for c in [default] + [c for c in candidates if c != default]:
            r = evaluate(family, c, reference, args, closed, baseline and baseline["checks"])
            baseline = baseline or r
            print_result(r, baseline)
            results.append(r)
            write(False)
        passing = [r for r in results if r["family"] == family and r["passed"]]
        if passing:
            best = max(passing, key=lambda r: r["speed"]["world_seconds_per_s"])
            print(f"{family}: fastest passing {best['label']}", flush=True)
    write(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
