"""Balanced questions about a measured batch, drawn inside the jitted step (`pick_questions`) or on the host
without repeating a world (`pick_distinct`, for held-out suites), and their tokens (`questions_at`).

Balancing is resampling inside the jitted sampler: each question slot draws a
template, a visible configuration of the batch (which object slots are in
play: the tower's height, the number of balls, ball or block), an answer
class uniformly among those that configuration allows, then a world of that
configuration whose measured answer is that class (a world may serve several
slots). Configurations that lack one of their answers in the batch are not
drawn for that template (`left_out` counts their worlds), so within every
configuration each allowed answer is equally likely: neither the question
nor the visible configuration tells the answer. A trainer with a replay ring
(2-6 worlds of a family per shard, which rarely hold every answer) balances
across the ring instead (`BatchSpec.balance`, `train.replay`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from physsim.episode.core import Measured, answer_classes, askable, class_mask, configuration
from physsim.episode.spec import BatchSpec
from physsim.questions import tokenizer as tok_lib
from physsim.questions.templates import ANSWER_LENGTH, QUESTION_LENGTH


def _text_tables(spec: BatchSpec, tok: tok_lib.Tokenizer):
    templates = spec.templates()
    n_para = max(len(t.paraphrases) for t in templates)
    n_opt = max(max(t.n_classes, 2) for t in templates)
    questions = np.zeros((len(templates), n_para, QUESTION_LENGTH), np.int32)
    answers = np.zeros((len(templates), n_opt, ANSWER_LENGTH), np.int32)
    units = np.zeros((len(templates), 4), np.int32)
    for i, t in enumerate(templates):
        for j in range(n_para):
            questions[i, j] = tok.encode(spec.prompt(t, j), length=QUESTION_LENGTH)
        for j, text in enumerate(t.options_text if t.kind != "number" else ()):
            answers[i, j] = tok.encode(text, length=ANSWER_LENGTH, eos=True)
        if t.kind == "number":
            units[i] = tok.encode(t.unit, length=4, eos=True)
    return questions, answers, units


def _number_answer(tok: tok_lib.Tokenizer, value: jax.Array, unit: jax.Array) -> jax.Array:
    ids, keep = tok_lib.number_tokens(tok, value)
    ids = jnp.concatenate([ids, unit])
    keep = jnp.concatenate([keep, unit != tok.pad_id])
    return tok_lib.compact(ids, keep, ANSWER_LENGTH, tok.pad_id)


def _uniform_choice(key: jax.Array, mask: jax.Array) -> jax.Array:
    """(Q,) index of a uniformly drawn True entry of each row of `mask` (Q, K) (0 where a row has none)."""
    noise = jax.random.gumbel(key, mask.shape)
    return jnp.argmax(jnp.where(mask, noise, -jnp.inf), axis=1).astype(jnp.int32)


def draw_tables(spec: BatchSpec, measured: Measured) -> dict[str, jax.Array]:
    """What drawing questions needs of a measured batch, per template of the spec: `valid` (T, B) askable,
    `classes` (T, B) each world's answer class, `allowed` (T, B, C) the classes its configuration allows,
    `config` (B,) the visible configurations and `per_config` (T,) whether balance is kept within them."""
    templates = spec.templates()
    facts = [measured.facts[t.fact] for t in templates]
    n_max = max(t.n_classes for t in templates)
    return {"valid": askable(spec, measured)[0],
            "classes": jnp.stack([answer_classes(t, f) for t, f in zip(templates, facts)]),
            "allowed": jnp.stack([class_mask(t, f, n_max) for t, f in zip(templates, facts)]),
            "config": configuration(measured.world),
            "per_config": jnp.asarray([not t.reads_configuration for t in templates])}


def complete_configurations(valid, classes, allowed, config, per_config, xp=jnp):
    """(T, B, B') which worlds share a world's configuration for each template (all worlds, for a template that
    asks for the configuration itself), (T, B, C) which answer classes an askable world of the same
    configuration has, and (T, B) whether a world's configuration is complete for a template: askable, with an
    askable world of that configuration for every answer class it allows. `xp`: jax.numpy inside the jitted
    picker, numpy in the host's `pick_distinct`."""
    same_config = (config[:, None] == config[None, :])[None] | ~per_config[:, None, None]
    one_hot = (classes[..., None] == xp.arange(allowed.shape[-1])).astype(xp.int32)  # (T, B', C)
    present = xp.einsum("tab,tbc->tac", (same_config & valid[:, None, :]).astype(xp.int32), one_hot) > 0
    return same_config, present, valid & xp.all(present | ~allowed, axis=-1)


def pick_questions(key: jax.Array, spec: BatchSpec, measured: Measured, tok: tok_lib.Tokenizer) -> dict:
    """Balanced (template, world) pairs and their tokens; see the module docstring."""
    templates = spec.templates()
    k_template, k_redraw, k_anchor, k_class, k_world, k_para = jax.random.split(key, 6)
    q = spec.n_questions
    tables = draw_tables(spec, measured)
    valid, classes, allowed = tables["valid"], tables["classes"], tables["allowed"]
    n_para = jnp.asarray([len(t.paraphrases) for t in templates], jnp.int32)

    # A world's configuration is complete for a template when the batch has an askable world of that
    # configuration for every answer class it allows. Balanced per shard, only those are drawn, so that within
    # each configuration every allowed answer is equally likely (a configuration missing a class is left out of
    # this batch, rather than answered with another class more often). Balanced by the replay ring, every
    # askable world may be drawn, and the class among those its configuration has here: the ring's weighted
    # draw evens them out over many steps' batches.
    same_config, present, complete = complete_configurations(valid, classes, allowed, tables["config"],
                                                              tables["per_config"])
    drawable = complete if spec.balance == "shard" else valid
    classes_drawn = allowed if spec.balance == "shard" else allowed & present
    # A slot draws a template by its weight; one that cannot be asked of this batch (per shard: no complete
    # configuration; by the ring: no askable world) falls back to a template that can (drawn by weight among
    # those): counted per slot, so that a batch too small for a template shows up in the metrics rather than
    # as a silently changed mix.
    can_ask = drawable.any(axis=1)
    log_weight = jnp.log(jnp.asarray(spec.template_weights(), jnp.float32))
    wanted = jax.random.categorical(k_template, log_weight, shape=(q,))
    fallback = ~can_ask[wanted]
    redraw = jax.random.categorical(k_redraw, jnp.where(can_ask, log_weight, -jnp.inf), shape=(q,))
    template = jnp.where(fallback, redraw, wanted)
    # A configuration, drawn as often as askable worlds have it; then a class it allows, uniformly; then a
    # world of that configuration with that answer.
    anchor = _uniform_choice(k_anchor, drawable[template])
    same = valid[template] & same_config[template, anchor]
    target = _uniform_choice(k_class, classes_drawn[template, anchor])
    world = _uniform_choice(k_world, same & (classes[template] == target[:, None]))
    paraphrase = jnp.floor(jax.random.uniform(k_para, (q,)) * n_para[template]).astype(jnp.int32)
    picked = questions_at(spec, measured, tables, tok, template, world, paraphrase, can_ask[template])
    return picked | {"left_out": (valid & ~drawable).sum(axis=1)[template].astype(jnp.int32), "fallback": fallback}


def questions_at(spec: BatchSpec, measured: Measured, tables: dict[str, jax.Array], tok: tok_lib.Tokenizer,
                 template: jax.Array, world: jax.Array, paraphrase: jax.Array, valid: jax.Array) -> dict:
    """The tokens, answer and bookkeeping of given (template, world, paraphrase) questions (each (Q,)) about a
    measured batch and its `draw_tables`; `valid` marks the slots that hold a question. Without `left_out` and
    `fallback`, which only a draw knows."""
    templates = spec.templates()
    facts = [measured.facts[t.fact] for t in templates]
    values = jnp.stack([f.value for f in facts])  # (T, B)
    times = jnp.stack([f.time for f in facts])
    classes, allowed = tables["classes"], tables["allowed"]
    question_table, answer_table, unit_table = (jnp.asarray(x) for x in _text_tables(spec, tok))
    value = values[template, world]
    klass = classes[template, world]
    is_number = jnp.asarray([t.kind == "number" for t in templates])[template]
    fixed = answer_table[template, jnp.clip(klass, 0, answer_table.shape[1] - 1)]
    numeric = jax.vmap(functools.partial(_number_answer, tok))(value, unit_table[template])
    n_allowed = allowed[template, world].sum(axis=1)
    return {
        "question": question_table[template, paraphrase],
        "answer": jnp.where(is_number[:, None], numeric, fixed),
        "template": template.astype(jnp.int32),
        "paraphrase": paraphrase.astype(jnp.int32),
        "value": value,
        "answer_class": jnp.where(is_number, 0, klass),
        "chance": jnp.where(is_number, 0.0, 1.0 / jnp.maximum(n_allowed, 1)).astype(jnp.float32),
        "configuration": tables["config"][world],
        "event_time": times[template, world],
        "valid": valid,
        "world": world.astype(jnp.int32),
    }


def pick_distinct(rng: np.random.Generator, spec: BatchSpec, tables: dict[str, np.ndarray], n_questions: int
                  ) -> dict[str, np.ndarray]:
    """Up to `n_questions` (template, world, paraphrase) draws on the host, as `pick_questions` draws them
    (template by weight among those askable, then a configuration, a class it allows, a world), except that no
    world is asked the same template twice: each question of a template is about another world. For held-out
    suites, whose accuracies must count distinct worlds. `tables`: `draw_tables` on the host. Slots past the
    last possible draw are marked invalid."""
    templates = spec.templates()
    valid = np.array(tables["valid"], bool)
    classes, allowed = np.asarray(tables["classes"]), np.asarray(tables["allowed"], bool)
    config, per_config = np.asarray(tables["config"]), np.asarray(tables["per_config"], bool)
    n_templates = allowed.shape[0]
    weights = spec.template_weights()
    out = {"template": np.zeros(n_questions, np.int32), "world": np.zeros(n_questions, np.int32),
           "paraphrase": np.zeros(n_questions, np.int32), "valid": np.zeros(n_questions, bool)}
    for q in range(n_questions):
        same_config, _, complete = complete_configurations(valid, classes, allowed, config, per_config, xp=np)
        can_ask = complete.any(axis=1)
        if not can_ask.any():
            break
        p = np.where(can_ask, weights, 0.0)
        t = rng.choice(n_templates, p=p / p.sum())
        anchor = rng.choice(np.flatnonzero(complete[t]))
        target = rng.choice(np.flatnonzero(allowed[t, anchor]))
        world = rng.choice(np.flatnonzero(valid[t] & same_config[t, anchor] & (classes[t] == target)))
        valid[t, world] = False  # not asked again
        out["template"][q], out["world"][q], out["valid"][q] = t, world, True
        out["paraphrase"][q] = rng.integers(len(templates[t].paraphrases))
    return out
