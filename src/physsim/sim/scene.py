"""Scene layouts with a fixed number of object slots, compiled to MuJoCo and MJX models.

A `SceneLayout` is the static structure of a scene family: which free objects
exist (one body, one geom, one free joint each), which static geoms (floor,
ramps, walls) are fixed to the world, the physics timestep and the frame rate.
Everything that varies between worlds (masses, sizes, frictions, restitution,
poses, gravity) is a per-world value applied later by `physsim.sim.randomize`,
so one compiled program serves every world.

Contact model. Objects use MuJoCo's direct soft-contact reference
(`solref = (-stiffness, -damping)`) with a stiffness fixed by the timestep (a
contact lasts about `CONTACT_SUBSTEPS` physics steps) and a damping chosen per
object to give its restitution (see `physsim.sim.contact`). Objects have geom
priority 1 and static geoms 0, so an object's friction and restitution decide
its contacts with the environment; between two objects MuJoCo takes the larger
friction and the more damped (less bouncy) reference.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import mujoco
import numpy as np
from mujoco import mjx

from physsim import _names
from physsim.sim.contact import OBJECT_SOLIMP, contact_stiffness

OBJECT_SHAPES = {
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
}
STATIC_SHAPES = {"plane": mujoco.mjtGeom.mjGEOM_PLANE, **OBJECT_SHAPES}

# MuJoCo's timestep (s) and solver iterations unless a layout says otherwise: what every family used before each
# declared its own (`FamilyConfig`), and the reference the settings search compares cheaper settings with.
DEFAULT_PHYSICS = {"timestep": 0.002, "solver_iterations": 20, "linesearch_iterations": 10}

# Where unused object slots wait: far from every camera, resting on the floor.
PARKING_X = 50.0


@dataclasses.dataclass(frozen=True)
class ObjectSlot:
    """A free object: one body with a free joint and a single geom."""

    name: str
    shape: str
    size: tuple[float, float, float]
    rgba: tuple[float, float, float, float] = (0.8, 0.2, 0.2, 1.0)
    condim: int = 3


@dataclasses.dataclass(frozen=True)
class StaticGeom:
    """A geom welded to the world; its pose may still vary per world."""

    name: str
    shape: str
    size: tuple[float, float, float]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)


@dataclasses.dataclass(frozen=True)
class SceneLayout:
    """Static structure of a scene family; hashable so compiled models can be cached."""

    objects: tuple[ObjectSlot, ...]
    statics: tuple[StaticGeom, ...]
    timestep: float = DEFAULT_PHYSICS["timestep"]
    fps: float = 25.0
    solver_iterations: int = DEFAULT_PHYSICS["solver_iterations"]
    linesearch_iterations: int = DEFAULT_PHYSICS["linesearch_iterations"]

    def __post_init__(self):
        if not (self.timestep > 0 and np.isfinite(self.timestep)):
            raise ValueError(f"timestep={self.timestep} s must be in (0, inf)")
        if self.timestep > 0.01:
            raise ValueError(
                f"timestep={self.timestep} s is too coarse for stable contacts; allowed range (0, 0.01] s"
            )
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise ValueError(f"fps={self.fps} must be in (0, inf)")
        substeps = 1.0 / (self.fps * self.timestep)
        if abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
            raise ValueError(
                f"frame interval 1/fps={1 / self.fps:g} s is not a whole number of "
                f"timesteps ({self.timestep:g} s); pick fps so that 1/(fps*timestep) is an integer"
            )
        names = [o.name for o in self.objects] + [s.name for s in self.statics]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate geom names in layout: {names}")
        for o in self.objects:
            if o.shape not in OBJECT_SHAPES:
                raise ValueError(
                    f"object {o.name!r}: unknown shape {o.shape!r}; allowed {sorted(OBJECT_SHAPES)}"
                )
            if o.condim not in (1, 3, 4, 6):
                raise ValueError(f"object {o.name!r}: condim={o.condim} must be one of 1, 3, 4, 6")
        for s in self.statics:
            if s.shape not in STATIC_SHAPES:
                raise ValueError(
                    f"static geom {s.name!r}: unknown shape {s.shape!r}; allowed {sorted(STATIC_SHAPES)}"
                )

    @property
    def n_objects(self) -> int:
        return len(self.objects)

    @property
    def substeps(self) -> int:
        """Physics steps between two recorded frames."""
        return int(round(1.0 / (self.fps * self.timestep)))

    def replace(self, **changes) -> SceneLayout:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class SceneIndex:
    """Static (numpy) indices linking layout slots to MuJoCo ids.

    Entities are what contact events talk about: entity 0 is the environment
    (every static geom), entity i+1 is object slot i. Pairs are unordered
    entity pairs (i < j), numbered row by row.
    """

    object_body: np.ndarray  # (N,) body id of each slot
    object_geom: np.ndarray  # (N,) geom id of each slot
    object_qpos: np.ndarray  # (N, 7) qpos addresses of each free joint
    object_qvel: np.ndarray  # (N, 6) qvel addresses
    static_geom: np.ndarray  # (S,) geom ids of static geoms
    geom_entity: np.ndarray  # (ngeom,) entity of every geom
    pair_of_entities: np.ndarray  # (E, E) pair index, -1 on the diagonal
    pair_entities: np.ndarray  # (P, 2) the two entities of each pair

    @property
    def n_pairs(self) -> int:
        return len(self.pair_entities)


def _quat_ok(q: Sequence[float]) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q)


def build_spec(layout: SceneLayout) -> mujoco.MjSpec:
    """A fresh MjSpec of the layout (renderers add their camera to it before compiling)."""
    spec = mujoco.MjSpec()
    spec.option.timestep = layout.timestep
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    spec.option.iterations = layout.solver_iterations
    spec.option.ls_iterations = layout.linesearch_iterations
    # mjx.ray indexes the material table; a model with no material crashes it.
    spec.add_material(name="default", rgba=[1, 1, 1, 1])
    spec.worldbody.add_light(
        name="sun", pos=[0, 0, 6], dir=[0.3, 0.2, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
    )
    for s in layout.statics:
        spec.worldbody.add_geom(
            name=s.name,
            type=STATIC_SHAPES[s.shape],
            size=list(s.size),
            pos=list(s.pos),
            quat=list(_quat_ok(s.quat)),
            rgba=list(s.rgba),
            priority=0,
        )
    stiffness = contact_stiffness(layout.timestep)
    for i, o in enumerate(layout.objects):
        body = spec.worldbody.add_body(name=o.name, pos=[PARKING_X + 2.0 * i, 0.0, 1.0])
        body.add_freejoint(name=f"{o.name}_free")
        body.add_geom(
            name=f"{o.name}_geom",
            type=OBJECT_SHAPES[o.shape],
            size=list(o.size),
            rgba=list(o.rgba),
            mass=1.0,
            condim=o.condim,
            priority=1,
            solimp=list(OBJECT_SOLIMP),
            solref=[-stiffness, -0.0],
        )
    return spec


def compile_spec(spec: mujoco.MjSpec) -> mujoco.MjModel:
    model = spec.compile()
    # Static geom poses are randomised per world; MuJoCo C would ignore a new
    # geom_pos for geoms it compiled as sitting exactly on their body frame.
    model.geom_sameframe[model.geom_bodyid == 0] = 0
    return model


@functools.lru_cache(maxsize=64)
def build_mj_model(layout: SceneLayout) -> mujoco.MjModel:
    """Compiles the layout with MuJoCo; every slot is present, sizes nominal."""
    return compile_spec(build_spec(layout))


@functools.lru_cache(maxsize=64)
def scene_index(layout: SceneLayout) -> SceneIndex:
    m = build_mj_model(layout)
    n = layout.n_objects
    object_body = np.array(
        [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, o.name) for o in layout.objects], dtype=np.int32
    ).reshape(n)
    object_geom = np.array(
        [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"{o.name}_geom") for o in layout.objects],
        dtype=np.int32,
    ).reshape(n)
    joint = [m.body_jntadr[b] for b in object_body]
    object_qpos = np.array([m.jnt_qposadr[j] + np.arange(7) for j in joint], dtype=np.int32).reshape(n, 7)
    object_qvel = np.array([m.jnt_dofadr[j] + np.arange(6) for j in joint], dtype=np.int32).reshape(n, 6)
    static_geom = np.array(
        [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, s.name) for s in layout.statics], dtype=np.int32
    )
    geom_entity = np.zeros(m.ngeom, dtype=np.int32)
    geom_entity[object_geom] = np.arange(1, n + 1)
    n_entities = n + 1
    pair_of_entities = -np.ones((n_entities, n_entities), dtype=np.int32)
    pairs = []
    for a in range(n_entities):
        for b in range(a + 1, n_entities):
            pair_of_entities[a, b] = pair_of_entities[b, a] = len(pairs)
            pairs.append((a, b))
    return SceneIndex(
        object_body=object_body,
        object_geom=object_geom,
        object_qpos=object_qpos,
        object_qvel=object_qvel,
        static_geom=static_geom,
        geom_entity=geom_entity,
        pair_of_entities=pair_of_entities,
        pair_entities=np.array(pairs, dtype=np.int32).reshape(-1, 2),
    )


IMPLS = ("jax", "warp")


def warp_available() -> bool:
    try:
        import mujoco_warp  # noqa: F401
        import warp  # noqa: F401
    except ImportError:
        return False
    return True


def put_model(layout: SceneLayout, impl: str = "jax") -> mjx.Model:
    """Puts the compiled layout on the default device with the chosen MJX implementation.

    Raises ValueError when the implementation is unknown or unavailable, or when
    MJX cannot collide some pair of geom types in the layout.
    """
    if impl not in IMPLS:
        raise _names.unknown("MJX impl", impl, IMPLS)
    if impl == "warp" and not warp_available():
        raise ValueError("impl='warp' needs warp-lang and mujoco-warp: pip install 'physsim[warp]'")
    m = build_mj_model(layout)
    try:
        return mjx.put_model(m, impl=impl)
    except NotImplementedError as err:
        raise ValueError(f"MJX impl={impl!r} cannot simulate this scene: {err}") from err
