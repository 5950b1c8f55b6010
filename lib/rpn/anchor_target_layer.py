"""RPN anchor target layer: classification labels and box-regression targets for every anchor of one image.

The original's Caffe Python layer ``AnchorTargetLayer`` as one function, with its behaviour:
- only anchors lying fully inside the image are labelled (``allowed_border`` 0); the rest get label -1 and zero
  targets and weights;
- label 1 (fg): for each ground-truth box, every anchor whose IoU equals that box's best IoU, plus every anchor with
  IoU >= RPN_POSITIVE_OVERLAP; label 0 (bg): IoU < RPN_NEGATIVE_OVERLAP with every box (assigned before the fg
  rules, or after them when RPN_CLOBBER_POSITIVES); -1 otherwise;
- the quirk of the first fg rule is kept: a ground-truth box that overlaps no inside anchor has best IoU 0, so every
  anchor with IoU 0 to it becomes fg (e.g. a tiny box in a corner). ``cfg.TRAIN.RPN_GUARD_ZERO_OVERLAP = True``
  (opt-in, not in the original) skips such boxes in that rule;
- at most ``int(RPN_FG_FRACTION * RPN_BATCHSIZE)`` fg are kept and ``RPN_BATCHSIZE - #fg`` bg, the others drawn
  at random without replacement and set to -1 (``rng.choice(inds, size=n_disable, replace=False)``, the original's
  call, so a seeded ``numpy.random.RandomState`` gives the original's draws);
- bbox targets ``bbox_transform(anchor, its best-IoU gt)`` for every inside anchor; inside weights
  RPN_BBOX_INSIDE_WEIGHTS on fg; outside weights 1/#sampled on fg and bg (RPN_POSITIVE_WEIGHT < 0), or p/#fg on fg
  and (1-p)/#bg on bg for RPN_POSITIVE_WEIGHT = p in (0, 1).

Departure (the original crashes here): with no ground-truth box (G = 0) every inside anchor has IoU 0, so all are
bg candidates; RPN_BATCHSIZE of them are sampled, with zero targets and outside weight 1/#sampled. Likewise, when
no anchor lies inside the image, every label is -1 and every target and weight 0.

The work is a few vectorised numpy passes over the inside anchors (the ~17k anchors of a 38x50 map take about a
millisecond or two); torch inputs are brought to the CPU for it and the outputs go back to their device.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import given_or_default
from rpn.proposal_layer import DEFAULT_RATIOS, map_anchors, num_anchors
from utils.cython_bbox import bbox_overlaps

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/anchor_target_layer.py'


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _unmap(data: np.ndarray, count: int, inds: np.ndarray, fill: float) -> np.ndarray:
    """Scatter rows ``data`` (len(inds), ...) back into a float32 (count, ...) array filled with ``fill``."""
    out = np.full((count,) + data.shape[1:], fill, dtype=np.float32)
    out[inds] = data
    return out


def _scatter_rows(blob: np.ndarray, inds: np.ndarray, value: Any, A: int) -> None:
    """blob (1, 4A, H, W): set the 4 coordinates of anchors ``inds`` (indices in (h, w, a) order) to ``value``
    (a scalar or (4,)); anchor i = (h W + w) A + a has coordinate k at [0, 4a + k, h, w]."""
    width = blob.shape[3]
    h, w, a = inds // (width * A), (inds // A) % width, inds % A
    blob[0, 4 * a[:, None] + np.arange(4), h[:, None], w[:, None]] = value


def anchor_target_layer(rpn_cls_score: Any, gt_boxes: Array, im_info: Any, feat_stride: int = 16,
                        anchor_scales: Sequence[float] = (8, 16, 32), cfg: Optional[Any] = None,
                        rng: Any = None, allowed_border: float = 0,
                        anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> Tuple[Array, Array, Array, Array]:
    """RPN training targets for one image.

    rpn_cls_score: anything with a ``.shape`` ending in (H, W) (the RPN score blob; only H and W are used).
    gt_boxes: (G, 5) [x1, y1, x2, y2, class] in input-image pixels (G may be 0).
    im_info: (1, 3) [[height, width, scale]] of the network input (a (3,) row is accepted too).
    feat_stride, anchor_scales, anchor_ratios: the anchor grid (A = len(ratios) * len(scales) anchors per cell).
    cfg: configuration (None: config.py's defaults); reads cfg.TRAIN.RPN_*.
    rng: source of the fg/bg subsampling, anything with numpy's ``choice(a, size, replace=False)``
        (None: the global ``numpy.random``, as the original).
    allowed_border: how far (pixels) an anchor may reach past the image and still be labelled; 0 as the original.

    Returns (labels (1, 1, A*H, W), bbox_targets (1, 4A, H, W), bbox_inside_weights (1, 4A, H, W),
    bbox_outside_weights (1, 4A, H, W)), all float32, in the Caffe layouts: label of anchor a at cell (h, w) is
    labels[0, 0, a*H + h, w] (1 fg, 0 bg, -1 ignored); its k-th target/weight is at [0, 4a + k, h, w].
    numpy out, unless rpn_cls_score, gt_boxes or im_info is a tensor: then tensors on the device of the first of
    them that is one.
    """
    cfg = given_or_default(cfg)
    if rng is None:
        rng = np.random
    device = next((x.device for x in (rpn_cls_score, gt_boxes, im_info) if isinstance(x, torch.Tensor)), None)

    shape = tuple(rpn_cls_score.shape)
    if len(shape) < 2:
        raise ValueError(f'{_WHERE}: rpn_cls_score must have a shape ending in (H, W), got {shape}')
    if len(shape) == 4 and shape[0] != 1:
        raise ValueError(f'{_WHERE}: only single-image batches are supported, rpn_cls_score has shape {shape}')
    height, width = int(shape[-2]), int(shape[-1])
    gt = _numpy(gt_boxes)
    if gt.size == 0:
        gt = gt.reshape(0, 5)
    if gt.ndim != 2 or gt.shape[1] < 4:
        raise ValueError(f'{_WHERE}: gt_boxes must be (G, 5) [x1, y1, x2, y2, class], got shape {gt.shape}')
    info = _numpy(im_info)
    if info.ndim == 2:
        info = info[0]
    if info.ndim != 1 or info.shape[0] < 2:
        raise ValueError(f'{_WHERE}: im_info must be (1, 3) [[height, width, scale]], got shape '
                         f'{np.shape(_numpy(im_info))}')

    train = cfg.TRAIN
    A = num_anchors(anchor_scales, anchor_ratios)
    all_anchors = map_anchors(height, width, feat_stride, anchor_scales, anchor_ratios)
    total_anchors = all_anchors.shape[0]

    inds_inside = np.where((all_anchors[:, 0] >= -allowed_border) &
                           (all_anchors[:, 1] >= -allowed_border) &
                           (all_anchors[:, 2] < info[1] + allowed_border) &
                           (all_anchors[:, 3] < info[0] + allowed_border))[0]
    anchors = all_anchors[inds_inside, :]
    n_inside = len(inds_inside)
    G = gt.shape[0]

    if G > 0 and n_inside > 0:
        overlaps = bbox_overlaps(np.ascontiguousarray(anchors, dtype=np.float64),
                                 np.ascontiguousarray(gt[:, :4], dtype=np.float64))
        argmax_overlaps = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(n_inside), argmax_overlaps]
        # per-gt maxima and the anchors that reach them, from a (G, n_inside) copy: numpy reduces a tall
        # (n_inside, G) array along its long axis ~10x slower. The anchors come out grouped by gt instead of in
        # anchor order, which changes nothing: they are only labelled fg.
        overlaps_t = np.ascontiguousarray(overlaps.T)
        gt_max_overlaps = overlaps_t.max(axis=1)
        if train.RPN_GUARD_ZERO_OVERLAP:
            useful = gt_max_overlaps > 0
            gt_argmax_overlaps = np.nonzero(overlaps_t[useful] == gt_max_overlaps[useful, None])[1]
        else:
            gt_argmax_overlaps = np.nonzero(overlaps_t == gt_max_overlaps[:, None])[1]
    else:  # no gt (or no inside anchor): every inside anchor has IoU 0
        argmax_overlaps = np.zeros((n_inside,), dtype=np.int64)
        max_overlaps = np.zeros((n_inside,), dtype=np.float64)
        gt_argmax_overlaps = np.zeros((0,), dtype=np.int64)

    labels = np.full((n_inside,), -1, dtype=np.float32)
    if not train.RPN_CLOBBER_POSITIVES:
        labels[max_overlaps < train.RPN_NEGATIVE_OVERLAP] = 0
    labels[gt_argmax_overlaps] = 1
    labels[max_overlaps >= train.RPN_POSITIVE_OVERLAP] = 1
    if train.RPN_CLOBBER_POSITIVES:
        labels[max_overlaps < train.RPN_NEGATIVE_OVERLAP] = 0

    # subsample fg, then bg, to the batch size
    num_fg = int(train.RPN_FG_FRACTION * train.RPN_BATCHSIZE)
    fg_inds = np.where(labels == 1)[0]
    if len(fg_inds) > num_fg:
        labels[rng.choice(fg_inds, size=(len(fg_inds) - num_fg), replace=False)] = -1
    num_bg = train.RPN_BATCHSIZE - np.sum(labels == 1)
    bg_inds = np.where(labels == 0)[0]
    if len(bg_inds) > num_bg:
        labels[rng.choice(bg_inds, size=(len(bg_inds) - num_bg), replace=False)] = -1

    if G > 0 and n_inside > 0:
        bbox_targets = bbox_transform(anchors, gt[argmax_overlaps, :4]).astype(np.float32, copy=False)
    else:
        bbox_targets = np.zeros((n_inside, 4), dtype=np.float32)

    is_fg = labels == 1
    is_bg = labels == 0
    p = train.RPN_POSITIVE_WEIGHT
    if p < 0:
        num_examples = int(np.sum(labels >= 0))
        positive_weight = negative_weight = 1.0 / max(num_examples, 1)
    else:
        if not 0 < p < 1:
            raise ValueError(f'{_WHERE}: cfg.TRAIN.RPN_POSITIVE_WEIGHT must be < 0 or in (0, 1), got {p}')
        positive_weight = p / max(int(np.sum(is_fg)), 1)
        negative_weight = (1.0 - p) / max(int(np.sum(is_bg)), 1)

    # back to all anchors, then to the Caffe blob layouts; the weights are zero but on the few hundred sampled
    # anchors, so those are scattered straight into (1, 4A, H, W)
    labels = _unmap(labels, total_anchors, inds_inside, fill=-1)
    bbox_targets = _unmap(bbox_targets, total_anchors, inds_inside, fill=0)
    labels = np.ascontiguousarray(labels.reshape((1, height, width, A)).transpose(0, 3, 1, 2)
                                  .reshape((1, 1, A * height, width)))
    bbox_targets = np.ascontiguousarray(bbox_targets.reshape((1, height, width, A * 4)).transpose(0, 3, 1, 2))
    bbox_inside_weights = np.zeros((1, 4 * A, height, width), dtype=np.float32)
    bbox_outside_weights = np.zeros((1, 4 * A, height, width), dtype=np.float32)
    fg, bg = inds_inside[is_fg], inds_inside[is_bg]
    _scatter_rows(bbox_inside_weights, fg, np.asarray(train.RPN_BBOX_INSIDE_WEIGHTS, dtype=np.float32), A)
    _scatter_rows(bbox_outside_weights, fg, positive_weight, A)
    _scatter_rows(bbox_outside_weights, bg, negative_weight, A)
    blobs = [bbox_targets, bbox_inside_weights, bbox_outside_weights]
    out = (labels, *blobs)
    if device is not None:
        return tuple(torch.from_numpy(b).to(device) for b in out)  # type: ignore[return-value]
    return out  # type: ignore[return-value]
