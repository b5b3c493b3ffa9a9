"""The training step: one `jax.jit` from (state) to (state, metrics), simulation included.

    key = fold_in(run key, step)  ->  global_batch (sample, simulate with twins,
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

from physsim import model as model_lib
from physsim.model import loss as loss_lib
from physsim.questions import pipeline
from physsim.questions.templates import TASKS
from physsim.train import data as data_lib
from physsim.train import mesh as mesh_lib
from physsim.train.config import Config


@struct.dataclass
class TrainState:
    step: jax.Array  # () int32: completed steps
    key: jax.Array  # (2,) uint32: raw key of the run's training stream (an array, so checkpoints hold it)
    params: dict[str, Any]  # the model's parameters (nnx pure dict)
    opt_state: Any
    blind_params: dict[str, Any] | None = None
    blind_opt_state: Any = None


def optimizer(config: Config) -> optax.GradientTransformation:
    t = config.train
    schedule = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, max(t.warmup_steps, 1), max(t.steps, t.warmup_steps + 1),
                                                  end_value=0.1 * t.learning_rate)
    return optax.chain(optax.clip_by_global_norm(t.grad_clip), optax.adamw(schedule, weight_decay=t.weight_decay))


def training_key(seed: int) -> jax.Array:
    """The run's training stream; evaluation suites use another stream of the same seed (train.evaluate)."""
    return jax.random.fold_in(jax.random.key(seed), 0)


def init_state(config: Config, mesh: jax.sharding.Mesh) -> tuple[nnx.GraphDef, TrainState, Any]:
    """The model's graph, a freshly initialised, sharded state, and the state's shardings."""
    graphdef, abstract_params = nnx.split(model_lib.abstract(config.model))
    shardings = state_shardings(config, mesh, abstract_params)
    opt = optimizer(config)

    def init(seed):
        params = nnx.to_pure_dict(nnx.state(model_lib.VLM(config.model, rngs=nnx.Rngs(seed)), nnx.Param))
        blind = config.train.blind_baseline
        blind_params = jax.tree.map(jnp.copy, params) if blind else None  # same start as the main model
        return TrainState(step=jnp.int32(0), key=jax.random.key_data(training_key(config.train.seed)), params=params,
                          opt_state=opt.init(params), blind_params=blind_params,
                          blind_opt_state=opt.init(blind_params) if blind else None)

    state = jax.jit(init, static_argnums=0, out_shardings=shardings)(config.train.seed)
    return graphdef, state, shardings


def state_shardings(config: Config, mesh: jax.sharding.Mesh, abstract_params) -> TrainState:
    params = mesh_lib.param_shardings(mesh, abstract_params, config.train.fsdp)
    shapes = nnx.to_pure_dict(abstract_params)
    opt_shapes = jax.eval_shape(optimizer(config).init, shapes)
    # Optimiser moments mirror the parameters; its scalars (counts) are replicated.
    opt = optax.tree_map_params(optimizer(config), lambda _, s: s, opt_shapes, params,
                                transform_non_params=lambda _: mesh_lib.replicated(mesh))
    blind = config.train.blind_baseline
    return TrainState(step=mesh_lib.replicated(mesh), key=mesh_lib.replicated(mesh), params=params, opt_state=opt,
                      blind_params=params if blind else None, blind_opt_state=opt if blind else None)


def targets_of(batch: data_lib.Batch) -> loss_lib.Targets:
    return loss_lib.Targets(answer=batch.answer, state=batch.targets, slot_mask=batch.slot_mask,
                            properties=batch.properties, gravity=batch.gravity)


def per_task_means(values: jax.Array, task: jax.Array, weight: jax.Array) -> dict[str, jax.Array]:
    """Mean of (Q,) values over the questions of each task type (NaN where a task has none)."""
    out = {}
    for i, name in enumerate(TASKS):
        mine = (task == i) & (weight > 0)
        out[name] = jnp.where(mine.any(), jnp.where(mine, values, 0.0).sum() / jnp.maximum(mine.sum(), 1), jnp.nan)
    return out


def _update(graphdef, params, opt_state, batch: data_lib.Batch, video, config: Config, bos_id: int, opt):
    answer_in = model_lib.teacher_forcing_inputs(batch.answer, bos_id)
    weight = batch.valid.astype(jnp.float32)

    def loss_fn(params):
        outputs = nnx.merge(graphdef, params)(video, batch.frame_mask, batch.question, answer_in)
        terms = loss_lib.example_terms(outputs, targets_of(batch), config.loss, weight)
        return loss_lib.weighted_mean(terms["total"], weight), terms

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    metrics = {name: loss_lib.weighted_mean(value, weight) for name, value in terms.items() if name != "total"}
    metrics |= {f"answer_exact/{task}": v
                for task, v in per_task_means(terms["answer_exact"].astype(jnp.float32), batch.task, weight).items()}
    metrics |= {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return optax.apply_updates(params, updates), opt_state, metrics


def make_step(config: Config, graphdef: nnx.GraphDef, mesh: jax.sharding.Mesh, shardings: TrainState
              ) -> Callable[[TrainState], tuple[TrainState, dict]]:
    """The jitted step `state -> (state, metrics)`; the state's buffers are donated."""
    opt = optimizer(config)
    bos_id = pipeline.default_tokenizer().bos_id

    def step(state: TrainState) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        batch = data_lib.global_batch(key, config, mesh)
        batch = jax.lax.with_sharding_constraint(batch, mesh_lib.batch_sharding(mesh))
        params, opt_state, metrics = _update(graphdef, state.params, state.opt_state, batch, batch.video, config,
                                             bos_id, opt)
        new = dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state)
        if config.train.blind_baseline:
            blind_params, blind_opt_state, blind = _update(graphdef, state.blind_params, state.blind_opt_state, batch,
                                                           jnp.zeros_like(batch.video), config, bos_id, opt)
            new = dataclasses.replace(new, blind_params=blind_params, blind_opt_state=blind_opt_state)
            metrics |= {f"blind/{k}": v for k, v in blind.items()}
        metrics |= {"valid_questions": batch.valid.sum(), "questions": jnp.int32(batch.valid.shape[0]),
                    "unsound_worlds": batch.unsound.sum()}
        return new, metrics

    return jax.jit(step, in_shardings=(shardings,), out_shardings=(shardings, mesh_lib.replicated(mesh)),
                   donate_argnums=0)
