"""The image database base class (as the original's datasets/imdb.py).

A roidb is a list with one dict per image. Ground-truth entries hold:
  'boxes'       (G, 4) float32, x1y1x2y2, 0-based inclusive pixels (the original used uint16; float32 never wraps)
  'gt_classes'  (G,)   int32, class index (0 = background / proposal)
  'gt_overlaps' (G, K) float32 dense numpy array (the original used a scipy csr matrix; this OverlapsArray also
                has .toarray()): 1.0 at the gt's class, 0 elsewhere; a crowd region (COCO) has -1 in every column
  'flipped'     bool
  'seg_areas'   (G,)   float32, (w + 1)(h + 1) for VOC, the annotation's area for COCO
and, where the loader knows them, 'width', 'height' (ints) and 'image' (path). prepare_roidb adds 'image',
'width', 'height', 'max_classes' and 'max_overlaps'.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from datasets.ds_utils import bbox_overlaps
from fast_rcnn.config import given_or_default


class DatasetNotFound(FileNotFoundError, KeyError):
    """A dataset name that names nothing loadable: an unknown name, a missing split, data not downloaded.

    The message is one line and names the name (with close matches, the splits that exist, or where to get the
    data). A FileNotFoundError and a KeyError both, so code that caught either before keeps working; str() is the
    message itself (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class OverlapsArray(np.ndarray):
    """A dense (G, K) float32 numpy array that also answers ``.toarray()`` / ``.todense()``, as the original's
    scipy csr gt_overlaps did, so code written against the original keeps working."""

    def toarray(self) -> np.ndarray:
        return np.array(self, dtype=np.float32)

    def todense(self) -> np.ndarray:
        return np.array(self, dtype=np.float32)


def as_overlaps(o: Any) -> OverlapsArray:
    """gt_overlaps as the roidb stores them: a dense float32 OverlapsArray (from dense or scipy sparse input)."""
    if hasattr(o, 'toarray') and not isinstance(o, np.ndarray):
        o = o.toarray()
    return np.ascontiguousarray(o, dtype=np.float32).view(OverlapsArray)


def dense_overlaps(o: Any) -> np.ndarray:
    """gt_overlaps as a dense float32 array, whether it is stored dense or as a scipy sparse matrix."""
    if hasattr(o, 'toarray') and not isinstance(o, np.ndarray):
        o = o.toarray()
    return np.asarray(o, dtype=np.float32)


class imdb(object):
    """Image database: a name, classes, an image index and a (lazily built) roidb."""

    def __init__(self, name: str, classes: Optional[Sequence[str]] = None, cfg=None):
        self.cfg = given_or_default(cfg)  # DATA_DIR, SKIP_BAD_ANNOTATIONS...: the run's, handed down by get_imdb
        self._name = name
        self._num_classes = 0
        self._classes: tuple = ()
        if classes is not None:
            self._classes = tuple(classes)
        self._image_index: List[str] = []
        self._obj_proposer = 'selective_search'
        self._roidb: Optional[List[Dict[str, Any]]] = None
        self._roidb_handler: Callable[[], List[Dict[str, Any]]] = self.default_roidb
        self._cache_dir: Optional[str] = None
        # dataset-specific options (see the subclasses)
        self.config: Dict[str, Any] = {}

    # ------------------------------------------------------------------ basic properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def classes(self) -> tuple:
        return self._classes

    @property
    def image_index(self) -> List[str]:
        return self._image_index

    @property
    def roidb_handler(self) -> Callable[[], List[Dict[str, Any]]]:
        return self._roidb_handler

    @roidb_handler.setter
    def roidb_handler(self, val: Callable[[], List[Dict[str, Any]]]) -> None:
        self._roidb_handler = val

    def set_proposal_method(self, method: str) -> None:
        """Choose the roidb handler ``<method>_roidb`` (gt, rpn, selective_search, ...)."""
        fn = getattr(self, method + '_roidb', None)
        if fn is None:
            raise ValueError('{}: unknown proposal method {!r} (no {}_roidb)'.format(self.name, method, method))
        self.roidb_handler = fn

    @property
    def roidb(self) -> List[Dict[str, Any]]:
        """The roidb, built by the roidb handler on first access (a list of dicts, see the module doc)."""
        if self._roidb is not None:
            return self._roidb
        self._roidb = self.roidb_handler()
        return self._roidb

    @property
    def cache_path(self) -> str:
        """Folder for this imdb's caches: cfg.DATA_DIR/cache unless a cache_dir was given."""
        path = self._cache_dir or osp.abspath(osp.join(self.cfg.DATA_DIR, 'cache'))
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def num_images(self) -> int:
        return len(self.image_index)

    def image_path_at(self, i: int) -> str:
        raise NotImplementedError

    def image_id_at(self, i: int) -> Any:
        return self.image_index[i]

    def default_roidb(self) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def evaluate_detections(self, all_boxes, output_dir=None) -> float:
        """all_boxes[cls][image] = (D, 5) float32 [x1, y1, x2, y2, score]; returns the dataset's main metric."""
        raise NotImplementedError

    def competition_mode(self, on: bool) -> None:
        """Turn competition mode on or off: on means no salt in results file names and no cleanup of them.
        A no-op for datasets without those settings (as the original's base class)."""
        config = getattr(self, 'config', None)
        if isinstance(config, dict) and 'use_salt' in config and 'cleanup' in config:
            config['use_salt'] = not on
            config['cleanup'] = not on

    # ------------------------------------------------------------------ roidb operations
    def _get_widths(self) -> List[int]:
        """Image widths, from the roidb entries where known, else from the image files (PIL)."""
        import PIL.Image
        widths = []
        for i in range(self.num_images):
            entry = self.roidb[i]
            if 'width' in entry:
                widths.append(int(entry['width']))
            else:
                with PIL.Image.open(self.image_path_at(i)) as im:
                    widths.append(im.size[0])
        return widths

    def append_flipped_images(self) -> None:
        """Append a horizontally flipped copy of every entry: x1' = W - x2 - 1, x2' = W - x1 - 1; doubles image_index."""
        num_images = self.num_images
        widths = self._get_widths()
        for i in range(num_images):
            entry = self.roidb[i]
            boxes = np.array(entry['boxes'], dtype=np.float32, copy=True)
            oldx1 = boxes[:, 0].copy()
            oldx2 = boxes[:, 2].copy()
            boxes[:, 0] = widths[i] - oldx2 - 1
            boxes[:, 2] = widths[i] - oldx1 - 1
            if not (boxes[:, 2] >= boxes[:, 0]).all():
                raise AssertionError('{}: image {!r}: a flipped box has x2 < x1 (width {}): boxes {}'.format(
                    self.name, self.image_index[i], widths[i], entry['boxes'].tolist()))
            flipped = {'boxes': boxes,
                       'gt_overlaps': entry['gt_overlaps'],
                       'gt_classes': entry['gt_classes'],
                       'flipped': True}
            for k in ('seg_areas', 'width', 'height', 'image'):
                if k in entry:
                    flipped[k] = entry[k]
            self.roidb.append(flipped)
        self._image_index = self._image_index * 2

    def evaluate_recall(self, candidate_boxes: Optional[Sequence[np.ndarray]] = None,
                        thresholds: Optional[np.ndarray] = None, area: str = 'all',
                        limit: Optional[int] = None) -> Dict[str, Any]:
        """Recall of candidate boxes against the non-crowd gt boxes (greedy one-to-one matching).

        candidate_boxes: per image (R_i, 4) boxes, or None for the roidb's non-gt boxes. area: 'all', 'small',
        'medium', 'large', '96-128', '128-256', '256-512', '512-inf' (by seg_areas). limit: use at most the
        first ``limit`` candidates. Returns {'ar', 'recalls' (T,), 'thresholds' (T,), 'gt_overlaps' (P,)}.
        """
        areas = {'all': 0, 'small': 1, 'medium': 2, 'large': 3,
                 '96-128': 4, '128-256': 5, '256-512': 6, '512-inf': 7}
        area_ranges = [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2],
                       [96 ** 2, 128 ** 2], [128 ** 2, 256 ** 2], [256 ** 2, 512 ** 2], [512 ** 2, 1e5 ** 2]]
        if area not in areas:
            raise ValueError('unknown area range: {}'.format(area))
        area_range = area_ranges[areas[area]]
        gt_overlaps = np.zeros(0)
        num_pos = 0
        for i in range(self.num_images):
            entry = self.roidb[i]
            max_gt_overlaps = dense_overlaps(entry['gt_overlaps']).max(axis=1) \
                if len(entry['gt_classes']) else np.zeros(0, np.float32)
            gt_inds = np.where((entry['gt_classes'] > 0) & (max_gt_overlaps == 1))[0]
            gt_boxes = entry['boxes'][gt_inds, :]
            gt_areas = entry['seg_areas'][gt_inds]
            valid_gt_inds = np.where((gt_areas >= area_range[0]) & (gt_areas <= area_range[1]))[0]
            gt_boxes = gt_boxes[valid_gt_inds, :]
            num_pos += len(valid_gt_inds)
            if candidate_boxes is None:
                non_gt_inds = np.where(entry['gt_classes'] == 0)[0]
                boxes = entry['boxes'][non_gt_inds, :]
            else:
                boxes = candidate_boxes[i]
            if boxes.shape[0] == 0:
                continue
            if limit is not None and boxes.shape[0] > limit:
                boxes = boxes[:limit, :]
            overlaps = bbox_overlaps(boxes[:, :4].astype(np.float64), gt_boxes.astype(np.float64))
            _gt_overlaps = np.zeros((gt_boxes.shape[0]))
            # at most min(#boxes, #gt) matches (the original looped over every gt and failed its assert when
            # there were fewer candidates than gts); unmatched gts keep overlap 0
            for j in range(min(boxes.shape[0], gt_boxes.shape[0])):
                argmax_overlaps = overlaps.argmax(axis=0)
                max_overlaps = overlaps.max(axis=0)
                gt_ind = max_overlaps.argmax()
                gt_ovr = max_overlaps.max()
                assert gt_ovr >= 0
                box_ind = argmax_overlaps[gt_ind]
                _gt_overlaps[j] = overlaps[box_ind, gt_ind]
                assert _gt_overlaps[j] == gt_ovr
                overlaps[box_ind, :] = -1
                overlaps[:, gt_ind] = -1
            gt_overlaps = np.hstack((gt_overlaps, _gt_overlaps))
        gt_overlaps = np.sort(gt_overlaps)
        if thresholds is None:
            step = 0.05
            thresholds = np.arange(0.5, 0.95 + 1e-5, step)
        recalls = np.zeros_like(thresholds)
        with np.errstate(divide='ignore', invalid='ignore'):  # no gt in the range: nan, as the original
            for i, t in enumerate(thresholds):
                recalls[i] = (gt_overlaps >= t).sum() / np.float64(num_pos)
        ar = recalls.mean()
        return {'ar': ar, 'recalls': recalls, 'thresholds': thresholds, 'gt_overlaps': gt_overlaps}

    def create_roidb_from_box_list(self, box_list: Sequence[np.ndarray],
                                   gt_roidb: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
        """Proposal roidb: per image (R, 4) boxes; overlaps[r, gt_class[argmax]] = max IoU where max > 0."""
        assert len(box_list) == self.num_images, \
            'Number of boxes must match number of ground-truth images ({} vs {})'.format(
                len(box_list), self.num_images)
        roidb = []
        for i in range(self.num_images):
            boxes = np.asarray(box_list[i])
            boxes = (boxes if boxes.ndim == 2 else boxes.reshape(-1, 4))[:, :4]
            if not np.issubdtype(boxes.dtype, np.floating):
                boxes = boxes.astype(np.float32)  # float proposals keep their dtype, as the original
            num_boxes = boxes.shape[0]
            overlaps = np.zeros((num_boxes, self.num_classes), dtype=np.float32)
            if gt_roidb is not None and gt_roidb[i]['boxes'].size > 0 and num_boxes > 0:
                gt_boxes = gt_roidb[i]['boxes']
                gt_classes = gt_roidb[i]['gt_classes']
                gt_overlaps = bbox_overlaps(boxes.astype(np.float64), gt_boxes.astype(np.float64))
                argmaxes = gt_overlaps.argmax(axis=1)
                maxes = gt_overlaps.max(axis=1)
                I = np.where(maxes > 0)[0]
                overlaps[I, gt_classes[argmaxes[I]]] = maxes[I]
            roidb.append({'boxes': boxes,
                          'gt_classes': np.zeros((num_boxes,), dtype=np.int32),
                          'gt_overlaps': as_overlaps(overlaps),
                          'flipped': False,
                          'seg_areas': np.zeros((num_boxes,), dtype=np.float32)})
        return roidb

    @staticmethod
    def merge_roidbs(a: List[Dict[str, Any]], b: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Stack b's boxes, gt_classes, gt_overlaps and seg_areas under a's, entry by entry (a first)."""
        assert len(a) == len(b)
        for i in range(len(a)):
            a[i]['boxes'] = np.vstack((a[i]['boxes'], b[i]['boxes']))  # numpy promotion, as the original
            a[i]['gt_classes'] = np.hstack((a[i]['gt_classes'], b[i]['gt_classes'])).astype(np.int32)
            a[i]['gt_overlaps'] = as_overlaps(np.vstack((dense_overlaps(a[i]['gt_overlaps']),
                                                         dense_overlaps(b[i]['gt_overlaps']))))
            a[i]['seg_areas'] = np.hstack((a[i]['seg_areas'], b[i]['seg_areas'])).astype(np.float32)
        return a


# ---------------------------------------------------------------------------------------------- roidb <-> arrays
def roidb_to_arrays(roidb: List[Dict[str, Any]]) -> Dict[str, np.ndarray]:
    """Flatten a gt roidb to plain arrays (for a pickle-free .npz cache); inverse of roidb_from_arrays."""
    counts = np.array([len(e['gt_classes']) for e in roidb], dtype=np.int64)
    def cat(key, shape, dtype):
        parts = [np.asarray(e[key], dtype=dtype).reshape((-1,) + shape) for e in roidb]
        return np.concatenate(parts, 0) if parts else np.zeros((0,) + shape, dtype)
    crowd = [(dense_overlaps(e['gt_overlaps']) < 0).all(axis=1) if len(e['gt_classes'])
             else np.zeros(0, bool) for e in roidb]
    return {'counts': counts,
            'boxes': cat('boxes', (4,), np.float32),
            'gt_classes': cat('gt_classes', (), np.int32),
            'seg_areas': cat('seg_areas', (), np.float32),
            'is_crowd': np.concatenate(crowd) if crowd else np.zeros(0, bool),
            'width': np.array([int(e.get('width', -1)) for e in roidb], dtype=np.int64),
            'height': np.array([int(e.get('height', -1)) for e in roidb], dtype=np.int64)}


def roidb_from_arrays(arrays: Dict[str, np.ndarray], num_classes: int) -> List[Dict[str, Any]]:
    """Rebuild gt roidb entries from roidb_to_arrays' output (gt_overlaps rebuilt from classes and crowd flags)."""
    counts = arrays['counts']
    ends = np.cumsum(counts)
    starts = ends - counts
    roidb = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        cls = arrays['gt_classes'][s:e].astype(np.int32)
        crowd = arrays['is_crowd'][s:e].astype(bool)
        overlaps = np.zeros((len(cls), num_classes), dtype=np.float32)
        overlaps[np.arange(len(cls)), cls] = 1.0
        overlaps[crowd, :] = -1.0
        entry = {'boxes': arrays['boxes'][s:e].astype(np.float32),
                 'gt_classes': cls,
                 'gt_overlaps': as_overlaps(overlaps),
                 'flipped': False,
                 'seg_areas': arrays['seg_areas'][s:e].astype(np.float32)}
        if arrays['width'][i] >= 0:
            entry['width'] = int(arrays['width'][i])
            entry['height'] = int(arrays['height'][i])
        roidb.append(entry)
    return roidb
