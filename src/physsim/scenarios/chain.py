"""A row of 3-5 balls on the floor; the red one is launched and may start a chain of collisions.

Slots in order along +x: red (launched), green, blue, yellow, purple; the
slots beyond `count` are parked. Sometimes the green ball gets its own kick,
so the blue ball can move with or without the red one. Causal questions are
read from the chain of hits the simulator recorded (who set whom moving);
counterfactual ones from twin worlds without the red or the green ball
(the but-for test), never from who was nearest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.scenarios import derive, measure
from physsim.scenarios.base import Fact, FamilyConfig, Record, Run, Scenario, fact, register
from physsim.scenarios.parts import (
    FLOOR,
    GRAVITY,
    PALETTE,
    cube_sizes,
    default_world,
    friction_param,
    mass_param,
    remove_object,
    restitution_param,
)
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import PARKING_X, ObjectSlot, SceneLayout, scene_index

COLOURS = tuple(PALETTE)  # red, green, blue, yellow, purple
RED, GREEN, BLUE, YELLOW = 0, 1, 2, 3

PARAMS = (
    Param("count", "", "number of balls in play", train=(3.0, 5.0), valid=Interval(3.0, 5.0), choices=(3, 4, 5)),
    Param("speed", "m/s", "launch speed of the red ball", train=(0.5, 3.0), valid=Interval(0.0, 10.0)),
    Param("aim", "deg", "direction of the red ball's launch, left (+) or right (-) of the row",
          train=(-20.0, 20.0), valid=Interval(-90.0, 90.0)),
    Param("kick", "", "1 if the green ball is also launched", train=(0.0, 1.0), valid=Interval(0.0, 1.0),
          choices=(0, 1)),
    Param("kick_speed", "m/s", "launch speed of the green ball when kicked", train=(0.3, 1.5), ood=((1.6, 2.4),),
          valid=Interval(0.0, 10.0)),
    # Held out: rows further out of line, faster kicks, heavier balls, low gravity. The red ball's launch stays in
    # range, and so do the gaps (every ball stays in view): measured on 128 worlds (validate's askability rows),
    # slower or faster launches (0.25-0.45, 3.5-4.5 m/s) left "did red hit green before green hit blue" one
    # answer (the second hit fell after the window, or red caught green first), aims beyond 20 degrees missed
    # the green ball (who moved the blue ball: 94% one answer), and with the row in line as in training "does the
    # blue ball move" was 79% "yes"; balls 5.5-9 cm off the line glance off each other, 69%.
    Param("gap", "m", "free space in front of each ball", train=(0.05, 0.35), valid=Interval(0.0, 2.0),
          per_object=True),
    Param("offset", "m", "sideways offset of each ball from the line", train=(-0.05, 0.05),
          ood=((-0.09, -0.055), (0.055, 0.09)), valid=Interval(-0.2, 0.2), per_object=True),
    # The green ball may stand off the line, so that the red ball can pass it and hit the blue one itself.
    Param("green_offset", "m", "sideways offset of the green ball from the line", train=(-0.25, 0.25),
          valid=Interval(-0.4, 0.4)),
    Param("radius", "m", "radius of the balls", train=(0.08, 0.11), valid=Interval(0.01, 0.2)),
    mass_param("mass of each ball", per_object=True),
    friction_param("sliding friction of each ball", (0.2, 0.6), per_object=True),
    restitution_param("bounciness of each ball", (0.5, 0.9), per_object=True),
    GRAVITY,
)

BY_NAME = tuple(f"the {c} ball" for c in COLOURS)
COUNTS = ("three", "four", "five")
HIT_SPEED = 0.05  # m/s: a contact is a hit when its impulse could change the ball's velocity this much
SEEN = 0.05  # m: "did it move during the video" is yes beyond this displacement by the last frame shown

QUESTIONS = (
    Template("red_caused_blue", "causal", "yesno", "red_caused_blue", (
        "Did the red ball cause the blue ball to move?",
        "Is the red ball the reason the blue ball started moving?",
    ), explanation=(
        "the blue ball was set moving at {time} by a ball that the red ball never hit, directly or through others",
        "the red ball set the blue ball moving, by hitting it or a ball that hit it; the blue ball was hit at {time}",
    )),
    Template("green_caused_blue", "causal", "yesno", "green_caused_blue", (
        "Did the green ball cause the blue ball to move?",
        "Is the green ball the reason the blue ball started moving?",
    ), explanation=(
        "the blue ball was set moving at {time} by a ball that the green ball never hit, directly or through others",
        "the green ball set the blue ball moving, by hitting it or a ball that hit it; the blue ball was hit at {time}",
    )),
    Template("why_blue", "causal", "choice", "why_blue", (
        "Which ball hit the blue ball and set it moving?",
        "Which ball started the blue ball moving?",
    ), options=BY_NAME[:2], explanation=(
        "{answer} was the first ball to hit the blue ball, at {time}; before that the blue ball stood still",
    )),
    Template("first_collision", "descriptive", "yesno", "first_collision", (
        "Did the red ball hit the green ball before the green ball hit the blue ball?",
        "Was the red ball hitting the green ball the first of those two collisions?",
    )),
    Template("blue_moved", "descriptive", "yesno", "blue_moved", (
        "Does the blue ball move during the video?",
        "In the video, does the blue ball move?",
    ), route="pixels"),
    Template("count", "descriptive", "choice", "count", (
        "How many balls are there?",
        "How many balls does the scene have?",
    ), options=COUNTS, route="pixels", reads_configuration=True),
    Template("without_red", "counterfactual", "yesno", "without_red", (
        "If the red ball had not been there, would the blue ball have moved?",
        "Without the red ball, would the blue ball still move?",
    )),
    Template("without_green", "counterfactual", "yesno", "without_green", (
        "If the green ball were removed, would the yellow ball move?",
        "Without the green ball, would the yellow ball still move?",
    )),
)


@register
class Chain(Scenario):
    name = "chain"
    description = "a launched ball and a row of others: chains of collisions, causes and counterfactuals"
    params = PARAMS
    # 8 solver / 4 line-search iterations keep every gate (python -m physsim.settings; benchmarks/physics_settings);
    # a 2.5 ms timestep flipped a held-out answer.
    config = FamilyConfig(seconds=2.8, observe_seconds=1.6, solver_iterations=8, linesearch_iterations=4)
    questions = QUESTIONS
    twins = ("remove_red", "remove_green")

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=tuple(ObjectSlot(f"{c}_ball", "sphere", (0.07, 0.07, 0.07), rgba=rgba)
                          for c, rgba in PALETTE.items()),
            statics=(FLOOR,),
            fps=25.0,
            **cls.config.physics(),
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.65, -1.9, 1.5), target=(0.65, 0.0, 0.0), fovy=55.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        n = layout.n_objects
        r = jnp.full((n,), p["radius"])
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, r),
                          friction=p["friction"], restitution=p["restitution"])
        # Ball i sits gap[i] + 2r beyond ball i - 1; the red ball starts at x = -0.4.
        step = jnp.concatenate([jnp.zeros(1), p["gap"][1:] + 2 * p["radius"]])
        x = -0.4 + jnp.cumsum(step)
        placed = jnp.stack([x, p["offset"].at[RED].set(0.0).at[GREEN].set(p["green_offset"]), r], axis=-1)
        in_play = jnp.arange(n) < p["count"]
        pos = jnp.where(in_play[:, None], placed, w.pos)
        aim = jnp.deg2rad(p["aim"])
        vx = jnp.zeros(n).at[RED].set(p["speed"] * jnp.cos(aim)).at[GREEN].set(p["kick"] * p["kick_speed"])
        vy = jnp.zeros(n).at[RED].set(p["speed"] * jnp.sin(aim))
        linvel = jnp.stack([vx, vy, jnp.zeros(n)], axis=-1)
        angvel = jnp.stack([-vy / r, vx / r, jnp.zeros(n)], axis=-1)  # rolling without slipping
        return w.replace(pos=pos, linvel=linvel, angvel=angvel)

    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "remove_red":
            return remove_object(world, layout, RED)
        if twin == "remove_green":
            return remove_object(world, layout, GREEN)
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        """Causes come from the chain of hits the simulator recorded: a ball at rest is set moving by the
        first ball to hit it, and X caused the blue ball to move when X set it moving, or set moving a ball
        that did (and so on). Asked only about a blue ball seen moving in the video, where each hit of
        the chain comes at least a frame interval before any other hit on the same ball (so the video shows
        who hit it first). Counterfactuals are the but-for test against the twin without the ball."""
        f, t_obs = run.frames, run.observe_seconds
        n = layout.n_objects
        count = run.params["count"].astype(jnp.int32)
        active = jnp.arange(n) < count
        radius = run.world.size[:, 0]
        hit = _hits(f, layout, run.world.mass, active)  # (N, N): when j first hit i
        moving = jnp.linalg.norm(f.linvel[0, :, :2], axis=-1) > 0.01  # launched balls move by themselves
        first = jnp.min(hit, axis=1)
        second = jnp.sort(hit, axis=1)[:, 1]
        mover = jnp.where(moving | ~jnp.isfinite(first), -1, jnp.argmin(hit, axis=1))
        clear = moving | (second >= first + run.frame_interval)
        blue_seen = measure.at_time(measure.displacement(f, BLUE), f.time, t_obs) > measure.MOVED
        red_cause, red_ok = _caused(mover, clear, RED, BLUE, n)
        green_cause, green_ok = _caused(mover, clear, GREEN, BLUE, n)
        red_green, green_blue = hit[GREEN, RED], hit[BLUE, GREEN]
        in_view = (red_green <= t_obs) & (green_blue <= t_obs)
        apart = jnp.abs(red_green - green_blue) >= run.frame_interval
        blue_by_end = measure.at_time(measure.displacement(f, BLUE), f.time, t_obs)
        no_red, no_green = run.twins["remove_red"], run.twins["remove_green"]
        # "No" in a twin means never: it did not move and no two balls there can meet any more.
        blue_without_red = measure.moved(no_red, BLUE)
        red_decided = blue_without_red | (~measure.moved(no_red, BLUE, measure.STILL)
                                          & measure.quiet_after(no_red, active.at[RED].set(False), radius))
        yellow_without_green = measure.moved(no_green, YELLOW)
        green_decided = yellow_without_green | (~measure.moved(no_green, YELLOW, measure.STILL)
                                                & measure.quiet_after(no_green, active.at[GREEN].set(False), radius))
        blue_hit = first[BLUE]
        # What the pixels must show: every ball in view at the start, none more than half hidden by another;
        # the blue ball in view in the first and last frames shown.
        view = measure.in_view(run.camera, run.camera_jitter, f.pos, radius)  # (T, N)
        all_seen = jnp.all(view[0] | ~active)
        for i in range(n):
            for j in range(i + 1, n):
                both = active[i] & active[j]
                all_seen &= ~both | measure.half_visible(run.camera, run.camera_jitter, f.pos[0, i], f.pos[0, j],
                                                         radius[i], radius[j])
        last = measure.shown_index_before(f.time, run.shown, jnp.inf)
        blue_seen_both = view[0, BLUE] & view[last, BLUE]
        return {
            "red_caused_blue": fact(red_cause, blue_seen & red_ok, blue_hit),
            "green_caused_blue": fact(green_cause, blue_seen & green_ok, blue_hit),
            "why_blue": fact(jnp.clip(mover[BLUE], 0, 1), blue_seen & clear[BLUE] & (mover[BLUE] >= 0)
                             & (mover[BLUE] <= GREEN), blue_hit),
            "first_collision": fact(red_green < green_blue, in_view & apart, jnp.minimum(red_green, green_blue)),
            "blue_moved": fact(blue_by_end >= SEEN, ((blue_by_end >= SEEN) | (blue_by_end < measure.STILL))
                               & blue_seen_both),
            # What is drawn: as many balls as sampled (the parked ones are out of view).
            "count": fact(count - 3, all_seen),
            "without_red": fact(blue_without_red, red_decided),
            "without_green": fact(yellow_without_green, (count >= 4) & green_decided),
        }

    @classmethod
    def checks(cls, m, layout: SceneLayout):
        """The hit chain against what else can move a ball, the twins against their interventions."""
        p, f, facts = m.params, m.frames, m.facts
        index = scene_index(layout)
        out = []
        for twin, slot in (("remove_red", RED), ("remove_green", GREEN)):
            frames = m.twins[twin]
            away = (frames.pos[:, :, slot, 0] > PARKING_X - 5).all(axis=1)
            pairs = [index.pair_of_entities[slot + 1, j + 1] for j in range(layout.n_objects) if j != slot]
            untouched = ~frames.contact_touch[:, :, pairs].any(axis=(1, 2))
            out.append((f"the '{twin}' twin has no {COLOURS[slot]} ball in the scene (far away, touches nothing)",
                        away & untouched, np.ones_like(away), 1.0))
        red, green = facts["red_caused_blue"], facts["green_caused_blue"]
        kicked = p["kick"] > 0.5
        blue_still_without_red = facts["without_red"].value < 0.5
        # Only two things start a ball moving here: the red ball's launch and the green ball's kick.
        out.append(("a blue ball the red one did not set moving was set moving by the kicked green one",
                    kicked & (green.value > 0.5), red.valid & (red.value < 0.5), 1.0))
        # Without another cause (no kick), but-for agrees with the chain: no red ball, no motion of the blue.
        out.append(("no kick: red set blue moving iff, without red, the blue ball stays still (but-for)",
                    (red.value > 0.5) == blue_still_without_red, red.valid & ~kicked & facts["without_red"].valid,
                    0.97))
        # The first ball to hit the blue one is next to it then (geometry, not contact events).
        why = facts["why_blue"]
        hitter = why.value.astype(int)
        b = np.arange(len(hitter))
        k = np.clip(np.searchsorted(f.time[0], why.time), 0, f.time.shape[1] - 1)
        r = m.world.size[:, :, 0]
        gap = np.linalg.norm(f.pos[b, k, hitter] - f.pos[b, k, BLUE], axis=-1) - r[b, hitter] - r[b, BLUE]
        speed = np.linalg.norm(f.linvel[b, k, hitter], axis=-1) + np.linalg.norm(f.linvel[b, k, BLUE], axis=-1)
        out.append(("the ball named as hitting the blue one is within a frame's travel of it at the hit",
                    gap <= speed / layout.fps + 2e-3, why.valid, 0.97))
        return out

    @classmethod
    def derive(cls, record: Record, layout: SceneLayout) -> dict[str, float]:
        count = int(record.params["count"])
        radius = np.asarray(record.world.size)[:, 0]
        sim = record.sim
        hit = _geometric_hits(sim, count, radius)
        mover = [-1 if np.linalg.norm(sim.linvel[0, i, :2]) > 0.01 or not np.isfinite(hit[i].min())
                 else int(np.argmin(hit[i])) for i in range(count)]

        def caused(x):
            seen, cur = set(), BLUE
            while mover[cur] >= 0 and cur not in seen:
                seen.add(cur)
                cur = mover[cur]
                if cur == x:
                    return 1.0
            return 0.0

        twins = record.twins
        out = {
            "red_caused_blue": caused(RED), "green_caused_blue": caused(GREEN),
            "why_blue": float(mover[BLUE]) if mover[BLUE] in (RED, GREEN) else np.nan,
            "first_collision": float(hit[GREEN, RED] < hit[BLUE, GREEN]),
            "without_red": float(derive.distance_moved(twins["remove_red"], BLUE) > 0.03),
            "without_green": float(derive.distance_moved(twins["remove_green"], YELLOW) > 0.03) if count >= 4 else np.nan,
        }
        # Pixels: balls seen in the first frame; the blue ball's mask moving between the first and last frame.
        seg = record.seg
        out["count"] = float(sum((seg[0] == i).any() for i in range(layout.n_objects)) - 3)
        c = derive.centroids(seg, BLUE)[0]
        out["blue_moved"] = float(np.linalg.norm(c[-1] - c[0]) > 0.7) if np.isfinite(c[[0, -1]]).all() else np.nan
        return out


def _hits(f, layout: SceneLayout, mass, active):
    """(N, N) time at which ball j first hit ball i (a contact whose impulse could change i's velocity by
    HIT_SPEED); inf if never, on the diagonal and for balls not in play."""
    n = layout.n_objects
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            if i == j:
                row.append(jnp.asarray(jnp.inf, f.time.dtype))
                continue
            t = measure.first_hit(f, measure.pair(layout, min(i, j), max(i, j)), mass[i] * HIT_SPEED)
            row.append(jnp.where(active[i] & active[j], t, jnp.inf))
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


def _caused(mover, clear, x, target, n):
    """Whether ball x is in the chain that set `target` moving, and whether every hit of the chain walked
    (up to x, or to the ball that moved by itself) is clear."""
    cur, alive, found, ok = jnp.int32(target), jnp.bool_(True), jnp.bool_(False), jnp.bool_(True)
    for _ in range(n):
        m = mover[cur]
        step = alive & (m >= 0)
        ok = ok & (~alive | clear[cur])
        found = found | (step & (m == x))
        alive = step & (m != x)
        cur = jnp.where(step, m, cur)
    return found, ok


def _geometric_hits(sim, count, radius):
    """(count, count) time of ball j's first touch (geometry, every physics step) after which ball i's
    velocity changed by at least HIT_SPEED within 30 ms; inf if never."""
    hit = np.full((count, count), np.inf)
    for i in range(count):
        for j in range(count):
            if i == j:
                continue
            touching = derive.gap(sim, i, j, radius[i], radius[j]) <= derive.TOUCH
            starts = np.flatnonzero(touching & ~np.concatenate([[False], touching[:-1]]))
            for k in starts:
                before = sim.linvel[max(k - 1, 0), i, :2]
                after = derive.at(sim.time, sim.linvel[:, i, :2], min(sim.time[k] + 0.03, sim.time[-1]))
                if np.linalg.norm(after - before) >= HIT_SPEED:
                    hit[i, j] = sim.time[k]
                    break
    return hit
