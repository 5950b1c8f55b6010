"""Box encoding and decoding as the original: +1 widths, centres at x1 + 0.5 w.

Each function takes numpy arrays or torch tensors and returns the same kind (on the input's device).
``bbox_transform_inv`` keeps the original's off-by-one: it returns ``x2 = ctr + 0.5 w`` (not ``x1 + w - 1``),
so decoding an encoding gives the ground truth plus (0, 0, 1, 1).
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def _lib(x: Array):
    return torch if isinstance(x, torch.Tensor) else np


def bbox_transform(ex_rois: Array, gt_rois: Array) -> Array:
    """Regression targets from boxes to ground truth.

    ex_rois: (N, 4) x1y1x2y2; gt_rois: (N, 4) x1y1x2y2. Returns (N, 4) (dx, dy, dw, dh), in ex_rois' dtype.
    """
    xp = _lib(ex_rois)
    ex_w = ex_rois[:, 2] - ex_rois[:, 0] + 1.0
    ex_h = ex_rois[:, 3] - ex_rois[:, 1] + 1.0
    ex_cx = ex_rois[:, 0] + 0.5 * ex_w
    ex_cy = ex_rois[:, 1] + 0.5 * ex_h
    gt_w = gt_rois[:, 2] - gt_rois[:, 0] + 1.0
    gt_h = gt_rois[:, 3] - gt_rois[:, 1] + 1.0
    gt_cx = gt_rois[:, 0] + 0.5 * gt_w
    gt_cy = gt_rois[:, 1] + 0.5 * gt_h
    targets = xp.stack(((gt_cx - ex_cx) / ex_w, (gt_cy - ex_cy) / ex_h,
                        xp.log(gt_w / ex_w), xp.log(gt_h / ex_h)), 1)
    return targets


def bbox_transform_inv(boxes: Array, deltas: Array) -> Array:
    """Apply (N, 4K) deltas to (N, 4) boxes: (N, 4K) x1y1x2y2 per class, in deltas' dtype.

    The boxes are cast to the deltas' dtype first, as the original. Empty input gives an empty (0, 4K) result.
    """
    if isinstance(deltas, torch.Tensor):
        if boxes.shape[0] == 0:
            return deltas.new_zeros((0, deltas.shape[1]))
        boxes = boxes.to(deltas.dtype)
        exp = torch.exp
    else:
        if boxes.shape[0] == 0:
            return np.zeros((0, deltas.shape[1]), dtype=deltas.dtype)
        boxes = boxes.astype(deltas.dtype, copy=False)
        exp = np.exp
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights

    dx = deltas[:, 0::4]
    dy = deltas[:, 1::4]
    dw = deltas[:, 2::4]
    dh = deltas[:, 3::4]
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = exp(dw) * widths[:, None]
    pred_h = exp(dh) * heights[:, None]

    if isinstance(deltas, torch.Tensor):
        pred = torch.empty_like(deltas)
    else:
        pred = np.zeros(deltas.shape, dtype=deltas.dtype)
    pred[:, 0::4] = pred_ctr_x - 0.5 * pred_w
    pred[:, 1::4] = pred_ctr_y - 0.5 * pred_h
    pred[:, 2::4] = pred_ctr_x + 0.5 * pred_w  # the original's +1: not x1 + w - 1
    pred[:, 3::4] = pred_ctr_y + 0.5 * pred_h
    return pred


def clip_boxes(boxes: Array, im_shape: Sequence[float]) -> Array:
    """Clip (N, 4K) boxes to the image: x into [0, W-1], y into [0, H-1]. im_shape: (H, W[, C]).

    Returns a new array/tensor of boxes' dtype (the input is not modified).
    """
    h_max = im_shape[0] - 1
    w_max = im_shape[1] - 1
    if isinstance(boxes, torch.Tensor):
        out = boxes.clone()
        out[:, 0::4] = boxes[:, 0::4].clamp(0, float(w_max))
        out[:, 1::4] = boxes[:, 1::4].clamp(0, float(h_max))
        out[:, 2::4] = boxes[:, 2::4].clamp(0, float(w_max))
        out[:, 3::4] = boxes[:, 3::4].clamp(0, float(h_max))
        return out
    out = boxes.copy()
    out[:, 0::4] = np.maximum(np.minimum(boxes[:, 0::4], w_max), 0)
    out[:, 1::4] = np.maximum(np.minimum(boxes[:, 1::4], h_max), 0)
    out[:, 2::4] = np.maximum(np.minimum(boxes[:, 2::4], w_max), 0)
    out[:, 3::4] = np.maximum(np.minimum(boxes[:, 3::4], h_max), 0)
    return out
