"""Declared scene parameters: their ranges, validation of user overrides, sampling.

Every randomised quantity of a scene family is declared once as a `Param`, with
- `train`: the in-distribution sampling range,
- `ood`: out-of-distribution ranges (disjoint from `train`) for held-out tests,
- `valid`: the physically meaningful range; user overrides outside it are errors.

Sampling is a pure function of a PRNG key; shapes are static: a world-level
parameter is `(B,)`, a per-object parameter `(B, N)`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from physsim import _names
from physsim.sim.contact import MIN_FRICTION

SPLITS = ("train", "ood")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A closed or half-open interval [lo, hi] used for validity checks."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, x: np.ndarray) -> np.ndarray:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above & below

    def __str__(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"{left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


POSITIVE = Interval(0.0, math.inf, lo_open=True, hi_open=True)

# Sliding friction coefficients the contact model simulates stably.
FRICTION = Interval(MIN_FRICTION, math.inf, hi_open=True)


@dataclasses.dataclass(frozen=True)
class Param:
    """One randomised quantity of a scene family.

    `choices` marks a discrete parameter (sampled uniformly from the listed
    values, e.g. a shape index); otherwise the value is continuous, sampled
    uniformly (log-uniformly when `log`) from `train` or from one of `ood`.
    `gaps` are open intervals left out of `train` (uniformly over what
    remains): bands where a family's outcome turns on a hair, e.g. a block
    whose own centre sits at its support's edge.
    """

    name: str
    unit: str
    doc: str
    train: tuple[float, float]
    valid: Interval
    ood: tuple[tuple[float, float], ...] = ()
    per_object: bool = False
    log: bool = False
    choices: tuple[int, ...] = ()
    gaps: tuple[tuple[float, float], ...] = ()

    def __post_init__(self):
        lo, hi = self.train
        if not (lo <= hi and self.valid.contains(np.array([lo, hi])).all()):
            raise ValueError(f"{self.name}: train range {self.train} not inside valid {self.valid}")
        if self.gaps and (self.log or self.choices):
            raise ValueError(f"{self.name}: gaps apply to a uniform continuous parameter")
        for glo, ghi in self.gaps:
            if not lo < glo < ghi < hi:
                raise ValueError(f"{self.name}: gap {(glo, ghi)} not strictly inside train {self.train}")
        if any(a[1] > b[0] for a, b in zip(sorted(self.gaps), sorted(self.gaps)[1:])):
            raise ValueError(f"{self.name}: gaps {self.gaps} overlap")
        for olo, ohi in self.ood:
            if not self.valid.contains(np.array([olo, ohi])).all():
                raise ValueError(f"{self.name}: ood range {(olo, ohi)} not inside valid {self.valid}")
            if olo < hi and ohi > lo:
                raise ValueError(f"{self.name}: ood range {(olo, ohi)} overlaps train {self.train}")

    def shape(self, batch_size: int, n_objects: int) -> tuple[int, ...]:
        return (batch_size, n_objects) if self.per_object else (batch_size,)

    def train_segments(self) -> tuple[tuple[float, float], ...]:
        """`train` without its gaps, as ordered closed segments."""
        edges = [self.train[0]] + [x for g in sorted(self.gaps) for x in g] + [self.train[1]]
        return tuple(zip(edges[::2], edges[1::2]))

    def sample(self, key: jax.Array, shape: tuple[int, ...], split: str) -> jax.Array:
        if self.choices:
            return jax.random.choice(key, jnp.asarray(self.choices, jnp.int32), shape)
        if self.gaps and not (split == "ood" and self.ood):
            # Uniform over the segments: a uniform length along them laid end to end, mapped back.
            seg = np.asarray(self.train_segments(), np.float64)
            starts = np.concatenate([[0.0], np.cumsum(seg[:, 1] - seg[:, 0])])
            u = jax.random.uniform(key, shape, jnp.float32, 0.0, float(starts[-1]))
            i = jnp.clip(jnp.searchsorted(jnp.asarray(starts[1:-1], jnp.float32), u, side="right"), 0, len(seg) - 1)
            return jnp.asarray(seg[:, 0], jnp.float32)[i] + u - jnp.asarray(starts[:-1], jnp.float32)[i]
        ranges = self.ood if (split == "ood" and self.ood) else (self.train,)
        k_range, k_value = jax.random.split(key)
        bounds = jnp.asarray(ranges, jnp.float32)
        which = jax.random.randint(k_range, shape, 0, len(ranges))
        lo, hi = bounds[which, 0], bounds[which, 1]
        u = jax.random.uniform(k_value, shape, jnp.float32)
        if self.log:
            return jnp.exp(jnp.log(lo) + u * (jnp.log(hi) - jnp.log(lo)))
        return lo + u * (hi - lo)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise _names.unknown("split", split, SPLITS)


def sample_params(
    params: Sequence[Param], key: jax.Array, batch_size: int, n_objects: int, split: str
) -> dict[str, jax.Array]:
    """Samples every declared parameter, each from its own folded key."""
    check_split(split)
    return {
        p.name: p.sample(jax.random.fold_in(key, i), p.shape(batch_size, n_objects), split)
        for i, p in enumerate(params)
    }


def apply_overrides(
    params: Sequence[Param],
    sampled: dict[str, jax.Array],
    overrides: Mapping[str, object],
    scenario: str,
) -> dict[str, jax.Array]:
    """Replaces sampled values by user-given ones after checking name, shape and range.

    A value may be a scalar (same for every world and object). For a world-level
    parameter a 1-D value is one per world, `(B,)`. For a per-object parameter
    a 1-D value is one per object, `(N,)`, shared by all worlds; give `(B, N)`
    (or `(B, 1)`) to vary it per world.
    """
    by_name = {p.name: p for p in params}
    out = dict(sampled)
    for name, value in overrides.items():
        if name not in by_name:
            raise _names.unknown("parameter", name, list(by_name), where=f" of family {scenario!r}")
        p = by_name[name]
        target = sampled[name].shape
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{scenario}.{name}: expected a number or array, got {value!r}") from err
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{scenario}.{name}={value!r} is not finite")
        bad = ~p.valid.contains(arr)
        if bad.any():
            raise ValueError(
                f"{scenario}.{name}={arr[bad].flat[0]:g} {p.unit} is outside the allowed range "
                f"{p.valid} {p.unit}".rstrip()
            )
        if p.choices and not np.isin(arr, p.choices).all():
            raise ValueError(f"{scenario}.{name}={value!r} must be one of {p.choices}")
        if p.per_object and arr.ndim == 1:
            arr = arr[None, :]  # one value per object, the same in every world
        try:
            arr = np.broadcast_to(arr, target)
        except ValueError as err:
            raise ValueError(
                f"{scenario}.{name}: value of shape {np.shape(value)} does not fit the "
                f"parameter's shape {target} (batch, objects)"
            ) from err
        out[name] = jnp.asarray(arr, dtype=sampled[name].dtype)
    return out
