"""Held-out evaluation: fixed suites per family and split, answers judged by the shared scorer.

Suites are simulated when the first evaluation is due, from the evaluation
stream of the run's seed (`streams.suite`), which training never draws from,
so held-out scenes are disjoint from training scenes by construction
(`eval.suites="validation"`: suites of the training ranges from the validation
stream instead, for tuning a config without the held-out suites). Each
suite is one family in one parameter split: `train` (in-distribution ranges)
or `ood` (held-out ranges: other gravities, masses, frictions, speeds; see
each family's declarations). Its questions are drawn as training draws them,
except that no world is asked the same template twice (`data.suite_batch`):
every accuracy counts distinct worlds, and reports how many (`worlds`).

A model is scored by decoding its answers with the KV cache and judging the
text with `questions.answers.check_answer` (the scorer any external model's
answers go through), plus the mean error of its state head in metres. The
blind baseline is scored on the same suites with the video zeroed. Every
accuracy carries its 95% Wilson interval (`ci_low`, `ci_high`). Chance is
the accuracy of guessing uniformly among the answers a question's visible
configuration allows (e.g. the blocks a tower of three has; 0 for numbers);
`best_constant` is that of always giving one answer per template, the best
one for the suite: its most common answer, or for a number the value right
within tolerance for the most worlds. A model blind to the video can learn
no better than that, so it is the baseline numbers are read against.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from physsim import episode
from physsim import model as model_lib
from physsim import scenarios, streams
from physsim.model import loss as loss_lib
from physsim.questions import answers
from physsim.questions.templates import TASKS
from physsim.sim.params import SPLITS
from physsim.train import config as config_lib
from physsim.train import data as data_lib
from physsim.train.config import Config


@dataclasses.dataclass
class Suite:
    family: str
    split: str
    spec: episode.BatchSpec
    batch: data_lib.Batch
    world: np.ndarray  # (Q,) the simulated world each question is about (distinct within a template)


def suite_kind(config: Config) -> str:
    """How the log names the config's suites: "held-out" (eval.suites="test") or "validation"."""
    return "held-out" if config.eval.suites == "test" else "validation"


def suite_key(seed: int, family: str, split: str, suites: str = "test") -> jax.Array:
    """A suite's key: the evaluation stream of the seed (or, for `suites="validation"`, the validation stream),
    then the family's name and the split."""
    stream = {"test": streams.suite, "validation": streams.validation}[suites]
    return stream(seed, family, SPLITS.index(split))


def suite_specs(config: Config) -> list[tuple[int, jax.Array, episode.BatchSpec]]:
    """Per (family, split) suite of a config: the family's index, the suite's key and its resolved spec. Videos
    are made as training makes them (frame stride, resolution, camera jitter); every task type the family asks
    is tested, whatever weight training gives it."""
    data, cfg = config.data, config.model
    worlds = max(1, config.eval.questions // config.eval.questions_per_world)
    tuned = config_lib.family_configs(data)
    return [(index, suite_key(config.train.seed, family, split, config.eval.suites),
             episode.BatchSpec(family, family_config=tuned.get(family), split=split, n_worlds=worlds, n_questions=config.eval.questions,
                               frame_stride=data.frame_stride, width=cfg.width, height=cfg.height,
                               horizons=data.horizons, camera_jitter=data.camera_jitter).resolved())
            for index, family in enumerate(data_lib.family_names(data)) for split in config.eval.splits]


def make_suites(config: Config, log=None) -> list[Suite]:
    """One simulated, rendered, asked suite per (family, split); every task type the family asks. `log` (a
    function of a line) hears of each suite as it is made: on 2 cores the first ones take minutes."""
    suites = []
    specs = suite_specs(config)
    for i, (index, key, spec) in enumerate(specs, 1):
        t0 = time.perf_counter()
        batch, world = data_lib.suite_batch(key, index, spec, config.model)
        jax.block_until_ready(batch.video)
        suites.append(Suite(family=spec.family, split=spec.split, spec=spec, batch=batch, world=world))
        if log:
            log(f"{suite_kind(config)} suite {i}/{len(specs)}: {spec.family} {spec.split}, {spec.n_worlds} worlds "
                f"simulated ({time.perf_counter() - t0:.0f} s)")
    return suites


@nnx.jit
def _state_error(model: model_lib.VLM, batch: data_lib.Batch, video: jax.Array) -> jax.Array:
    """(Q,) mean distance (m) between predicted and true positions over real slots and horizons."""
    tokens, valid = model.encode(video, batch.frame_mask)
    state, _, _ = model.slots(tokens, valid)
    return loss_lib.state_terms(state, batch.targets, batch.slot_mask)["state_error_m"]


def score(model: model_lib.VLM, suites: list[Suite], tokenizer, *, blind: bool = False) -> list[dict]:
    """One row per question: family, split, task, template, kind, correct, state_error_m, chance."""
    special = model_lib.SpecialTokens.of(tokenizer)
    rows = []
    for suite in suites:
        b = suite.batch
        video = jnp.zeros_like(b.video) if blind else b.video
        tokens = np.asarray(model_lib.generate(model, video, b.frame_mask, b.question, special))
        errors = np.asarray(_state_error(model, b, video))
        templates = suite.spec.templates()
        chances = np.asarray(b.chance)
        for i, (t_index, value, valid) in enumerate(zip(np.asarray(b.template), np.asarray(b.value), np.asarray(b.valid))):
            if not valid:
                continue
            template = templates[int(t_index)]
            text = tokenizer.decode(tokens[i])
            rows.append({"family": suite.family, "split": suite.split, "task": template.task,
                         "template": template.name, "kind": template.kind, "world": int(suite.world[i]),
                         "value": float(value), "answer": text,
                         "truth": template.answer_text(float(value)),
                         "correct": answers.check_answer(text, template, float(value)),
                         "state_error_m": float(errors[i]), "chance": float(chances[i])})
    return rows


def _group(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    return groups


def constant_hits(rows: list[dict]) -> list[bool]:
    """Per row, whether the best constant answer of its (split, family, template) in these rows is right: the
    most common answer of a choice or yes/no template, the number that is right for the most values of a number
    template (`answers.best_constant`). What a model that never looks at the video can at best score."""
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["split"], r["family"], r["template"]].append(i)
    hits = [False] * len(rows)
    for (_, family, name), members in groups.items():
        template = next(t for t in scenarios.get(family).questions if t.name == name)
        if template.kind == "number":
            _, right = answers.best_constant(template, [rows[i]["value"] for i in members])
        else:
            truths = [rows[i]["truth"] for i in members]
            most = max(set(truths), key=truths.count)
            right = [t == most for t in truths]
        for i, ok in zip(members, right):
            hits[i] = bool(ok)
    return hits


def summarise(main: list[dict], blind: list[dict] | None) -> dict:
    """Accuracy of the model and the blind baseline with 95% intervals, the distinct worlds behind them, chance,
    the best constant answer and state error, per split x task, split x family x task and template."""
    main = [r | {"constant_right": hit} for r, hit in zip(main, constant_hits(main))]

    def table(keys):
        out = []
        blind_groups = _group(blind, keys) if blind else {}
        for group, rows in sorted(_group(main, keys).items()):
            right = sum(r["correct"] for r in rows)
            low, high = answers.interval(right, len(rows))
            entry = dict(zip(keys, group))
            entry |= {"questions": len(rows), "worlds": len({(r["family"], r["split"], r["world"]) for r in rows}),
                      "accuracy": right / len(rows), "ci_low": low, "ci_high": high,
                      "chance": float(np.mean([r["chance"] for r in rows])),
                      "best_constant": float(np.mean([r["constant_right"] for r in rows])),
                      "numeric_share": float(np.mean([r["kind"] == "number" for r in rows])),
                      "state_error_m": float(np.mean([r["state_error_m"] for r in rows]))}
            if blind:
                b = blind_groups[group]
                blind_right = sum(r["correct"] for r in b)
                b_low, b_high = answers.interval(blind_right, len(b))
                entry |= {"blind_accuracy": blind_right / len(b), "blind_ci_low": b_low, "blind_ci_high": b_high,
                          "blind_state_error_m": float(np.mean([r["state_error_m"] for r in b]))}
            out.append(entry)
        return out

    order = {task: i for i, task in enumerate(TASKS)}
    by_task = sorted(table(("split", "task")), key=lambda e: (e["split"], order[e["task"]]))
    return {"by_split_task": by_task, "by_split_family_task": table(("split", "family", "task")),
            "by_template": table(("split", "family", "template"))}


def evaluate(graphdef: nnx.GraphDef, params, blind_params, suites: list[Suite], tokenizer) -> dict:
    main = score(nnx.merge(graphdef, params), suites, tokenizer)
    blind = None if blind_params is None else score(nnx.merge(graphdef, blind_params), suites, tokenizer, blind=True)
    return summarise(main, blind)
