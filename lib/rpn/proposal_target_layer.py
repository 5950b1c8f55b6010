"""RPN proposal target layer: sample the RoIs of one image for the Fast R-CNN head and give their targets.

The original's Caffe Python layer ``ProposalTargetLayer`` as one function, with its behaviour:
- the ground-truth boxes are appended to the proposals (batch index 0) as candidate RoIs;
- one image per call: ``rois_per_image = TRAIN.BATCH_SIZE`` (the original divides by a hard-coded
  ``num_images = 1``, not by IMS_PER_BATCH) and ``fg_rois_per_image = round(FG_FRACTION * rois_per_image)``
  (numpy round-half-to-even: 0.25 * 128 = 32);
- fg: best IoU >= FG_THRESH, up to fg_rois_per_image; bg: best IoU in [BG_THRESH_LO, BG_THRESH_HI), filling the
  rest of rois_per_image up to the number available (so fewer RoIs than BATCH_SIZE are possible); both drawn without
  replacement with ``rng.choice(inds, size=n, replace=False)`` -- the original's calls, made whenever there is at
  least one candidate (so even a full take is shuffled), fg first;
- labels: the class of the best-IoU gt box for fg, 0 for bg; the RoIs come fg first, then bg;
- targets ``bbox_transform(roi, its best-IoU gt)``, normalised as (t - BBOX_NORMALIZE_MEANS) / BBOX_NORMALIZE_STDS
  when TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED, written into the 4 columns [4c, 4c+4) of the RoI's class c
  (nothing for bg), inside weights TRAIN.BBOX_INSIDE_WEIGHTS there, outside weights (inside > 0).

Departure (the original crashes here): with no ground-truth box (G = 0) there is no object to be near, so every
proposal is a bg candidate whatever BG_THRESH_LO says; up to BATCH_SIZE of them are sampled, all with label 0 and zero
targets and weights. With no proposals either, the outputs are empty (S = 0).

Vectorised numpy (one IoU matrix, fancy indexing for the class expansion); torch inputs are brought to the CPU and
the outputs go back to their device.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import given_or_default
from utils.cython_bbox import bbox_overlaps

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/proposal_target_layer.py'


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def proposal_target_layer(rpn_rois: Array, gt_boxes: Array, num_classes: int, cfg: Optional[Any] = None,
                          rng: Any = None, sample: bool = True) -> Tuple[Array, Array, Array, Array, Array]:
    """Sampled RoIs and their Fast R-CNN training targets for one image.

    rpn_rois: (R, 5) [0, x1, y1, x2, y2] proposals (batch index 0 only; R may be 0).
    gt_boxes: (G, 5) [x1, y1, x2, y2, class] with class in 1..num_classes-1 (G may be 0).
    num_classes: K, the number of classes including background.
    cfg: configuration (None: config.py's defaults); reads cfg.TRAIN.BATCH_SIZE, FG_FRACTION, FG_THRESH,
        BG_THRESH_HI, BG_THRESH_LO, BBOX_NORMALIZE_TARGETS_PRECOMPUTED, BBOX_NORMALIZE_MEANS/STDS,
        BBOX_INSIDE_WEIGHTS.
    rng: source of the sampling, anything with numpy's ``choice(a, size, replace=False)`` (None: the global
        ``numpy.random``, as the original).
    sample: False returns every candidate (fg, in index order, then bg), unsampled and unshuffled, whatever
        BATCH_SIZE and FG_FRACTION say: the pool that TRAIN.OHEM picks the hardest RoIs from.

    Returns (rois (S, 5) [0, x1, y1, x2, y2], labels (S,), bbox_targets (S, 4K), bbox_inside_weights (S, 4K),
    bbox_outside_weights (S, 4K)), float32, fg RoIs first. rois and labels keep the inputs' float dtype (float32
    for the usual blobs). numpy out, unless rpn_rois or gt_boxes is a tensor: then tensors on the device of the
    first of them that is one.
    """
    cfg = given_or_default(cfg)
    if rng is None:
        rng = np.random
    device = next((x.device for x in (rpn_rois, gt_boxes) if isinstance(x, torch.Tensor)), None)
    train = cfg.TRAIN

    rois_in = _numpy(rpn_rois)
    gt = _numpy(gt_boxes)
    if rois_in.size == 0:
        rois_in = rois_in.reshape(0, 5)
    if gt.size == 0:
        gt = gt.reshape(0, 5)
    if rois_in.ndim != 2 or rois_in.shape[1] != 5:
        raise ValueError(f'{_WHERE}: rpn_rois must be (R, 5) [0, x1, y1, x2, y2], got shape {rois_in.shape}')
    if gt.ndim != 2 or gt.shape[1] != 5:
        raise ValueError(f'{_WHERE}: gt_boxes must be (G, 5) [x1, y1, x2, y2, class], got shape {gt.shape}')
    if num_classes < 1:
        raise ValueError(f'{_WHERE}: num_classes must be >= 1, got {num_classes}')
    G = gt.shape[0]
    if G and (gt[:, 4].min() < 0 or gt[:, 4].max() >= num_classes):
        raise ValueError(f'{_WHERE}: gt_boxes classes must lie in [0, {num_classes}), got '
                         f'{np.unique(gt[:, 4]).tolist()}')

    # gt boxes become candidates too
    all_rois = np.vstack((rois_in, np.hstack((np.zeros((G, 1), dtype=gt.dtype), gt[:, :4]))))
    if not np.all(all_rois[:, 0] == 0):
        raise ValueError(f'{_WHERE}: only single-image batches are supported: every rpn_rois[:, 0] must be 0')

    rois_per_image = int(train.BATCH_SIZE)  # / num_images, which the original fixes at 1
    fg_rois_per_image = int(np.round(train.FG_FRACTION * rois_per_image))

    if G > 0:
        overlaps = bbox_overlaps(np.ascontiguousarray(all_rois[:, 1:5], dtype=np.float64),
                                 np.ascontiguousarray(gt[:, :4], dtype=np.float64))
        gt_assignment = overlaps.argmax(axis=1)
        max_overlaps = overlaps.max(axis=1)
        labels = gt[gt_assignment, 4]
        fg_inds = np.where(max_overlaps >= train.FG_THRESH)[0]
        bg_inds = np.where((max_overlaps < train.BG_THRESH_HI) & (max_overlaps >= train.BG_THRESH_LO))[0]
    else:
        gt_assignment = np.zeros((all_rois.shape[0],), dtype=np.int64)
        labels = np.zeros((all_rois.shape[0],), dtype=all_rois.dtype)
        fg_inds = np.zeros((0,), dtype=np.int64)
        bg_inds = np.arange(all_rois.shape[0])

    if sample:
        fg_this_image = min(fg_rois_per_image, fg_inds.size)
        if fg_inds.size > 0:
            fg_inds = rng.choice(fg_inds, size=fg_this_image, replace=False)
        bg_this_image = min(rois_per_image - fg_this_image, bg_inds.size)
        if bg_inds.size > 0:
            bg_inds = rng.choice(bg_inds, size=bg_this_image, replace=False)
    else:
        fg_this_image = fg_inds.size

    keep_inds = np.append(fg_inds, bg_inds).astype(np.int64)
    labels = labels[keep_inds]
    labels[fg_this_image:] = 0
    rois = all_rois[keep_inds]
    S = keep_inds.size

    bbox_targets = np.zeros((S, 4 * num_classes), dtype=np.float32)
    bbox_inside_weights = np.zeros((S, 4 * num_classes), dtype=np.float32)
    fg_rows = np.where(labels > 0)[0]
    if fg_rows.size > 0:
        targets = bbox_transform(rois[fg_rows, 1:5], gt[gt_assignment[keep_inds[fg_rows]], :4])
        if train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
            targets = ((targets - np.array(train.BBOX_NORMALIZE_MEANS)) / np.array(train.BBOX_NORMALIZE_STDS))
        cols = 4 * labels[fg_rows].astype(np.int64)[:, None] + np.arange(4)[None, :]
        bbox_targets[fg_rows[:, None], cols] = targets.astype(np.float32)
        bbox_inside_weights[fg_rows[:, None], cols] = np.array(train.BBOX_INSIDE_WEIGHTS, dtype=np.float32)
    bbox_outside_weights = (bbox_inside_weights > 0).astype(np.float32)

    out = (rois, labels, bbox_targets, bbox_inside_weights, bbox_outside_weights)
    if device is not None:
        return tuple(torch.from_numpy(np.ascontiguousarray(b)).to(device) for b in out)  # type: ignore
    return out  # type: ignore[return-value]
