"""The Caffe SmoothL1Loss layer of caffe-fast-rcnn, as a differentiable torch function."""
from __future__ import annotations

import torch


def smooth_l1_loss(bbox_pred: torch.Tensor, bbox_targets: torch.Tensor, bbox_inside_weights: torch.Tensor,
                   bbox_outside_weights: torch.Tensor, sigma: float = 1.0, per_row: bool = False) -> torch.Tensor:
    """sum(w_out * f(w_in * (pred - target))) / pred.shape[0], a scalar; with ``per_row`` each row's sum, (R,)
    (TRAIN.OHEM ranks the RoIs by it).

    All four inputs have one shape: (1, 4A, H, W) for the RPN (so the sum is divided by 1) or (R, 4K) for
    Fast R-CNN (divided by R). f(x) = 0.5 * (sigma * x)^2 where |x| < 1 / sigma^2, else |x| - 0.5 / sigma^2.
    """
    if not (bbox_pred.shape == bbox_targets.shape == bbox_inside_weights.shape == bbox_outside_weights.shape):
        raise ValueError('smooth_l1_loss: shapes differ: pred {}, targets {}, inside {}, outside {}'.format(
            tuple(bbox_pred.shape), tuple(bbox_targets.shape), tuple(bbox_inside_weights.shape),
            tuple(bbox_outside_weights.shape)))
    sigma2 = sigma * sigma
    diff = bbox_inside_weights * (bbox_pred - bbox_targets)
    abs_diff = diff.abs()
    in_quadratic = abs_diff < 1.0 / sigma2
    loss = bbox_outside_weights * torch.where(in_quadratic, 0.5 * sigma2 * diff * diff, abs_diff - 0.5 / sigma2)
    if per_row:
        return loss.flatten(1).sum(1)
    return loss.sum() / max(bbox_pred.shape[0], 1)
