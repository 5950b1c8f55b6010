"""The pieces the three RPN layers share, as torch ops on the device of their inputs.

- ``as_tensor``: numpy or tensor in, a detached tensor on the wanted device out (numpy is wrapped, not copied, on
  the CPU);
- ``bbox_overlaps``: the IoU matrix of utils.cython_bbox (the original's bbox.pyx) in float64, with its arithmetic
  in its order, so thresholds such as IoU >= 0.7 fall on the same side for every box;
- ``anchor_map``: the anchors of a feature map on a device, kept there between iterations;
- ``rng_choice``: the original's ``rng.choice(inds, size, replace=False)`` with the index set on the device: only
  its length goes to the host, the drawn positions come back (numpy's RandomState draws the same positions for
  ``choice(n, ...)`` as for ``choice(inds, ...)``: a permutation of n, cut to size);
- ``descending_order``: the order of ``scores.argsort()[::-1]`` in numpy, the original's sort, on any device;
- ``flat_nonzero``: torch.nonzero of a 1-d mask, through numpy on the CPU (where torch's is slow).
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

from rpn.generate_anchors import generate_anchors, shift_anchors


def as_tensor(x: Any, device: torch.device, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` (numpy array, tensor, or nested sequence) as a detached tensor on ``device`` (``dtype``: cast to it)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())
    return t.to(device=device, dtype=dtype or t.dtype)


def first_device(*xs: Any) -> Optional[torch.device]:
    """The device of the first tensor among ``xs``; None when none is a tensor (numpy in, numpy out)."""
    return next((x.device for x in xs if isinstance(x, torch.Tensor)), None)


def bbox_overlaps(boxes: torch.Tensor, query_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of (N, >=4) boxes with (K, >=4) query boxes (x1y1x2y2, +1 widths; extra columns ignored) -> (N, K)
    float64, 0 where two boxes share no pixel; the Cython loop's arithmetic, in float64, on the boxes' device."""
    b = boxes[:, :4].double()
    q = query_boxes[:, :4].double()
    q_area = (q[:, 2] - q[:, 0] + 1) * (q[:, 3] - q[:, 1] + 1)
    b_area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    iw = torch.minimum(b[:, None, 2], q[None, :, 2]) - torch.maximum(b[:, None, 0], q[None, :, 0]) + 1
    ih = torch.minimum(b[:, None, 3], q[None, :, 3]) - torch.maximum(b[:, None, 1], q[None, :, 1]) + 1
    inter = iw * ih
    ua = b_area[:, None] + q_area[None, :] - inter
    return torch.where((iw > 0) & (ih > 0), inter / ua, torch.zeros((), dtype=torch.float64, device=b.device))


def scalars(values: Sequence[float]) -> Tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values).ravel().tolist())


@functools.lru_cache(maxsize=32)
def _cell_anchors(anchor_scales: Tuple[float, ...], anchor_ratios: Tuple[float, ...]) -> np.ndarray:
    anchors = generate_anchors(ratios=np.array(anchor_ratios), scales=np.array(anchor_scales))
    anchors.setflags(write=False)
    return anchors


def cell_anchors(anchor_scales: Sequence[float], anchor_ratios: Sequence[float]) -> np.ndarray:
    """The (A, 4) float64 anchors of one cell for these scales and ratios; cached, read-only."""
    return _cell_anchors(scalars(anchor_scales), scalars(anchor_ratios))


@functools.lru_cache(maxsize=64)
def _anchor_map(height: int, width: int, feat_stride: int, anchor_scales: Tuple[float, ...],
                anchor_ratios: Tuple[float, ...], device: torch.device) -> torch.Tensor:
    anchors = shift_anchors(_cell_anchors(anchor_scales, anchor_ratios), height, width, feat_stride)
    return torch.from_numpy(anchors).to(device)


def anchor_map(height: int, width: int, feat_stride: int, anchor_scales: Sequence[float],
               anchor_ratios: Sequence[float], device: torch.device) -> torch.Tensor:
    """All anchors of a height x width map, (height * width * A, 4) float64 x1y1x2y2 ordered (h, w, a), on
    ``device``. Cached per shape and device (both RPN layers ask for the same map every iteration): do not modify."""
    return _anchor_map(int(height), int(width), int(feat_stride), scalars(anchor_scales), scalars(anchor_ratios),
                       torch.device(device))


def rng_choice(rng: Any, inds: torch.Tensor, size: int) -> torch.Tensor:
    """``rng.choice(inds, size=size, replace=False)`` for a 1-d index tensor, on its device: the draw is made on
    the host over positions 0..len(inds)-1 (what numpy's choice does for an array too) and ``inds`` is indexed
    there."""
    positions = np.asarray(rng.choice(int(inds.numel()), size=int(size), replace=False), dtype=np.int64)
    return inds[torch.from_numpy(positions.reshape(-1)).to(inds.device)]


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices (K,) int64 of the True entries of a 1-d bool tensor, on its device (on the CPU through numpy's
    flatnonzero, ~8x as fast as torch.nonzero for the ~10^5 anchors of a map)."""
    if mask.device.type == 'cpu':
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


def descending_order(scores: torch.Tensor) -> torch.Tensor:
    """Indices of ``scores`` (N,) best first, in exactly the order of numpy's ``scores.argsort()[::-1]``.

    On the CPU numpy computes it (the same memory). Elsewhere a stable sort on the device gives it whenever the
    scores are distinct and not NaN (the order is then unique); with ties or NaNs, where numpy's unstable sort
    decides, the scores go to the host and numpy sorts them. Either way one small host copy at most."""
    if scores.device.type == 'cpu':
        host = scores.detach().numpy().argsort()[::-1]
        return torch.from_numpy(np.ascontiguousarray(host, dtype=np.int64))
    sorted_scores, order = torch.sort(scores, descending=True, stable=True)
    ambiguous = (sorted_scores[1:] == sorted_scores[:-1]).any() | torch.isnan(sorted_scores[:1]).any()
    if not bool(ambiguous):
        return order
    host = np.ascontiguousarray(scores.detach().cpu().numpy().argsort()[::-1], dtype=np.int64)
    return torch.from_numpy(host).to(scores.device)
