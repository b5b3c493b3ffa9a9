"""From sampled parameters to measured facts: worlds, counterfactual twins, knife-edge shadows, one rollout, every
fact of the family, and which questions each world can be asked.

Knife-edge worlds are not asked about: every world is simulated a second
time from initial positions moved by KNIFE_EDGE (0.1 mm, far below what a
64-pixel video shows), twins included, in the same rollout; a question whose
answer differs between the two is ill-posed for that world and invalid, and
dense state targets that move by more than TARGET_STABLE between the two are
not trained on. "Differs" for a number means the shadow's answer would be
judged wrong against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from physsim import scenarios
from physsim.episode.spec import BatchSpec, View
from physsim.questions.templates import Template
from physsim.scenarios.base import Fact, Run
from physsim.sim import simulate
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import PARKING_X, SceneLayout
from physsim.sim.simulate import Frames

KNIFE_EDGE = 1e-4  # m: the shadow world's objects start this far from the factual ones, along x and y
# m: dense targets farther apart than this between the two are not trained on (~1.5 pixels at 64x64). After
# an impact, positions differ by centimetres (measured: 0.1 mm at the start became 2.7 cm 1 s after a
# collision): a soft contact's outcome depends on the physics step its first touch falls in.
TARGET_STABLE = 0.05
Family = str | type[scenarios.Scenario]  # a registered family's name, or a (configured) family


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


def twin_worlds(family: Family, params, world) -> list:
    scenario = scenarios.resolve(family)
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


def _facts(family: Family, params, world, factual: Frames, twins: dict[str, Frames], view: View) -> dict[str, Fact]:
    scenario = scenarios.resolve(family)
    layout = scenario.layout()

    def measure_one(p, w, f, tw):
        run = Run(params=p, world=w, frames=f, twins=tw, observe_seconds=view.observe_seconds,
                  frame_stride=view.frame_stride, camera=view.camera, camera_jitter=view.camera_jitter)
        return scenario.facts(run, layout)

    return jax.vmap(measure_one)(params, world, factual, twins)


def _simulate(family: Family, params, world, *, n_frames: int, view: View, impl: str,
              factual: Frames | None = None) -> Measured:
    """One rollout of [factual; twins; shadow; shadow's twins] (the factual part skipped when given), then
    every fact of the factual and of the shadow worlds."""
    scenario = scenarios.resolve(family)
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


def measure_facts(family: Family, params, world, factual: Frames, *, view: View, impl: str = "jax") -> Measured:
    """For an already simulated factual batch: simulates its twins and shadows and measures every fact."""
    return _simulate(family, params, world, n_frames=factual.time.shape[1], view=view, impl=impl, factual=factual)


def simulate_and_measure(key: jax.Array, spec: BatchSpec) -> Measured:
    """Samples `spec.n_worlds` worlds and simulates them with their twins and shadows in one rollout, then
    measures facts."""
    return measure_params(spec.scenario().sample(key, spec.n_worlds, spec.split), spec)


def worlds_of(family: Family, params: dict[str, jax.Array], layout: SceneLayout | None = None) -> WorldParams:
    """Batched worlds (B,) of sampled parameters (each (B,) or (B, N)): the family's `world` mapping, the one
    path from parameters to physics (`env.rollout` and every batch take it)."""
    scenario = scenarios.resolve(family)
    layout = scenario.layout() if layout is None else layout
    return jax.vmap(lambda p: scenario.world(p, layout))(params)


def rollout(family: Family, params: dict[str, jax.Array], n_frames: int, *, layout: SceneLayout | None = None,
            impl: str = "jax") -> tuple[WorldParams, Frames]:
    """The factual worlds of sampled parameters and their recorded frames (no twins, no shadows)."""
    layout = scenarios.resolve(family).layout() if layout is None else layout
    world = worlds_of(family, params, layout)
    return world, simulate.rollout(world, layout=layout, n_frames=n_frames, impl=impl)


def measure_params(params: dict[str, jax.Array], spec: BatchSpec) -> Measured:
    """Simulates the worlds of given parameters (each (B,) or (B, N)) with their twins and shadows in one
    rollout, then measures facts."""
    scenario = spec.scenario()
    layout = scenario.layout()
    return _simulate(scenario, params, worlds_of(scenario, params, layout),
                     n_frames=simulate.n_frames_for(layout, spec.seconds), view=View.of(spec), impl=spec.impl)


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
