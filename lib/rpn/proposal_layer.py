"""RPN proposal layer: RPN objectness scores and box deltas -> object proposals (RoIs).

The original's Caffe Python layer ``ProposalLayer`` as one function. For every anchor of the feature map
(ordered (h, w, a)) it decodes the predicted deltas, clips the boxes to the image, drops boxes smaller than
``RPN_MIN_SIZE * im_scale`` (+1 widths), sorts by foreground score, keeps the top ``RPN_PRE_NMS_TOP_N``, runs NMS
at ``RPN_NMS_THRESH`` and keeps the top ``RPN_POST_NMS_TOP_N`` survivors. The four settings come from
``cfg[cfg_key]`` ('TRAIN' or 'TEST'); a top-N of 0 or less means no cap.

Numpy inputs give numpy outputs, computed exactly as the original (float32 throughout). Torch inputs give torch
outputs on the scores' device, computed there with torch ops and the NMS back-end that ``nms_wrapper`` picks for
that device (the CUDA kernel on a GPU). No gradient flows: the inputs are detached, as in the original's
"approximate joint training" where the layer's backward did nothing.

Ties in score: the numpy path sorts with the original's own expression (``scores.argsort()[::-1]``), so it keeps
numpy's order. The torch path uses a stable ascending sort reversed, i.e. equal scores come out in descending anchor
index order -- what the numpy expression gives whenever numpy's sort happens to be stable.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fast_rcnn.bbox_transform import bbox_transform_inv, clip_boxes
from fast_rcnn.config import given_or_default
from fast_rcnn.nms_wrapper import nms
from rpn.generate_anchors import generate_anchors, shift_anchors

Array = Union[np.ndarray, torch.Tensor]

_WHERE = 'rpn/proposal_layer.py'


DEFAULT_RATIOS = (0.5, 1.0, 2.0)


def _tuple(values: Sequence[float]) -> Tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values).ravel().tolist())


@functools.lru_cache(maxsize=32)
def _cell_anchors(anchor_scales: Tuple[float, ...], anchor_ratios: Tuple[float, ...]) -> np.ndarray:
    """The (A, 4) float64 anchors of one cell for these scales and ratios; cached, read-only."""
    anchors = generate_anchors(ratios=np.array(anchor_ratios), scales=np.array(anchor_scales))
    anchors.setflags(write=False)
    return anchors


def map_anchors(height: int, width: int, feat_stride: int = 16, anchor_scales: Sequence[float] = (8, 16, 32),
                anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> np.ndarray:
    """All anchors of a height x width feature map: (height * width * A, 4) float64 x1y1x2y2, ordered (h, w, a).

    Cached (both RPN layers ask for the same map every iteration) and read-only."""
    return _map_anchors(int(height), int(width), int(feat_stride), _tuple(anchor_scales), _tuple(anchor_ratios))


@functools.lru_cache(maxsize=64)
def _map_anchors(height: int, width: int, feat_stride: int, anchor_scales: Tuple[float, ...],
                 anchor_ratios: Tuple[float, ...]) -> np.ndarray:
    anchors = shift_anchors(_cell_anchors(anchor_scales, anchor_ratios), height, width, feat_stride)
    anchors.setflags(write=False)
    return anchors


def num_anchors(anchor_scales: Sequence[float] = (8, 16, 32), anchor_ratios: Sequence[float] = DEFAULT_RATIOS) -> int:
    """A, the number of anchors per feature-map cell (the ratios times the scales)."""
    return int(_cell_anchors(_tuple(anchor_scales), _tuple(anchor_ratios)).shape[0])


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
    height, width = int(rpn_cls_prob_reshape.shape[2]), int(rpn_cls_prob_reshape.shape[3])
    anchors = map_anchors(height, width, feat_stride, anchor_scales, anchor_ratios)
    min_size_scaled = min_size * info[2]  # same arithmetic (and dtype) as the original
    if isinstance(rpn_cls_prob_reshape, torch.Tensor) or isinstance(rpn_bbox_pred, torch.Tensor):
        return _proposals_torch(rpn_cls_prob_reshape, rpn_bbox_pred, info, anchors, A, min_size_scaled,
                                pre_nms_top_n, post_nms_top_n, nms_thresh)
    geometry = _anchor_geometry(height, width, int(feat_stride), _tuple(anchor_scales), _tuple(anchor_ratios))
    return _proposals_numpy(np.asarray(rpn_cls_prob_reshape), np.asarray(rpn_bbox_pred), info, anchors, A,
                            min_size_scaled, pre_nms_top_n, post_nms_top_n, nms_thresh, geometry, cfg)


@functools.lru_cache(maxsize=64)
def _anchor_geometry(height: int, width: int, feat_stride: int, anchor_scales: Tuple[float, ...],
                     anchor_ratios: Tuple[float, ...]) -> Tuple[np.ndarray, ...]:
    """(widths, heights, ctr_x, ctr_y) of the map's anchors, float32 (H*W*A,) each, computed exactly as
    bbox_transform_inv computes them from the anchors cast to float32; cached, read-only."""
    boxes = _map_anchors(height, width, feat_stride, anchor_scales, anchor_ratios).astype(np.float32)
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    out = (widths, heights, boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights)
    for a in out:
        a.setflags(write=False)
    return out


def _proposals_numpy(prob: np.ndarray, pred: np.ndarray, info: np.ndarray, anchors: np.ndarray, A: int,
                     min_size: Any, pre_nms_top_n: int, post_nms_top_n: int, nms_thresh: float,
                     geometry: Tuple[np.ndarray, ...], cfg) -> Tuple[np.ndarray, np.ndarray]:

    # bbox_transform_inv and clip_boxes of the original, on one contiguous (H*W*A,) row per coordinate instead of
    # (N, 4) columns (the same float32 arithmetic, a few times faster); rows ordered (h, w, a), like the anchors
    height, width = prob.shape[2], prob.shape[3]
    scores = prob[0, A:, :, :].transpose((1, 2, 0)).reshape((-1, 1))
    dx, dy, dw, dh = pred.astype(np.float32, copy=False).reshape((A, 4, height, width)).transpose(
        (1, 2, 3, 0)).reshape((4, -1))
    widths, heights, ctr_x, ctr_y = geometry
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    pred_w = np.exp(dw) * widths
    pred_h = np.exp(dh) * heights
    h_max, w_max = info[0] - 1, info[1] - 1
    x1 = np.maximum(np.minimum(pred_ctr_x - 0.5 * pred_w, w_max), 0)
    y1 = np.maximum(np.minimum(pred_ctr_y - 0.5 * pred_h, h_max), 0)
    x2 = np.maximum(np.minimum(pred_ctr_x + 0.5 * pred_w, w_max), 0)  # the original's +1: not x1 + w - 1
    y2 = np.maximum(np.minimum(pred_ctr_y + 0.5 * pred_h, h_max), 0)

    ws = x2 - x1 + 1
    hs = y2 - y1 + 1
    keep = np.where((ws >= min_size) & (hs >= min_size))[0]
    scores = scores[keep]

    order = scores.ravel().argsort()[::-1]
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    rows = keep[order]
    proposals = np.stack((x1[rows], y1[rows], x2[rows], y2[rows]), axis=1)
    scores = scores[order]

    if proposals.shape[0] > 0:
        keep = np.asarray(nms(np.hstack((proposals, scores)), nms_thresh, cfg=cfg, max_keep=max(post_nms_top_n, 0)),
                          dtype=np.int64).reshape(-1)
    else:
        keep = np.zeros((0,), dtype=np.int64)
    if post_nms_top_n > 0:
        keep = keep[:post_nms_top_n]
    proposals = proposals[keep, :]
    scores = scores[keep]

    rois = np.hstack((np.zeros((proposals.shape[0], 1), dtype=np.float32),
                      proposals.astype(np.float32, copy=False)))
    return rois, scores.astype(np.float32, copy=False)


def _proposals_torch(prob: Array, pred: Array, info: np.ndarray, anchors_np: np.ndarray, A: int,
                     min_size: Any, pre_nms_top_n: int, post_nms_top_n: int,
                     nms_thresh: float) -> Tuple[torch.Tensor, torch.Tensor]:

    with torch.no_grad():
        if isinstance(prob, torch.Tensor):
            prob = prob.detach()
            device = prob.device
            pred = torch.as_tensor(pred, device=device).detach()
        else:
            pred = pred.detach()
            device = pred.device
            prob = torch.as_tensor(prob, device=device)
        scores = prob[:, A:, :, :].permute(0, 2, 3, 1).reshape(-1)
        deltas = pred.permute(0, 2, 3, 1).reshape(-1, 4)
        anchors = torch.tensor(anchors_np, device=device, dtype=deltas.dtype)  # a copy: the cached map is read-only
        proposals = clip_boxes(bbox_transform_inv(anchors, deltas), (float(info[0]), float(info[1])))

        ws = proposals[:, 2] - proposals[:, 0] + 1
        hs = proposals[:, 3] - proposals[:, 1] + 1
        min_size = float(min_size)
        keep = torch.nonzero((ws >= min_size) & (hs >= min_size)).squeeze(1)
        proposals = proposals[keep]
        scores = scores[keep]

        # stable ascending sort, reversed: equal scores end in descending index order (see module docstring)
        order = torch.sort(scores, stable=True).indices.flip(0)
        if pre_nms_top_n > 0:
            order = order[:pre_nms_top_n]
        proposals = proposals[order]
        scores = scores[order]

        if proposals.shape[0] > 0:
            kept = nms(torch.cat((proposals, scores[:, None]), dim=1).contiguous(), nms_thresh,
                       max_keep=max(post_nms_top_n, 0))
            keep = torch.as_tensor(kept, dtype=torch.long).reshape(-1).to(device)
        else:
            keep = torch.zeros((0,), dtype=torch.long, device=device)
        if post_nms_top_n > 0:
            keep = keep[:post_nms_top_n]
        proposals = proposals[keep]
        scores = scores[keep]

        rois = torch.cat((proposals.new_zeros((proposals.shape[0], 1)), proposals), dim=1).float()
        return rois, scores[:, None].float()
