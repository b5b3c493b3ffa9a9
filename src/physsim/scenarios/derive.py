"""NumPy measurements for the audit's independent routes (`Scenario.derive`).

Nothing here is shared with the facts the pipeline measures (`measure.py`,
JAX): contacts are read from geometry rather than from the solver's contact
list, times at the physics step of a float64 MuJoCo C rollout rather than at
frames, and what the model could see from the segmentation of the frames it
is shown. A derivation that merely restated a fact's formula could not
disagree with it; these can.
"""

from __future__ import annotations

import numpy as np

from physsim.sim.simulate import Frames

TOUCH = 2e-4  # m: soft contacts touch a little before the surfaces meet


def first(mask: np.ndarray, time: np.ndarray) -> float:
    """First time where `mask` holds, inf if never."""
    idx = np.flatnonzero(mask)
    return float(time[idx[0]]) if idx.size else np.inf


def at(time: np.ndarray, values: np.ndarray, t: float) -> np.ndarray:
    """`values` (T, ...) at time t by linear interpolation (t inside the recording)."""
    k = int(np.clip(np.searchsorted(time, t, side="right") - 1, 0, len(time) - 2))
    w = (t - time[k]) / (time[k + 1] - time[k])
    return (1 - w) * values[k] + w * values[k + 1]


def gap(sim: Frames, i: int, j: int, radius_i: float, radius_j: float) -> np.ndarray:
    """(T,) distance between the surfaces of balls i and j (m)."""
    return np.linalg.norm(sim.pos[:, i] - sim.pos[:, j], axis=-1) - radius_i - radius_j


def touch_time(sim: Frames, i: int, j: int, radius_i: float, radius_j: float) -> float:
    """When balls i and j first touch (geometry), inf if never."""
    return first(gap(sim, i, j, radius_i, radius_j) <= TOUCH, sim.time)


def floor_time(sim: Frames, i: int, radius: float) -> float:
    """When ball i first touches the floor (z = 0), inf if never."""
    return first(sim.pos[:, i, 2] - radius <= TOUCH, sim.time)


def distance_moved(sim: Frames, i: int, until: float = np.inf) -> float:
    """Largest distance of object i from its start up to time `until`."""
    keep = sim.time <= until + 1e-9
    return float(np.max(np.linalg.norm(sim.pos[keep, i] - sim.pos[0, i], axis=-1)))


def speed(sim: Frames, i: int) -> np.ndarray:
    return np.linalg.norm(sim.linvel[:, i], axis=-1)


def centroids(seg: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(F, 2) pixel centroid (row, column) of object i's mask in each frame (NaN where unseen), and (F,)
    its area in pixels."""
    mask = seg == i
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    rows, cols = np.indices(seg.shape[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (mask * rows).sum(axis=(1, 2)) / area
        c = (mask * cols).sum(axis=(1, 2)) / area
    return np.stack([r, c], axis=-1), area


def top_row(seg: np.ndarray, i: int) -> np.ndarray:
    """(F,) the highest image row of object i's mask (smaller is higher; NaN where unseen)."""
    mask = seg == i
    rows = np.where(mask, np.indices(seg.shape[1:])[0][None], np.inf).min(axis=(1, 2))
    return np.where(np.isfinite(rows), rows, np.nan)


def width(seg: np.ndarray, i: int) -> np.ndarray:
    """(F,) the widest row of object i's mask in pixels (its apparent size; 0 where unseen)."""
    return (seg == i).sum(axis=2).max(axis=1).astype(np.float64)


def front_bottom_offset(quat: np.ndarray, half_edge: float) -> np.ndarray:
    """(T,) how far in +x a cube's centre is from its edge that leads down the slope (-x) along the bottom
    face: the largest x-reach among its edges lying on the face that points most downwards."""
    out = []
    for q in quat:
        r = _rotation(q)
        down = int(np.argmax(np.abs(r[2])))  # the body axis closest to vertical
        sign = -np.sign(r[2, down])  # the face whose normal points down
        others = [j for j in range(3) if j != down]
        # centre - (face centre + the edge of that face farthest towards -x)
        face_x = sign * half_edge * r[0, down]
        edge_x = -half_edge * sum(abs(r[0, j]) for j in others)
        out.append(-(face_x + edge_x))
    return np.asarray(out)


def lowest_depth(quat: np.ndarray, half_edge: float) -> np.ndarray:
    """(T,) how far below its centre a cube's lowest corner is, from its orientation quaternions (T, 4)."""
    r = np.stack([np.array(_rotation(q)) for q in quat])  # (T, 3, 3)
    return half_edge * np.abs(r[:, 2, :]).sum(axis=-1)


def _rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
