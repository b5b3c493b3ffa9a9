"""The training step: one `jax.jit` from (state) to (state, metrics), simulation included.

    key = streams.step(run key, step)  ->  global_batch (sample, simulate with twins,
    measure facts, ask, render; sharded over devices)  ->  model(video, question)
    ->  multi-task loss (answer tokens + state + properties, masked by validity)
    ->  grads  ->  optax update

Its only inputs are the train state (parameters, optimiser state, step
counter, the run's PRNG key): nothing from disk and no host round-trip. When
`train.blind_baseline` is on, the same step also trains a second copy of the
model on the same questions with the video zeroed, so the baseline gets
exactly the main model's budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from physsim import episode
from physsim import model as model_lib
from physsim import streams
from physsim.model import layers as model_layers
from physsim.model import loss as loss_lib
from physsim.questions.templates import TASKS
from physsim.train import data as data_lib
from physsim.train import mesh as mesh_lib
from physsim.train import replay as replay_lib
from physsim.train.config import Config

# The metrics entry holding, per family, the sampled parameters of one unsound world of the step (not a scalar:
# the run reads it to name the parameters when it stops on too many invalid worlds; it is not logged).
FAULT_EXAMPLES = "unsound_example"


@struct.dataclass
class TrainState:
    step: jax.Array  # () int32: completed steps
    key: jax.Array  # (2,) uint32: raw key of the run's training stream (an array, so checkpoints hold it)
    params: dict[str, Any]  # the model's parameters (nnx pure dict)
    opt_state: Any
    blind_params: dict[str, Any] | None = None
    blind_opt_state: Any = None
    replay: data_lib.Batch | None = None  # (shards, data.replay, ...) recent questions (see train.replay)


# optax.apply_if_finite gives up and applies a non-finite update after this many in a row; the run stops
# long before (train.max_consecutive_skips, checked on the host), so in effect it never does.
NEVER_APPLY_NONFINITE = 2**30


def optimizer(config: Config) -> optax.GradientTransformation:
    """AdamW with global-norm clipping; warm-up then cosine decay over every update of the run.

    An update whose gradients are not finite is skipped (parameters and
    moments unchanged) by optax.apply_if_finite, which counts the skips.
    """
    t = config.train
    updates = t.steps * t.updates_per_batch
    schedule = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, max(t.warmup_steps, 1),
                                                  max(updates, t.warmup_steps + 1), end_value=0.1 * t.learning_rate)
    adamw = optax.chain(optax.clip_by_global_norm(t.grad_clip), optax.adamw(schedule, weight_decay=t.weight_decay))
    return optax.apply_if_finite(adamw, max_consecutive_errors=NEVER_APPLY_NONFINITE)


def training_key(seed: int) -> jax.Array:
    """The run's training stream (physsim.streams); evaluation suites use another stream of the same seed."""
    return streams.training(seed)


def init_state(config: Config, mesh: jax.sharding.Mesh) -> tuple[nnx.GraphDef, TrainState, Any]:
    """The model's graph, a freshly initialised, sharded state, and the state's shardings."""
    graphdef, abstract_params = nnx.split(model_lib.abstract(config.model))
    shardings = state_shardings(config, mesh, abstract_params)
    state = jax.jit(initial_state, static_argnums=0, out_shardings=shardings)(config)
    return graphdef, state, shardings


def initial_state(config: Config) -> TrainState:
    """A fresh state (traceable: `jax.eval_shape(initial_state, config)` gives its shapes without allocating)."""
    opt = optimizer(config)
    params = nnx.to_pure_dict(nnx.state(model_lib.VLM(config.model, rngs=nnx.Rngs(config.train.seed)), nnx.Param))
    blind = config.train.blind_baseline
    blind_params = jax.tree.map(jnp.copy, params) if blind else None  # same start as the main model
    return TrainState(step=jnp.int32(0), key=jax.random.key_data(training_key(config.train.seed)), params=params,
                      opt_state=opt.init(params), blind_params=blind_params,
                      blind_opt_state=opt.init(blind_params) if blind else None, replay=empty_replay(config))


def empty_replay(config: Config) -> data_lib.Batch | None:
    if not config.data.replay:
        return None
    specs = data_lib.family_specs(config)
    return replay_lib.empty(data_lib.shard_shapes(specs, config.model), config.data.shards, config.data.replay)


def state_shardings(config: Config, mesh: jax.sharding.Mesh, abstract_params) -> TrainState:
    params = mesh_lib.param_shardings(mesh, abstract_params, config.train.fsdp)
    shapes = nnx.to_pure_dict(abstract_params)
    opt_shapes = jax.eval_shape(optimizer(config).init, shapes)
    # Optimiser moments mirror the parameters; its scalars (counts) are replicated.
    opt = optax.tree_map_params(optimizer(config), lambda _, s: s, opt_shapes, params,
                                transform_non_params=lambda _: mesh_lib.replicated(mesh))
    blind = config.train.blind_baseline
    replay = None
    if config.data.replay:  # rings split over devices along their scene-shard axis
        replay = jax.tree.map(lambda _: mesh_lib.batch_sharding(mesh), jax.eval_shape(lambda: empty_replay(config)))
    return TrainState(step=mesh_lib.replicated(mesh), key=mesh_lib.replicated(mesh), params=params, opt_state=opt,
                      blind_params=params if blind else None, blind_opt_state=opt if blind else None, replay=replay)


def targets_of(batch: data_lib.Batch) -> loss_lib.Targets:
    return loss_lib.Targets(answer=batch.answer, state=batch.targets, slot_mask=batch.slot_mask,
                            properties=batch.properties, gravity=batch.gravity, state_ok=batch.target_ok)


def per_task_means(values: jax.Array, task: jax.Array, weight: jax.Array) -> dict[str, jax.Array]:
    """Mean of (Q,) values over the questions of each task type (NaN where a task has none)."""
    out = {}
    for i, name in enumerate(TASKS):
        mine = (task == i) & (weight > 0)
        out[name] = jnp.where(mine.any(), jnp.where(mine, values, 0.0).sum() / jnp.maximum(mine.sum(), 1), jnp.nan)
    return out


def _update(graphdef, params, opt_state, batch: data_lib.Batch, video, config: Config, bos_id: int, opt,
            mesh: jax.sharding.Mesh | None = None):
    """One optimiser update; with `mesh`, the model's activations keep the batch's layout (split over the
    mesh's devices, `layers.batch_layout`)."""
    layout = None if mesh is None else mesh_lib.batch_sharding(mesh)
    with model_layers.batch_layout(layout):
        return _update_in_layout(graphdef, params, opt_state, batch, video, config, bos_id, opt)


def _update_in_layout(graphdef, params, opt_state, batch: data_lib.Batch, video, config: Config, bos_id: int, opt):
    answer_in = model_lib.teacher_forcing_inputs(batch.answer, bos_id)
    weight = batch.valid.astype(jnp.float32)

    def loss_fn(params):
        outputs = nnx.merge(graphdef, params)(video, batch.frame_mask, batch.question, answer_in)
        terms = loss_lib.example_terms(outputs, targets_of(batch), config.loss, weight)
        return loss_lib.weighted_mean(terms["total"], weight), terms

    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    metrics = loss_lib.mean_terms(terms, weight)
    metrics |= {f"answer_exact/{task}": v
                for task, v in per_task_means(terms["answer_exact"].astype(jnp.float32), batch.task, weight).items()}
    metrics["grad_norm"] = optax.tree.norm(grads)
    return optax.apply_updates(params, updates), opt_state, metrics


def make_step(config: Config, graphdef: nnx.GraphDef, mesh: jax.sharding.Mesh, shardings: TrainState
              ) -> Callable[[TrainState], tuple[TrainState, dict]]:
    """The jitted step `state -> (state, metrics)`; the state's buffers are donated."""
    opt = optimizer(config)
    bos_id = episode.default_tokenizer().bos_id

    k_updates = config.train.updates_per_batch
    mix = replay_lib.Mix.of(data_lib.family_specs(config))

    def updates(params, opt_state, batches: data_lib.Batch | None, fresh: data_lib.Batch, blind: bool):
        """`updates_per_batch` updates, on the replay's draws (batches, leading axis = update) or each on
        the fresh batch; the metrics are the first update's, taken before it trained on its questions."""

        def one(carry, batch):
            batch = fresh if batch is None else batch
            video = jnp.zeros_like(batch.video) if blind else batch.video
            params, opt_state, metrics = _update(graphdef, *carry, batch, video, config, bos_id, opt, mesh)
            return (params, opt_state), metrics

        skipped_before = opt_state.total_notfinite
        (params, opt_state), metrics = jax.lax.scan(one, (params, opt_state), batches, length=k_updates)
        metrics = jax.tree.map(lambda m: m[0], metrics)
        # Updates of this step skipped for non-finite gradients, and how many in a row end it.
        metrics |= {"skipped_updates": opt_state.total_notfinite - skipped_before,
                    "consecutive_skipped_updates": opt_state.notfinite_count}
        return params, opt_state, metrics

    def step(state: TrainState) -> tuple[TrainState, dict]:
        key = streams.step(jax.random.wrap_key_data(state.key), state.step)
        fresh, faults = data_lib.global_batch(key, config, mesh)
        fresh = jax.lax.with_sharding_constraint(fresh, mesh_lib.batch_sharding(mesh))
        draws, ring, replay_metrics = None, state.replay, {}
        if config.data.replay:
            ring, draws, unserved = replay_lib.push_and_sample(state.replay, fresh, state.step, key, k_updates,
                                                               config.data.replay_sample, mix)
            # The share of the configured template mix the ring could not balance (a template with no visible
            # configuration holding all its answers among the ring's questions) and gave to the others.
            replay_metrics = {"replay_unserved": unserved}
            draws = jax.lax.with_sharding_constraint(
                draws, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, data_lib.BATCH_AXES)))
        params, opt_state, metrics = updates(state.params, state.opt_state, draws, fresh, blind=False)
        new = dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state, replay=ring)
        if config.train.blind_baseline:
            blind_params, blind_opt_state, blind = updates(state.blind_params, state.blind_opt_state, draws, fresh,
                                                           blind=True)
            new = dataclasses.replace(new, blind_params=blind_params, blind_opt_state=blind_opt_state)
            metrics |= {f"blind/{k}": v for k, v in blind.items()}
        unsound, example = faults.first()
        metrics |= replay_metrics
        metrics |= {"valid_questions": fresh.valid.sum(), "questions": jnp.int32(fresh.valid.shape[0]),
                    "unsound_worlds": unsound.sum()}
        names = data_lib.family_names(config.data)
        metrics |= {f"unsound_worlds/{name}": unsound[i] for i, name in enumerate(names)}
        # Question slots whose template could not be asked of their shard's worlds (no configuration with every
        # answer it allows) and went to another template: the template mix the config asks for, missed.
        fallback = faults.fallback.sum(axis=0)
        metrics |= {"fallback_questions": fallback.sum()}
        metrics |= {f"fallback_questions/{name}": fallback[i] for i, name in enumerate(names)}
        metrics[FAULT_EXAMPLES] = dict(zip(names, example))
        return new, metrics

    return jax.jit(step, in_shardings=(shardings,), out_shardings=(shardings, mesh_lib.replicated(mesh)),
                   donate_argnums=0)
