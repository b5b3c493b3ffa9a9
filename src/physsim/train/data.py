"""Training batches made inside the jitted step: simulate, render, ask, pad, shard.

A step's global batch is `data.shards` scene shards. Shard i is simulated from
`streams.shard(step_key, i)` and holds, for every configured family, its share of
`worlds_per_shard` worlds and `questions_per_world` questions per world
(`episode`), padded to the model's frame count and object slots and
concatenated. Devices split the shards (`shard_map` over the mesh, `lax.map`
over a device's own shards), so each device simulates different scenes, and
the global batch for a key is the same on 1 device or on 4: same seed, same
scenes, same loss, on any device count.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import PartitionSpec as P

from physsim import _names
from physsim import episode
from physsim import model as model_lib
from physsim import scenarios, streams
from physsim.model.config import ModelConfig
from physsim.questions import templates
from physsim.questions.templates import TASKS
from physsim.sim import params as params_lib
from physsim.train import config as config_lib
from physsim.train.config import Config, ConfigError, DataConfig

BATCH_AXES = ("data", "fsdp")  # the batch is split over every device of the mesh
EVAL_SUITES = ("test", "validation")  # eval.suites: the held-out suites, or the validation suites (for tuning)


@struct.dataclass
class Batch:
    """Q questions of one or more families, in the model's shapes."""

    video: jax.Array  # (Q, F, H, W, 3) uint8, zero-padded after each clip
    frame_mask: jax.Array  # (Q, F) bool
    question: jax.Array  # (Q, Lq) int32
    answer: jax.Array  # (Q, La) int32
    targets: jax.Array  # (Q, horizons, max_objects, 3) m
    target_ok: jax.Array  # (Q,) bool: the targets are not knife-edge (trained on)
    slot_mask: jax.Array  # (Q, max_objects) bool
    properties: jax.Array  # (Q, max_objects, 3)
    gravity: jax.Array  # (Q,)
    family: jax.Array  # (Q,) int32 index into the config's families
    template: jax.Array  # (Q,) int32 index into the family's spec.templates()
    task: jax.Array  # (Q,) int32 index into questions.templates.TASKS
    value: jax.Array  # (Q,) float32 measured answer
    chance: jax.Array  # (Q,) float32: 1 / the answers the world's configuration allows (0 for numbers)
    answer_class: jax.Array  # (Q,) int32 class of the answer given (0 for numbers)
    configuration: jax.Array  # (Q,) int32 bit mask of the object slots in play (what the replay balances within)
    valid: jax.Array  # (Q,) bool: a sound world with a well-posed answer


@struct.dataclass
class Faults:
    """What went wrong in the simulations and question draws of a step, per family of the config (F families, S
    scene shards).

    A world is unsound when its factual or a twin simulation had a non-finite
    state or a speed above `sim.simulate.MAX_SPEED` (`Frames.valid`). Its
    questions are invalid, so they weigh nothing in the loss; these counts
    let the run stop when too many worlds fail (`train.max_invalid_fraction`).
    """

    unsound: jax.Array  # (S, F) int32: unsound worlds of each family in each shard
    fallback: jax.Array  # (S, F) int32: question slots of each family in each shard whose template could not be
    #                      asked of the shard's worlds and was drawn again (QABatch.fallback)
    example: tuple[dict[str, jax.Array], ...]  # per family, each leaf (S, ...): the sampled parameters of the
    #                                            shard's first unsound world of that family (of world 0 if none)

    def first(self) -> tuple[jax.Array, tuple[dict[str, jax.Array], ...]]:
        """(F,) unsound worlds over every shard, and per family the parameters of its first unsound world."""
        shard = jnp.argmax(self.unsound > 0, axis=0)  # (F,): first shard with one (0 if none)
        example = tuple(jax.tree.map(lambda x, s=shard[f]: x[s], e) for f, e in enumerate(self.example))
        return self.unsound.sum(axis=0), example


def family_names(data: DataConfig) -> tuple[str, ...]:
    return tuple(name for name, _ in data.families)


def family_specs(config: Config, split: str = "train") -> tuple[episode.BatchSpec, ...]:
    """One resolved BatchSpec per family for one scene shard (static: one compile per config)."""
    data, cfg = config.data, config.model
    weights = data.family_weights()
    total = sum(weights.values())
    task_weight = dict(data.task_weights)
    tuned = config_lib.family_configs(data)
    specs = []
    for name in family_names(data):
        worlds = max(1, round(data.worlds_per_shard * weights[name] / total))
        offered = {t.task for t in scenarios.get(name).questions}
        tasks = tuple(t for t in TASKS if t in offered and task_weight.get(t, 0.0) > 0)
        if not tasks:
            raise ConfigError(f"data.task_weights give family {name!r} no task type it asks ({sorted(offered)})")
        spec = episode.BatchSpec(
            name, family_config=tuned.get(name), split=split, n_worlds=worlds,
            n_questions=worlds * data.questions_per_world,
            frame_stride=data.frame_stride, width=cfg.width, height=cfg.height, horizons=data.horizons,
            tasks=tasks, task_weights=tuple(task_weight[t] for t in tasks), camera_jitter=data.camera_jitter,
            balance="replay" if data.replay and split == "train" else "shard",
        ).resolved()
        specs.append(spec)
    return tuple(specs)


def check(config: Config, n_devices: int) -> None:
    """Every problem a config can have before anything is compiled, as a ConfigError naming it."""
    data, cfg = config.data, config.model
    if not data.families:
        raise ConfigError("data.families is empty: name at least one scene family")
    for name, weight in data.families:
        if name not in scenarios.names():
            raise _names.unknown("scene family", name, scenarios.names(), ConfigError)
        if not weight > 0:
            raise ConfigError(f"data.families: weight of {name!r} is {weight}; weights must be positive")
    for task, weight in data.task_weights:
        if task not in TASKS:
            raise _names.unknown("task type", task, TASKS, ConfigError)
        if weight < 0:
            raise ConfigError(f"data.task_weights: weight of {task!r} is {weight}; weights must be >= 0")
    for name in ("worlds_per_shard", "questions_per_world", "shards", "frame_stride"):
        if getattr(data, name) < 1:
            raise ConfigError(f"data.{name}={getattr(data, name)} must be a positive integer")
    for name in ("questions", "questions_per_world", "every"):
        if getattr(config.eval, name) < 1:
            raise ConfigError(f"eval.{name}={getattr(config.eval, name)} must be a positive integer")
    for split in config.eval.splits:
        if split not in params_lib.SPLITS:
            raise _names.unknown("split", split, params_lib.SPLITS, ConfigError)
    if config.eval.suites not in EVAL_SUITES:
        raise _names.unknown("eval.suites", config.eval.suites, EVAL_SUITES, ConfigError)
    if config.eval.suites == "validation" and tuple(config.eval.splits) != ("train",):
        raise ConfigError(f"eval.suites='validation' with eval.splits={tuple(config.eval.splits)}: validation suites "
                          f"are of the training ranges only (eval.splits=('train',)); the out-of-distribution ranges "
                          f"are held out, not tuned on")
    fresh = sum(s.n_questions for s in checked_specs(config))
    if data.replay:
        if data.replay < fresh or data.replay % fresh:
            raise ConfigError(f"data.replay={data.replay} must be a multiple of the {fresh} fresh questions each scene "
                              f"shard simulates per step")
        if data.replay_sample < 1:
            raise ConfigError(f"data.replay_sample={data.replay_sample} must be a positive integer")
    if not 0.0 <= config.train.max_invalid_fraction <= 1.0:
        raise ConfigError(f"train.max_invalid_fraction={config.train.max_invalid_fraction} must be a fraction in [0, 1]")
    if config.train.max_consecutive_skips < 1:
        raise ConfigError(f"train.max_consecutive_skips={config.train.max_consecutive_skips} must be a positive integer")
    if config.train.updates_per_batch < 1:
        raise ConfigError(f"train.updates_per_batch={config.train.updates_per_batch} must be a positive integer")
    if config.train.fsdp < 1 or n_devices % config.train.fsdp:
        raise ConfigError(f"train.fsdp={config.train.fsdp} must divide the {n_devices} devices")
    if data.shards % n_devices:
        raise ConfigError(
            f"data.shards={data.shards} is not divisible by the {n_devices} devices: every device simulates "
            f"the same number of scene shards (use a multiple of {n_devices})"
        )
    for spec in checked_specs(config):
        frames = len(spec.video_frames())
        if frames > cfg.frames:
            raise ConfigError(f"family {spec.family!r} shows {frames} frames at frame_stride={data.frame_stride}, "
                              f"more than model.frames={cfg.frames}")
        n = scenarios.get(spec.family).layout().n_objects
        if n > cfg.max_objects:
            raise ConfigError(f"family {spec.family!r} has {n} object slots, more than model.max_objects={cfg.max_objects}")
    if cfg.question_length != templates.QUESTION_LENGTH or cfg.answer_length != templates.ANSWER_LENGTH:
        raise ConfigError(f"model.question_length={cfg.question_length} and model.answer_length={cfg.answer_length} "
                          f"must be the question vocabulary's {templates.QUESTION_LENGTH} and {templates.ANSWER_LENGTH} tokens")
    if len(data.horizons) != cfg.horizons:
        raise ConfigError(f"data.horizons has {len(data.horizons)} entries but model.horizons={cfg.horizons}")


def checked_specs(config: Config) -> tuple[episode.BatchSpec, ...]:
    """family_specs, with a pipeline's ValueError turned into a ConfigError."""
    try:
        return family_specs(config)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def to_model_shapes(qa: episode.QABatch, family: int, spec: episode.BatchSpec, cfg: ModelConfig) -> Batch:
    """A family's QABatch padded to the model's frames and object slots."""
    video, frame_mask = model_lib.pad_frames(qa.video, cfg.frames)
    pad_slots = cfg.max_objects - qa.targets.shape[2]
    task_of = jnp.asarray([TASKS.index(t.task) for t in spec.templates()], jnp.int32)
    q = qa.question.shape[0]
    return Batch(
        video=video, frame_mask=frame_mask, question=qa.question, answer=qa.answer,
        targets=jnp.pad(qa.targets, [(0, 0), (0, 0), (0, pad_slots), (0, 0)]), target_ok=qa.target_ok,
        slot_mask=jnp.pad(qa.active, [(0, 0), (0, pad_slots)]),
        properties=jnp.pad(qa.properties, [(0, 0), (0, pad_slots), (0, 0)]),
        gravity=qa.gravity, family=jnp.full((q,), family, jnp.int32), template=qa.template,
        task=task_of[qa.template], value=qa.value, chance=qa.chance, answer_class=qa.answer_class,
        configuration=qa.configuration, valid=qa.valid,
    )


def concatenate(batches: list[Batch]) -> Batch:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *batches)


def family_batch(key: jax.Array, family: int, spec: episode.BatchSpec, cfg: ModelConfig
                 ) -> tuple[Batch, jax.Array, dict[str, jax.Array], jax.Array]:
    """One family's questions for one shard (inside jit), its count of unsound worlds, the parameters
    of the first of them (of world 0 if none) and its count of fallback question slots."""
    qa, measured = episode.make_batch(key, spec, episode.default_tokenizer())
    unsound = ~measured.sound
    first = jnp.argmax(unsound)
    example = jax.tree.map(lambda x: x[first], measured.params)
    fallback = qa.fallback.sum().astype(jnp.int32)
    return to_model_shapes(qa, family, spec, cfg), unsound.sum().astype(jnp.int32), example, fallback


def shard_batch(key: jax.Array, specs: tuple[episode.BatchSpec, ...], cfg: ModelConfig) -> tuple[Batch, Faults]:
    """Every family's share of one scene shard, concatenated; its faults with a leading shard axis of 1."""
    parts = [family_batch(streams.family(key, i), i, spec, cfg) for i, spec in enumerate(specs)]
    faults = Faults(unsound=jnp.stack([p[1] for p in parts])[None],
                    fallback=jnp.stack([p[3] for p in parts])[None],
                    example=tuple(jax.tree.map(lambda x: x[None], p[2]) for p in parts))
    return concatenate([p[0] for p in parts]), faults


@functools.lru_cache(maxsize=None)
def shard_shapes(specs: tuple[episode.BatchSpec, ...], cfg: ModelConfig) -> Batch:
    """The shapes and dtypes of one shard's batch (`jax.ShapeDtypeStruct`s). Tracing a family's simulation
    takes seconds, and the trainer needs these shapes three times before its step is traced (the replay
    ring's shape, its shardings, its initial value): traced once per process."""
    return jax.eval_shape(lambda: shard_batch(jax.random.key(0), specs, cfg)[0])


def shard_keys(key: jax.Array, first: jax.Array | int, count: int) -> jax.Array:
    return jax.vmap(lambda i: streams.shard(key, i))(first + jnp.arange(count))


def global_batch(key: jax.Array, config: Config, mesh: jax.sharding.Mesh | None) -> tuple[Batch, Faults]:
    """The step's whole batch, sharded over the mesh's devices along the question axis, and the faults of
    its simulations, one row per scene shard (inside jit)."""
    specs = family_specs(config)
    shards = config.data.shards

    def local(key, first, count):
        # Shards x questions (and shards x 1 faults) -> one leading axis.
        per_shard = jax.lax.map(lambda k: shard_batch(k, specs, config.model), shard_keys(key, first, count))
        return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), per_shard)

    if mesh is None or mesh.size == 1:
        return local(key, 0, shards)
    per_device = shards // mesh.size

    def on_device(key):
        return local(key, jax.lax.axis_index(BATCH_AXES) * per_device, per_device)

    return jax.shard_map(on_device, mesh=mesh, in_specs=P(), out_specs=P(BATCH_AXES), check_vma=False)(key)


@functools.partial(jax.jit, static_argnames=("spec",))
def _suite_measured(key: jax.Array, spec: episode.BatchSpec):
    measured = episode.simulate_and_measure(key, spec)
    return measured, episode.draw_tables(spec, measured)


@functools.partial(jax.jit, static_argnames=("family", "spec", "cfg"))
def _suite_assemble(key: jax.Array, measured: episode.Measured, tables: dict, picks: dict, family: int,
                    spec: episode.BatchSpec, cfg: ModelConfig) -> Batch:
    picked = episode.questions_at(spec, measured, tables, episode.default_tokenizer(), picks["template"],
                                  picks["world"], picks["paraphrase"], picks["valid"])
    none = jnp.zeros_like(picks["world"])
    qa = episode.assemble(key, spec, measured, picked | {"left_out": none, "fallback": none.astype(bool)})
    return to_model_shapes(qa, family, spec, cfg)


def suite_batch(key: jax.Array, family: int, spec: episode.BatchSpec, cfg: ModelConfig) -> tuple[Batch, np.ndarray]:
    """A held-out evaluation batch of one family and split, in the model's shapes, and the world each question
    is about: `spec.n_worlds` worlds simulated, then `spec.n_questions` questions drawn as training draws them
    but without asking a world the same template twice (`episode.pick_distinct`), so that a template's
    accuracy counts distinct worlds. Slots past the worlds a template can be asked of are invalid."""
    measured, tables, picks = suite_draw(key, spec)
    k_jitter = jax.random.split(key, 3)[2]
    return _suite_assemble(k_jitter, measured, tables, picks, family, spec, cfg), picks["world"]


def suite_draw(key: jax.Array, spec: episode.BatchSpec) -> tuple[episode.Measured, dict, dict]:
    """What `suite_batch` simulates and which questions it draws (host-side picks), before rendering: so that
    `python -m physsim.validate` can check a config's real suites ask every template of some world."""
    k_sim, k_pick, _ = jax.random.split(key, 3)
    measured, tables = _suite_measured(k_sim, spec)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_pick)).tolist())
    return measured, tables, episode.pick_distinct(rng, spec, jax.device_get(tables), spec.n_questions)


def worlds_per_step(config: Config) -> dict[str, int]:
    """Factual worlds simulated per step (all shards), per family."""
    return {spec.family: config.data.shards * spec.n_worlds for spec in family_specs(config)}


def n_questions(config: Config) -> int:
    """Fresh questions simulated per step (all shards)."""
    return config.data.shards * sum(s.n_questions for s in family_specs(config))


def n_trained(config: Config) -> int:
    """Questions trained on per step: every update's batch (drawn from the replay, or the fresh batch)."""
    per_update = config.data.shards * config.data.replay_sample if config.data.replay else n_questions(config)
    return config.train.updates_per_batch * per_update
