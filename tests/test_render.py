"""The JAX ray caster against geometry worked out by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from physsim.render import Camera, intersect, raycast, render_frame
from physsim.sim.scene import ObjectSlot, SceneLayout

# A ray from 3 m above, straight down onto each shape centred at the origin.
DOWN = (jnp.array([0.0, 0.0, 3.0]), jnp.array([[0.0, 0.0, -1.0]]))


@pytest.mark.parametrize(
    "kind, size, top",
    [("sphere", (0.5, 0, 0), 0.5), ("ellipsoid", (0.2, 0.3, 0.7), 0.7), ("box", (0.2, 0.3, 0.4), 0.4),
     ("cylinder", (0.3, 0.6, 0), 0.6), ("capsule", (0.3, 0.6, 0), 0.9), ("plane", (0, 0, 0.1), 0.0)],
)
def test_each_primitive_is_hit_at_its_top(kind, size, top):
    t, normal = intersect.BY_TYPE[kind](*DOWN, jnp.asarray(size, jnp.float32))
    np.testing.assert_allclose(np.asarray(t), [3.0 - top], atol=1e-5)
    np.testing.assert_allclose(np.asarray(normal), [[0.0, 0.0, 1.0]], atol=1e-5)


@pytest.mark.parametrize("kind, size", [("sphere", (0.5, 0, 0)), ("box", (0.2, 0.3, 0.4)), ("capsule", (0.3, 0.6, 0))])
def test_rays_that_pass_beside_a_shape_miss(kind, size):
    origin = jnp.array([2.0, 0.0, 3.0])
    t, _ = intersect.BY_TYPE[kind](origin, jnp.array([[0.0, 0.0, -1.0]]), jnp.asarray(size, jnp.float32))
    assert np.isinf(np.asarray(t)).all()


def test_plane_is_invisible_from_below_and_finite_planes_end():
    t, _ = intersect.plane(jnp.array([0.0, 0.0, -1.0]), jnp.array([[0.0, 0.0, 1.0]]), jnp.zeros(3))
    assert np.isinf(np.asarray(t)).all()
    t, _ = intersect.plane(jnp.array([2.0, 0.0, 1.0]), jnp.array([[0.0, 0.0, -1.0]]), jnp.array([1.0, 1.0, 0.1]))
    assert np.isinf(np.asarray(t)).all()


LONE = SceneLayout(objects=(ObjectSlot("thing", "sphere", (0.1, 0.1, 0.1)),), statics=())
BOX = SceneLayout(objects=(ObjectSlot("thing", "box", (0.1, 0.1, 0.1)),), statics=())
DISTANCE = 3.0
CAMERA = Camera(position=(0.0, -DISTANCE, 1.0), target=(0.0, 0.0, 1.0), fovy=30.0, width=128, height=128)


def _render_at_origin(layout, size):
    xpos = jnp.array([[0.0, 0.0, 1.0]])
    xmat = jnp.eye(3)[None]
    return render_frame(xpos, xmat, jnp.asarray([size], jnp.float32), layout=layout, camera=CAMERA)


def test_sphere_depth_and_projected_radius():
    r = 0.3
    img = _render_at_origin(LONE, (r, r, r))
    depth = np.asarray(img.depth)
    h, w = depth.shape
    centre = depth[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1]
    np.testing.assert_allclose(centre, DISTANCE - r, atol=2e-3)
    # On the optical axis the silhouette is a circle of radius f * tan(asin(r / D)).
    expected_px = CAMERA.focal_pixels() * np.tan(np.arcsin(r / DISTANCE))
    area = (np.asarray(img.segmentation) == 0).sum()
    np.testing.assert_allclose(np.sqrt(area / np.pi), expected_px, rtol=0.02)
    assert (np.asarray(img.segmentation)[np.isinf(depth)] == -1).all()


def test_box_face_on_silhouette_and_flat_depth():
    half = np.array([0.4, 0.2, 0.25])
    img = _render_at_origin(BOX, half)
    seg = np.asarray(img.segmentation) == 0
    f = CAMERA.focal_pixels()
    front = DISTANCE - half[1]
    cols = seg.any(axis=0).sum()
    rows = seg.any(axis=1).sum()
    assert abs(cols - 2 * f * half[0] / front) <= 1.0
    assert abs(rows - 2 * f * half[2] / front) <= 1.0
    # Depth is measured along the optical axis, so a face-on face is flat.
    np.testing.assert_allclose(np.asarray(img.depth)[seg], front, atol=1e-4)
    # The silhouette is the rectangle itself: it fills its bounding box.
    assert seg.sum() >= 0.97 * cols * rows


def test_shading_is_darker_away_from_the_light_and_sky_is_plain():
    img = _render_at_origin(LONE, (0.3, 0.3, 0.3))
    rgb = np.asarray(img.rgb).astype(float)
    seg = np.asarray(img.segmentation) == 0
    brightness = rgb.sum(axis=-1)
    assert brightness[seg].max() - brightness[seg].min() > 60  # lit side vs ambient side
    assert (np.asarray(img.rgb)[~seg] == np.round(np.asarray(raycast.SKY) * 255).astype(np.uint8)).all()


def test_undrawable_geom_type_fails_when_the_renderer_is_built(monkeypatch):
    monkeypatch.setattr(raycast, "_TYPE_NAMES", {k: v for k, v in raycast._TYPE_NAMES.items() if v != "box"})
    raycast.geom_table.cache_clear()
    with pytest.raises(ValueError, match="type mjGEOM_BOX, which the JAX renderer cannot draw"):
        raycast.geom_table(BOX)
    raycast.geom_table.cache_clear()


def test_bad_camera():
    with pytest.raises(ValueError, match="fovy"):
        Camera(fovy=0.0)
    with pytest.raises(ValueError, match="coincide"):
        Camera(position=(1.0, 1.0, 1.0), target=(1.0, 1.0, 1.0))


def test_unknown_render_backend_is_refused_by_name():
    from physsim.render import render_with

    with pytest.raises(ValueError, match="unknown render backend 'opengl'.*Known: jax"):
        render_with("opengl")
