"""The batch a model trains on: videos of the picked questions' worlds (rendered once, with one camera jitter),
dense targets, hidden properties, and the readable form of any question.

    key -> sample -> worlds -> twins + shadows -> one rollout -> facts -> pick questions -> render
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from physsim import render as render_lib
from physsim.episode.core import TARGET_STABLE, Measured, simulate_and_measure, slot_properties
from physsim.episode.pick import pick_questions
from physsim.episode.spec import BatchSpec, default_tokenizer
from physsim.questions import tokenizer as tok_lib
from physsim.questions.templates import Template


@struct.dataclass
class QABatch:
    """Q questions, each about one simulated world (static shapes)."""

    video: jax.Array  # (Q, F, H, W, 3) uint8, the observation window
    question: jax.Array  # (Q, Lq) int32 tokens (context, then question), <pad>-padded
    answer: jax.Array  # (Q, La) int32 tokens ending with <eos>, <pad>-padded
    template: jax.Array  # (Q,) int32 index into spec.templates()
    paraphrase: jax.Array  # (Q,) int32
    value: jax.Array  # (Q,) float32 answer: 0/1, option index or number
    answer_class: jax.Array  # (Q,) int32 class of the answer given (0 for numbers)
    chance: jax.Array  # (Q,) float32: 1 / the answers the world's configuration allows (0 for numbers)
    left_out: jax.Array  # (Q,) int32: askable worlds of the batch left out for the question's template because
    #                      their configuration lacks one of its answers in the batch (see pick_questions)
    configuration: jax.Array  # (Q,) int32 bit mask of the object slots in play in the world
    event_time: jax.Array  # (Q,) float32 s, for explanations
    valid: jax.Array  # (Q,) bool: a world with a well-posed answer was found and its simulation is sound
    fallback: jax.Array  # (Q,) bool: the template first drawn for the slot could not be asked of this batch (no
    #                      configuration with every answer it allows), so another was drawn (see pick_questions)
    world: jax.Array  # (Q,) int32 index of the world in the simulated batch
    targets: jax.Array  # (Q, len(horizons), N, 3) object positions after the window
    target_ok: jax.Array  # (Q,) bool: the targets are not knife-edge (the shadow world's are within TARGET_STABLE)
    active: jax.Array  # (Q, N) bool: slots holding an object in this world (the others are parked)
    properties: jax.Array  # (Q, N, 3) hidden properties per slot: log mass relative to the world's
    #                        mean over active slots, friction, restitution (see slot_properties)
    gravity: jax.Array  # (Q,) m/s², magnitude
    params: dict[str, jax.Array]  # each (Q,) or (Q, N): the sampled parameters of the world
    # Only when asked for (`make_batch(..., extras=True)`, the exports): from the same render as `video`.
    depth: jax.Array | None = None  # (Q, F, H, W) float32 m
    segmentation: jax.Array | None = None  # (Q, F, H, W) int32: object slot i -> i, else -1


def camera_jitter(key: jax.Array, n: int, jitter: float) -> jax.Array:
    """(n, 3) offsets of the camera's position, uniform within +-`jitter` m along each axis (still aimed at the
    same target): the one jitter of every video, in training, held-out suites, exports and `env.render`."""
    return jax.random.uniform(key, (n, 3), jnp.float32, -jitter, jitter)


def render_images(spec: BatchSpec, measured: Measured, drawn: jax.Array,
                  jitter: jax.Array | None = None) -> render_lib.Images:
    """Colour, depth and segmentation (len(drawn), F, H, W, ...) of the observation windows of the worlds
    `drawn` of a measured batch."""
    scenario = spec.scenario()
    shown = spec.video_frames()
    return render_lib.render(
        measured.frames.geom_xpos[drawn][:, shown], measured.frames.geom_xmat[drawn][:, shown],
        measured.world.size[drawn], jitter, layout=scenario.layout(), camera=scenario.camera(spec.width, spec.height),
    )


def render_worlds(spec: BatchSpec, measured: Measured, drawn: jax.Array, jitter: jax.Array | None = None) -> jax.Array:
    """(len(drawn), F, H, W, 3) uint8 observation windows of the worlds `drawn` of a measured batch."""
    return render_images(spec, measured, drawn, jitter).rgb


def assemble(key: jax.Array, spec: BatchSpec, measured: Measured, picked: dict, extras: bool = False) -> QABatch:
    """The QABatch of picked questions about a measured batch: their videos (camera jitter drawn from `key`),
    dense targets and hidden properties, and with `extras` the depth and segmentation of the same render
    (traceable, not jitted)."""
    world = picked["world"]
    frames = jax.tree.map(lambda x: x[world], measured.frames)
    # With more questions than worlds, render every world once and look its video up per
    # question (questions about one world share its video and camera); else render per question.
    per_world = spec.n_questions > spec.n_worlds
    drawn = jnp.arange(spec.n_worlds) if per_world else world
    jitter = camera_jitter(key, drawn.shape[0], spec.camera_jitter) if spec.camera_jitter > 0 else None
    images = render_images(spec, measured, drawn, jitter)
    if per_world:
        images = jax.tree.map(lambda x: x[world], images)
    more = {"depth": images.depth, "segmentation": images.segmentation} if extras else {}
    horizons = spec.horizon_frames()
    targets = frames.pos[:, horizons]
    shadow_targets = measured.shadow_pos[world][:, horizons]
    target_ok = measured.sound[world] & (jnp.linalg.norm(targets - shadow_targets, axis=-1).max(axis=(1, 2))
                                         <= TARGET_STABLE)
    params = jax.tree.map(lambda x: x[world], measured.params)
    active, properties, gravity = jax.vmap(slot_properties)(jax.tree.map(lambda x: x[world], measured.world))
    return QABatch(video=images.rgb, targets=targets, target_ok=target_ok, active=active, properties=properties,
                   gravity=gravity, params=params, **picked, **more)


def make_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer, extras: bool = False
               ) -> tuple[QABatch, Measured]:
    """The questions of a resolved spec and the measured batch they were picked from (traceable, not jitted);
    `extras`: with depth and segmentation maps."""
    k_sim, k_pick, k_jitter = jax.random.split(key, 3)
    measured = simulate_and_measure(k_sim, spec)
    picked = pick_questions(k_pick, spec, measured, tok)
    return assemble(k_jitter, spec, measured, picked, extras), measured


@functools.partial(jax.jit, static_argnames=("spec", "tok", "extras"))
def _batch_jit(key, spec, tok, extras=False):
    return make_batch(key, spec, tok, extras)[0]


def qa_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None, extras: bool = False
             ) -> QABatch:
    """One jitted call: a balanced batch of questions with the videos they are about (and with `extras`, their
    depth and segmentation maps)."""
    return _batch_jit(key, spec.resolved(), tok or default_tokenizer(), extras)


def describe(spec: BatchSpec, template: Template, value: float, event_time: float, paraphrase: int = 0) -> dict:
    """One question in words, as every reader of questions shows it (`env.ask`, `readable`, the exports, the
    reference pipeline): family, task, template, kind, the question as written, the prompt (the context a
    viewer needs, then the question), the answer, its value, the explanation and the tolerance."""
    return {"family": spec.family, "task": template.task, "template": template.name, "kind": template.kind,
            "question": template.paraphrases[paraphrase % len(template.paraphrases)],
            "prompt": spec.prompt(template, paraphrase), "answer": template.answer_text(value), "value": value,
            "explanation": template.explain(value, event_time), "tolerance": template.tolerance_text()}


def readable(batch: QABatch, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None) -> list[dict]:
    """Every question of a batch in words (`describe`), with the words the model reads (`read`: the question's
    tokens decoded), its chance and whether the slot holds a question."""
    tok = tok or default_tokenizer()
    templates = spec.templates()
    return [describe(spec, templates[int(batch.template[i])], float(batch.value[i]), float(batch.event_time[i]),
                     int(batch.paraphrase[i]))
            | {"read": tok.decode(batch.question[i]), "chance": float(batch.chance[i]), "valid": bool(batch.valid[i])}
            for i in range(int(batch.template.shape[0]))]
