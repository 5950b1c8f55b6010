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

One implementation in torch ops, on the device of the inputs (numpy inputs: on the CPU, numpy out); the IoU in
float64 with the original's arithmetic. The subsampling draws its positions from ``rng`` on the host as the original
(only the fg and bg counts come to the host for it).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import given_or_default
from rpn.device_ops import anchor_map, as_tensor, bbox_overlaps, first_device, flat_nonzero, rng_choice
from rpn.proposal_layer import DEFAULT_RATIOS, num_anchors

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/anchor_target_layer.py'


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
    device = first_device(rpn_cls_score, gt_boxes, im_info)
    work = device or torch.device('cpu')

    shape = tuple(rpn_cls_score.shape)
    if len(shape) < 2:
        raise ValueError(f'{_WHERE}: rpn_cls_score must have a shape ending in (H, W), got {shape}')
    if len(shape) == 4 and shape[0] != 1:
        raise ValueError(f'{_WHERE}: only single-image batches are supported, rpn_cls_score has shape {shape}')
    height, width = int(shape[-2]), int(shape[-1])
    gt = as_tensor(gt_boxes, work)
    if gt.numel() == 0:
        gt = gt.reshape(0, 5)
    if gt.dim() != 2 or gt.shape[1] < 4:
        raise ValueError(f'{_WHERE}: gt_boxes must be (G, 5) [x1, y1, x2, y2, class], got shape {tuple(gt.shape)}')
    info = im_info.detach().cpu().numpy() if isinstance(im_info, torch.Tensor) else np.asarray(im_info)
    if info.ndim == 2:
        info = info[0]
    if info.ndim != 1 or info.shape[0] < 2:
        raise ValueError(f'{_WHERE}: im_info must be (1, 3) [[height, width, scale]], got shape {np.shape(im_info)}')

    train = cfg.TRAIN
    p = train.RPN_POSITIVE_WEIGHT
    if not (p < 0 or 0 < p < 1):
        raise ValueError(f'{_WHERE}: cfg.TRAIN.RPN_POSITIVE_WEIGHT must be < 0 or in (0, 1), got {p}')
    A = num_anchors(anchor_scales, anchor_ratios)
    with torch.no_grad():
        labels, bbox_targets, inside_w, outside_w = _anchor_targets(
            anchor_map(height, width, feat_stride, anchor_scales, anchor_ratios, work), gt, info, train, rng,
            float(allowed_border))

    # (H*W*A, ...) rows in (h, w, a) order -> the Caffe blob layouts
    labels = labels.reshape(1, height, width, A).permute(0, 3, 1, 2).reshape(1, 1, A * height, width)
    blobs = [x.reshape(1, height, width, 4 * A).permute(0, 3, 1, 2) for x in (bbox_targets, inside_w, outside_w)]
    out = tuple(x.contiguous() for x in (labels, *blobs))
    if device is None:
        return tuple(x.numpy() for x in out)  # type: ignore[return-value]
    return out  # type: ignore[return-value]


def _anchor_targets(all_anchors: torch.Tensor, gt: torch.Tensor, info: np.ndarray, train: Any, rng: Any,
                    allowed_border: float) -> Tuple[torch.Tensor, ...]:
    """The layer on one device: all_anchors (N, 4) float64, gt (G, >=4). Returns labels (N,), bbox_targets,
    inside and outside weights (N, 4), float32, on the anchors' device."""
    device = all_anchors.device
    total_anchors = all_anchors.shape[0]
    inds_inside = flat_nonzero((all_anchors[:, 0] >= -allowed_border) &
                               (all_anchors[:, 1] >= -allowed_border) &
                               (all_anchors[:, 2] < float(info[1] + allowed_border)) &
                               (all_anchors[:, 3] < float(info[0] + allowed_border)))
    anchors = all_anchors[inds_inside]
    n_inside = anchors.shape[0]
    G = gt.shape[0]

    if G > 0 and n_inside > 0:
        overlaps = bbox_overlaps(anchors, gt)
        argmax_overlaps = overlaps.argmax(dim=1)
        max_overlaps = overlaps.gather(1, argmax_overlaps[:, None]).squeeze(1)
        gt_max_overlaps = overlaps.max(dim=0).values
        # every anchor that reaches some gt box's best IoU (the original's gt_argmax_overlaps)
        reaches_best = overlaps == gt_max_overlaps[None, :]
        if train.RPN_GUARD_ZERO_OVERLAP:
            reaches_best &= gt_max_overlaps[None, :] > 0
        is_gt_best = reaches_best.any(dim=1)
    else:  # no gt (or no inside anchor): every inside anchor has IoU 0
        argmax_overlaps = torch.zeros((n_inside,), dtype=torch.long, device=device)
        max_overlaps = torch.zeros((n_inside,), dtype=torch.float64, device=device)
        is_gt_best = torch.zeros((n_inside,), dtype=torch.bool, device=device)

    labels = torch.full((n_inside,), -1.0, dtype=torch.float32, device=device)
    below_negative = max_overlaps < train.RPN_NEGATIVE_OVERLAP
    if not train.RPN_CLOBBER_POSITIVES:
        labels[below_negative] = 0
    labels[is_gt_best | (max_overlaps >= train.RPN_POSITIVE_OVERLAP)] = 1
    if train.RPN_CLOBBER_POSITIVES:
        labels[below_negative] = 0

    # subsample fg, then bg, to the batch size (the index sets in anchor order, as np.where gives them)
    num_fg = int(train.RPN_FG_FRACTION * train.RPN_BATCHSIZE)
    fg_inds = flat_nonzero(labels == 1)
    if fg_inds.numel() > num_fg:
        labels[rng_choice(rng, fg_inds, fg_inds.numel() - num_fg)] = -1
    kept_fg = min(int(fg_inds.numel()), num_fg)
    num_bg = train.RPN_BATCHSIZE - kept_fg
    bg_inds = flat_nonzero(labels == 0)
    if bg_inds.numel() > num_bg:
        labels[rng_choice(rng, bg_inds, bg_inds.numel() - num_bg)] = -1
    kept_bg = min(int(bg_inds.numel()), max(num_bg, 0))

    bbox_targets = torch.zeros((total_anchors, 4), dtype=torch.float32, device=device)
    if G > 0 and n_inside > 0:
        bbox_targets[inds_inside] = bbox_transform(anchors, gt[argmax_overlaps, :4].double()).float()

    is_fg = labels == 1
    is_bg = labels == 0
    p = train.RPN_POSITIVE_WEIGHT
    if p < 0:
        positive_weight = negative_weight = 1.0 / max(kept_fg + kept_bg, 1)
    else:
        positive_weight = p / max(kept_fg, 1)
        negative_weight = (1.0 - p) / max(kept_bg, 1)

    # back to all anchors: -1 labels, zero targets and weights outside the image
    all_labels = torch.full((total_anchors,), -1.0, dtype=torch.float32, device=device)
    all_labels[inds_inside] = labels
    inside_w = torch.zeros((total_anchors, 4), dtype=torch.float32, device=device)
    outside_w = torch.zeros((total_anchors, 4), dtype=torch.float32, device=device)
    inside_w[inds_inside[is_fg]] = torch.tensor(train.RPN_BBOX_INSIDE_WEIGHTS, dtype=torch.float32, device=device)
    outside_w[inds_inside[is_fg]] = positive_weight
    outside_w[inds_inside[is_bg]] = negative_weight
    return all_labels, bbox_targets, inside_w, outside_w
