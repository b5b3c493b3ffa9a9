"""A sphere or a cube released on a slope of random angle and friction.

A sphere rolls down; a cube slides or sticks (or, on the steepest
out-of-distribution slopes, tips over). Either reaches the floor at some
speed and travels on. Slot 0 is the sphere, slot 1 the cube; the unused one
is parked. Whether a ball rolls or slips is not asked: its spin cannot be
seen at the rendered resolution.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from physsim.questions.templates import Template, times
from physsim.scenarios import derive, measure
from physsim.scenarios.base import Fact, FamilyConfig, Record, ReferenceCase, Run, Scenario, fact, register
from physsim.scenarios.parts import (
    FLOOR,
    GRAVITY,
    PALETTE,
    cube_sizes,
    default_world,
    friction_param,
    mass_param,
    quat_about_y,
    restitution_param,
)
from physsim.render.camera import Camera
from physsim.sim.contact import MIN_FRICTION
from physsim.sim.params import Interval, Param
from physsim.sim.randomize import WorldParams
from physsim.sim.scene import ObjectSlot, SceneLayout, StaticGeom

RAMP_HALF_LENGTH = 0.9
RAMP_HALF_THICKNESS = 0.05

PARAMS = (
    # Held out: steeper slopes, still below 45 degrees (beyond it a block that friction holds tips over), and
    # frictions from ice to beyond rubber: on these slopes a block is held from mu = tan(angle) ~ 0.9-1.0 and,
    # in the half-friction twin, from twice that, so the grippy range reaches 3 for "would it slide with half
    # the friction" to have both answers (from 1.0-2.2 it was 85% "yes", from 1.4-2.6 73%; 256 worlds each).
    Param("angle", "deg", "slope angle above horizontal", train=(10.0, 40.0), ood=((41.0, 44.0),),
          valid=Interval(0.0, 80.0)),
    friction_param("sliding friction of the object on the slope and floor", (0.05, 0.9),
                   ood=((0.03, 0.045), (1.6, 3.0))),
    mass_param("mass of the object"),
    Param("size", "m", "sphere radius or cube half-edge", train=(0.07, 0.12), ood=((0.13, 0.18),),
          valid=Interval(0.01, 0.3)),
    restitution_param("bounciness on landing", (0.2, 0.5)),
    GRAVITY,
    Param("start", "m", "release point, distance up the slope from its foot", train=(0.4, 1.4),
          valid=Interval(0.2, 2 * RAMP_HALF_LENGTH - 0.2)),
    Param("shape", "", "0 = sphere, 1 = cube", train=(0.0, 1.0), valid=Interval(0.0, 1.0), choices=(0, 1)),
)

SLID = 0.05  # m: a block that slides covers at least this much (~1.5 pixels) by the last frame shown
TURNED = 10.0  # deg: a block that turns more than this tips over rather than slides
LATER = 2.0  # s after the last frame shown at which "how far past the foot" is read
BRISK = 2.0  # m/s^2: the speed at the bottom is asked of a block only when it slides down at least this fast

QUESTIONS = (
    Template("slides", "descriptive", "yesno", "slides", (
        "Does the block slide down the slope during the video?",
        "In the video, does the block start sliding down the slope?",
    ), route="pixels"),
    Template("if_slippery", "counterfactual", "yesno", "if_slippery", (
        "If the friction were <friction> as strong, would the block slide down the slope?",
        "Suppose the surfaces were <slippery> as slippery: would the block slide down the slope?",
    )),
    Template("speed_at_bottom", "state", "number", "speed_at_bottom", (
        "How fast will the object be moving when it reaches the bottom of the slope?",
        "What speed will the object have at the foot of the slope?",
    ), unit="m/s", rel_tol=0.05, abs_tol=0.05),
    Template("floor_distance", "state", "number", "floor_distance", (
        "How far past the foot of the slope will the ball be 2 seconds after the video ends?",
        "2 seconds after the last frame, how far along the floor beyond the slope will the ball be?",
    ), unit="m", rel_tol=0.05, abs_tol=0.03),
)


@dataclasses.dataclass(frozen=True)
class RampConfig(FamilyConfig):
    seconds: float = 3.0
    observe_seconds: float = 0.4
    slipperier: float = 0.5  # the counterfactual twin's friction factor

    def __post_init__(self):
        super().__post_init__()
        self.check_factor("slipperier", high=1.0)

    def words(self) -> dict[str, str]:
        return {"friction": times(self.slipperier), "slippery": times(1 / self.slipperier)}


@register
class Ramp(Scenario):
    name = "ramp"
    description = "a sphere or cube on a slope of random angle and friction"
    params = PARAMS
    config = RampConfig()
    questions = QUESTIONS
    twins = ("slippery",)
    # Spheres roll, slide and bounce alike in both; a cube landing off the ramp tumbles differently by
    # centimetres (MJX and C collide boxes with different algorithms).
    reference_cases = (ReferenceCase("sphere worlds", (("shape", 0),)),
                       ReferenceCase("cube worlds", (("shape", 1),), gated=False))

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(
                ObjectSlot("ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["red"]),
                ObjectSlot("cube", "box", (0.08, 0.08, 0.08), rgba=PALETTE["blue"]),
            ),
            statics=(
                FLOOR,
                StaticGeom("ramp", "box", (RAMP_HALF_LENGTH, 0.4, RAMP_HALF_THICKNESS), rgba=(0.6, 0.5, 0.35, 1.0)),
            ),
            fps=25.0,
            **cls.config.physics(),
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        return Camera(position=(0.3, -2.2, 0.9), target=(0.2, 0.0, 0.35), fovy=55.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        theta = jnp.deg2rad(p["angle"])
        up_slope = jnp.stack([jnp.cos(theta), 0.0, jnp.sin(theta)])
        normal = jnp.stack([-jnp.sin(theta), 0.0, jnp.cos(theta)])
        tilt = quat_about_y(-theta)  # the ramp's +x axis points up the slope
        # The slope's top surface starts at the origin and rises towards +x.
        ramp_pos = RAMP_HALF_LENGTH * up_slope - RAMP_HALF_THICKNESS * normal
        size = jnp.full((2,), p["size"])
        w = default_world(
            layout,
            gravity=p["gravity"],
            mass=jnp.full((2,), p["mass"]),
            size=cube_sizes(layout, size),
            friction=jnp.full((2,), p["friction"]),
            restitution=jnp.full((2,), p["restitution"]),
        )
        active = p["shape"].astype(jnp.int32)
        on_slope = p["start"] * up_slope + p["size"] * normal
        pos = w.pos.at[active].set(on_slope)
        quat = jnp.where(active == 1, w.quat.at[1].set(tilt), w.quat)
        return w.replace(
            pos=pos,
            quat=quat,
            static_pos=w.static_pos.at[1].set(ramp_pos),
            static_quat=w.static_quat.at[1].set(tilt),
        )



    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "slippery":
            return world.replace(friction=jnp.maximum(world.friction * cls.config.slipperier, MIN_FRICTION))
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        f, t_obs = run.frames, run.observe_seconds
        a = run.params["shape"].astype(jnp.int32)  # the active slot: 0 sphere, 1 cube
        cube = a == 1
        # Slides: asked of blocks only (a ball always rolls down, and its spin is not visible at 64x64).
        # "Yes" once it has visibly slid, without tipping, by the last frame shown; "no" only if it never
        # moves in the whole rollout and ends at rest (static friction then holds it for good).
        shown_slide = _slid(f, a, t_obs)
        stays = ~measure.moved(f, a, measure.STILL) & measure.at_rest(f, a)
        twin = run.twins["slippery"]
        twin_slides = _slid(twin, a, twin.time[-1])
        twin_stays = ~measure.moved(twin, a, measure.STILL) & measure.at_rest(twin, a)
        # The foot of the slope is at x = 0; the object comes down towards -x.
        t_foot, v_foot, frames_before, accel = _foot(f, a, run.world.size[a, 0], _tilt(run.world))
        arrives = jnp.isfinite(t_foot)
        t_later = t_obs + LATER
        x_later = measure.at_time(f.pos[:, a, 0], f.time, t_later)
        # A block that barely accelerates on the slope has a speed at the bottom set by how friction balances
        # gravity, which MJX's and MuJoCo C's box contacts resolve differently: asked only of brisk slides, by
        # the measured acceleration and by Coulomb's g (sin - mu cos), which no contact solver sets. (Measured
        # alone, MJX's block at 37 degrees and mu 0.62 reached 2 m/s^2 where Coulomb gives 1.1, and its speed
        # at the bottom was 22% above MuJoCo C's.)
        theta = jnp.deg2rad(run.params["angle"])
        coulomb = run.params["gravity"] * (jnp.sin(theta) - run.params["friction"] * jnp.cos(theta))
        brisk = (a == 0) | ((accel >= BRISK) & (coulomb >= BRISK))
        seen = measure.in_view(run.camera, run.camera_jitter, f.pos[:, a], jnp.sqrt(3.0) * run.world.size[a, 0])
        last = measure.shown_index_before(f.time, run.shown, jnp.inf)
        return {
            "slides": fact(shown_slide, cube & (shown_slide | stays) & seen[0] & seen[last]),
            "if_slippery": fact(twin_slides, cube & (twin_slides | twin_stays)),
            "speed_at_bottom": fact(v_foot, arrives & (t_foot > t_obs) & (frames_before >= 2) & brisk, t_foot),
            # Balls only: where a block ends depends on how it tips over the foot's edge, which MJX's and
            # MuJoCo C's box contacts resolve differently (centimetres apart).
            "floor_distance": fact(-x_later, (a == 0) & (x_later < 0.0) & (t_later <= run.end + 1e-6), t_later),
        }

    @classmethod
    def checks(cls, m, layout: SceneLayout):
        p, f, facts = m.params, m.frames, m.facts
        tan = np.tan(np.deg2rad(p["angle"]))
        slides, twin = facts["slides"], facts["if_slippery"]
        # Coulomb, away from the uncertain band: a block slides iff its friction is below the slope's tangent.
        twin_friction = np.maximum(p["friction"] * cls.config.slipperier, MIN_FRICTION)
        # Energy: the speed at the bottom cannot exceed free fall through the height lost by then.
        a = p["shape"].astype(int)
        b = np.arange(a.shape[0])
        g = -m.world.gravity[:, 2]
        bottom = facts["speed_at_bottom"]
        t = np.minimum(np.searchsorted(f.time[0], bottom.time), f.time.shape[1] - 1)
        lost = f.pos[b, 0, a, 2] - f.pos[b, t, a, 2]
        bound = np.sqrt(2 * g * np.maximum(lost, 0.0)) * 1.05 + 0.05
        # A ball that rolls without slipping (friction well above 2/7 tan) reaches sqrt(10/7 g h), h the drop of
        # its centre from the release to where it meets the floor (a radius above it).
        size = m.world.size[b, a, 0]
        drop = f.pos[b, 0, a, 2] - size
        rolling = np.sqrt(10.0 / 7.0 * g * drop)
        grips = (a == 0) & (p["friction"] > 2.0 / 7.0 * tan + 0.05)
        return [
            ("slides = a block's friction is below tan(angle) (Coulomb), away from the boundary",
             slides.value == (p["friction"] < tan), slides.valid & (np.abs(p["friction"] - tan) > 0.1), 0.97),
            ("twin 'slippery': a block slides iff its halved friction is below tan(angle)",
             twin.value == (twin_friction < tan), twin.valid & (np.abs(twin_friction - tan) > 0.1), 0.97),
            ("speed at the bottom <= free fall through the height lost (energy)", bottom.value <= bound,
             bottom.valid, 1.0),
            ("a ball rolling without slipping reaches the bottom at sqrt(10/7 g h)",
             np.abs(bottom.value - rolling) <= 0.05 * rolling + 0.02, bottom.valid & grips, 0.95),
        ]

    @classmethod
    def derive(cls, record: Record, layout: SceneLayout) -> dict[str, float]:
        a = int(record.params["shape"])
        sim = record.sim
        # MuJoCo C at every physics step: the speed at the last step before a ball's centre comes down to a
        # radius above the floor, or a cube's front bottom edge passes over the foot of the slope (x = 0).
        size = float(np.asarray(record.world.size)[a, 0])
        if a == 1:
            edge = sim.pos[:, a, 0] - derive.front_bottom_offset(sim.quat[:, a], size)
            there = np.flatnonzero(edge <= 0.0)
        else:
            there = np.flatnonzero(sim.pos[:, a, 2] <= size + derive.TOUCH)
        speed = float(derive.speed(sim, a)[max(there[0] - 1, 0)]) if there.size else np.nan
        later = record.observe_seconds + LATER
        x = derive.at(sim.time, sim.pos[:, a, 0], later)
        twin = record.twins["slippery"]
        # A block slides in the twin if it goes more than a block's size down the slope over twice the rollout.
        out = {"speed_at_bottom": speed, "floor_distance": float(-x),
               "if_slippery": float(derive.distance_moved(twin, a) > size) if a == 1 else np.nan}
        # Pixels: the block's mask moves between the first and the last frame shown.
        c = derive.centroids(record.seg, a)[0]
        out["slides"] = float(np.linalg.norm(c[-1] - c[0]) > 0.5) if np.isfinite(c[[0, -1]]).all() else np.nan
        return out


def _slid(f, a, until):
    """Whether object a has slid at least SLID down the slope by time `until`, turning less than TURNED while
    on the slope (what happens at the foot is not sliding down)."""
    upto = f.time <= until + 1e-6
    far = jnp.max(jnp.where(upto, measure.displacement(f, a), 0.0)) >= SLID
    on_slope = upto & (f.pos[:, a, 0] > 0.0)
    upright = jnp.max(jnp.where(on_slope, measure.rotation_angle(f, a), 0.0)) < jnp.deg2rad(TURNED)
    return far & upright


def _bottom_x(a, half_size, tilt):
    """x of the object's centre at the moment it reaches the bottom of the slope: a sphere of radius r rolling
    down touches the floor once its contact point is r tan(tilt / 2) up the slope; a cube reaches the foot
    when its front bottom edge does (its centre then a half-edge up the slope and a half-edge off it)."""
    cos, sin = jnp.cos(tilt), jnp.sin(tilt)
    sphere = half_size * (jnp.tan(tilt / 2) * cos - sin)
    cube = half_size * (cos - sin)
    return jnp.where(a == 1, cube, sphere)


def _foot(f, a, half_size, tilt):
    """When the object reaches the bottom of the slope (`_bottom_x`), its speed then, and how many recorded
    frames it spent on the slope before. The event falls between two frames, and the later one may already
    be past an impact, so the speed is carried from the last frame before it along the slope, with the
    slope's constant acceleration measured over the two frames before: v^2 = v0^2 + 2 a d."""
    # Path left along the slope, from the centre's x (which keeps decreasing through the landing's bounce).
    gap = (f.pos[:, a, 0] - _bottom_x(a, half_size, tilt)) / jnp.cos(tilt)
    there = gap <= 0.0
    k = jnp.argmax(there)  # first frame at or past the bottom
    k1, k2 = jnp.maximum(k - 1, 0), jnp.maximum(k - 2, 0)
    v = measure.speed(f, a)
    accel = (v[k1] - v[k2]) / jnp.maximum(f.time[k1] - f.time[k2], 1e-6)
    d = jnp.maximum(gap[k1], 0.0)
    v_bottom = jnp.sqrt(jnp.maximum(v[k1] ** 2 + 2 * accel * d, 0.0))
    tau = 2 * d / jnp.maximum(v_bottom + v[k1], 1e-6)
    arrives = there.any() & (k >= 2)
    return jnp.where(arrives, f.time[k1] + tau, jnp.inf), jnp.where(arrives, v_bottom, 0.0), k, accel


def _tilt(world):
    """The slope's angle (rad) from the ramp's pose in the world (a rotation about -y)."""
    q = world.static_quat[1]
    return -2.0 * jnp.arctan2(q[2], q[0])
