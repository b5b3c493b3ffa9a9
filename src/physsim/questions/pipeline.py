"""From a PRNG key to a batch of (video, question, answer) inside one `jax.jit`.

sample worlds -> add counterfactual twins -> simulate all in one rollout ->
measure each family's facts -> pick balanced questions -> tokens + video.

Balancing is resampling inside the jitted sampler: each question slot draws a
template and a target answer class uniformly, then a world of the batch whose
measured answer is that class (a world may serve several slots). When no
world of the batch has the class, any world with a valid answer is taken and
the slot counts in `answer_balance`, so imbalance is visible, not hidden.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from physsim import render as render_lib
from physsim import scenarios
from physsim.questions import tokenizer as tok_lib
from physsim.questions.templates import TASKS, Template, YES_NO
from physsim.scenarios.base import Fact, Run
from physsim.sim import params as params_lib
from physsim.sim import simulate
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import PARKING_X
from physsim.sim.simulate import Frames

QUESTION_LENGTH = 24
ANSWER_LENGTH = 12  # an option ("the blue ball") or a number (-9999.99 m/s) + <eos>


def all_templates() -> list[Template]:
    """Every template of every registered family, in a fixed order."""
    return [t for name in scenarios.names() for t in scenarios.get(name).questions]


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> tok_lib.Tokenizer:
    """The vocabulary of every registered family's templates."""
    return tok_lib.build(all_templates())


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """Static description of a question batch (hashable: one compile per spec)."""

    family: str
    split: str = "train"
    n_worlds: int = 64  # simulated factual worlds (each with its twins)
    n_questions: int = 64
    seconds: float | None = None  # rollout length (default: the family's)
    observe_seconds: float | None = None  # video shown to the model (default: the family's)
    frame_stride: int = 2  # video frame = every k-th recorded frame
    width: int = 64
    height: int = 64
    horizons: tuple[float, ...] = (0.25, 0.5, 1.0)  # s after the window, for dense state targets
    tasks: tuple[str, ...] | None = None  # default: every task type the family asks
    # Relative frequency of each task type in `tasks` (default: equal); a template's
    # share is its task's weight divided among that task's templates.
    task_weights: tuple[float, ...] | None = None
    camera_jitter: float = 0.0  # m; 0 keeps the family camera fixed
    impl: str = "jax"

    def resolved(self) -> BatchSpec:
        """Defaults filled in and every value checked, with errors naming the problem."""
        scenario = scenarios.get(self.family)
        params_lib.check_split(self.split)
        seconds = scenario.default_seconds if self.seconds is None else self.seconds
        observe = scenario.observe_seconds if self.observe_seconds is None else self.observe_seconds
        for name, v in (("n_worlds", self.n_worlds), ("n_questions", self.n_questions),
                        ("frame_stride", self.frame_stride), ("width", self.width), ("height", self.height)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        if not 0 < observe <= seconds:
            raise ValueError(
                f"observation window {observe} s must be positive and not longer than the {seconds} s rollout"
            )
        if max(self.horizons, default=0.0) + observe > seconds + 1e-9 or min(self.horizons, default=1.0) <= 0:
            raise ValueError(f"horizons {self.horizons} s after the {observe} s window must lie in the {seconds} s rollout")
        offered = {t.task for t in scenario.questions}
        tasks = tuple(t for t in TASKS if t in offered) if self.tasks is None else tuple(self.tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise params_lib.unknown_name_error("task type", unknown[0], list(TASKS))
        missing = [t for t in tasks if t not in offered]
        if missing:
            raise ValueError(
                f"family {self.family!r} asks no {missing[0]!r} questions; it supports {sorted(offered)}"
            )
        layout = scenario.layout()
        if layout.n_objects < 1:
            raise ValueError(f"family {self.family!r} has no objects to ask about")
        simulate.n_frames_for(layout, seconds)  # whole number of frames, or a clear error
        if not tasks:
            raise ValueError(f"no task types chosen for family {self.family!r}")
        weights = (1.0,) * len(tasks) if self.task_weights is None else tuple(float(w) for w in self.task_weights)
        if len(weights) != len(tasks) or not all(w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise ValueError(f"task_weights {self.task_weights} must be one non-negative weight per task type "
                             f"{tasks}, not all zero")
        return dataclasses.replace(self, seconds=float(seconds), observe_seconds=float(observe), tasks=tasks,
                                   task_weights=weights)

    def templates(self) -> tuple[Template, ...]:
        return tuple(t for t in scenarios.get(self.family).questions if t.task in self.tasks)

    def template_weights(self) -> np.ndarray:
        """Probability of drawing each of `templates()` (resolved specs only)."""
        templates = self.templates()
        weight = dict(zip(self.tasks, self.task_weights))
        per_task = {task: sum(t.task == task for t in templates) for task in self.tasks}
        w = np.asarray([weight[t.task] / per_task[t.task] for t in templates], np.float64)
        return w / w.sum()

    def video_frames(self) -> np.ndarray:
        layout = scenarios.get(self.family).layout()
        last = int(round(self.observe_seconds * layout.fps))
        return np.arange(0, last + 1, self.frame_stride)

    def horizon_frames(self) -> np.ndarray:
        layout = scenarios.get(self.family).layout()
        return np.asarray([round((self.observe_seconds + h) * layout.fps) for h in self.horizons], np.int32)


@struct.dataclass
class QABatch:
    """Q questions, each about one simulated world (static shapes)."""

    video: jax.Array  # (Q, F, H, W, 3) uint8, the observation window
    question: jax.Array  # (Q, Lq) int32 tokens, <pad>-padded
    answer: jax.Array  # (Q, La) int32 tokens ending with <eos>, <pad>-padded
    template: jax.Array  # (Q,) int32 index into spec.templates()
    paraphrase: jax.Array  # (Q,) int32
    value: jax.Array  # (Q,) float32 answer: 0/1, option index or number
    answer_class: jax.Array  # (Q,) int32 class the balancer asked for (0 for numbers)
    event_time: jax.Array  # (Q,) float32 s, for explanations
    valid: jax.Array  # (Q,) bool: a world with a valid answer was found and its simulation is sound
    world: jax.Array  # (Q,) int32 index of the world in the simulated batch
    targets: jax.Array  # (Q, len(horizons), N, 3) object positions after the window
    active: jax.Array  # (Q, N) bool: slots holding an object in this world (the others are parked)
    properties: jax.Array  # (Q, N, 3) hidden properties per slot: log mass relative to the world's
    #                        mean over active slots, friction, restitution (see slot_properties)
    gravity: jax.Array  # (Q,) m/s², magnitude
    params: dict[str, jax.Array]  # each (Q,) or (Q, N): the sampled parameters of the world


@struct.dataclass
class Measured:
    """A simulated batch and its facts, before questions are picked."""

    params: dict[str, jax.Array]  # (B,) / (B, N)
    world: object  # WorldParams (B,)
    frames: Frames  # factual (B, T, ...)
    twins: dict[str, Frames]
    facts: dict[str, Fact]  # each field (B,)
    sound: jax.Array  # (B,) bool: factual and twin simulations all valid


def twin_worlds(family: str, params, world) -> list:
    scenario = scenarios.get(family)
    layout = scenario.layout()
    return [jax.vmap(lambda w, p, name=name: scenario.intervene(name, w, p, layout))(world, params)
            for name in scenario.twins]


def _chunks(frames: Frames, b: int, n: int) -> list[Frames]:
    """n consecutive blocks of b worlds each, from one rollout of stacked worlds."""
    return [jax.tree.map(lambda x, k=k: x[k * b : (k + 1) * b], frames) for k in range(n)]


def _facts(family: str, params, world, factual: Frames, twins: dict[str, Frames], observe_seconds: float):
    scenario = scenarios.get(family)
    layout = scenario.layout()

    def measure_one(p, w, f, tw):
        return scenario.facts(Run(params=p, world=w, frames=f, twins=tw, observe_seconds=observe_seconds), layout)

    facts = jax.vmap(measure_one)(params, world, factual, twins)
    sound = jnp.stack([c.valid.all(axis=1) for c in (factual, *twins.values())]).all(axis=0)
    return facts, sound


def measure_facts(
    family: str, params, world, factual: Frames, *, observe_seconds: float, impl: str = "jax"
) -> tuple[dict[str, Frames], dict[str, Fact], jax.Array]:
    """For an already simulated factual batch: simulates its twins and measures every fact.

    Returns the twins' frames by intervention, the facts (each field (B,)) and
    whether each world's factual and twin simulations are all sound.
    """
    twins = {}
    intervened = twin_worlds(family, params, world)
    if intervened:
        layout = scenarios.get(family).layout()
        stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *intervened)
        frames = simulate.rollout(stacked, layout=layout, n_frames=factual.time.shape[1], impl=impl)
        names = scenarios.get(family).twins
        twins = dict(zip(names, _chunks(frames, factual.time.shape[0], len(names))))
    facts, sound = _facts(family, params, world, factual, twins, observe_seconds)
    return twins, facts, sound


def simulate_and_measure(key: jax.Array, spec: BatchSpec) -> Measured:
    """Samples `spec.n_worlds` worlds and simulates them with their twins in one rollout, then measures facts."""
    return measure_params(scenarios.get(spec.family).sample(key, spec.n_worlds, spec.split), spec)


def measure_params(params: dict[str, jax.Array], spec: BatchSpec) -> Measured:
    """Simulates the worlds of given parameters (each (B,) or (B, N)) with their twins in one rollout, then
    measures facts. The twins are extra worlds of the same batch: [factual; twin 1; twin 2; ...]."""
    scenario = scenarios.get(spec.family)
    layout = scenario.layout()
    world = jax.vmap(lambda p: scenario.world(p, layout))(params)
    everything = jax.tree.map(lambda *xs: jnp.concatenate(xs), world, *twin_worlds(spec.family, params, world))
    n_frames = simulate.n_frames_for(layout, spec.seconds)
    frames = simulate.rollout(everything, layout=layout, n_frames=n_frames, impl=spec.impl)
    factual, *rest = _chunks(frames, spec.n_worlds, 1 + len(scenario.twins))
    twins = dict(zip(scenario.twins, rest))
    facts, sound = _facts(spec.family, params, world, factual, twins, spec.observe_seconds)
    return Measured(params=params, world=world, frames=factual, twins=twins, facts=facts, sound=sound)


def slot_properties(world: WorldParams) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One world's active slots (N,), property targets (N, 3) and gravity magnitude ().

    Mass is given relative to the world's mean log mass because only mass
    ratios show in a video (a collision reveals which is heavier, not kilograms).
    """
    active = world.pos[:, 0] < 0.5 * PARKING_X
    log_mass = jnp.log(world.mass)
    mean = jnp.where(active, log_mass, 0.0).sum() / jnp.maximum(active.sum(), 1)
    properties = jnp.stack([log_mass - mean, world.friction, world.restitution], axis=-1)
    return active, jnp.where(active[:, None], properties, 0.0), jnp.linalg.norm(world.gravity)


def answer_classes(template: Template, f: Fact) -> jax.Array:
    """(B,) int32 class of each world's answer (0 for numbers)."""
    if template.kind == "number":
        return jnp.zeros(f.value.shape, jnp.int32)
    return jnp.round(f.value).astype(jnp.int32)


def _text_tables(templates: tuple[Template, ...], tok: tok_lib.Tokenizer):
    n_para = max(len(t.paraphrases) for t in templates)
    n_opt = max(max(t.n_classes, 2) for t in templates)
    questions = np.zeros((len(templates), n_para, QUESTION_LENGTH), np.int32)
    answers = np.zeros((len(templates), n_opt, ANSWER_LENGTH), np.int32)
    units = np.zeros((len(templates), 4), np.int32)
    for i, t in enumerate(templates):
        for j in range(n_para):
            questions[i, j] = tok.encode(t.paraphrases[j % len(t.paraphrases)], length=QUESTION_LENGTH)
        texts = YES_NO if t.kind == "yesno" else t.options
        for j, text in enumerate(texts):
            answers[i, j] = tok.encode(text, length=ANSWER_LENGTH, eos=True)
        if t.kind == "number":
            units[i] = tok.encode(t.unit, length=4, eos=True)
    return questions, answers, units


def _number_answer(tok: tok_lib.Tokenizer, value: jax.Array, unit: jax.Array) -> jax.Array:
    ids, keep = tok_lib.number_tokens(tok, value)
    ids = jnp.concatenate([ids, unit])
    keep = jnp.concatenate([keep, unit != tok.pad_id])
    return tok_lib.compact(ids, keep, ANSWER_LENGTH, tok.pad_id)


def pick_questions(key: jax.Array, spec: BatchSpec, measured: Measured, tok: tok_lib.Tokenizer) -> dict:
    """Balanced (template, world) pairs and their tokens; see the module docstring."""
    templates = spec.templates()
    k_template, k_class, k_world, k_para = jax.random.split(key, 4)
    q = spec.n_questions
    facts = [measured.facts[t.fact] for t in templates]
    values = jnp.stack([f.value for f in facts])  # (T, B)
    valid = jnp.stack([f.valid for f in facts]) & measured.sound[None]
    classes = jnp.stack([answer_classes(t, f) for t, f in zip(templates, facts)])
    times = jnp.stack([f.time for f in facts])
    n_classes = jnp.asarray([t.n_classes for t in templates], jnp.int32)
    n_para = jnp.asarray([len(t.paraphrases) for t in templates], jnp.int32)

    # Templates with no valid world in this batch are not drawn.
    askable = valid.any(axis=1)
    log_weight = jnp.log(jnp.asarray(spec.template_weights(), jnp.float32))
    template = jax.random.categorical(k_template, jnp.where(askable, log_weight, -jnp.inf), shape=(q,))
    target = jnp.floor(jax.random.uniform(k_class, (q,)) * n_classes[template]).astype(jnp.int32)
    ok = valid[template]  # (Q, B)
    wanted = ok & (classes[template] == target[:, None])
    choose_from = jnp.where(wanted.any(axis=1, keepdims=True), wanted, ok)
    noise = jax.random.gumbel(k_world, choose_from.shape)
    world = jnp.argmax(jnp.where(choose_from, noise, -jnp.inf), axis=1).astype(jnp.int32)
    found = choose_from.any(axis=1)
    paraphrase = jnp.floor(jax.random.uniform(k_para, (q,)) * n_para[template]).astype(jnp.int32)

    question_table, answer_table, unit_table = (jnp.asarray(x) for x in _text_tables(templates, tok))
    value = values[template, world]
    klass = classes[template, world]
    is_number = jnp.asarray([t.kind == "number" for t in templates])[template]
    fixed = answer_table[template, jnp.clip(klass, 0, answer_table.shape[1] - 1)]
    numeric = jax.vmap(functools.partial(_number_answer, tok))(value, unit_table[template])
    return {
        "question": question_table[template, paraphrase],
        "answer": jnp.where(is_number[:, None], numeric, fixed),
        "template": template.astype(jnp.int32),
        "paraphrase": paraphrase,
        "value": value,
        "answer_class": jnp.where(is_number, 0, target),
        "event_time": times[template, world],
        "valid": found & askable[template],
        "world": world,
    }


def render_images(spec: BatchSpec, measured: Measured, drawn: jax.Array,
                  jitter: jax.Array | None = None) -> render_lib.Images:
    """Colour, depth and segmentation (len(drawn), F, H, W, ...) of the observation windows of the worlds
    `drawn` of a measured batch."""
    scenario = scenarios.get(spec.family)
    shown = spec.video_frames()
    return render_lib.render(
        measured.frames.geom_xpos[drawn][:, shown], measured.frames.geom_xmat[drawn][:, shown],
        measured.world.size[drawn], jitter, layout=scenario.layout(), camera=scenario.camera(spec.width, spec.height),
    )


def render_worlds(spec: BatchSpec, measured: Measured, drawn: jax.Array, jitter: jax.Array | None = None) -> jax.Array:
    """(len(drawn), F, H, W, 3) uint8 observation windows of the worlds `drawn` of a measured batch."""
    return render_images(spec, measured, drawn, jitter).rgb


def make_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer) -> tuple[QABatch, Measured]:
    """The questions of a resolved spec and the measured batch they were picked from (traceable, not jitted)."""
    k_sim, k_pick, k_jitter = jax.random.split(key, 3)
    measured = simulate_and_measure(k_sim, spec)
    picked = pick_questions(k_pick, spec, measured, tok)
    world = picked["world"]
    frames = jax.tree.map(lambda x: x[world], measured.frames)
    # With more questions than worlds, render every world once and look its video up per
    # question (questions about one world share its video and camera); else render per question.
    per_world = spec.n_questions > spec.n_worlds
    drawn = jnp.arange(spec.n_worlds) if per_world else world
    jitter = None
    if spec.camera_jitter > 0:
        jitter = jax.random.uniform(k_jitter, (drawn.shape[0], 3), jnp.float32, -spec.camera_jitter, spec.camera_jitter)
    video = render_worlds(spec, measured, drawn, jitter)
    if per_world:
        video = video[world]
    targets = frames.pos[:, spec.horizon_frames()]
    params = jax.tree.map(lambda x: x[world], measured.params)
    active, properties, gravity = jax.vmap(slot_properties)(jax.tree.map(lambda x: x[world], measured.world))
    qa = QABatch(video=video, targets=targets, active=active, properties=properties, gravity=gravity,
                 params=params, **picked)
    return qa, measured


@functools.partial(jax.jit, static_argnames=("spec", "tok"))
def _batch_jit(key, spec, tok):
    return make_batch(key, spec, tok)[0]


def qa_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None) -> QABatch:
    """One jitted call: a balanced batch of questions with the videos they are about."""
    return _batch_jit(key, spec.resolved(), tok or default_tokenizer())


def readable(batch: QABatch, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None) -> list[dict]:
    """Host-side strings of a batch: question, answer, explanation, tolerance, family, task."""
    tok = tok or default_tokenizer()
    templates = spec.templates()
    out = []
    for i in range(int(batch.template.shape[0])):
        t = templates[int(batch.template[i])]
        value = float(batch.value[i])
        out.append({
            "family": spec.family,
            "task": t.task,
            "template": t.name,
            "kind": t.kind,
            "question": tok.decode(batch.question[i]),
            "answer": tok.decode(batch.answer[i]),
            "value": value,
            "explanation": t.explain(value, float(batch.event_time[i])),
            "tolerance": t.tolerance_text(),
            "valid": bool(batch.valid[i]),
        })
    return out
