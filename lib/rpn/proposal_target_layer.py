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

One implementation in torch ops, on the device of the inputs (numpy inputs: on the CPU, numpy out); the IoU in
float64 with the original's arithmetic. The sampling draws its positions from ``rng`` on the host as the original
(only the fg and bg counts come to the host for it).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import given_or_default
from rpn.device_ops import as_tensor, bbox_overlaps, first_device, flat_nonzero, rng_choice

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/proposal_target_layer.py'


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
    device = first_device(rpn_rois, gt_boxes)
    work = device or torch.device('cpu')
    train = cfg.TRAIN

    rois_in = as_tensor(rpn_rois, work)
    gt = as_tensor(gt_boxes, work)
    if rois_in.numel() == 0:
        rois_in = rois_in.reshape(0, 5)
    if gt.numel() == 0:
        gt = gt.reshape(0, 5)
    if rois_in.dim() != 2 or rois_in.shape[1] != 5:
        raise ValueError(f'{_WHERE}: rpn_rois must be (R, 5) [0, x1, y1, x2, y2], got shape {tuple(rois_in.shape)}')
    if gt.dim() != 2 or gt.shape[1] != 5:
        raise ValueError(f'{_WHERE}: gt_boxes must be (G, 5) [x1, y1, x2, y2, class], got shape {tuple(gt.shape)}')
    if num_classes < 1:
        raise ValueError(f'{_WHERE}: num_classes must be >= 1, got {num_classes}')
    G = gt.shape[0]
    dtype = torch.promote_types(rois_in.dtype, gt.dtype)  # the gt boxes become candidates too
    all_rois = torch.cat((rois_in.to(dtype), torch.cat((gt.new_zeros((G, 1)), gt[:, :4]), dim=1).to(dtype)))
    bad_class = ((gt[:, 4] < 0) | (gt[:, 4] >= num_classes)).any()
    bad_index = (all_rois[:, 0] != 0).any()
    if work.type != 'cpu':  # checked on the device, without a host sync
        torch._assert_async(~bad_class, f'{_WHERE}: gt_boxes classes must lie in [0, {num_classes})')
        torch._assert_async(~bad_index, f'{_WHERE}: every rpn_rois[:, 0] must be 0 (one image per call)')
    elif bool(bad_class):
        raise ValueError(f'{_WHERE}: gt_boxes classes must lie in [0, {num_classes}), got '
                         f'{np.unique(gt[:, 4].numpy()).tolist()}')
    elif bool(bad_index):
        raise ValueError(f'{_WHERE}: only single-image batches are supported: every rpn_rois[:, 0] must be 0')
    with torch.no_grad():
        out = _sample_rois(all_rois, gt, int(num_classes), train, rng, sample)
    if device is None:
        return tuple(x.numpy() for x in out)  # type: ignore[return-value]
    return out  # type: ignore[return-value]


def _sample_rois(all_rois: torch.Tensor, gt: torch.Tensor, num_classes: int, train: Any, rng: Any,
                 sample: bool) -> Tuple[torch.Tensor, ...]:
    """The layer on one device: all_rois (N, 5) candidates (the proposals, then the gt boxes), gt (G, 5)."""
    device = all_rois.device
    rois_per_image = int(train.BATCH_SIZE)  # / num_images, which the original fixes at 1
    fg_rois_per_image = int(np.round(train.FG_FRACTION * rois_per_image))
    G = gt.shape[0]

    if G > 0:
        overlaps = bbox_overlaps(all_rois[:, 1:5], gt)
        gt_assignment = overlaps.argmax(dim=1)
        max_overlaps = overlaps.gather(1, gt_assignment[:, None]).squeeze(1)
        labels = gt[gt_assignment, 4].to(all_rois.dtype)
        fg_inds = flat_nonzero(max_overlaps >= train.FG_THRESH)
        bg_inds = flat_nonzero((max_overlaps < train.BG_THRESH_HI) & (max_overlaps >= train.BG_THRESH_LO))
    else:
        gt_assignment = torch.zeros((all_rois.shape[0],), dtype=torch.long, device=device)
        labels = all_rois.new_zeros((all_rois.shape[0],))
        fg_inds = torch.zeros((0,), dtype=torch.long, device=device)
        bg_inds = torch.arange(all_rois.shape[0], device=device)

    if sample:
        fg_this_image = min(fg_rois_per_image, int(fg_inds.numel()))
        if fg_inds.numel() > 0:
            fg_inds = rng_choice(rng, fg_inds, fg_this_image)
        bg_this_image = min(rois_per_image - fg_this_image, int(bg_inds.numel()))
        if bg_inds.numel() > 0:
            bg_inds = rng_choice(rng, bg_inds, bg_this_image)
    else:
        fg_this_image = int(fg_inds.numel())

    keep_inds = torch.cat((fg_inds, bg_inds))
    labels = labels[keep_inds]
    labels[fg_this_image:] = 0
    rois = all_rois[keep_inds]
    S = keep_inds.numel()

    bbox_targets = torch.zeros((S, 4 * num_classes), dtype=torch.float32, device=device)
    bbox_inside_weights = torch.zeros((S, 4 * num_classes), dtype=torch.float32, device=device)
    fg_rows = flat_nonzero(labels > 0)  # the first fg_this_image rows, less any gt of class 0
    if fg_rows.numel() > 0:
        targets = bbox_transform(rois[fg_rows, 1:5], gt[gt_assignment[keep_inds[fg_rows]], :4])
        if train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
            means = torch.tensor(train.BBOX_NORMALIZE_MEANS, dtype=torch.float64, device=device)
            stds = torch.tensor(train.BBOX_NORMALIZE_STDS, dtype=torch.float64, device=device)
            targets = (targets.double() - means) / stds
        cols = 4 * labels[fg_rows].long()[:, None] + torch.arange(4, device=device)[None, :]
        bbox_targets[fg_rows[:, None], cols] = targets.float()
        bbox_inside_weights[fg_rows[:, None], cols] = torch.tensor(train.BBOX_INSIDE_WEIGHTS, dtype=torch.float32,
                                                                   device=device)
    bbox_outside_weights = (bbox_inside_weights > 0).float()
    return rois, labels, bbox_targets, bbox_inside_weights, bbox_outside_weights
