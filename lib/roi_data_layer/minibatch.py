"""Building a training minibatch from roidb entries (as the original's roi_data_layer/minibatch.py).

Randomness (the scale of each image, the Fast R-CNN RoI sampling) comes from the numpy RandomState passed in,
so a caller that derives it from (seed, iteration) gets the same minibatch in any process.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from datasets.ds_utils import read_image as ds_read_image
from datasets.imdb import dense_overlaps
from fast_rcnn.config import given_or_default
from utils.blob import im_list_to_blob, prep_im_for_blob


def read_image(path: str) -> np.ndarray:
    """BGR uint8 (H, W, 3) image, its pixels as stored (no EXIF rotation), as datasets.ds_utils.read_image; a
    file that cannot be read, is truncated or does not decode raises ImageFileError (an OSError) naming it."""
    return ds_read_image(path)


def get_minibatch(roidb: Sequence[Dict[str, Any]], num_classes: int, cfg=None,
                  rng: Optional[np.random.RandomState] = None,
                  scale_inds: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Blobs for the images ``roidb`` (prepared entries).

    Returns 'data' (N, 3, H, W) float32 (BGR minus PIXEL_MEANS, each image scaled to a TRAIN.SCALES entry chosen
    with ``rng`` (default np.random) unless ``scale_inds`` (N,) gives the TRAIN.SCALES indices, zero padded).
    With TRAIN.HAS_RPN: 'im_info' (N, 3) float32 [[H, W, scale]] (each image's own scaled size) and 'gt_boxes' (G, 5)
    float32 [x1, y1, x2, y2, cls] scaled to the blob, for gt_classes != 0 and not crowd (a row of gt_overlaps all
    -1); for N > 1 (TRAIN.IMS_PER_BATCH, opt-in: the original's end2end takes one image) a list of N such arrays.
    Without: 'rois' (R, 5) [batch index, x1, y1, x2, y2], 'labels' (R,), and with TRAIN.BBOX_REG 'bbox_targets',
    'bbox_inside_weights', 'bbox_outside_weights' (R, 4 * num_classes), all float32. Always 'image_paths': the
    N images' paths (a list of str).
    """
    cfg = given_or_default(cfg)
    rng = np.random if rng is None else rng
    num_images = len(roidb)
    # one TRAIN.SCALES index per image
    random_scale_inds = rng.randint(0, high=len(cfg.TRAIN.SCALES), size=num_images)
    if scale_inds is not None:  # drawn all the same, so that the rest of rng's stream does not depend on it
        random_scale_inds = np.asarray(scale_inds, dtype=np.int64)
        if random_scale_inds.shape != (num_images,):
            raise ValueError('scale_inds has shape {}, expected ({},)'.format(random_scale_inds.shape, num_images))
    im_blob, im_scales, im_shapes = _get_image_blob(roidb, random_scale_inds, cfg)
    blobs = {'data': im_blob, 'image_paths': [entry['image'] for entry in roidb]}  # named when training diverges

    if cfg.TRAIN.HAS_RPN:
        gt_boxes = [_gt_boxes(entry, scale) for entry, scale in zip(roidb, im_scales)]
        blobs['gt_boxes'] = gt_boxes[0] if num_images == 1 else gt_boxes
        # each scaled image's own size: the blob's unless padding (to SIZE_DIVISIBILITY, or to a larger image of
        # the minibatch) enlarged it; anchors and proposals must stay inside the image, not the padding
        blobs['im_info'] = np.array([[h, w, scale] for (h, w), scale in zip(im_shapes, im_scales)], dtype=np.float32)
    else:  # not using RPN
        assert cfg.TRAIN.BATCH_SIZE % num_images == 0, \
            'num_images ({}) must divide BATCH_SIZE ({})'.format(num_images, cfg.TRAIN.BATCH_SIZE)
        rois_per_image = cfg.TRAIN.BATCH_SIZE // num_images
        fg_rois_per_image = int(np.round(cfg.TRAIN.FG_FRACTION * rois_per_image))
        rois_blob = np.zeros((0, 5), dtype=np.float32)
        labels_blob = np.zeros((0,), dtype=np.float32)
        bbox_targets_blob = np.zeros((0, 4 * num_classes), dtype=np.float32)
        bbox_inside_blob = np.zeros(bbox_targets_blob.shape, dtype=np.float32)
        for im_i in range(num_images):
            labels, overlaps, im_rois, bbox_targets, bbox_inside_weights = _sample_rois(
                roidb[im_i], fg_rois_per_image, rois_per_image, num_classes, cfg, rng)
            rois = _project_im_rois(im_rois, im_scales[im_i])
            batch_ind = im_i * np.ones((rois.shape[0], 1))
            rois_blob = np.vstack((rois_blob, np.hstack((batch_ind, rois))))
            labels_blob = np.hstack((labels_blob, labels))
            bbox_targets_blob = np.vstack((bbox_targets_blob, bbox_targets))
            bbox_inside_blob = np.vstack((bbox_inside_blob, bbox_inside_weights))
        blobs['rois'] = rois_blob
        blobs['labels'] = labels_blob
        if cfg.TRAIN.BBOX_REG:
            blobs['bbox_targets'] = bbox_targets_blob
            blobs['bbox_inside_weights'] = bbox_inside_blob
            blobs['bbox_outside_weights'] = np.array(bbox_inside_blob > 0).astype(np.float32)
    return blobs


def _gt_boxes(entry: Dict[str, Any], im_scale: float) -> np.ndarray:
    """(G, 5) float32 [x1, y1, x2, y2, cls] of one entry scaled to its blob image: the objects (gt_classes != 0),
    crowd regions (a row of gt_overlaps all -1) left out."""
    keep = entry['gt_classes'] != 0
    if len(keep):
        ov = dense_overlaps(entry['gt_overlaps'])
        keep &= ~(ov < 0).all(axis=1)  # crowd regions are not objects to find
    gt_inds = np.where(keep)[0]
    gt_boxes = np.empty((len(gt_inds), 5), dtype=np.float32)
    # scaled in float64, then stored as float32, as the original's uint16 boxes * python float
    gt_boxes[:, 0:4] = np.asarray(entry['boxes'], dtype=np.float64)[gt_inds, :] * im_scale
    gt_boxes[:, 4] = entry['gt_classes'][gt_inds]
    return gt_boxes


def _sample_rois(entry: Dict[str, Any], fg_rois_per_image: int, rois_per_image: int, num_classes: int,
                 cfg, rng) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample up to fg_rois_per_image fg RoIs and fill up to rois_per_image with bg RoIs (without replacement).

    Returns labels (S,), overlaps (S,), rois (S, 4), bbox_targets (S, 4K), bbox_inside_weights (S, 4K).
    """
    labels = entry['max_classes']
    overlaps = entry['max_overlaps']
    rois = entry['boxes']
    fg_inds = np.where(overlaps >= cfg.TRAIN.FG_THRESH)[0]
    fg_rois_per_this_image = int(np.minimum(fg_rois_per_image, fg_inds.size))
    if fg_inds.size > 0:
        fg_inds = rng.choice(fg_inds, size=fg_rois_per_this_image, replace=False)
    bg_inds = np.where((overlaps < cfg.TRAIN.BG_THRESH_HI) & (overlaps >= cfg.TRAIN.BG_THRESH_LO))[0]
    bg_rois_per_this_image = rois_per_image - fg_rois_per_this_image
    bg_rois_per_this_image = int(np.minimum(bg_rois_per_this_image, bg_inds.size))
    if bg_inds.size > 0:
        bg_inds = rng.choice(bg_inds, size=bg_rois_per_this_image, replace=False)
    keep_inds = np.append(fg_inds, bg_inds).astype(np.int64)
    labels = np.array(labels[keep_inds], copy=True)
    labels[fg_rois_per_this_image:] = 0  # the sampled background rows
    overlaps = overlaps[keep_inds]
    rois = rois[keep_inds]
    bbox_targets, bbox_inside_weights = _get_bbox_regression_labels(
        entry['bbox_targets'][keep_inds, :], num_classes, cfg)
    return labels, overlaps, rois, bbox_targets, bbox_inside_weights


def _get_image_blob(roidb: Sequence[Dict[str, Any]], scale_inds: np.ndarray,
                    cfg) -> Tuple[np.ndarray, List[float], List[Tuple[int, int]]]:
    """Read, flip where the entry says so, mean-subtract and scale each image; stack into (N, 3, H, W) padded to
    cfg.SIZE_DIVISIBILITY. Returns the blob, the scales and the scaled images' (H, W)."""
    processed_ims = []
    im_scales = []
    for i, entry in enumerate(roidb):
        im = read_image(entry['image'])
        if entry['flipped']:
            im = im[:, ::-1, :]
        target_size = cfg.TRAIN.SCALES[scale_inds[i]]
        im, im_scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, target_size, cfg.TRAIN.MAX_SIZE)
        im_scales.append(im_scale)
        processed_ims.append(im)
    blob = im_list_to_blob(processed_ims, int(cfg.SIZE_DIVISIBILITY))
    return blob, im_scales, [im.shape[:2] for im in processed_ims]


def _project_im_rois(im_rois: np.ndarray, im_scale_factor: float) -> np.ndarray:
    """RoIs (R, 4) in image coordinates -> blob coordinates."""
    return im_rois * im_scale_factor


def _get_bbox_regression_labels(bbox_target_data: np.ndarray, num_classes: int,
                                cfg) -> Tuple[np.ndarray, np.ndarray]:
    """Expand (S, 5) [class, tx, ty, tw, th] into class-specific (S, 4K) targets and inside weights."""
    clss = bbox_target_data[:, 0].astype(np.int64)
    bbox_targets = np.zeros((clss.size, 4 * num_classes), dtype=np.float32)
    bbox_inside_weights = np.zeros(bbox_targets.shape, dtype=np.float32)
    inds = np.where(clss > 0)[0]
    for ind in inds:
        start = 4 * int(clss[ind])
        end = start + 4
        bbox_targets[ind, start:end] = bbox_target_data[ind, 1:]
        bbox_inside_weights[ind, start:end] = cfg.TRAIN.BBOX_INSIDE_WEIGHTS
    return bbox_targets, bbox_inside_weights
