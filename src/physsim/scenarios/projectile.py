"""Two balls launched side by side from the floor, each at its own speed and elevation.

Slot 0 (red) flies in the lane at y = -LANE, slot 1 (blue) at y = +LANE, both
from x = 0 towards +x, so "which goes farther / higher" is seen in one video.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from physsim.questions.templates import Template, times
from physsim.render.camera import Camera
from physsim.scenarios import derive, measure
from physsim.scenarios.base import Fact, FamilyConfig, Record, Run, Scenario, fact, register
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

LANE = 0.25  # m either side of y = 0

# Held out: faster launches, flatter or steeper, under stronger gravity. The flat launches must still be in the
# air after the window (0.2 s) and the steep ones land inside the rollout, also at half gravity: measured on 256
# worlds, launches at 3.8-4.5 m/s and 10-18 degrees landed inside the window, so that "which lands farther" was
# asked of 31% of worlds against 79% in distribution and "which rises higher" of 11% against 22%; at 4.0-5.4 m/s
# and 14-18 or 72-86 degrees 68% and 15%, and "which is launched more steeply" 42% against 57%.
PARAMS = (
    Param("speed", "m/s", "launch speed of each ball", train=(1.5, 3.5), ood=((4.0, 5.4),),
          valid=Interval(0.0, 20.0), per_object=True),
    Param("elevation", "deg", "launch angle above horizontal of each ball", train=(20.0, 70.0),
          ood=((14.0, 18.0), (72.0, 86.0)), valid=Interval(0.0, 90.0), per_object=True),
    mass_param("mass of each ball", per_object=True),
    Param("radius", "m", "radius of each ball", train=(0.08, 0.12), ood=((0.13, 0.16),),
          valid=Interval(0.01, 0.3), per_object=True),
    friction_param("sliding friction of each ball", (0.3, 0.8), per_object=True),
    restitution_param("bounciness on landing", (0.2, 0.7), per_object=True),
    gravity_param(ood=((12.0, 16.0),)),
)

BALLS = ("the red ball", "the blue ball")
DISTINCT = 0.1  # "farther" / "higher" are asked only when the two differ by at least 10%
STEEPER = 10.0  # deg: "steeper" is asked only when the launch angles, and the directions seen, differ this much

QUESTIONS = (
    Template("landing_point", "state", "number", "landing_point", (
        "How far from its launch point will the red ball first touch the floor?",
        "At what distance from where it was launched will the red ball land?",
    ), unit="m", rel_tol=0.05, abs_tol=0.03),
    Template("apex_height", "state", "number", "apex_height", (
        "How high above its launch point will the red ball rise?",
        "What is the greatest height above its start that the red ball will reach?",
    ), unit="m", rel_tol=0.05, abs_tol=0.015),
    Template("flight_time", "state", "number", "flight_time", (
        "How many seconds after its launch in the first frame will the red ball first touch the floor?",
        "The red ball is launched at the first frame: after how many seconds will it land?",
    ), unit="s", rel_tol=0.05, abs_tol=0.015),
    Template("landing_if_low_gravity", "counterfactual", "number", "landing_if_low_gravity", (
        "If gravity were <gravity> as strong, how far from its launch point would the red ball first touch the floor?",
        "With <gravity> the gravity, at what distance from where it was launched would the red ball land?",
    ), unit="m", rel_tol=0.05, abs_tol=0.03),
    Template("farther", "state", "choice", "farther", (
        "Which ball will first touch the floor farther from its launch point?",
        "Which ball will land farther away from where it was launched?",
    ), options=BALLS),
    Template("higher", "state", "choice", "higher", (
        "Which ball will rise higher?",
        "Which ball will reach the greater height?",
    ), options=BALLS),
    Template("steeper", "descriptive", "choice", "steeper", (
        "Which ball is launched at the steeper angle?",
        "Which ball leaves the floor more steeply?",
    ), options=BALLS, route="pixels"),
)


def _flight(f, layout: SceneLayout, i: int):
    """Landing time (first floor contact, inf if none), landing distance, apex rise and apex time of ball i,
    from its trajectory; the apex from the parabola through the highest recorded frame and its neighbours,
    and `apex_inside`: a recorded frame after the apex is still in flight (the apex happened in the
    rollout, it is not merely the last height recorded)."""
    landing = measure.first_touch(f, measure.pair(layout, None, i))
    lands = jnp.isfinite(landing)
    where = measure.at_time(f.pos[:, i], f.time, landing)
    distance = jnp.linalg.norm((where - f.pos[0, i])[:2])
    z = f.pos[:, i, 2]
    in_flight = f.time < jnp.where(lands, landing, jnp.inf)
    k = jnp.argmax(jnp.where(in_flight, z, -jnp.inf))
    after = jnp.minimum(k + 1, z.shape[0] - 1)
    apex_inside = (k >= 1) & (k + 1 < z.shape[0]) & in_flight[after]
    apex_time, apex = measure.peak(f.time, z, k)
    return landing, lands, distance, apex - z[0], apex_time, apex_inside


def _differ(a, b):
    return jnp.abs(a - b) >= DISTINCT * jnp.maximum(a, b)


def _direction(f, i, k):
    """Angle (deg) above horizontal of ball i's path from the first frame to frame k."""
    d = f.pos[k, i] - f.pos[0, i]
    return jnp.rad2deg(jnp.arctan2(d[2], jnp.linalg.norm(d[:2])))


@dataclasses.dataclass(frozen=True)
class ProjectileConfig(FamilyConfig):
    seconds: float = 2.0
    observe_seconds: float = 0.2
    gravity_factor: float = 0.5  # the counterfactual twin's gravity, as a share of the world's

    def __post_init__(self):
        super().__post_init__()
        self.check_factor("gravity_factor")

    def words(self) -> dict[str, str]:
        return {"gravity": times(self.gravity_factor)}


@register
class Projectile(Scenario):
    name = "projectile"
    description = "two balls launched side by side at random speeds and elevations"
    params = PARAMS
    # 8 solver / 4 line-search iterations keep every gate at 2 ms and at 2.5 ms (python -m physsim.settings;
    # benchmarks/physics_settings_cpu-2core.json); 2.5 ms was no faster per simulated second there (100 against
    # 103 world-s/s, one run each), so projectile shares chain's and collision's 2 ms: one setting fewer for the
    # closed-form rows to cover. 4 ms puts the apex 1.2% low.
    config = ProjectileConfig(solver_iterations=8, linesearch_iterations=4)
    questions = QUESTIONS
    twins = ("low_gravity",)

    @classmethod
    def layout(cls) -> SceneLayout:
        return SceneLayout(
            objects=(
                ObjectSlot("red_ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["red"]),
                ObjectSlot("blue_ball", "sphere", (0.08, 0.08, 0.08), rgba=PALETTE["blue"]),
            ),
            statics=(FLOOR,),
            fps=25.0,
            **cls.config.physics(),
        )

    @classmethod
    def camera(cls, width: int = 64, height: int = 64) -> Camera:
        # From above the lanes, so that the far ball is not hidden behind the near one (from 0.5 m up, their
        # images overlapped at launch in every world; from here they are apart in 97% of the second frames).
        return Camera(position=(0.7, -1.9, 1.8), target=(0.7, 0.0, 0.2), fovy=55.0, width=width, height=height)

    @classmethod
    def world(cls, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        r = p["radius"]
        w = default_world(layout, gravity=p["gravity"], mass=p["mass"], size=cube_sizes(layout, r),
                          friction=p["friction"], restitution=p["restitution"])
        phi = jnp.deg2rad(p["elevation"])
        zero = jnp.zeros(2)
        velocity = p["speed"][:, None] * jnp.stack([jnp.cos(phi), zero, jnp.sin(phi)], axis=-1)
        # Start just above the floor so the launch is not a contact.
        pos = jnp.stack([zero, jnp.array([-LANE, LANE]), r + 1e-3], axis=-1)
        return w.replace(pos=pos, linvel=velocity)

    @classmethod
    def intervene(cls, twin: str, world: WorldParams, p: dict[str, jax.Array], layout: SceneLayout) -> WorldParams:
        if twin == "low_gravity":
            return world.replace(gravity=cls.config.gravity_factor * world.gravity)
        return super().intervene(twin, world, p, layout)

    @classmethod
    def facts(cls, run: Run, layout: SceneLayout) -> dict[str, Fact]:
        t_obs, f = run.observe_seconds, run.frames
        red_land, red_lands, red_dist, red_apex, red_apex_t, red_apex_in = _flight(f, layout, 0)
        blue_land, blue_lands, blue_dist, blue_apex, blue_apex_t, blue_apex_in = _flight(f, layout, 1)
        _, low_lands, low_dist, *_ = _flight(run.twins["low_gravity"], layout, 0)
        both = red_lands & blue_lands
        red_apex_ok = red_apex_in & (red_apex_t > t_obs)
        blue_apex_ok = blue_apex_in & (blue_apex_t > t_obs)
        # Steeper: the launch elevations (what the question asks), where the paths seen over the first shown
        # interval point the same way by as much (gravity bends a slow ball's path within it).
        k = run.frame_stride
        launch = jnp.stack([_launch_angle(f, 0), _launch_angle(f, 1)])
        seen = jnp.stack([_direction(f, 0, k), _direction(f, 1, k)])
        steeper = jnp.argmax(launch)
        radius = run.world.size[:2, 0]
        visible = (measure.in_view(run.camera, run.camera_jitter, f.pos[:, :2], radius).all(axis=1)
                   & measure.apart_in_image(run.camera, run.camera_jitter, f.pos[:, 0], f.pos[:, 1], *radius))
        clear = ((jnp.abs(launch[0] - launch[1]) >= STEEPER) & (jnp.argmax(seen) == steeper)
                 & (jnp.abs(seen[0] - seen[1]) >= STEEPER) & (jnp.minimum(red_land, blue_land) > f.time[k])
                 & visible[0] & visible[k])
        return {
            "landing_point": fact(red_dist, red_lands & (red_land > t_obs), red_land),
            "apex_height": fact(red_apex, red_apex_ok, red_apex_t),
            "flight_time": fact(jnp.where(red_lands, red_land, 0.0), red_lands & (red_land > t_obs), red_land),
            "landing_if_low_gravity": fact(low_dist, low_lands & red_lands & (red_land > t_obs), red_land),
            "farther": fact(jnp.where(blue_dist > red_dist, 1, 0),
                            both & (jnp.minimum(red_land, blue_land) > t_obs) & _differ(red_dist, blue_dist)),
            "higher": fact(jnp.where(blue_apex > red_apex, 1, 0), red_apex_ok & blue_apex_ok & _differ(red_apex, blue_apex)),
            "steeper": fact(steeper, clear),
        }

    @classmethod
    def checks(cls, m, layout: SceneLayout):
        f, facts = m.frames, m.facts
        g = -m.world.gravity[:, 2]
        v = f.linvel[:, 0, 0]  # (B, 3) the red ball's launch velocity
        # Closed form, no drag: the ball starts 1 mm above touching the floor (z = r + 1e-3).
        t_land = (v[:, 2] + np.sqrt(v[:, 2] ** 2 + 2 * g * 1e-3)) / g
        distance = np.linalg.norm(v[:, :2], axis=-1) * t_land
        landing = facts["landing_point"]
        apex = facts["apex_height"]
        low = facts["landing_if_low_gravity"]
        return [
            (f"twin 'low_gravity': the landing distance scales by 1 / {cls.config.gravity_factor:g} (same launch, "
             "gravity scaled, no drag)", np.abs(low.value / np.maximum(landing.value, 1e-6) - 1 / cls.config.gravity_factor)
             <= 0.05 / cls.config.gravity_factor, low.valid, 0.95),
            ("landing point = |v_h| (v_z + sqrt(v_z^2 + 2 g dz)) / g of the launch (no drag)",
             np.abs(landing.value - distance) <= 0.02 * distance + 0.01, landing.valid, 0.97),
            ("flight time = (v_z + sqrt(v_z^2 + 2 g dz)) / g", np.abs(facts["flight_time"].value - t_land) <= 0.01,
             facts["flight_time"].valid, 0.97),
            ("apex height = v_z^2 / 2g of the launch (no drag)", np.abs(apex.value - v[:, 2] ** 2 / (2 * g))
             <= 0.02 * v[:, 2] ** 2 / (2 * g) + 0.005, apex.valid, 0.97),
        ]

    @classmethod
    def derive(cls, record: Record, layout: SceneLayout) -> dict[str, float]:
        radius = np.asarray(record.world.size)[:2, 0]

        def flight(sim, i):
            """Landing distance and time (floor contact from geometry) and highest rise, at every physics step."""
            t = derive.floor_time(sim, i, radius[i])
            if not np.isfinite(t):
                return np.nan, np.nan, np.nan
            where = derive.at(sim.time, sim.pos[:, i], t)
            rise = np.max(sim.pos[sim.time <= t, i, 2]) - sim.pos[0, i, 2]
            return float(np.linalg.norm(where[:2] - sim.pos[0, i, :2])), t, float(rise)

        red_dist, red_t, red_rise = flight(record.sim, 0)
        blue_dist, _, blue_rise = flight(record.sim, 1)
        low_dist, _, _ = flight(record.twins["low_gravity"], 0)
        # Pixels: direction of each ball's path between the first two frames shown.
        angles = []
        for i in (0, 1):
            c = derive.centroids(record.seg, i)[0]
            d_row, d_col = c[1] - c[0]
            angles.append(np.degrees(np.arctan2(-d_row, abs(d_col))))
        return {
            "landing_point": red_dist, "flight_time": red_t, "apex_height": red_rise,
            "landing_if_low_gravity": low_dist,
            "farther": float(blue_dist > red_dist) if np.isfinite(red_dist + blue_dist) else np.nan,
            "higher": float(blue_rise > red_rise) if np.isfinite(red_rise + blue_rise) else np.nan,
            "steeper": float(np.argmax(angles)) if np.isfinite(angles).all() else np.nan,
        }


def _launch_angle(f, i):
    """Elevation (deg) of ball i's velocity in the first frame."""
    v = f.linvel[0, i]
    return jnp.rad2deg(jnp.arctan2(v[2], jnp.linalg.norm(v[:2])))
