"""Held-out evaluation: fixed suites per family and split, answers judged by the shared scorer.

Suites are simulated once per run from the evaluation stream of the run's
seed (`fold_in(key(seed), 1)`), which training never draws from (training
uses `fold_in(key(seed), 0)`), so held-out scenes are disjoint from training
scenes by construction. Each suite is one family in one parameter split:
`train` (in-distribution ranges) or `ood` (held-out ranges: other gravities,
masses, frictions, speeds; see each family's declarations).

A model is scored by decoding its answers with the KV cache and judging the
text with `questions.answers.check_answer` (the scorer any external model's
answers go through), plus the mean error of its state head in metres. The
blind baseline is scored on the same suites with the video zeroed. Chance is
the accuracy of guessing uniformly among the answers a question's visible
configuration allows (e.g. the blocks a tower of three has; 0 for numbers);
"majority" is that of always giving the answer most common in the suite for
each template (0 for numbers): where a suite's answers are unbalanced (the
balancer found too few worlds of a class), it is above chance and says so.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from physsim import model as model_lib
from physsim import streams
from physsim.model import loss as loss_lib
from physsim.questions import answers, pipeline
from physsim.questions.templates import TASKS
from physsim.sim.params import SPLITS
from physsim.train import data as data_lib
from physsim.train.config import Config


@dataclasses.dataclass
class Suite:
    family: str
    split: str
    spec: pipeline.BatchSpec
    batch: data_lib.Batch


def suite_key(seed: int, family: str, split: str) -> jax.Array:
    """A suite's key: the evaluation stream of the seed, then the family's name and the split."""
    return streams.suite(seed, family, SPLITS.index(split))


def make_suites(config: Config) -> list[Suite]:
    """One simulated, rendered, asked suite per (family, split); every task type the family asks."""
    data, cfg = config.data, config.model
    suites = []
    for index, family in enumerate(data_lib.family_names(data)):
        for split in config.eval.splits:
            worlds = max(1, config.eval.questions // config.eval.questions_per_world)
            spec = pipeline.BatchSpec(family, split=split, n_worlds=worlds, n_questions=config.eval.questions, frame_stride=data.frame_stride,
                                      width=cfg.width, height=cfg.height, horizons=data.horizons).resolved()
            batch = data_lib.suite_batch(suite_key(config.train.seed, family, split), index, spec, cfg)
            suites.append(Suite(family=family, split=split, spec=spec, batch=batch))
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
                         "template": template.name, "kind": template.kind, "answer": text,
                         "truth": template.answer_text(float(value)),
                         "correct": answers.check_answer(text, template, float(value)),
                         "state_error_m": float(errors[i]), "chance": float(chances[i])})
    return rows


def _group(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    return groups


def summarise(main: list[dict], blind: list[dict] | None) -> dict:
    """Accuracy of the model and the blind baseline, chance, and state error, per split x family x task
    and per split x task."""

    majority = {}
    for group, rows in _group(main, ("split", "family", "template")).items():
        answers_ = [r["truth"] for r in rows if r["kind"] != "number"]
        majority[group] = max(set(answers_), key=answers_.count) if answers_ else None

    def hits_majority(r):
        return r["kind"] != "number" and r["truth"] == majority[(r["split"], r["family"], r["template"])]

    def table(keys):
        out = []
        blind_groups = _group(blind, keys) if blind else {}
        for group, rows in sorted(_group(main, keys).items()):
            entry = dict(zip(keys, group))
            entry |= {"questions": len(rows), "accuracy": float(np.mean([r["correct"] for r in rows])),
                      "chance": float(np.mean([r["chance"] for r in rows])),
                      "majority": float(np.mean([hits_majority(r) for r in rows])),
                      "numeric_share": float(np.mean([r["kind"] == "number" for r in rows])),
                      "state_error_m": float(np.mean([r["state_error_m"] for r in rows]))}
            if blind:
                b = blind_groups[group]
                entry |= {"blind_accuracy": float(np.mean([r["correct"] for r in b])),
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
