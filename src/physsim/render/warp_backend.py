"""The optional renderer backend on MuJoCo Warp (`mjx.render_with_segmentation`).

Same inputs and `Images` outputs as the JAX ray caster (`raycast.render`), so
the two can be swapped and compared. MuJoCo Warp renders a fixed number of
worlds per render context (its buffers live outside JAX), so a context is
built per (layout, camera, number of frames) and cached; every frame of the
batch is one Warp "world" whose geom poses come from the recorded trajectory.

Needs warp-lang and mujoco-warp (`pip install 'physsim[warp]'`); they run on
the CPU too, slowly, and compile their kernels once per process.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from physsim.render.camera import Camera
from physsim.render.raycast import CHECKER_DARK, CHECKER_SIZE, FAR, SKY, Images, geom_table
from physsim.sim.scene import SceneLayout, build_spec, compile_spec, warp_available

CAMERA_NAME = "physsim_view"


def require_warp() -> None:
    if not warp_available():
        raise ValueError("the 'warp' render backend needs warp-lang and mujoco-warp: pip install 'physsim[warp]'")


@functools.lru_cache(maxsize=32)
def render_model(layout: SceneLayout, camera: Camera) -> mujoco.MjModel:
    """The layout compiled with `camera` added as a fixed world camera (geom ids unchanged)."""
    geom_table(layout)  # the same geom-type check as the JAX renderer, so both refuse alike
    spec = build_spec(layout)
    eye, rot = camera.frame()
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.asarray(rot, np.float64).reshape(-1))
    spec.worldbody.add_camera(
        name=CAMERA_NAME,
        pos=np.asarray(eye, np.float64).tolist(),
        quat=quat.tolist(),
        fovy=float(camera.fovy),
        resolution=[camera.width, camera.height],
    )
    _checker_planes(spec, layout)
    model = compile_spec(spec)
    # MuJoCo's zfar is relative to the model extent; make it FAR metres, as in the JAX renderer.
    model.vis.map.zfar = FAR / model.stat.extent
    model.vis.map.znear = 1e-3 / model.stat.extent
    return model


def _checker_planes(spec: mujoco.MjSpec, layout: SceneLayout) -> None:
    """Gives every plane the JAX renderer's checker: CHECKER_SIZE tiles, darker ones scaled by CHECKER_DARK."""
    spec.add_texture(
        name="physsim_checker",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[1.0, 1.0, 1.0],
        rgb2=[CHECKER_DARK] * 3,
        width=2,
        height=2,
    )
    for s in layout.statics:
        if s.shape != "plane":
            continue
        material = spec.add_material(name=f"physsim_checker_{s.name}", rgba=list(s.rgba))
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "physsim_checker"
        material.texuniform = True
        material.texrepeat = [0.5 / CHECKER_SIZE, 0.5 / CHECKER_SIZE]
        spec.geom(s.name).material = material.name


class _Context:
    """A Warp render context for one (layout, camera, number of worlds)."""

    def __init__(self, layout: SceneLayout, camera: Camera, n_worlds: int, shadows: bool):
        mjm = render_model(layout, camera)
        self.model = mjx.put_model(mjm, impl="warp")
        posed = mujoco.MjData(mjm)
        mujoco.mj_forward(mjm, posed)  # light and camera frames; geoms are overwritten per frame
        self.data = mjx.put_data(mjm, posed, impl="warp")
        self.context = mjx.create_render_context(
            mjm,
            nworld=n_worlds,
            cam_res=(camera.width, camera.height),
            render_rgb=True,
            render_depth=True,
            render_seg=True,
            use_textures=True,
            use_shadows=shadows,
            use_ambient_lighting=True,
            enabled_geom_groups=[0, 1, 2],
            background_color=(*SKY, 1.0),
            enable_specular=False,
        )
        from mujoco.mjx.warp import render_context

        self.depth_adr = int(render_context.get(self.context.pytree()).depth_adr.numpy()[0])
        self.table = geom_table(layout)
        self.camera = camera
        self.n_worlds = n_worlds
        self.render = jax.jit(self._render)

    def _render(self, xpos, xmat, size, eye, cam_rot):
        """Flat batches: xpos (W, G, 3), xmat (W, G, 3, 3), size (W, G, 3), eye (W, 3), cam_rot (W, 3, 3)."""
        ctx = self.context.pytree()

        def one(geom_size, p, r, e, c):
            m = self.model.tree_replace({"geom_size": geom_size})
            d = self.data.replace(geom_xpos=p, geom_xmat=r, cam_xpos=e[None], cam_xmat=c[None])
            d = mjx.refit_bvh(m, d, ctx)
            return mjx.render_with_segmentation(m, d, ctx)[:3]

        rgb, depth, seg = jax.vmap(one)(size, xpos, xmat, eye, cam_rot)
        h, w = self.camera.height, self.camera.width
        rgb = mjx.get_rgb(ctx, 0, rgb)
        rgb = jnp.clip(jnp.round(rgb * 255.0), 0, 255).astype(jnp.uint8)
        # Raw planar depth in metres (get_depth would clamp it to [0, 1]); 0 where nothing was hit.
        depth = depth[:, self.depth_adr : self.depth_adr + h * w].reshape(-1, h, w)
        geom = mjx.get_segmentation(ctx, 0, seg)
        segment = jnp.asarray(self.table.segment)
        segmentation = jnp.where(geom >= 0, segment[jnp.clip(geom, 0)], -1).astype(jnp.int32)
        depth = jnp.where((geom >= 0) & (depth > 0), depth, jnp.inf).astype(jnp.float32)
        return rgb, depth, segmentation


@functools.lru_cache(maxsize=8)
def _context(layout: SceneLayout, camera: Camera, n_worlds: int, shadows: bool) -> _Context:
    return _Context(layout, camera, n_worlds, shadows)


def render(
    geom_xpos: jax.Array,
    geom_xmat: jax.Array,
    object_size: jax.Array,
    jitter: jax.Array | None = None,
    *,
    layout: SceneLayout,
    camera: Camera,
    shadows: bool = True,
) -> Images:
    """Batched frames with MuJoCo Warp; arguments and result as `raycast.render`."""
    require_warp()
    b, t, g = geom_xpos.shape[:3]
    if jitter is None:
        jitter = jnp.zeros((b, 3), jnp.float32)
    table = geom_table(layout)
    size = jnp.broadcast_to(jnp.asarray(table.static_size), (b, g, 3))
    size = size.at[:, table.object_geom].set(jnp.asarray(object_size, jnp.float32))
    eye, rot = jax.vmap(camera.frame)(jnp.asarray(jitter, jnp.float32))

    def per_frame(x):
        return jnp.repeat(x, t, axis=0)

    ctx = _context(layout, camera, b * t, shadows)
    rgb, depth, seg = ctx.render(
        jnp.asarray(geom_xpos, jnp.float32).reshape(b * t, g, 3),
        jnp.asarray(geom_xmat, jnp.float32).reshape(b * t, g, 3, 3),
        per_frame(size),
        per_frame(eye),
        per_frame(rot),
    )
    h, w = camera.height, camera.width
    return Images(
        rgb=rgb.reshape(b, t, h, w, 3), depth=depth.reshape(b, t, h, w), segmentation=seg.reshape(b, t, h, w)
    )
