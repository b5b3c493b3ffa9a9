"""Facts against independent measurements, and the answer-balance statistic.

Each family's facts are checked against something measured another way
(geometry instead of contact events, a physical law, the hidden parameter
an experiment is meant to reveal, the twin world's own record). Run by
`python -m physsim.validate` and asserted by the tests.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from physsim import scenarios
from physsim.questions import pipeline
from physsim.scenarios import measure, ramp
from physsim.sim.contact import MIN_FRICTION
from physsim.sim.scene import PARKING_X, scene_index


@dataclasses.dataclass(frozen=True)
class Check:
    family: str
    name: str
    agree: float  # fraction of the worlds checked that agree
    n: int  # worlds checked
    required: float  # fraction needed to pass

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.agree >= self.required


def _fraction(ok: np.ndarray, where: np.ndarray) -> tuple[float, int]:
    n = int(where.sum())
    return (float(ok[where].mean()) if n else 0.0), n


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def check_collision(m: pipeline.Measured, layout) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    f = _np(m.frames)
    r = np.asarray(m.world.size)[:, :2, 0]
    gap = np.linalg.norm(f.pos[:, :, 0] - f.pos[:, :, 1], axis=-1) - r.sum(-1)[:, None]  # (B, T)
    # Frames are 40 ms apart and an impact lasts a few ms: between two frames the
    # gap can close by at most the relative distance travelled in one frame.
    per_frame = np.linalg.norm(np.diff(f.pos[:, :, 0] - f.pos[:, :, 1], axis=1), axis=-1).max(axis=1)
    touches = gap.min(axis=1) <= per_frame + 2e-3
    will = np.asarray(m.facts["will_collide"].value) > 0.5
    t_fact = np.asarray(m.facts["collision_time"].value)
    near = gap <= per_frame[:, None] + 2e-3
    first_near = f.time[np.arange(len(gap)), np.argmax(near, axis=1)]
    timely = np.abs(first_near - t_fact) <= 1.0 / layout.fps + 5e-3
    every = np.ones_like(will)
    # Twin with a 4x heavier red ball: the red ball keeps more of its velocity through the impact.
    twin = _np(m.twins["heavy_red"])
    k = np.minimum(np.searchsorted(f.time[0], t_fact + 0.2), f.time.shape[1] - 1)
    b = np.arange(len(k))
    keeps = twin.linvel[b, k, 0, 0] >= f.linvel[b, k, 0, 0] - 1e-3
    return [
        ("twin 'heavy_red': the heavier red ball keeps more velocity through the impact (momentum)", keeps,
         np.asarray(m.facts["collision_time"].valid), 0.95),
        ("will_collide = centres came within r1 + r2 (geometry, not contact events)", will == touches, every, 0.97),
        ("collision_time = when the centres first come within touching range, to one frame", timely,
         np.asarray(m.facts["collision_time"].valid), 0.97),
    ]


def check_projectile(m, layout):
    f = _np(m.frames)
    fact = m.facts["landing_point"]
    land = np.asarray(m.facts["flight_time"].value)
    b = np.arange(land.shape[0])
    k = np.clip(np.searchsorted(f.time[0], land), 1, f.time.shape[1] - 1)
    d = np.linalg.norm((f.pos[:, :, 0, :2] - f.pos[:, :1, 0, :2]), axis=-1)  # (B, T) red ball
    lo, hi = np.minimum(d[b, k - 1], d[b, k]), np.maximum(d[b, k - 1], d[b, k])
    value = np.asarray(fact.value)
    between = (value >= lo - 1e-3) & (value <= hi + 1e-3)
    g = -np.asarray(m.world.gravity)[:, 2]
    vz = f.linvel[:, 0, 0, 2]
    apex_law = vz**2 / (2 * g)
    apex = np.asarray(m.facts["apex_height"].value)
    near_law = np.abs(apex - apex_law) <= 0.05 * apex_law + 0.01
    low = np.asarray(m.facts["landing_if_low_gravity"].value)
    doubled = np.abs(low / np.maximum(value, 1e-6) - 2.0) <= 0.1
    return [
        ("twin 'half_gravity': the landing distance doubles (same launch, half g, no drag)", doubled,
         np.asarray(m.facts["landing_if_low_gravity"].valid), 0.95),
        ("landing point = ball's distance at first floor contact (between the frames around it)",
         between, np.asarray(fact.valid), 0.97),
        ("apex height = v_z^2 / 2g of the launch (no drag)", near_law, np.asarray(m.facts["apex_height"].valid), 0.95),
    ]


def check_ramp(m, layout):
    p = _np(m.params)
    f = _np(m.frames)
    motion = np.asarray(m.facts["motion"].value)
    cube = p["shape"] == 1
    # Coulomb: a block sticks when friction exceeds the slope's tangent (margin for the uncertain band).
    tan = np.tan(np.deg2rad(p["angle"]))
    clear = np.abs(p["friction"] - tan) > 0.1
    law = np.where(p["friction"] > tan, 2, 1)
    agrees = (motion == law) | ((law == 1) & (motion == 0))  # a tumbling block counts as rolling
    # Energy: speed at the bottom cannot exceed free fall through the height lost.
    a = p["shape"].astype(int)
    b = np.arange(a.shape[0])
    g = -np.asarray(m.world.gravity)[:, 2]
    z0 = f.pos[b, 0, a, 2]
    bottom = np.asarray(m.facts["speed_at_bottom"].value)
    z_end = f.pos[b, -1, a, 2]
    bound = np.sqrt(2 * g * np.maximum(z0 - z_end, 0.0)) * 1.05 + 0.05
    # Twin with half the friction: Coulomb again, on the twin's own friction.
    twin_friction = np.maximum(p["friction"] * ramp.SLIPPERIER, MIN_FRICTION)
    twin_law = np.where(twin_friction > tan, 2, 1)
    twin_motion = np.asarray(m.facts["if_slippery"].value)
    twin_agrees = (twin_motion == twin_law) | ((twin_law == 1) & (twin_motion == 0))
    twin_clear = np.abs(twin_friction - tan) > 0.1
    return [
        ("twin 'slippery': a cube sticks iff its halved friction > tan(angle)", twin_agrees,
         cube & twin_clear, 0.9),
        ("a cube sticks iff friction > tan(angle) (Coulomb), away from the boundary", agrees, cube & clear, 0.9),
        ("speed at the bottom <= free fall through the height lost (energy)", bottom <= bound,
         np.asarray(m.facts["speed_at_bottom"].valid), 1.0),
    ]


def check_stack(m, layout):
    f = _np(m.frames)
    p = _np(m.params)
    top = p["count"].astype(int) - 1
    b = np.arange(top.shape[0])
    h = np.asarray(m.world.size)[b, top, 2]
    top_dropped = f.pos[b, -1, top, 2] < f.pos[b, 0, top, 2] - h
    falls = np.asarray(m.facts["falls"].value) > 0.5
    return [("'will it fall' = the top block ends lower than it started by a half-size", falls == top_dropped,
             np.ones_like(falls), 0.97)]


def check_chain(m, layout):
    index = scene_index(layout)
    out = []
    for twin, slot in (("remove_red", 0), ("remove_green", 1)):
        frames = _np(m.twins[twin])
        away = (frames.pos[:, :, slot, 0] > PARKING_X - 5).all(axis=1)
        pairs = [index.pair_of_entities[slot + 1, j + 1] for j in range(layout.n_objects) if j != slot]
        untouched = ~frames.contact_touch[:, :, pairs].any(axis=(1, 2))
        out.append((f"the '{twin}' twin has no {('red', 'green')[slot]} ball in the scene (far away, touches nothing)",
                    away & untouched, np.ones_like(away), 1.0))
    f = _np(m.frames)
    cause = np.asarray(m.facts["red_caused_blue"].value) > 0.5
    blue_moved = np.linalg.norm(f.pos[:, :, 2] - f.pos[:, :1, 2], axis=-1).max(axis=1) > measure.MOVED
    out.append(("'red caused blue' implies the blue ball moved in the factual world", ~cause | blue_moved,
                np.ones_like(cause), 1.0))
    return out


def check_compare(m, layout):
    p = _np(m.params)
    out = []
    for name in ("heavier", "bouncier", "slippery", "larger"):
        fact = m.facts[name]
        # `larger` is the object with the larger value; the more slippery one has the smaller friction.
        expected = (1 - p["larger"]) if name == "slippery" else p["larger"]
        out.append((f"measured '{name}' = the hidden parameter the experiment reveals",
                    np.asarray(fact.value) == expected, np.asarray(fact.valid), 0.95))
    return out


CHECKS = {
    "collision": check_collision,
    "projectile": check_projectile,
    "ramp": check_ramp,
    "stack": check_stack,
    "chain": check_chain,
    "compare": check_compare,
}


def measured_batch(family: str, n_worlds: int = 64, seed: int = 0, split: str = "train"):
    spec = pipeline.BatchSpec(family, split=split, n_worlds=n_worlds).resolved()
    params = _sample(jax.random.key(seed), family, n_worlds, split)
    return spec, measure_given(params, dataclasses.replace(spec, split="train"))


_sample = jax.jit(lambda key, family, n, split: scenarios.get(family).sample(key, n, split), static_argnums=(1, 2, 3))
# Simulates and measures given parameters. The spec's split only matters for sampling: measured_batch passes
# the train spec, so that other callers with any parameters of the same shape reuse this one compiled program.
measure_given = jax.jit(pipeline.measure_params, static_argnums=1)


def fact_checks(family: str, measured: pipeline.Measured) -> list[Check]:
    layout = scenarios.get(family).layout()
    sound = np.asarray(measured.sound)
    out = []
    for name, ok, where, required in CHECKS[family](measured, layout):
        agree, n = _fraction(np.asarray(ok), np.asarray(where, bool) & sound)
        out.append(Check(family, name, agree, n, required))
    return out


def answer_balance(spec: pipeline.BatchSpec, measured: pipeline.Measured, n_samples: int = 2000, seed: int = 1
                   ) -> dict[str, dict]:
    """Answer distribution per template over `n_samples` balanced draws from one measured batch."""
    templates = spec.templates()
    tok = pipeline.default_tokenizer()
    # Weight each task by its number of templates, so that every template is drawn equally often.
    per_task = tuple(float(sum(t.task == task for t in templates)) for task in spec.tasks)
    draws = dataclasses.replace(spec, n_questions=n_samples * len(templates), task_weights=per_task)
    picked = jax.jit(pipeline.pick_questions, static_argnums=(1, 3))(jax.random.key(seed), draws, measured, tok)
    template = np.asarray(picked["template"])
    value = np.asarray(picked["value"])
    valid = np.asarray(picked["valid"])
    out = {}
    for i, t in enumerate(templates):
        mine = (template == i) & valid
        row = {"family": spec.family, "task": t.task, "kind": t.kind, "samples": int(mine.sum()), "chance": t.chance}
        if t.kind == "number":
            row.update(mean=float(value[mine].mean()) if mine.any() else None,
                       std=float(value[mine].std()) if mine.any() else None)
        else:
            labels = ("no", "yes") if t.kind == "yesno" else t.options
            counts = np.bincount(np.round(value[mine]).astype(int), minlength=t.n_classes)
            fractions = counts / max(counts.sum(), 1)
            row.update(fractions=dict(zip(labels, fractions.round(4).tolist())),
                       max_excess=float(fractions.max() - t.chance))
        out[t.name] = row
    return out


def self_check_all(n_worlds: int = 64, n_samples: int = 2000) -> tuple[list[Check], list[dict]]:
    """Fact checks and balance rows for every registered family."""
    checks, balance = [], []
    for family in scenarios.names():
        spec, measured = measured_batch(family, n_worlds)
        checks += fact_checks(family, measured)
        for name, row in answer_balance(spec, measured, n_samples).items():
            balance.append({"template": f"{family}/{name}", **row})
    return checks, balance
