"""Preparing a roidb for training (as the original's roi_data_layer/roidb.py, plus train.py's filter_roidb)."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from datasets.ds_utils import bbox_overlaps, check_image_file
from datasets.imdb import dense_overlaps
from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import given_or_default


def prepare_roidb(imdb) -> None:
    """Enrich the imdb's roidb in place with 'image' (path), 'width', 'height' (pixels), 'max_classes' (G,) int64
    and 'max_overlaps' (G,) float32, the argmax / max of each row of gt_overlaps.

    Sizes come from the entry's 'width'/'height' when the loader recorded the image's own size (VOC layouts,
    COCO), otherwise from the image file's header (PIL), as the original, after datasets.ds_utils.check_image_file
    (a missing, unreadable or truncated image is an ImageFileError naming it). The size is the stored pixels',
    which is what the training reads (no EXIF rotation).
    """
    roidb = imdb.roidb
    for i in range(len(imdb.image_index)):
        entry = roidb[i]
        entry['image'] = imdb.image_path_at(i)
        if 'width' not in entry or 'height' not in entry:
            entry['width'], entry['height'] = check_image_file(entry['image'])[:2]
        gt_overlaps = dense_overlaps(entry['gt_overlaps'])
        if gt_overlaps.shape[0] == 0:
            max_overlaps = np.zeros((0,), dtype=np.float32)
            max_classes = np.zeros((0,), dtype=np.int64)
        else:
            max_overlaps = gt_overlaps.max(axis=1)
            max_classes = gt_overlaps.argmax(axis=1)
        entry['max_classes'] = max_classes
        entry['max_overlaps'] = max_overlaps
        # a row without overlap is background; a row with overlap names a foreground class
        zero_inds = np.where(max_overlaps == 0)[0]
        assert all(max_classes[zero_inds] == 0)
        nonzero_inds = np.where(max_overlaps > 0)[0]
        assert all(max_classes[nonzero_inds] != 0)


def _compute_targets(rois: np.ndarray, overlaps: np.ndarray, labels: np.ndarray,
                     cfg=None) -> np.ndarray:
    """Regression targets for one image: (R, 5) float32 [class, dx, dy, dw, dh].

    rois: (R, 4); overlaps: (R,) max overlaps; labels: (R,) max classes. Rows with overlap >= BBOX_THRESH get
    targets towards the gt box (an overlap == 1 row) they overlap most; other rows are 0.
    """
    cfg = given_or_default(cfg)
    gt_inds = np.where(overlaps == 1)[0]
    if len(gt_inds) == 0:
        return np.zeros((rois.shape[0], 5), dtype=np.float32)
    ex_inds = np.where(overlaps >= cfg.TRAIN.BBOX_THRESH)[0]
    ex_gt_overlaps = bbox_overlaps(np.ascontiguousarray(rois[ex_inds, :], dtype=np.float64),
                                   np.ascontiguousarray(rois[gt_inds, :], dtype=np.float64))
    # each regressed row moves towards the gt row it overlaps most
    gt_assignment = ex_gt_overlaps.argmax(axis=1)
    gt_rois = rois[gt_inds[gt_assignment], :]
    ex_rois = rois[ex_inds, :]
    targets = np.zeros((rois.shape[0], 5), dtype=np.float32)
    targets[ex_inds, 0] = labels[ex_inds]
    targets[ex_inds, 1:] = bbox_transform(ex_rois.astype(np.float64), gt_rois.astype(np.float64))
    return targets


def add_bbox_regression_targets(roidb: List[Dict[str, Any]], cfg=None) -> Tuple[np.ndarray, np.ndarray]:
    """Add 'bbox_targets' (R, 5) to every (prepared) entry and normalise them in place.

    Means and stds are the empirical per-class statistics of the targets, or the fixed
    TRAIN.BBOX_NORMALIZE_MEANS/STDS when TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED. Targets are normalised only
    when TRAIN.BBOX_NORMALIZE_TARGETS. Returns (means.ravel(), stds.ravel()), each (4K,) float64.
    """
    cfg = given_or_default(cfg)
    assert len(roidb) > 0
    assert 'max_classes' in roidb[0], 'Did you call prepare_roidb first?'
    num_images = len(roidb)
    num_classes = dense_overlaps(roidb[0]['gt_overlaps']).shape[1]
    for im_i in range(num_images):
        rois = roidb[im_i]['boxes']
        max_overlaps = roidb[im_i]['max_overlaps']
        max_classes = roidb[im_i]['max_classes']
        roidb[im_i]['bbox_targets'] = _compute_targets(rois, max_overlaps, max_classes, cfg)

    if cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
        means = np.tile(np.array(cfg.TRAIN.BBOX_NORMALIZE_MEANS, dtype=np.float64), (num_classes, 1))
        stds = np.tile(np.array(cfg.TRAIN.BBOX_NORMALIZE_STDS, dtype=np.float64), (num_classes, 1))
    else:
        # per-class first and second moments; std = sqrt(E[t^2] - E[t]^2)
        class_counts = np.zeros((num_classes, 1)) + cfg.EPS
        sums = np.zeros((num_classes, 4))
        squared_sums = np.zeros((num_classes, 4))
        for im_i in range(num_images):
            targets = roidb[im_i]['bbox_targets']
            for cls in range(1, num_classes):
                cls_inds = np.where(targets[:, 0] == cls)[0]
                if cls_inds.size > 0:
                    class_counts[cls] += cls_inds.size
                    sums[cls, :] += targets[cls_inds, 1:].sum(axis=0)
                    squared_sums[cls, :] += (targets[cls_inds, 1:] ** 2).sum(axis=0)
        means = sums / class_counts
        stds = np.sqrt(squared_sums / class_counts - means ** 2)

    print('bbox target means:')
    print(means)
    print(means[1:, :].mean(axis=0))
    print('bbox target stdevs:')
    print(stds)
    print(stds[1:, :].mean(axis=0))

    if cfg.TRAIN.BBOX_NORMALIZE_TARGETS:
        print('Normalizing targets')
        for im_i in range(num_images):
            targets = roidb[im_i]['bbox_targets']
            for cls in range(1, num_classes):
                cls_inds = np.where(targets[:, 0] == cls)[0]
                roidb[im_i]['bbox_targets'][cls_inds, 1:] -= means[cls, :]
                roidb[im_i]['bbox_targets'][cls_inds, 1:] /= stds[cls, :]
    else:
        print('NOT normalizing targets')

    # the snapshot code folds these back into bbox_pred
    return means.ravel(), stds.ravel()


def filter_roidb(roidb: List[Dict[str, Any]], cfg=None) -> List[Dict[str, Any]]:
    """Remove roidb entries that have no usable RoIs: neither a fg (max_overlaps >= TRAIN.FG_THRESH) nor a bg
    (TRAIN.BG_THRESH_LO <= max_overlaps < TRAIN.BG_THRESH_HI). Prints 'Filtered N roidb entries: a -> b'."""
    cfg = given_or_default(cfg)

    def is_valid(entry):
        overlaps = entry['max_overlaps']
        fg_inds = np.where(overlaps >= cfg.TRAIN.FG_THRESH)[0]
        bg_inds = np.where((overlaps < cfg.TRAIN.BG_THRESH_HI) & (overlaps >= cfg.TRAIN.BG_THRESH_LO))[0]
        valid = len(fg_inds) > 0 or len(bg_inds) > 0
        return valid

    num = len(roidb)
    filtered_roidb = [entry for entry in roidb if is_valid(entry)]
    num_after = len(filtered_roidb)
    print('Filtered {} roidb entries: {} -> {}'.format(num - num_after, num, num_after))
    return filtered_roidb
