"""Small box helpers used by the datasets (as the original's ds_utils), plus proposal-file I/O.

Boxes are (N, 4) x1y1x2y2 with inclusive pixel coordinates (width = x2 - x1 + 1).
"""
from __future__ import annotations

import os
import pickle
from typing import List, Sequence

import numpy as np


def unique_boxes(boxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Indices of the first occurrence of each distinct box after ``round(boxes * scale)``.

    boxes: (N, 4). Returns sorted (M,) int64 indices, M <= N (the original's hash-based dedup).
    """
    boxes = np.asarray(boxes)
    if boxes.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    v = np.array([1, 1e3, 1e6, 1e9])
    hashes = np.round(boxes * scale).dot(v)
    _, index = np.unique(hashes, return_index=True)
    return np.sort(index)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) [x, y, w, h] -> (N, 4) [x1, y1, x2, y2] with x2 = x + w - 1."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 0:2] + boxes[:, 2:4] - 1))


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) [x1, y1, x2, y2] -> (N, 4) [x, y, w, h] with w = x2 - x1 + 1."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 2:4] - boxes[:, 0:2] + 1))


def validate_boxes(boxes: np.ndarray, width: int = 0, height: int = 0) -> None:
    """Assert that (N, 4) boxes are well formed and lie inside a width x height image."""
    boxes = np.asarray(boxes)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    assert (x1 >= 0).all(), 'box x1 < 0'
    assert (y1 >= 0).all(), 'box y1 < 0'
    assert (x2 >= x1).all(), 'box x2 < x1'
    assert (y2 >= y1).all(), 'box y2 < y1'
    assert (x2 < width).all(), 'box x2 >= image width'
    assert (y2 < height).all(), 'box y2 >= image height'


def filter_small_boxes(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """Indices of (N, 4) boxes with w >= min_size and h > min_size, w = x2 - x1 (no +1: the original's quirk)."""
    boxes = np.asarray(boxes)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = np.where((w >= min_size) & (h > min_size))[0]
    return keep


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """IoU with +1 widths: boxes (N, 4), query_boxes (K, 4) -> (N, K) float64.

    Uses the compiled utils.cython_bbox when it is built, else the same computation in numpy.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float64)
    query_boxes = np.ascontiguousarray(query_boxes, dtype=np.float64)
    try:
        from utils.cython_bbox import bbox_overlaps as _cy
    except ImportError:  # pragma: no cover - the extension is normally built
        _cy = None
    if _cy is not None:
        return _cy(boxes, query_boxes)
    n, k = boxes.shape[0], query_boxes.shape[0]
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=np.float64)
    iw = (np.minimum(boxes[:, None, 2], query_boxes[None, :, 2])
          - np.maximum(boxes[:, None, 0], query_boxes[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], query_boxes[None, :, 3])
          - np.maximum(boxes[:, None, 1], query_boxes[None, :, 1]) + 1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_q = (query_boxes[:, 2] - query_boxes[:, 0] + 1) * (query_boxes[:, 3] - query_boxes[:, 1] + 1)
    ua = area_b[:, None] + area_q[None, :] - inter
    return np.where(inter > 0, inter / ua, 0.0)


# ----------------------------------------------------------------------------- proposal files
def save_proposals(path: str, box_list: Sequence[np.ndarray]) -> None:
    """Write per-image proposals atomically as .npz (no pickle).

    box_list: N arrays (R_i, 4) [x1, y1, x2, y2] or (R_i, 5) with a score column. Stored as 'boxes'
    (sum R_i, 4) float32, 'counts' (N,) int64 and, when given, 'scores' (sum R_i,) float32.
    """
    from datasets.cache import atomic_save_npz
    arrs = [np.asarray(b, dtype=np.float32).reshape(len(b), -1) if len(b) else np.zeros((0, 4), np.float32)
            for b in box_list]
    counts = np.array([a.shape[0] for a in arrs], dtype=np.int64)
    cat = np.concatenate([a[:, :4] for a in arrs], 0) if arrs else np.zeros((0, 4), np.float32)
    out = {'counts': counts, 'boxes': cat}
    if arrs and all(a.shape[1] >= 5 for a in arrs if a.shape[0]):
        out['scores'] = np.concatenate([a[:, 4] if a.shape[1] >= 5 else np.zeros(0, np.float32) for a in arrs])
    atomic_save_npz(path, out)


def load_proposals(path: str) -> List[np.ndarray]:
    """Read per-image proposal boxes: a list of (R_i, 4) float32 arrays.

    .npz files (written by save_proposals) load without executing code. A legacy .pkl (the original's
    rpn_generate output: a list of (R_i, 4) arrays) is read by safe_pickle_load (arrays only, never code).
    """
    if not os.path.exists(path):
        raise FileNotFoundError('proposal file not found: {}'.format(path))
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as z:
            boxes, counts = z['boxes'], z['counts']
        ends = np.cumsum(counts)
        starts = ends - counts
        return [boxes[s:e].astype(np.float32) for s, e in zip(starts, ends)]
    data = safe_pickle_load(path)
    return [np.asarray(b, dtype=np.float32).reshape(-1, np.asarray(b).shape[-1] if np.asarray(b).ndim == 2 else 4)[:, :4]
            for b in data]


_PICKLE_ALLOWED = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', 'scalar'), ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'), ('builtins', 'list'), ('builtins', 'tuple'), ('builtins', 'dict'),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError('{}: refers to {}.{}; only lists, tuples, dicts and numpy arrays are '
                                     'accepted'.format(getattr(self, '_path', 'pickle'), module, name))


def safe_pickle_load(path: str):
    """Load a pickle that may only hold lists, tuples, dicts and numpy arrays (the original's detections.pkl and
    proposal .pkl files); anything else (which could run code) is refused with pickle.UnpicklingError."""
    with open(path, 'rb') as f:
        u = _ArraysOnlyUnpickler(f)
        u._path = path
        return u.load()


# ----------------------------------------------------------------------------- detections files
def save_detections(path: str, all_boxes) -> None:
    """Write all_boxes[cls][image] ((D, 5) arrays or []) atomically as .npz: 'dets' (sum D, 5) float32 and
    'counts' (K, N) int64. Loading it (load_detections) never runs code."""
    from datasets.cache import atomic_save_npz
    K, N = len(all_boxes), len(all_boxes[0]) if len(all_boxes) else 0
    counts = np.zeros((K, N), np.int64)
    parts = []
    for c in range(K):
        for i in range(N):
            d = all_boxes[c][i]
            if isinstance(d, list) and d == []:
                continue
            d = np.asarray(d, dtype=np.float32).reshape(-1, 5)
            counts[c, i] = d.shape[0]
            parts.append(d)
    dets = np.concatenate(parts, 0) if parts else np.zeros((0, 5), np.float32)
    atomic_save_npz(path, {'dets': dets, 'counts': counts})


def load_detections(path: str):
    """all_boxes[cls][image] from save_detections' .npz, or from a detections.pkl (test_net's, the original's)
    through safe_pickle_load. Images without detections of a class give []."""
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as z:
            counts, dets = z['counts'], z['dets']
        all_boxes, k = [], 0
        for c in range(counts.shape[0]):
            row = []
            for i in range(counts.shape[1]):
                n = int(counts[c, i])
                row.append(dets[k:k + n] if n else [])
                k += n
            all_boxes.append(row)
        return all_boxes
    return safe_pickle_load(path)
