"""Reference anchors: every (ratio, scale) window centred on a base_size x base_size cell."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _whctrs(anchor: np.ndarray) -> tuple[float, float, float, float]:
    """Width, height and centre of one (x1, y1, x2, y2) window, +1 convention."""
    w = anchor[2] - anchor[0] + 1
    h = anchor[3] - anchor[1] + 1
    return w, h, anchor[0] + 0.5 * (w - 1), anchor[1] + 0.5 * (h - 1)


def _mkanchors(ws: np.ndarray, hs: np.ndarray, x_ctr: float, y_ctr: float) -> np.ndarray:
    """Windows of widths ``ws`` and heights ``hs`` around one centre: (len(ws), 4)."""
    ws = ws[:, None]
    hs = hs[:, None]
    return np.hstack((x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1),
                      x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)))


def generate_anchors(base_size: int = 16, ratios: Sequence[float] = (0.5, 1, 2),
                     scales: Sequence[float] = 2 ** np.arange(3, 6)) -> np.ndarray:
    """Anchors for one feature-map cell: (len(ratios) * len(scales), 4) float64, x1y1x2y2, inclusive pixels.

    The base window is (0, 0, base_size-1, base_size-1). For each ratio r = h/w (ratio-major order) the base area
    is kept with ``w = round(sqrt(area / r))`` and ``h = round(w * r)`` (numpy's round-half-to-even), then each
    scale multiplies both sides.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    base = np.array([0, 0, base_size - 1, base_size - 1], dtype=np.float64)
    w, h, x_ctr, y_ctr = _whctrs(base)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    ratio_anchors = _mkanchors(ws, hs, x_ctr, y_ctr)
    out = []
    for anchor in ratio_anchors:
        aw, ah, ax, ay = _whctrs(anchor)
        out.append(_mkanchors(aw * scales, ah * scales, ax, ay))
    return np.vstack(out)


def shift_anchors(anchors: np.ndarray, height: int, width: int, feat_stride: int) -> np.ndarray:
    """All anchors of a height x width feature map: (height * width * A, 4), ordered (h, w, a).

    anchors: (A, 4) from generate_anchors; the shift of cell (y, x) is (x, y, x, y) * feat_stride.
    """
    shift_x = np.arange(width) * feat_stride
    shift_y = np.arange(height) * feat_stride
    sx, sy = np.meshgrid(shift_x, shift_y)
    shifts = np.stack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()), axis=1)
    return (shifts[:, None, :] + anchors[None, :, :]).reshape(-1, 4).astype(anchors.dtype, copy=False)
