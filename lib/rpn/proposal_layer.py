"""RPN proposal layer: RPN objectness scores and box deltas -> object proposals (RoIs).

The original's Caffe Python layer ``ProposalLayer`` as one function. For every anchor of the feature map
(ordered (h, w, a)) it decodes the predicted deltas, clips the boxes to the image, drops boxes smaller than
``RPN_MIN_SIZE * im_scale`` (+1 widths), sorts by foreground score, keeps the top ``RPN_PRE_NMS_TOP_N``, runs NMS
at ``RPN_NMS_THRESH`` and keeps the top ``RPN_POST_NMS_TOP_N`` survivors. The four settings come from
``cfg[cfg_key]`` ('TRAIN' or 'TEST'); a top-N of 0 or less means no cap.

One implementation in torch ops, on the device of the inputs (numpy inputs: on the CPU, numpy out), in float32 with
the original's arithmetic, its sort order (numpy's ``argsort()[::-1]``, ties included) and the NMS back-end that
``nms_wrapper`` picks for that device (the CUDA kernel on a GPU). No gradient flows: the inputs are detached, as in
the original's "approximate joint training" where the layer's backward did nothing. On a GPU the kept-box count and
the NMS keep list are the only things that come to the host.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fast_rcnn.config import given_or_default
from fast_rcnn.nms_wrapper import nms
from rpn.device_ops import (anchor_map, as_tensor, cell_anchors, descending_order, first_device, flat_nonzero,
                             scalars)

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/proposal_layer.py'
_CPU = torch.device('cpu')


DEFAULT_RATIOS = (0.5, 1.0, 2.0)


def map_anchors(height: int, width: int, feat_stride: int = 16, anchor_scales: Sequence[float] = (8, 16, 32),
                anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> np.ndarray:
    """All anchors of a height x width feature map: (height * width * A, 4) float64 x1y1x2y2, ordered (h, w, a).
    Cached, read-only (``device_ops.anchor_map`` gives them on a device)."""
    anchors = anchor_map(height, width, feat_stride, anchor_scales, anchor_ratios, _CPU).numpy()
    anchors.setflags(write=False)
    return anchors


def num_anchors(anchor_scales: Sequence[float] = (8, 16, 32), anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> int:
    """A, the number of anchors per feature-map cell (the ratios times the scales)."""
    return int(cell_anchors(anchor_scales, anchor_ratios).shape[0])


def _check_inputs(prob_shape: Sequence[int], pred_shape: Sequence[int], A: int) -> None:
    if len(prob_shape) != 4 or prob_shape[0] != 1 or prob_shape[1] != 2 * A:
        raise ValueError(f'{_WHERE}: rpn_cls_prob_reshape must be (1, 2A, H, W) with A={A} anchors per cell, '
                         f'got {tuple(prob_shape)} (only single-image batches are supported)')
    if len(pred_shape) != 4 or pred_shape[0] != 1 or pred_shape[1] != 4 * A \
            or tuple(pred_shape[2:]) != tuple(prob_shape[2:]):
        raise ValueError(f'{_WHERE}: rpn_bbox_pred must be (1, 4A, H, W) = (1, {4 * A}, {prob_shape[2]}, '
                         f'{prob_shape[3]}), got {tuple(pred_shape)}')


def _im_info_row(im_info: Any) -> np.ndarray:
    """im_info (1, 3) or (3,) [height, width, scale] -> numpy (3,) row, keeping its dtype."""
    if isinstance(im_info, torch.Tensor):
        im_info = im_info.detach().cpu().numpy()
    info = np.asarray(im_info)
    if info.ndim == 2:
        info = info[0]
    if info.ndim != 1 or info.shape[0] < 3:
        raise ValueError(f'{_WHERE}: im_info must be (1, 3) [[height, width, scale]], got shape {np.shape(im_info)}')
    return info


def _settings(cfg: Any, cfg_key: str) -> Tuple[int, int, float, float]:
    if cfg_key not in ('TRAIN', 'TEST'):
        raise ValueError(f"{_WHERE}: cfg_key must be 'TRAIN' or 'TEST', got {cfg_key!r}")
    c = cfg[cfg_key]
    return c.RPN_PRE_NMS_TOP_N, c.RPN_POST_NMS_TOP_N, c.RPN_NMS_THRESH, c.RPN_MIN_SIZE


def proposal_layer(rpn_cls_prob_reshape: Array, rpn_bbox_pred: Array, im_info: Any, cfg_key: str,
                   feat_stride: int = 16, anchor_scales: Sequence[float] = (8, 16, 32),
                   cfg: Optional[Any] = None,
                   anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> Tuple[Array, Array]:
    """Proposals from the RPN outputs of one image.

    rpn_cls_prob_reshape: (1, 2A, H, W) softmax probabilities, the A background channels first, then the A
        foreground channels (channel A + a is anchor a's fg probability).
    rpn_bbox_pred: (1, 4A, H, W) deltas, channel 4a + k = (dx, dy, dw, dh)[k] of anchor a.
    im_info: (1, 3) [[height, width, scale]] of the network input (a (3,) row is accepted too).
    cfg_key: 'TRAIN' or 'TEST': which of cfg.TRAIN / cfg.TEST supplies RPN_PRE_NMS_TOP_N, RPN_POST_NMS_TOP_N,
        RPN_NMS_THRESH and RPN_MIN_SIZE.
    feat_stride: input pixels per feature-map cell. anchor_scales, anchor_ratios: the anchor set
        (A = len(ratios) * len(scales); cfg.ANCHOR_SCALES / ANCHOR_RATIOS in the network).
    cfg: the configuration to read (None: config.py's defaults).

    Returns (rois, scores): rois (R, 5) float32 [0, x1, y1, x2, y2] (batch index 0), scores (R, 1) float32,
    in descending score order. numpy in -> numpy out; torch in -> torch out on rpn_cls_prob_reshape's device.
    """
    cfg = given_or_default(cfg)
    pre_nms_top_n, post_nms_top_n, nms_thresh, min_size = _settings(cfg, cfg_key)
    A = num_anchors(anchor_scales, anchor_ratios)
    _check_inputs(tuple(rpn_cls_prob_reshape.shape), tuple(rpn_bbox_pred.shape), A)
    info = _im_info_row(im_info)
    device = first_device(rpn_cls_prob_reshape, rpn_bbox_pred)
    work = device or _CPU
    height, width = int(rpn_cls_prob_reshape.shape[2]), int(rpn_cls_prob_reshape.shape[3])
    geometry = _anchor_geometry(height, width, int(feat_stride), scalars(anchor_scales), scalars(anchor_ratios), work)
    min_size_scaled = min_size * info[2]  # same arithmetic (and dtype) as the original
    with torch.no_grad():
        rois, scores = _proposals(as_tensor(rpn_cls_prob_reshape, work), as_tensor(rpn_bbox_pred, work), info,
                                  geometry, A, float(min_size_scaled), pre_nms_top_n, post_nms_top_n, nms_thresh)
    if device is None:
        return rois.numpy(), scores.numpy()
    return rois, scores


@functools.lru_cache(maxsize=64)
def _anchor_geometry(height: int, width: int, feat_stride: int, anchor_scales: Tuple[float, ...],
                     anchor_ratios: Tuple[float, ...], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sizes, centres): (2, H*W*A) float32 rows (widths, heights) and (ctr_x, ctr_y) of the map's anchors on
    ``device``, computed as the original's bbox_transform_inv computes them from the anchors cast to float32;
    cached, do not modify."""
    boxes = anchor_map(height, width, feat_stride, anchor_scales, anchor_ratios, device).float().t()
    sizes = boxes[2:] - boxes[:2] + 1.0
    return sizes.contiguous(), (boxes[:2] + 0.5 * sizes).contiguous()


def _proposals(prob: torch.Tensor, pred: torch.Tensor, info: np.ndarray,
               geometry: Tuple[torch.Tensor, torch.Tensor], A: int, min_size: float, pre_nms_top_n: int,
               post_nms_top_n: int, nms_thresh: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The layer on tensors of one device: (rois (R, 5) float32, scores (R, 1) float32) there."""
    # bbox_transform_inv and clip_boxes of the original with the same float32 arithmetic, on (2, H*W*A) rows (x, y)
    # instead of (N, 4) columns; anchors ordered (h, w, a)
    height, width = prob.shape[2], prob.shape[3]
    scores = prob[0, A:].permute(1, 2, 0).reshape(-1)
    deltas = pred[0].float().reshape(A, 4, height, width).permute(1, 2, 3, 0).reshape(4, -1)
    sizes, centres = geometry
    pred_ctr = deltas[:2].mul(sizes).add_(centres)
    half_size = torch.exp(deltas[2:]).mul_(sizes).mul_(0.5)  # 0.5 * (e^d * w): the same bits, * 0.5 is exact
    lo = pred_ctr - half_size
    hi = pred_ctr.add_(half_size)  # the original's +1: x2 = ctr + w / 2, not x1 + w - 1
    for row, limit in ((0, float(info[1] - 1)), (1, float(info[0] - 1))):  # x into [0, W - 1], y into [0, H - 1]
        lo[row].clamp_(0, limit)
        hi[row].clamp_(0, limit)

    big_enough = (hi - lo + 1) >= min_size
    keep = flat_nonzero(big_enough[0] & big_enough[1])
    scores = scores.index_select(0, keep)
    order = descending_order(scores)
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    rows = keep.index_select(0, order)
    scores = scores.index_select(0, order)
    dets = torch.cat((lo.index_select(1, rows), hi.index_select(1, rows), scores[None].to(lo.dtype))).t()

    if dets.shape[0] > 0:
        kept = nms(dets.contiguous(), nms_thresh, max_keep=max(post_nms_top_n, 0))
        keep = torch.as_tensor(kept, dtype=torch.long, device=dets.device).reshape(-1)
    else:
        keep = torch.zeros((0,), dtype=torch.long, device=dets.device)
    if post_nms_top_n > 0:
        keep = keep[:post_nms_top_n]
    rois = dets.index_select(0, keep)
    rois[:, 4] = 0
    return rois.roll(1, dims=1).float(), scores.index_select(0, keep)[:, None].float()
