"""From a PRNG key to a batch of (video, question, answer) inside one `jax.jit`.

sample worlds -> add counterfactual twins -> simulate all in one rollout ->
measure each family's facts -> pick balanced questions -> tokens + video.

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

Knife-edge worlds are not asked about: every world is simulated a second
time from initial positions moved by KNIFE_EDGE (0.1 mm, far below what a
64-pixel video shows), twins included, in the same rollout; a question whose
answer differs between the two is ill-posed for that world and invalid, and dense state targets that move
by more than TARGET_STABLE between the two are not trained on. "Differs" for
a number means the shadow's answer would be judged wrong against it.
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
from physsim.questions.templates import TASKS, Template, context
from physsim.render.raycast import CHECKER_SIZE
from physsim.scenarios.base import Fact, Run
from physsim.sim import params as params_lib
from physsim.sim import simulate
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import PARKING_X
from physsim.sim.simulate import Frames

QUESTION_LENGTH = 56  # the context (frame times, a scale) and the question
ANSWER_LENGTH = 12  # an option ("the blue ball") or a number (-9999.99 m/s) + <eos>
KNIFE_EDGE = 1e-4  # m: the shadow world's objects start this far from the factual ones, along x and y
# m: dense targets farther apart than this between the two are not trained on (~1.5 pixels at 64x64). After
# an impact, positions differ by centimetres (measured: 0.1 mm at the start became 2.7 cm 1 s after a
# collision): a soft contact's outcome depends on the physics step its first touch falls in.
TARGET_STABLE = 0.05
DISTANCE_UNITS = ("m", "m/s")  # questions in these units get the floor's scale in their context
BALANCE_MODES = ("shard", "replay")  # see BatchSpec.balance


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
    # Video shown to the model (default: the family's). Resolving rounds it down to the time of the last
    # frame shown, which is what facts and targets treat as the end of what was seen.
    observe_seconds: float | None = None
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
    # Where answers are balanced. "shard": within this batch (only configurations with every allowed answer
    # in it are drawn). "replay": across the trainer's replay ring (`train.replay.draw_weights`), so that a
    # batch of 2-6 worlds, which rarely holds every answer, still asks the templates its weights ask for: a slot
    # asks any askable world, its answer drawn uniformly among those its configuration has in the batch.
    balance: str = "shard"

    def resolved(self) -> BatchSpec:
        """Defaults filled in and every value checked, with errors naming the problem."""
        scenario = scenarios.get(self.family)
        params_lib.check_split(self.split)
        if self.balance not in BALANCE_MODES:
            raise params_lib.unknown_name_error("balance mode", self.balance, list(BALANCE_MODES))
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
        last_shown = int(np.floor(observe * layout.fps + 1e-6)) // self.frame_stride * self.frame_stride
        observe = last_shown / layout.fps
        if last_shown == 0:
            raise ValueError(f"the {self.observe_seconds or scenario.observe_seconds} s window at frame_stride="
                             f"{self.frame_stride} shows only the first frame of {self.family!r}")
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
        """Indices of the recorded frames the video shows (resolved specs: the last is at observe_seconds)."""
        layout = scenarios.get(self.family).layout()
        last = int(round(self.observe_seconds * layout.fps))
        return np.arange(0, last + 1, self.frame_stride)

    def frame_interval(self) -> float:
        """Seconds between two frames of the video."""
        return self.frame_stride / scenarios.get(self.family).layout().fps

    def context(self, template: Template) -> str:
        """What a viewer needs beside the question: the frames' times and, for distances, a scale."""
        scale = CHECKER_SIZE if template.unit in DISTANCE_UNITS else None
        return context(self.frame_interval(), self.observe_seconds, scale)

    def prompt(self, template: Template, paraphrase: int) -> str:
        """The question as the model reads it: context, then the paraphrase."""
        return f"{self.context(template)} {template.paraphrases[paraphrase % len(template.paraphrases)]}"

    def horizon_frames(self) -> np.ndarray:
        layout = scenarios.get(self.family).layout()
        return np.asarray([round((self.observe_seconds + h) * layout.fps) for h in self.horizons], np.int32)


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


@struct.dataclass
class Measured:
    """A simulated batch and its facts, before questions are picked."""

    params: dict[str, jax.Array]  # (B,) / (B, N)
    world: object  # WorldParams (B,)
    frames: Frames  # factual (B, T, ...)
    twins: dict[str, Frames]
    facts: dict[str, Fact]  # each field (B,)
    shadow: dict[str, Fact]  # the same facts of the shadow worlds (initial positions moved by KNIFE_EDGE)
    shadow_pos: jax.Array  # (B, T, N, 3) the shadow worlds' object positions
    sound: jax.Array  # (B,) bool: factual, twin and shadow simulations all valid


def twin_worlds(family: str, params, world) -> list:
    scenario = scenarios.get(family)
    layout = scenario.layout()
    return [jax.vmap(lambda w, p, name=name: scenario.intervene(name, w, p, layout))(world, params)
            for name in scenario.twins]


def shadow_world(world: WorldParams) -> WorldParams:
    """Batched worlds (B,) with every object moved by KNIFE_EDGE along x and y, in a fixed pattern of signs
    (alternating between neighbouring slots, so that gaps between objects change too)."""
    n = world.pos.shape[-2]
    sign_x = jnp.asarray([(-1.0) ** i for i in range(n)], jnp.float32)
    sign_y = jnp.asarray([(-1.0) ** (i // 2) for i in range(n)], jnp.float32)
    offset = KNIFE_EDGE * jnp.stack([sign_x, sign_y, jnp.zeros(n)], axis=-1)
    return world.replace(pos=world.pos + offset)


def _chunks(frames: Frames, b: int, n: int) -> list[Frames]:
    """n consecutive blocks of b worlds each, from one rollout of stacked worlds."""
    return [jax.tree.map(lambda x, k=k: x[k * b : (k + 1) * b], frames) for k in range(n)]


@dataclasses.dataclass(frozen=True)
class View:
    """How the video is made, which facts about what it shows need: the time of its last frame, which
    recorded frames it shows, the camera and how far its position may be jittered (m)."""

    observe_seconds: float
    frame_stride: int
    camera: render_lib.Camera
    camera_jitter: float = 0.0

    @classmethod
    def of(cls, spec: BatchSpec) -> View:
        camera = scenarios.get(spec.family).camera(spec.width, spec.height)
        return cls(spec.observe_seconds, spec.frame_stride, camera, spec.camera_jitter)


def _facts(family: str, params, world, factual: Frames, twins: dict[str, Frames], view: View) -> dict[str, Fact]:
    scenario = scenarios.get(family)
    layout = scenario.layout()

    def measure_one(p, w, f, tw):
        run = Run(params=p, world=w, frames=f, twins=tw, observe_seconds=view.observe_seconds,
                  frame_stride=view.frame_stride, camera=view.camera, camera_jitter=view.camera_jitter)
        return scenario.facts(run, layout)

    return jax.vmap(measure_one)(params, world, factual, twins)


def _simulate(family: str, params, world, *, n_frames: int, view: View, impl: str,
              factual: Frames | None = None) -> Measured:
    """One rollout of [factual; twins; shadow; shadow's twins] (the factual part skipped when given), then
    every fact of the factual and of the shadow worlds."""
    scenario = scenarios.get(family)
    layout = scenario.layout()
    shadow = shadow_world(world)
    worlds = ([] if factual is not None else [world]) + twin_worlds(family, params, world) + [shadow] + \
        twin_worlds(family, params, shadow)
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *worlds)
    frames = simulate.rollout(stacked, layout=layout, n_frames=n_frames, impl=impl)
    b, k = params[next(iter(params))].shape[0], len(scenario.twins)
    chunks = _chunks(frames, b, len(worlds))
    if factual is None:
        factual, chunks = chunks[0], chunks[1:]
    twins = dict(zip(scenario.twins, chunks[:k]))
    shadow_frames, shadow_twins = chunks[k], dict(zip(scenario.twins, chunks[k + 1:]))
    facts = _facts(family, params, world, factual, twins, view)
    shadow_facts = _facts(family, params, shadow, shadow_frames, shadow_twins, view)
    sound = jnp.stack([c.valid.all(axis=1) for c in (factual, *twins.values(), shadow_frames,
                                                       *shadow_twins.values())]).all(axis=0)
    return Measured(params=params, world=world, frames=factual, twins=twins, facts=facts, shadow=shadow_facts,
                    shadow_pos=shadow_frames.pos, sound=sound)


def measure_facts(family: str, params, world, factual: Frames, *, view: View, impl: str = "jax") -> Measured:
    """For an already simulated factual batch: simulates its twins and shadows and measures every fact."""
    return _simulate(family, params, world, n_frames=factual.time.shape[1], view=view, impl=impl, factual=factual)


def simulate_and_measure(key: jax.Array, spec: BatchSpec) -> Measured:
    """Samples `spec.n_worlds` worlds and simulates them with their twins and shadows in one rollout, then
    measures facts."""
    return measure_params(scenarios.get(spec.family).sample(key, spec.n_worlds, spec.split), spec)


def measure_params(params: dict[str, jax.Array], spec: BatchSpec) -> Measured:
    """Simulates the worlds of given parameters (each (B,) or (B, N)) with their twins and shadows in one
    rollout, then measures facts."""
    scenario = scenarios.get(spec.family)
    layout = scenario.layout()
    world = jax.vmap(lambda p: scenario.world(p, layout))(params)
    return _simulate(spec.family, params, world, n_frames=simulate.n_frames_for(layout, spec.seconds),
                     view=View.of(spec), impl=spec.impl)


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


def configuration(world: WorldParams) -> jax.Array:
    """(B,) int32 visible configuration of batched worlds: the bit mask of the object slots in play."""
    active = world.pos[..., 0] < 0.5 * PARKING_X
    return jnp.sum(active.astype(jnp.int32) << jnp.arange(active.shape[-1], dtype=jnp.int32), axis=-1)


def answer_classes(template: Template, f: Fact) -> jax.Array:
    """(B,) int32 class of each world's answer (0 for numbers)."""
    if template.kind == "number":
        return jnp.zeros(f.value.shape, jnp.int32)
    return jnp.round(f.value).astype(jnp.int32)


def class_mask(template: Template, f: Fact, n_max: int) -> jax.Array:
    """(B, n_max) bool: the answer classes each world's configuration allows (one column for numbers)."""
    b = f.value.shape[0]
    n = template.n_classes
    mask = jnp.ones((b, n), bool) if f.classes is None else f.classes.reshape(b, n)
    return jnp.pad(mask, [(0, 0), (0, n_max - n)])


def stable(template: Template, f: Fact, shadow: Fact) -> jax.Array:
    """(B,) bool: the shadow world gives the same answer (a number that would be judged right against this
    one) and the family's closed-form criterion (`Fact.edge`) does not flag the world, so the question is not
    knife-edge."""
    if template.kind == "number":
        same = jnp.abs(f.value - shadow.value) <= template.tolerance(f.value)
    else:
        same = jnp.round(f.value) == jnp.round(shadow.value)
    return shadow.valid & same & ~jnp.asarray(f.edge, bool)


def askable(spec: BatchSpec, measured: Measured) -> tuple[jax.Array, jax.Array]:
    """(T, B) bool each, per template of the spec: asked (well posed, sound, not knife-edge), and dropped as
    knife-edge (well posed and sound, but the shadow world answers otherwise)."""
    valid, edge = [], []
    for t in spec.templates():
        f, g = measured.facts[t.fact], measured.shadow[t.fact]
        posed = f.valid & measured.sound
        same = stable(t, f, g)
        valid.append(posed & same)
        edge.append(posed & ~same)
    return jnp.stack(valid), jnp.stack(edge)


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


def assemble(key: jax.Array, spec: BatchSpec, measured: Measured, picked: dict) -> QABatch:
    """The QABatch of picked questions about a measured batch: their videos (camera jitter drawn from `key`),
    dense targets and hidden properties (traceable, not jitted)."""
    world = picked["world"]
    frames = jax.tree.map(lambda x: x[world], measured.frames)
    # With more questions than worlds, render every world once and look its video up per
    # question (questions about one world share its video and camera); else render per question.
    per_world = spec.n_questions > spec.n_worlds
    drawn = jnp.arange(spec.n_worlds) if per_world else world
    jitter = None
    if spec.camera_jitter > 0:
        jitter = jax.random.uniform(key, (drawn.shape[0], 3), jnp.float32, -spec.camera_jitter, spec.camera_jitter)
    video = render_worlds(spec, measured, drawn, jitter)
    if per_world:
        video = video[world]
    horizons = spec.horizon_frames()
    targets = frames.pos[:, horizons]
    shadow_targets = measured.shadow_pos[world][:, horizons]
    target_ok = measured.sound[world] & (jnp.linalg.norm(targets - shadow_targets, axis=-1).max(axis=(1, 2))
                                         <= TARGET_STABLE)
    params = jax.tree.map(lambda x: x[world], measured.params)
    active, properties, gravity = jax.vmap(slot_properties)(jax.tree.map(lambda x: x[world], measured.world))
    return QABatch(video=video, targets=targets, target_ok=target_ok, active=active, properties=properties,
                   gravity=gravity, params=params, **picked)


def make_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer) -> tuple[QABatch, Measured]:
    """The questions of a resolved spec and the measured batch they were picked from (traceable, not jitted)."""
    k_sim, k_pick, k_jitter = jax.random.split(key, 3)
    measured = simulate_and_measure(k_sim, spec)
    picked = pick_questions(k_pick, spec, measured, tok)
    return assemble(k_jitter, spec, measured, picked), measured


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


@functools.partial(jax.jit, static_argnames=("spec", "tok"))
def _batch_jit(key, spec, tok):
    return make_batch(key, spec, tok)[0]


def qa_batch(key: jax.Array, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None) -> QABatch:
    """One jitted call: a balanced batch of questions with the videos they are about."""
    return _batch_jit(key, spec.resolved(), tok or default_tokenizer())


def readable(batch: QABatch, spec: BatchSpec, tok: tok_lib.Tokenizer | None = None) -> list[dict]:
    """Host-side strings of a batch: prompt (context + question as written), the tokens' question and
    answer, explanation, tolerance, family, task, chance."""
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
            "prompt": spec.prompt(t, int(batch.paraphrase[i])),
            "question": tok.decode(batch.question[i]),
            "answer": tok.decode(batch.answer[i]),
            "value": value,
            "explanation": t.explain(value, float(batch.event_time[i])),
            "tolerance": t.tolerance_text(),
            "chance": float(batch.chance[i]),
            "valid": bool(batch.valid[i]),
        })
    return out
