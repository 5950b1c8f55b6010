"""The layers the detector calls, gathered in one place: RPN layers, RoI pooling, losses.

RoI pooling uses the project's ``roi_pooling.RoIPool`` (Caffe's algorithm, C++/CUDA) when it is built, else
``torchvision.ops.RoIPool`` (the same algorithm on CPU). ``POOLING_MODE: align`` opts into RoIAlign
(``roi_pooling.RoIAlign``: torchvision's semantics, 2x2 points per bin, our CPU kernels).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.ops

from fast_rcnn.losses import smooth_l1_loss  # noqa: F401  (re-exported for the model)
from rpn.anchor_target_layer import anchor_target_layer  # noqa: F401
from rpn.proposal_layer import proposal_layer  # noqa: F401
from rpn.proposal_target_layer import proposal_target_layer  # noqa: F401


def make_roi_pool(pooled_size: int, spatial_scale: float, mode: str = 'pool') -> nn.Module:
    """RoI pooling module: (features (1,C,H,W), rois (R,5) [0,x1,y1,x2,y2]) -> (R, C, s, s)."""
    if mode == 'pool':
        try:
            from roi_pooling import RoIPool
        except ImportError:
            RoIPool = None
        if RoIPool is not None:
            return RoIPool(pooled_size, pooled_size, spatial_scale)
        return torchvision.ops.RoIPool((pooled_size, pooled_size), spatial_scale)
    if mode == 'align':
        from roi_pooling import RoIAlign
        return RoIAlign(pooled_size, pooled_size, spatial_scale, sampling_ratio=2, aligned=False)
    raise ValueError("POOLING_MODE must be 'pool' or 'align', got {!r}".format(mode))


def softmax_loss_ignore(score: torch.Tensor, labels: torch.Tensor, ignore_label: int = -1) -> torch.Tensor:
    """Caffe SoftmaxWithLoss with ignore_label and VALID normalisation.

    score: (N, C, *) logits; labels: (N, *) int64 with ``ignore_label`` for ignored positions.
    Returns the summed cross entropy over non-ignored positions divided by max(1, their count).
    """
    n, c = score.shape[:2]
    # only the non-ignored positions (the RPN's 256 sampled anchors of ~60000) go through the softmax, so its
    # forward and backward do not sweep the whole map
    rows = score.reshape(n, c, -1).transpose(1, 2).reshape(-1, c)
    labels = labels.reshape(-1)
    if rows.shape[0] != labels.shape[0]:
        raise ValueError('softmax_loss_ignore: {} labels for scores of shape {}'.format(
            labels.shape[0], tuple(score.shape)))
    keep = (labels != ignore_label).nonzero().squeeze(1)
    total = nn.functional.cross_entropy(rows[keep], labels[keep], reduction='sum')
    return total / max(int(keep.numel()), 1)
