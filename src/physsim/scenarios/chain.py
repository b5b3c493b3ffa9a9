"""A row of 3-5 balls on the floor; the red one is launched and may start a chain of collisions.

Slots in order along +x: red (launched), green, blue, yellow, purple; the
slots beyond `count` are parked. Sometimes the green ball gets its own kick,
so the blue ball can move with or without the red one: causal questions are
decided by simulation (the but-for test against a twin world without the
red, or without the green ball), never by who was nearest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.scenarios import measure
from physsim.scenarios.base import (
    FLOOR,
    GRAVITY,
    PALETTE,
    Fact,
    Run,
    Scenario,
    cube_sizes,
    default_world,
    fact,
    friction_param,
    mass_param,
    register,
    remove_object,
    restitution_param,
)
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

COLOURS = tuple(PALETTE)  # red, green, blue, yellow, purple
RED, GREEN, BLUE, YELLOW = 0, 1, 2, 3

PARAMS = (
    Param("count", "", "number of balls in play", train=(3.0, 5.0), valid=Interval(3.0, 5.0), choices=(3, 4, 5)),
    Param("speed", "m/s", "launch speed of the red ball", train=(0.5, 3.0), ood=((3.5, 4.5),),
          valid=Interval(0.0, 10.0)),
    Param("aim", "deg", "direction of the red ball's launch, left (+) or right (-) of the row",
          train=(-20.0, 20.0), valid=Interval(-90.0, 90.0)),
    Param("kick", "", "1 if the green ball is also launched", train=(0.0, 1.0), valid=Interval(0.0, 1.0),
          choices=(0, 1)),
    Param("kick_speed", "m/s", "launch speed of the green ball when kicked", train=(0.3, 1.5),
          valid=Interval(0.0, 10.0)),
    Param("gap", "m", "free space in front of each ball", train=(0.05, 0.35), ood=((0.4, 0.5),),
          valid=Interval(0.0, 2.0), per_object=True),
    Param("offset", "m", "sideways offset of each ball from the line", train=(-0.05, 0.05),
          valid=Interval(-0.2, 0.2), per_object=True),
    Param("radius", "m", "radius of the balls", train=(0.08, 0.11), valid=Interval(0.01, 0.2)),
    mass_param("mass of each ball", per_object=True),
    friction_param("sliding friction of each ball", (0.2, 0.6), per_object=True),
    restitution_param("bounciness of each ball", (0.5, 0.9), per_object=True),
    GRAVITY,
)

BY_NAME = tuple(f"the {c} ball" for c in COLOURS)

QUESTIONS = (
    Template("red_caused_blue", "causal", "yesno", "red_caused_blue", (
        "Did the red ball cause the blue ball to move?",
        "Is the red ball the reason the blue ball moved?",
    ), explanation=(
        "removing the red ball would not change whether the blue ball moves",
        "the blue ball moved because of the red ball: without it the blue ball stays still; it was first hit at {time}",
    )),
    Template("green_caused_blue", "causal", "yesno", "green_caused_blue", (
        "Did the green ball cause the blue ball to move?",
        "Is the green ball the reason the blue ball moved?",
    ), explanation=(
        "removing the green ball would not change whether the blue ball moves",
        "the blue ball moved because of the green ball: without it the blue ball stays still; it was first hit at {time}",
    )),
    Template("why_blue", "causal", "choice", "why_blue", (
        "Which ball made the blue ball move?",
        "What set the blue ball in motion?",
    ), options=BY_NAME[:2], explanation=(
        "the blue ball moved because of {answer}: without it the blue ball stays still; it was first hit at {time}",
    )),
    Template("first_collision", "causal", "yesno", "first_collision", (
        "Did the red ball hit the green ball before the green ball hit the blue ball?",
        "Was the red ball hitting the green ball the first of the two collisions?",
    )),
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
    default_seconds = 2.8
    observe_seconds = 1.6
    questions = QUESTIONS
    twins = ("remove_red", "remove_green")

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=tuple(ObjectSlot(f"{c}_ball", "sphere", (0.07, 0.07, 0.07), rgba=rgba)
                          for c, rgba in PALETTE.items()),
            statics=(FLOOR,),
            timestep=0.002,
            fps=25.0,
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
        placed = jnp.stack([x, p["offset"].at[0].set(0.0), r], axis=-1)
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
        f, t_obs = run.frames, run.observe_seconds
        no_red, no_green = run.twins["remove_red"], run.twins["remove_green"]
        blue_moves = measure.moved(f, BLUE)
        blue_starts = measure.start_moving_time(f, BLUE)
        # Settled inside the window: it moved in view, or it never moves at all.
        settled = (blue_starts <= t_obs) | ~blue_moves
        red_cause = blue_moves & ~measure.moved(no_red, BLUE)
        green_cause = blue_moves & ~measure.moved(no_green, BLUE)
        hit_blue = jnp.minimum(measure.first_touch(f, measure.pair(layout, GREEN, BLUE)),
                               measure.first_touch(f, measure.pair(layout, RED, BLUE)))
        red_green = measure.first_touch(f, measure.pair(layout, RED, GREEN))
        green_blue = measure.first_touch(f, measure.pair(layout, GREEN, BLUE))
        has_yellow = run.params["count"] >= 4
        yellow_settled = (measure.start_moving_time(f, YELLOW) <= t_obs) | ~measure.moved(f, YELLOW)
        return {
            "red_caused_blue": fact(red_cause, settled, hit_blue),
            "green_caused_blue": fact(green_cause, settled, hit_blue),
            "why_blue": fact(jnp.where(red_cause, 0, 1), settled & (red_cause != green_cause), hit_blue),
            "first_collision": fact(red_green < green_blue, (red_green <= t_obs) & (green_blue <= t_obs),
                                    jnp.minimum(red_green, green_blue)),
            "without_red": fact(measure.moved(no_red, BLUE), settled),
            "without_green": fact(measure.moved(no_green, YELLOW), has_yellow & yellow_settled),
        }
