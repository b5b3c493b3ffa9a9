"""A tower of 2-5 cubes, each shifted sideways on the one below: does it fall?

Slots bottom to top: red, green, blue, yellow, purple cubes; slots above
`count` are parked. Whether it falls, which block goes first and where the
top one ends up are read from the simulated trajectory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from physsim.questions.templates import Template
from physsim.render.camera import Camera
from physsim.scenarios import measure
from physsim.scenarios.base import Fact, Record, Run, Scenario, fact, register
from physsim.scenarios.parts import (
    FLOOR,
    PALETTE,
    cube_sizes,
    default_world,
    friction_param,
    gravity_param,
    mass_param,
    restitution_param,
)
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout

COLOURS = tuple(PALETTE)  # red, green, blue, yellow, purple
FALLEN = 1.5  # half-sizes: a block that ends this far below its start has fallen (off a tower it drops >= 2)
LEANS = 0.5  # half-sizes: one that ends between this and FALLEN below its start leans; none asked about
# Half-widths: a tower whose load at some level lies closer than this to its support's edge is knife-edge.
# Measured: the audit's float64 route disagreed on towers 0.014-0.034 half-widths (1-2.5 mm) from tipping
# at such a level, far inside a pixel, which the 0.1 mm shadow world did not cross.
EDGE = 0.04
# s: a block that starts to fall this long after the first one was knocked off by the falling blocks, not
# toppled with them. Where it lands is decided by secondary collisions, which MJX and MuJoCo C resolve
# differently (the audit disagreed on such a tower, 0.72 s after; in the other towers of 3 measured batches
# the lowest fallen block started within 0.48 s of the first): the lowest block to fall is then knife-edge.
KNOCKED = 0.5
# Half-sizes: a block sliding off its support drags it by friction, but where a block below the support was
# shoved further than this from its start (at any frame), the falling blocks jolted the standing tower, and
# whether it stays is decided by that secondary impact, which MJX and MuJoCo C resolve differently (the audit
# disagreed on such a tower, shoved 7 mm (0.13 half-sizes) two blocks below the fallen one: it stood in MJX
# and fell in MuJoCo C). The lowest block to fall is then knife-edge. (Not asking about towers with any
# standing block shoved that far, the support included, dropped 22.8% of the seed-0 training towers as
# knife-edge: drags of a few mm are common, and which side of the threshold they land on flips in the shadow.)
SHOVED = 0.1

PARAMS = (
    Param("count", "", "number of blocks in the tower", train=(2.0, 5.0), valid=Interval(2.0, 5.0),
          choices=(2, 3, 4, 5)),
    # A block shifted half a width stands with its own centre on its support's edge: a hair decides whether it
    # stays once the blocks above are gone (the audit's float64 route disagreed on such towers, 0.46-0.49
    # widths out), so shifts within 0.05 widths of a half are not drawn.
    Param("shift", "", "sideways shift of each block on the one below, in block widths", train=(-0.65, 0.65),
          valid=Interval(-1.0, 1.0), per_object=True, gaps=((-0.55, -0.45), (0.45, 0.55))),
    # Held out: larger blocks (shifts stay in range: larger shifts topple every tower), rougher, heavier blocks
    # and stronger gravity.
    Param("size", "m", "half-edge of the blocks", train=(0.05, 0.08), ood=((0.082, 0.09),), valid=Interval(0.02, 0.2)),
    mass_param("mass of each block", per_object=True),
    friction_param("sliding friction of each block", (0.4, 0.9), ood=((1.0, 1.3),), per_object=True),
    restitution_param("bounciness of each block", (0.2, 0.4), per_object=True),
    # Held out: stronger gravity (under weak gravity a falling tower has not come to rest in the rollout).
    gravity_param(ood=((12.0, 16.0),)),
)

COUNTS = ("two", "three", "four", "five")
SIDES = ("to the left", "to the right")  # as the camera sees it: -x and +x

QUESTIONS = (
    Template("falls", "state", "yesno", "falls", (
        "Will the tower fall?",
        "Is this stack of blocks going to topple?",
        "Will any block fall off the tower?",
    )),
    Template("lowest_to_fall", "state", "choice", "lowest_to_fall", (
        "Which is the lowest block that will fall?",
        "Counting from the floor, which is the lowest block that will fall?",
    ), options=tuple(f"the {c} block" for c in COLOURS[1:])),
    Template("top_side", "state", "choice", "top_side", (
        "Will the top block come to rest to the left or to the right of where it started?",
        "When everything has stopped moving, on which side of its starting point will the top block be?",
    ), options=SIDES),
    Template("count", "descriptive", "choice", "count", (
        "How many blocks are in the tower?",
        "How many blocks does the stack have?",
    ), options=COUNTS, route="pixels", reads_configuration=True),
)


@register
class Stack(Scenario):
    name = "stack"
    description = "a tower of 2-5 shifted cubes that may stand or fall"
    params = PARAMS
    default_seconds = 2.0
    observe_seconds = 0.2
    questions = QUESTIONS

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=tuple(ObjectSlot(f"{c}_block", "box", (0.06, 0.06, 0.06), rgba=rgba)
                          for c, rgba in PALETTE.items()),
            statics=(FLOOR,),
            fps=25.0,
            **cls.config.physics(),
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        # Far enough back to hold a five-block tower of the held-out (larger) blocks.
        return Camera(position=(0.0, -1.6, 0.6), target=(0.0, 0.0, 0.35), fovy=50.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        n = layout.n_objects
        h = p["size"]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, jnp.full((n,), h)),
                          friction=p["friction"], restitution=p["restitution"])
        # Block i is shifted by shift[i] block widths from block i - 1; the bottom one is not shifted.
        x = jnp.cumsum(p["shift"].at[0].set(0.0) * 2 * h)
        x = x - jnp.mean(jnp.where(jnp.arange(n) < p["count"], x, 0.0))  # keep the tower in view
        z = (2 * jnp.arange(n) + 1) * (h + 5e-4)
        placed = jnp.stack([x, jnp.zeros(n), z], axis=-1)
        in_play = jnp.arange(n) < p["count"]
        return w.replace(pos=jnp.where(in_play[:, None], placed, w.pos))

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f, t_obs = run.frames, run.observe_seconds
        n = layout.n_objects
        h = run.world.size[:, 2]
        count = run.params["count"].astype(jnp.int32)
        in_play = jnp.arange(n) < count
        drop = f.pos[0, :, 2] - f.pos[:, :, 2]  # (T, N)
        # A block has fallen when it ends more than FALLEN half-sizes below its start, and clearly stayed
        # when it ends less than LEANS below; between the two it leans on something, and no question about
        # falling is asked.
        fell = (drop[-1] > FALLEN * h) & in_play
        unclear = ((drop[-1] > LEANS * h) & ~fell & in_play).any()
        falls = fell.any()
        # The first visible sign of falling: a block a quarter of its height down (each block's time, and the
        # first of the blocks in play).
        t_start = jnp.min(jnp.where(drop > 0.5 * h, f.time[:, None], jnp.inf), axis=0)  # (N,)
        t_first = jnp.min(jnp.where(in_play, t_start, jnp.inf))
        unseen = t_first > t_obs  # nothing is falling yet in the last frame shown
        # "No" means never, and which blocks fell is final: asked only once every block has settled (by its
        # motion over the last 0.2 s; the instantaneous velocities of resting boxes jitter about the rest speed).
        rest = jnp.all(measure.settled(f, jnp.arange(n)) | ~in_play)
        decided = unseen & rest & ~unclear
        lowest = jnp.argmax(fell)  # the bottom block stands on the floor and cannot drop: options start at green
        # Which blocks fall is decided by statics at the tower that is left standing: blocks 0..L-1 below the
        # lowest fallen one L (the whole tower if none fell) stand, and L itself came off. If either that
        # tower or the one with L still on it is within EDGE of tipping at some level, the outcome is a
        # knife-edge: which way it goes depends on rounding (float32 here, float64 in the audit), not on
        # anything a video shows. This reads the masses, a sampled parameter, only to decide whether to ask.
        # So is the tower as it starts at the level where it broke (the load from L up on L - 1).
        left = jnp.where(falls, lowest, count)
        x0, mass, half = f.pos[0, :, 0], run.world.mass, run.world.size[:, 0]
        margins = lambda top: jnp.abs(_overhangs(x0, mass, half, top))  # noqa: E731
        near = jnp.minimum(margins(left - 1).min(), margins(jnp.minimum(left, count - 1)).min())
        near = jnp.where(falls, jnp.minimum(near, margins(count - 1)[lowest]), near)
        edge = near < EDGE
        knocked = t_start[lowest] > t_first + KNOCKED
        below_support = in_play & (jnp.arange(n) < lowest - 1)
        slid = jnp.linalg.norm(f.pos[:, :, :2] - f.pos[0, :, :2], axis=-1).max(axis=0)  # (N,) m
        shoved = jnp.any(below_support & (slid > SHOVED * h))
        # Where the top block ends: how far its resting place lies left or right of its start. (Its exact
        # distance depends on how it tumbles, which MJX and MuJoCo C resolve differently for boxes; the side
        # it falls to is set by the tower's visible overhang.)
        top = count - 1
        shift = f.pos[-1, top, 0] - f.pos[0, top, 0]
        aside = jnp.abs(shift) >= 2 * h[top]  # at least a block's width to one side
        return {
            "falls": fact(falls, decided, t_first, edge=edge),
            "lowest_to_fall": fact(jnp.maximum(lowest - 1, 0), falls & decided & (count >= 3), t_first,
                                   classes=jnp.arange(n - 1) < count - 1, edge=edge | knocked | shoved),
            # Not flagged by `edge`: asked only where the top block ended a block's width aside, on the side
            # of the overhang; the audit found no flip on it without the flag (100% of 150 train and 156 ood
            # towers), and the flag dropped 20.4% of the ood towers (bar: 20%).
            "top_side": fact(shift > 0, falls & decided & aside, t_first),
            # What is drawn: as many blocks as sampled (the parked ones are out of view), each in view.
            "count": fact(count - 2, jnp.all(measure.in_view(run.camera, run.camera_jitter, f.pos[0], jnp.sqrt(3.0) * h)
                                             | ~in_play)),
        }

    @classmethod
    def checks(cls, m, layout: SceneLayout):
        """Statics: a tower of rigid blocks stands iff, at every level, the centre of mass of the blocks above
        lies over the block below (within its half-width); away from that boundary the simulation must agree."""
        count = m.params["count"].astype(int)
        # How far (in half-widths) the load overhangs its support at the worst level of each starting tower.
        worst = np.asarray(_overhangs(m.frames.pos[:, 0, :, 0], m.world.mass, m.world.size[:, :, 0], count - 1)).max(-1)
        falls = m.facts["falls"]
        return [("falls = at some level the blocks above overhang their support (statics), away from the edge",
                 (falls.value > 0.5) == (worst > 0), falls.valid & (np.abs(worst) > 0.15), 0.95)]

    @classmethod
    def derive(cls, record: Record, layout: SceneLayout) -> dict[str, float]:
        sim = record.sim
        count = int(record.params["count"])
        h = np.asarray(record.world.size)[:count, 2]
        # MuJoCo C over twice the rollout: a block has fallen if its centre ever came a half-size below its
        # start (the facts read where it ends, with a margin either side).
        drop = sim.pos[0, :count, 2] - sim.pos[:, :count, 2]  # (T, count)
        fell = (drop > h).any(axis=0)
        top = count - 1
        shift = float(sim.pos[-1, top, 0] - sim.pos[0, top, 0])
        # Pixels: distinct blocks seen in the first frame.
        seen = [i for i in range(layout.n_objects) if (record.seg[0] == i).any()]
        return {
            "falls": float(fell.any()),
            "lowest_to_fall": float(np.argmax(fell) - 1) if fell.any() else np.nan,
            "top_side": float(shift > 0),
            "count": float(len(seen) - 2),
        }


def _overhangs(x: jax.Array, mass: jax.Array, half: jax.Array, top: jax.Array) -> jax.Array:
    """(..., N) for the tower of blocks 0..top (x, mass, half (..., N); top (...)): how far, in half-widths of
    its support, the centre of mass of blocks k..top lies beyond the edge of block k - 1 at each level k,
    |com - x[k-1]| / half[k-1] - 1 (statics: the tower tips at a level where this is positive); -inf for
    k = 0 and k > top."""
    n = x.shape[-1]
    idx = jnp.arange(n)
    top = jnp.asarray(top)
    out = [jnp.full(top.shape, -jnp.inf)]
    for k in range(1, n):
        load = (idx >= k) & (idx <= top[..., None])
        com = (jnp.sum(jnp.where(load, mass * x, 0.0), -1) /
               jnp.maximum(jnp.sum(jnp.where(load, mass, 0.0), -1), 1e-9))
        out.append(jnp.where(k <= top, jnp.abs(com - x[..., k - 1]) / half[..., k - 1] - 1.0, -jnp.inf))
    return jnp.stack(out, -1)

