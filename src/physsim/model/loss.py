"""The multi-task loss: answer tokens + state regression + property regression, weighted by config.

Every term is computed per example first, so a caller can mask examples out
(invalid worlds, padding) with `example_weight` before averaging; masked
examples contribute exactly zero to the loss and its gradients.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from flax import struct

from physsim.model.vlm import Outputs


@dataclasses.dataclass(frozen=True)
class LossWeights:
    answer: float = 1.0
    state: float = 1.0  # per m² of squared position error
    property: float = 0.1

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"loss weight {f.name}={value!r} must be a non-negative number")


@struct.dataclass
class Targets:
    """What the loss compares the outputs with; any regression target may be None (term skipped)."""

    answer: jax.Array  # (B, La) int32 ending with <eos>, <pad>-padded
    state: jax.Array | None = None  # (B, H, N, 3) metres
    slot_mask: jax.Array | None = None  # (B, N) bool: slots holding an object (others are parked); None: all
    properties: jax.Array | None = None  # (B, N, P)
    gravity: jax.Array | None = None  # (B,) m/s²
    state_ok: jax.Array | None = None  # (B,) bool: the state targets are trusted (not knife-edge); None: all


def teacher_forcing_inputs(answer: jax.Array, bos_id: int) -> jax.Array:
    """[<bos>, answer[:-1]]: the decoder's answer inputs for targets `answer` (B, La)."""
    return jnp.concatenate([jnp.full_like(answer[:, :1], bos_id), answer[:, :-1]], axis=1)


def answer_terms(logits: jax.Array, answer: jax.Array, pad_id: int = 0) -> dict[str, jax.Array]:
    """Per-example mean cross-entropy over answer tokens (<eos> included, <pad> not) and exact match."""
    scored = answer != pad_id
    log_p = jax.nn.log_softmax(logits, axis=-1)
    token_nll = -jnp.take_along_axis(log_p, answer[..., None], axis=-1)[..., 0]
    n = jnp.maximum(scored.sum(axis=1), 1)
    correct = (jnp.argmax(logits, axis=-1) == answer) | ~scored
    return {"answer_nll": jnp.where(scored, token_nll, 0.0).sum(axis=1) / n, "answer_exact": correct.all(axis=1)}


def _slot_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over slots (last axis of `mask`) where mask holds; (B, N) -> (B,)."""
    return jnp.where(mask, values, 0.0).sum(axis=-1) / jnp.maximum(mask.sum(axis=-1), 1)


def state_terms(predicted: jax.Array, target: jax.Array, slot_mask: jax.Array | None) -> dict[str, jax.Array]:
    """Per-example squared error (m², summed over xyz, mean over horizons and real slots) and distance (m)."""
    if slot_mask is None:
        slot_mask = jnp.ones(predicted.shape[::3], bool)  # (B, N): every slot holds an object
    squared = jnp.square(predicted - target).sum(axis=-1).mean(axis=1)  # (B, N)
    distance = jnp.sqrt(jnp.square(predicted - target).sum(axis=-1) + 1e-12).mean(axis=1)
    return {"state_mse": _slot_mean(squared, slot_mask), "state_error_m": _slot_mean(distance, slot_mask)}


def property_terms(outputs: Outputs, targets: Targets) -> dict[str, jax.Array]:
    """Per-example squared error of the slot properties (mean over real slots) plus that of gravity.

    Gravity's error is divided by 10 (m/s² are ~10x the other properties'
    units) so both parts count about equally under the one `property` weight.
    """
    slot_mask = targets.slot_mask
    if slot_mask is None:
        slot_mask = jnp.ones(outputs.properties.shape[:2], bool)
    error = _slot_mean(jnp.square(outputs.properties - targets.properties).mean(axis=-1), slot_mask)
    if targets.gravity is not None:
        error = error + jnp.square(outputs.gravity - targets.gravity) / 10.0
    return {"property_mse": error}


def example_terms(outputs: Outputs, targets: Targets, weights: LossWeights,
                  example_weight: jax.Array | None = None, pad_id: int = 0) -> dict[str, jax.Array]:
    """Every loss term per example (B,), and their weighted sum as "total".

    Targets of examples with zero weight are zeroed first: a NaN there would
    otherwise reach the gradient (0 * NaN) even though the mean masks it.
    """
    if example_weight is not None:
        keep = example_weight > 0
        targets = jax.tree.map(lambda t: jnp.where(keep.reshape(keep.shape + (1,) * (t.ndim - 1)), t, 0), targets)
    terms = answer_terms(outputs.logits, targets.answer, pad_id)
    total = weights.answer * terms["answer_nll"]
    if targets.state is not None and weights.state > 0:
        slot_mask = targets.slot_mask
        if targets.state_ok is not None:  # knife-edge targets count as no slots: zero state loss
            base = jnp.ones(outputs.state.shape[::3], bool) if slot_mask is None else slot_mask
            slot_mask = base & targets.state_ok.astype(bool)[:, None]
        terms |= state_terms(outputs.state, targets.state, slot_mask)
        total = total + weights.state * terms["state_mse"]
    if targets.properties is not None and outputs.properties is not None and weights.property > 0:
        terms |= property_terms(outputs, targets)
        total = total + weights.property * terms["property_mse"]
    return terms | {"total": total}


def weighted_mean(values: jax.Array, weight: jax.Array | None) -> jax.Array:
    """Mean of (B,) values with per-example weights; examples of weight 0 count for nothing, NaN or not."""
    w = jnp.ones(values.shape, jnp.float32) if weight is None else weight.astype(jnp.float32)
    return jnp.where(w > 0, values.astype(jnp.float32) * w, 0.0).sum() / jnp.maximum(w.sum(), 1e-9)


def mean_terms(terms: dict[str, jax.Array], example_weight: jax.Array | None) -> dict[str, jax.Array]:
    """The weighted mean of every per-example term; "total" becomes "loss"."""
    return {("loss" if name == "total" else name): weighted_mean(value, example_weight) for name, value in terms.items()}


def loss_and_metrics(outputs: Outputs, targets: Targets, weights: LossWeights,
                     example_weight: jax.Array | None = None, pad_id: int = 0) -> tuple[jax.Array, dict]:
    """Scalar loss (weighted mean over examples) and per-term means for logging."""
    metrics = mean_terms(example_terms(outputs, targets, weights, example_weight, pad_id), example_weight)
    return metrics["loss"], metrics
