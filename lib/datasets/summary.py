"""What a dataset split holds, and what looks wrong in it: summarize(imdb, roidb=None) -> (lines, warnings).

- one line per class: boxes and images of that class in the split (ground truth used for training/testing:
  crowd regions and dropped difficult objects not counted), in aligned columns;
- what was left out and why, where the loader knows it (VOC-layout datasets: difficult objects dropped because
  use_diff is False, objects and images skipped as broken with SKIP_BAD_ANNOTATIONS) and images with no boxes;
- warnings: a class with fewer than FEW_BOXES boxes, and a rare class name (under FEW_BOXES boxes or under
  RARE_FRACTION of all boxes) within a small edit distance of a common one holding at least COMMON_RATIO times as
  many boxes: a likely typo ('dsic' beside 'disc'). Names of up to 4 letters count as close only at distance 1
  (a swap of two neighbours is 1), longer ones up to 2. The ratio is what keeps VOC quiet: 'cat', 'car' and 'cow'
  are 1-2 edits apart but each has hundreds of boxes, within 5x of each other.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from datasets.pascal_voc import voc_layout

#: A class with fewer boxes than this in a split is warned about.
FEW_BOXES = 5
#: A class with less than this fraction of all boxes is rare (as is one under FEW_BOXES boxes).
RARE_FRACTION = 0.02
#: A rare name close to another is a likely typo only when the other has at least this many times its boxes.
COMMON_RATIO = 10


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def class_warnings(counts: Dict[str, int]) -> List[str]:
    """Warnings for {class name: boxes in the split} (see the module doc); background excluded by the caller."""
    out = []
    total = sum(counts.values())
    for name, n in counts.items():
        if n < FEW_BOXES:
            out.append('class {!r} has only {} box{}'.format(name, n, '' if n == 1 else 'es'))
    for name, n in counts.items():
        if not (n < FEW_BOXES or n < RARE_FRACTION * total):
            continue
        for other, m in counts.items():
            if other == name or m < COMMON_RATIO * max(n, 1):
                continue
            limit = 1 if min(len(name), len(other)) <= 4 else 2
            if edit_distance(name, other) <= limit:
                out.append('class {!r} ({} boxes) is close to {!r} ({} boxes): a typo in the annotations?'.format(
                    name, n, other, m))
    return out


def count_classes(roidb: Sequence[Dict[str, Any]], num_classes: int) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """(boxes (K,) int, images (K,) int, images with no boxes, crowd regions) over the entries not flipped;
    crowd regions (gt_overlaps -1 in every column) are not boxes."""
    boxes = np.zeros(num_classes, np.int64)
    images = np.zeros(num_classes, np.int64)
    empty = crowd = 0
    for e in roidb:
        if e.get('flipped'):
            continue  # append_flipped_images doubles the roidb; count each image once
        cls = np.asarray(e['gt_classes']).astype(np.int64)
        ov = np.asarray(e['gt_overlaps'].toarray() if hasattr(e['gt_overlaps'], 'toarray') else e['gt_overlaps'])
        is_crowd = (ov < 0).all(axis=1) if len(cls) else np.zeros(0, bool)
        crowd += int(is_crowd.sum())
        cls = cls[(cls > 0) & ~is_crowd]
        if len(cls) == 0:
            empty += 1
        boxes += np.bincount(cls, minlength=num_classes)[:num_classes]
        images[np.unique(cls)] += 1
    return boxes, images, empty, crowd


def load_stats(imdb) -> Optional[Dict[str, int]]:
    """What a VOC-layout imdb's loader left out (from its gt cache; no re-parse): {'difficult_dropped',
    'no_objects' (annotations without any object), 'skipped' (objects and images skipped as broken)}; None for
    other datasets."""
    if not isinstance(imdb, voc_layout) or not imdb._has_annotations():
        return None
    arrays = imdb._gt_arrays(set_index=False)
    use_diff = bool(imdb.config['use_diff'])
    return {'difficult_dropped': 0 if use_diff else int(np.asarray(arrays['eval_difficult']).sum()),
            'no_objects': int((np.asarray(arrays['eval_counts']) == 0).sum()),
            'skipped': int(sum(1 for m in arrays['notes'] if str(m).startswith('skipping')))}


def summarize(imdb, roidb: Optional[Sequence[Dict[str, Any]]] = None) -> Tuple[List[str], List[str]]:
    """(lines, warnings) describing the split ``imdb`` (both lists of one-line str, no trailing newline).

    ``roidb``: the roidb to count (default imdb.gt_roidb()); flipped entries are skipped, and entries that carry
    proposals (gt_classes 0) count only their ground truth. Print the lines as they are and each warning as
    'warning: ...'."""
    if roidb is None:
        from datasets.pascal_voc import voc_layout
        if isinstance(imdb, voc_layout) and not imdb._has_annotations():  # VOC test sets after 2007
            return ['{}: {} images, no annotations published'.format(imdb.name, imdb.num_images)], []
        roidb = imdb.gt_roidb()
    classes = list(imdb.classes)
    boxes, images, empty, crowd = count_classes(roidb, len(classes))
    n_images = sum(1 for e in roidb if not e.get('flipped'))
    width = max([len(c) for c in classes[1:]] + [5])
    lines = ['{}: {} images, {} boxes'.format(imdb.name, n_images, int(boxes[1:].sum())),
             '  {:<{w}} {:>7} {:>7}'.format('class', 'boxes', 'images', w=width)]
    for k, c in enumerate(classes):
        if k == 0:
            continue
        lines.append('  {:<{w}} {:>7d} {:>7d}'.format(c, int(boxes[k]), int(images[k]), w=width))
    left = ['{} images with no boxes'.format(empty)]
    stats = load_stats(imdb)
    if stats is not None:
        left.append('{} difficult boxes dropped (use_diff False)'.format(stats['difficult_dropped']))
        left.append('{} annotations without objects'.format(stats['no_objects']))
        left.append('{} objects/images skipped as broken'.format(stats['skipped']))
    if crowd:
        left.append('{} crowd regions'.format(crowd))
    lines.append('  left out or empty: ' + '; '.join(left))
    warnings = class_warnings({c: int(boxes[k]) for k, c in enumerate(classes) if k > 0})
    return lines, ['{}: {}'.format(imdb.name, w) for w in warnings]
