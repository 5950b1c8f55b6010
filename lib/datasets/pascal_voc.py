"""PASCAL VOC 2007 / 2012 (as the original's datasets/pascal_voc.py) and the shared VOC-layout loading.

Layout: <devkit>/VOC<year>/{Annotations/<id>.xml, JPEGImages/<id>.jpg, ImageSets/Main/<split>.txt}.
Departures from the original (all fix bugs; results on standard VOC are the same):
- boxes are float32 (the original's uint16 wrapped a -1 to 65535); coordinates crossing the border are clipped
  to the image (its own size when the image file is there, else the XML <size>) and a box left empty by clipping
  is an error naming file and object;
- every split is checked the same way when the dataset is constructed (so a test split is checked before any
  detection is computed, not when it is evaluated): the image set file (one id a line, or VOC's per-class
  '<id> <-1|0|1>'; UTF-8; ids inside the dataset folder), every object of every annotation (difficult ones too:
  a known class, a box inside the image) and the image files (whole, not truncated; an EXIF orientation other
  than 1 is warned about once: the pixels are used as stored). Broken input is an error naming the file (and line
  or object); with cfg.SKIP_BAD_ANNOTATIONS the object or image is skipped with a warning naming it (a broken
  image set file is always an error). Evaluation scores against exactly these checked objects (an unknown class
  or a box outside the image is never a silently unmatched ground truth);
- the gt roidb cache is a .npz keyed by the annotations' contents, the image set, use_diff, the classes and a
  format version, and valid only while every image file it looked for is as it was (size, mtime, or still
  absent): never stale, no pickle; voc_eval's annotation cache likewise;
- <cls>_pr.npz (rec, prec, ap) replaces <cls>_pr.pkl; evaluate_detections returns the mean AP.
"""
from __future__ import annotations

import os
import os.path as osp
import subprocess
import uuid
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from datasets import ds_utils
from datasets.cache import (_atomic_write, hash_files, load_npz_if_key, make_key, save_npz_with_key,
                            stat_signature)
from datasets.imdb import as_overlaps, imdb, roidb_from_arrays, roidb_to_arrays
from datasets.voc_eval import voc_eval
from datasets.voc_xml import (AnnotationError, canonical_class_name, class_name_problem, describe_object,
                              parse_voc_xml, shown_path)
from fast_rcnn.config import given_or_default

VOC_CLASSES = ('__background__',  # always index 0
               'aeroplane', 'bicycle', 'bird', 'boat',
               'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')

#: The flags of VOC's per-class image lists ('<id> <flag>'): -1 negative, 0 difficult only, 1 positive.
_VOC_LIST_FLAGS = ('-1', '0', '1')


def skip_bad_annotations(cfg) -> bool:
    """cfg.SKIP_BAD_ANNOTATIONS (default False): warn and skip broken objects/images instead of raising."""
    return bool(cfg.SKIP_BAD_ANNOTATIONS)


def image_id_problem(image_id: str) -> Optional[str]:
    """Why ``image_id`` cannot name a file inside the dataset folder, or None.

    An id is a path relative to Annotations/ (and JPEGImages/) without its extension: not absolute, no '..',
    '.' or empty component (either separator, '/' or '\\', counts), no control character (NUL included). Checked
    on the text, not through symbolic links: links inside the dataset folder are its owner's choice (a JPEGImages/
    linked to another disk is common), while ids come from a text file."""
    for ch in image_id:
        if ord(ch) < 32 or ord(ch) == 127:
            return 'it contains the control character {!r}'.format(ch)
    if image_id.startswith(('/', '\\')) or osp.isabs(image_id):
        return 'an absolute path: ids are relative to the dataset folder'
    parts = image_id.replace('\\', '/').split('/')
    if '..' in parts:
        return "'..' would leave the dataset folder"
    if '.' in parts or '' in parts:
        return "an empty or '.' path component"
    return None


def read_image_set(path: str) -> List[str]:
    """The image ids of an image set file: one '<id>' a line, or '<id> <-1|0|1>' (VOC's per-class lists); blank
    lines are skipped, surrounding white space (and a UTF-8 byte order mark) ignored.

    Raises AnnotationError naming the file and line for a line that is not UTF-8, a line of other words (an id
    with a space in it included: which part would be the id?), and an id that image_id_problem refuses."""
    shown = shown_path(path)
    with open(path, 'rb') as f:
        data = f.read()
    ids = []
    for ln, raw in enumerate(data.split(b'\n'), 1):
        try:
            line = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise AnnotationError('{}:{}: the line is not UTF-8 text (byte {!r} at column {}): {!r}'.format(
                shown, ln, raw[e.start:e.start + 1], e.start + 1, raw.strip())) from None
        if ln == 1:
            line = line.lstrip('\ufeff')
        line = line.strip()
        if not line:
            continue
        words = line.split()
        if len(words) == 2 and words[1] in _VOC_LIST_FLAGS:
            image_id = words[0]
        elif len(words) == 1:
            image_id = words[0]
        else:
            raise AnnotationError("{}:{}: {!r} is not an image id: a line holds one id (ids cannot contain white "
                                  "space) or, in VOC's per-class lists, '<id> <-1|0|1>'".format(shown, ln, line))
        problem = image_id_problem(image_id)
        if problem:
            raise AnnotationError('{}:{}: image id {!r} refused: {}'.format(shown, ln, image_id, problem))
        ids.append(image_id)
    return ids


def _unique(ids: Sequence[str]) -> List[str]:
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


class voc_layout(imdb):
    """Common code of every dataset laid out as VOC: image set file, XML annotations, comp4 results files.

    Subclasses set: self._data_path (the folder holding Annotations/, JPEGImages/, ImageSets/), self._image_set,
    self._classes, and may override _image_candidates (where an id's image may be), _strict (images must exist),
    _use_07_metric, _results_dir, _eval_cache_dir.
    """

    _strict = False
    _canonical_eval_names = False
    _keep_eval_image_list = False  # keep the list of evaluated images _eval_image_set_file may write

    def __init__(self, name: str, image_set: str, data_path: str, classes: Sequence[str],
                 cache_dir: Optional[str] = None, cfg=None):
        imdb.__init__(self, name, cfg=cfg)
        problem = image_id_problem(image_set)
        if problem or '/' in image_set or '\\' in image_set or not image_set:
            raise ValueError('{}: split {!r} cannot be used: it must be a plain file name (ImageSets/Main/'
                             '<split>.txt){}'.format(name, image_set, ': ' + problem if problem else ''))
        self._image_set = image_set
        self._warned: set = set()
        self._data_path = data_path
        self._classes = tuple(classes)
        for c in self._classes[1:]:
            problem = class_name_problem(c)
            if problem:
                raise ValueError('{}: class {!r} (from the {}) cannot be used: {}'.format(
                    name, c, self._class_source(), problem))
        self._class_to_ind = dict(zip(self.classes, range(self.num_classes)))
        self._image_ext = '.jpg'
        self._cache_dir = cache_dir
        self._salt = str(uuid.uuid4())
        self._comp_id = 'comp4'
        self._image_paths: Dict[str, str] = {}
        self._image_set_ids = self._load_image_set_index()  # every id of the file; the cache is keyed by them
        self._image_index = list(self._image_set_ids)
        self._roidb_handler = self.selective_search_roidb
        # dataset options, read when the data is loaded or evaluated
        self.config = {'cleanup': True,
                       'use_salt': True,
                       'use_diff': False,
                       'matlab_eval': False,
                       'rpn_file': None,
                       'selective_search_file': None,  # None: data/selective_search_data/<name>.mat
                       'min_size': 2}
        if self._has_annotations():
            # check every split now, the test split too (errors name the file; skipped images leave the index)
            self._gt_arrays()

    # ------------------------------------------------------------------ paths
    def _image_set_file(self) -> str:
        return osp.join(self._data_path, 'ImageSets', 'Main', self._image_set + '.txt')

    def _annotation_path(self, index: str) -> str:
        return osp.join(self._data_path, 'Annotations', index + '.xml')

    def _load_image_set_index(self) -> List[str]:
        """Image ids of ImageSets/Main/<image_set>.txt (read_image_set: errors name the file and line)."""
        image_set_file = self._image_set_file()
        if not osp.exists(image_set_file):
            raise FileNotFoundError('{}: image set file does not exist: {}'.format(self.name, image_set_file))
        return read_image_set(image_set_file)

    def _has_annotations(self) -> bool:
        """False only for sets published without annotations (VOC test sets after 2007) whose annotations are
        indeed absent: those are not checked at construction (nothing to check, nothing to evaluate)."""
        if not self._image_set_ids:
            return False
        return not (self._is_test_after_2007() and not osp.exists(self._annotation_path(self._image_set_ids[0])))

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    def image_path_from_index(self, index: str) -> str:
        if index in self._image_paths:
            return self._image_paths[index]
        path = self._image_path_from_index(index)
        self._image_paths[index] = path
        return path

    def _image_candidates(self, index: str) -> List[str]:
        """The paths where the image of ``index`` may be, in order of preference (the first that is a file)."""
        return [osp.join(self._data_path, 'JPEGImages', index + self._image_ext)]

    def _image_path_from_index(self, index: str) -> str:
        cands = self._image_candidates(index)
        for c in cands:
            if osp.isfile(c):
                return c
        raise FileNotFoundError('{}: image {!r} not found: {}'.format(self.name, index, ', '.join(cands)))

    # ------------------------------------------------------------------ ground truth
    def _gt_cache_key(self, index: List[str]) -> str:
        ann = [self._annotation_path(i) for i in index]
        parts = dict(kind='voc_gt_roidb', name=self.name, classes=list(self.classes), image_index=index,
                     use_diff=bool(self.config['use_diff']), strict=self._strict,
                     skip=skip_bad_annotations(self.cfg), annotations=hash_files(ann))
        return make_key(**parts)

    def _gt_arrays(self, set_index: bool = True) -> Dict[str, np.ndarray]:
        """The checked ground truth of every id of the image set, as arrays (see _build_gt_arrays), from the
        cache when its key matches and every image it looked for is unchanged, else built and cached. Warns
        again (naming the files) about what was skipped and about EXIF orientations. With ``set_index`` the
        image index becomes the ids kept."""
        index = list(self._image_set_ids)
        key = self._gt_cache_key(index)
        cache_file = osp.join(self.cache_path, self.name + '_gt_roidb.npz')
        arrays = load_npz_if_key(cache_file, key)
        if arrays is not None and not ('probe_paths' in arrays and 'probe_sig' in arrays
                                       and stat_signature([str(p) for p in arrays['probe_paths']])
                                       == str(arrays['probe_sig'])):
            arrays = None  # an image changed, appeared or went away
        if arrays is not None:
            print('{} gt roidb loaded from {}'.format(self.name, cache_file))
        else:
            arrays = self._build_gt_arrays(index)
            save_npz_with_key(cache_file, key, arrays)
            print('wrote gt roidb to {}'.format(cache_file))
        for msg in arrays['notes']:  # once per dataset object, however often the arrays are loaded
            if str(msg) not in self._warned:
                self._warned.add(str(msg))
                warnings.warn(str(msg))
        if set_index:
            kept = [str(s) for s in arrays['index']]
            for idx, im in zip(kept, arrays['images']):
                if str(im):
                    self._image_paths[idx] = str(im)
            self._image_index = kept
        return arrays

    def _build_gt_arrays(self, index: List[str]) -> Dict[str, np.ndarray]:
        """roidb_to_arrays of the gt roidb of the ids kept, plus 'index' and 'images' (their ids and image paths),
        'notes' (the warnings: skipped objects and images, EXIF orientations), 'probe_paths' / 'probe_sig' (every
        image path looked at and their stat_signature) and the checked objects of every kept image, difficult
        ones included, for evaluation: 'eval_counts', 'eval_boxes' (1-based, clipped, float64), 'eval_classes',
        'eval_difficult'."""
        roidb, kept, notes, probes = [], [], [], []
        eval_counts, eval_boxes, eval_classes, eval_difficult = [], [], [], []
        skip = skip_bad_annotations(self.cfg)
        for idx in index:
            try:
                entry, objs = self._load_checked_annotation(idx, notes if skip else None, probes, notes)
            except AnnotationError as e:
                if not skip:
                    raise
                notes.append('skipping image {!r}: {}'.format(idx, e))
                continue
            roidb.append(entry)
            kept.append(idx)
            eval_counts.append(len(objs))
            for cls, box, difficult in objs:
                eval_classes.append(cls)
                eval_boxes.append(box)
                eval_difficult.append(difficult)
        arrays = roidb_to_arrays(roidb)
        arrays['index'] = np.array(kept, dtype=str)
        arrays['images'] = np.array([e.get('image', '') for e in roidb], dtype=str)
        arrays['notes'] = np.array(notes, dtype=str)
        probes = _unique(probes)
        arrays['probe_paths'] = np.array(probes, dtype=str)
        arrays['probe_sig'] = np.array(stat_signature(probes))
        arrays['eval_counts'] = np.array(eval_counts, dtype=np.int64)
        arrays['eval_boxes'] = np.array(eval_boxes, dtype=np.float64).reshape(-1, 4)
        arrays['eval_classes'] = np.array(eval_classes, dtype=np.int32)
        arrays['eval_difficult'] = np.array(eval_difficult, dtype=bool)
        return arrays

    def gt_roidb(self) -> List[Dict[str, Any]]:
        """Ground-truth roidb, one entry per image of the image set kept (see datasets.imdb for the fields).

        Cached in <cache_path>/<name>_gt_roidb.npz under a key of everything it was built from; a cache whose
        key differs, or whose images changed, is rebuilt, so edits to annotations, images, the image set,
        use_diff or the classes are always seen.
        """
        arrays = self._gt_arrays()
        roidb = roidb_from_arrays(arrays, self.num_classes)
        for entry, im in zip(roidb, arrays['images']):
            if str(im):
                entry['image'] = str(im)
        return roidb

    def _check_image(self, index: str, ann_path: str, probes: List[str],
                     notes: List[str]) -> Tuple[Optional[str], Optional[Tuple[int, int]]]:
        """(image path, (width, height)) of ``index``'s image after ds_utils.check_image_file (whole, not
        truncated; an EXIF orientation other than 1 noted), or (None, None) when a non-strict layout has no image
        file. Every candidate path looked at goes to ``probes``. Raises AnnotationError naming the annotation."""
        try:
            cands = self._image_candidates(index)
        except FileNotFoundError as e:
            raise AnnotationError('{}: {}'.format(shown_path(ann_path), e)) from None
        path = None
        for c in cands:
            probes.append(c)
            if osp.isfile(c):
                path = c
                break
        if path is None:
            if not self._strict:
                return None, None  # as the original: the image is read (and its absence reported) when needed
            raise AnnotationError('{}: missing image for {!r}: tried {}'.format(
                shown_path(ann_path), index, ', '.join(shown_path(c) for c in cands)))
        try:
            width, height, orientation = ds_utils.check_image_file(path)
        except ds_utils.ImageFileError as e:
            raise AnnotationError('{}: its image is unusable: {}'.format(shown_path(ann_path), e)) from None
        if orientation != 1:
            notes.append(ds_utils.orientation_note(path, orientation))
        return path, (width, height)

    def _load_pascal_annotation(self, index: str, skipped: Optional[List[str]] = None) -> Dict[str, Any]:
        """One gt roidb entry from Annotations/<index>.xml (see _load_checked_annotation)."""
        notes = skipped if skipped is not None else []
        return self._load_checked_annotation(index, skipped, [], notes)[0]

    def _load_checked_annotation(self, index: str, skipped: Optional[List[str]], probes: List[str],
                                 notes: List[str]) -> Tuple[Dict[str, Any], List[Tuple[int, List[float], bool]]]:
        """(gt roidb entry, checked objects) of Annotations/<index>.xml and its image.

        Every object is checked, difficult ones too: its class must be one of the dataset's and its box must
        keep some of the image after clipping. Coordinates in the entry are the XML's minus 1 (0-based), float32,
        clipped to [0, W-1] x [0, H-1] where the image size is known (the image file's when it exists, else the
        XML <size>). Difficult objects are left out of the entry unless config['use_diff']. The checked objects,
        (class index, [x1, y1, x2, y2] 1-based clipped, difficult), are what evaluation scores against. With
        ``skipped`` (a list), a bad object is reported there and left out instead of raising AnnotationError.
        """
        filename = self._annotation_path(index)
        shown = shown_path(filename)
        rec = parse_voc_xml(filename)
        image_path, image_wh = self._check_image(index, filename, probes, notes)
        size = image_wh if image_wh is not None else rec['size']
        checked, boxes, gt_classes, seg_areas = [], [], [], []
        for ix, obj in enumerate(rec['objects']):
            try:
                cls_name = canonical_class_name(obj['name'])
                if cls_name not in self._class_to_ind or cls_name == '__background__':
                    raise AnnotationError('{}: {}: class {!r} is not one of {}\'s classes {}'.format(
                        shown, describe_object(ix, obj['name']), cls_name, self.name,
                        self._class_source()))
                x1, y1, x2, y2 = [float(v) - 1 for v in obj['bbox']]
                x1, y1 = max(x1, 0.0), max(y1, 0.0)
                if size is not None:
                    x2, y2 = min(x2, size[0] - 1.0), min(y2, size[1] - 1.0)
                if x2 < x1 or y2 < y1:
                    raise AnnotationError('{}: {}: box {} lies outside the {}x{} image'.format(
                        shown, describe_object(ix, obj['name']), list(obj['bbox']),
                        size[0] if size else '?', size[1] if size else '?'))
            except AnnotationError as e:
                if skipped is None:
                    raise
                skipped.append('skipping {}'.format(e))
                continue
            cls = self._class_to_ind[cls_name]
            difficult = int(obj['difficult']) != 0
            bx1, by1, bx2, by2 = obj['bbox']
            if size is not None:
                bx2, by2 = min(bx2, float(size[0])), min(by2, float(size[1]))
            checked.append((cls, [max(bx1, 1.0), max(by1, 1.0), bx2, by2], difficult))
            if difficult and not self.config['use_diff']:
                continue
            boxes.append([x1, y1, x2, y2])
            gt_classes.append(cls)
            seg_areas.append((x2 - x1 + 1) * (y2 - y1 + 1))
        num_objs = len(boxes)
        overlaps = np.zeros((num_objs, self.num_classes), dtype=np.float32)
        gt_classes_arr = np.array(gt_classes, dtype=np.int32)
        overlaps[np.arange(num_objs), gt_classes_arr] = 1.0
        entry = {'boxes': np.array(boxes, dtype=np.float32).reshape(-1, 4),
                 'gt_classes': gt_classes_arr,
                 'gt_overlaps': as_overlaps(overlaps),
                 'flipped': False,
                 'seg_areas': np.array(seg_areas, dtype=np.float32)}
        if image_path is not None:
            entry['width'], entry['height'] = int(image_wh[0]), int(image_wh[1])
            entry['image'] = image_path
        return entry, checked

    def _class_source(self) -> str:
        return 'list'

    # ------------------------------------------------------------------ proposals
    def selective_search_roidb(self) -> List[Dict[str, Any]]:
        """gt roidb merged with selective-search boxes from config['selective_search_file'] (default
        data/selective_search_data/<name>.mat; the original's layout: 'boxes', one (R, 4) [y1, x1, y2, x2] 1-based
        array per image, in the image set's order), cached."""
        gt_roidb = self.gt_roidb()
        filename = self.config.get('selective_search_file') or osp.join(
            self.cfg.DATA_DIR, 'selective_search_data', self.name + '.mat')
        filename = osp.abspath(filename)
        if not osp.exists(filename):
            raise FileNotFoundError('Selective search data not found at: {}'.format(filename))
        key = make_key(kind='ss_roidb', gt=self._gt_cache_key(list(self._image_index)),
                       mat=stat_signature([filename]), min_size=self.config['min_size'],
                       year=getattr(self, '_year', ''), image_set=self._image_set)
        cache_file = osp.join(self.cache_path, self.name + '_selective_search_roidb.npz')
        arrays = load_npz_if_key(cache_file, key)
        if arrays is not None:
            ends = np.cumsum(arrays['counts'])
            box_list = [arrays['boxes'][e - c:e] for c, e in zip(arrays['counts'], ends)]
        else:
            box_list = self._load_selective_search_boxes(filename)
            counts = np.array([len(b) for b in box_list], np.int64)
            save_npz_with_key(cache_file, key, {
                'counts': counts,
                'boxes': np.concatenate(box_list, 0).astype(np.float32) if box_list
                else np.zeros((0, 4), np.float32)})
        if self._is_test_after_2007():
            return self.create_roidb_from_box_list(box_list, None)
        ss_roidb = self.create_roidb_from_box_list(box_list, gt_roidb)
        return imdb.merge_roidbs(gt_roidb, ss_roidb)

    def _is_test_after_2007(self) -> bool:
        """VOC test sets after 2007 have no public annotations: proposals are not merged with gt there."""
        year = getattr(self, '_year', None)
        return year is not None and int(year) != 2007 and self._image_set == 'test'

    def _load_selective_search_boxes(self, filename: str) -> List[np.ndarray]:
        import scipy.io as sio
        raw_data = sio.loadmat(filename)['boxes'].ravel()
        box_list = []
        for i in range(raw_data.shape[0]):
            boxes = raw_data[i][:, (1, 0, 3, 2)] - 1
            keep = ds_utils.unique_boxes(boxes)
            boxes = boxes[keep, :]
            keep = ds_utils.filter_small_boxes(boxes, self.config['min_size'])
            boxes = boxes[keep, :]
            box_list.append(boxes.astype(np.float32))
        return box_list

    def rpn_roidb(self) -> List[Dict[str, Any]]:
        """gt roidb merged with the proposals of config['rpn_file'] (not for post-2007 test sets)."""
        if self._is_test_after_2007():
            return self._load_rpn_roidb(None)
        gt_roidb = self.gt_roidb()
        rpn_roidb = self._load_rpn_roidb(gt_roidb)
        return imdb.merge_roidbs(gt_roidb, rpn_roidb)

    def _load_rpn_roidb(self, gt_roidb: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
        filename = self.config['rpn_file']
        if filename is None:
            raise ValueError('{}: config["rpn_file"] is not set'.format(self.name))
        print('loading {}'.format(filename))
        box_list = ds_utils.load_proposals(filename, self.image_index)
        return self.create_roidb_from_box_list(box_list, gt_roidb)

    # ------------------------------------------------------------------ results and evaluation
    def _get_comp_id(self) -> str:
        return self._comp_id + '_' + self._salt if self.config['use_salt'] else self._comp_id

    def _results_dir(self, output_dir: Optional[str]) -> str:
        return osp.join(self._devkit_path, 'results', 'VOC' + self._year, 'Main')

    def _get_voc_results_file_template(self, output_dir: Optional[str] = None) -> str:
        # e.g. <devkit>/results/VOC2007/Main/comp4_<salt>_det_test_dog.txt
        filename = self._get_comp_id() + '_det_' + self._image_set + '_{:s}.txt'
        return osp.join(self._results_dir(output_dir), filename)

    def _write_voc_results_file(self, all_boxes, output_dir: Optional[str] = None) -> None:
        """One comp4 file per class: 'id score x1 y1 x2 y2' with 1-based coordinates (the boxes + 1)."""
        os.makedirs(self._results_dir(output_dir), exist_ok=True)
        for cls_ind, cls in enumerate(self.classes):
            if cls == '__background__':
                continue
            print('Writing {} VOC results file'.format(cls))
            filename = self._get_voc_results_file_template(output_dir).format(cls)
            with open(filename, 'wt', encoding='utf-8') as f:
                for im_ind, index in enumerate(self.image_index):
                    dets = all_boxes[cls_ind][im_ind]
                    if isinstance(dets, list) and dets == []:
                        continue
                    dets = np.asarray(dets)
                    # result files are 1-based like the XML: add the 1 back
                    for k in range(dets.shape[0]):
                        f.write('{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}\n'.format(
                            index, dets[k, -1], dets[k, 0] + 1, dets[k, 1] + 1, dets[k, 2] + 1, dets[k, 3] + 1))

    def _use_07_metric(self) -> bool:
        return int(self._year) < 2010

    def _eval_cache_dir(self) -> str:
        return osp.join(self._devkit_path, 'annotations_cache')

    def _written_image_set_file(self, output_dir: Optional[str]) -> str:
        return osp.join(self._results_dir(output_dir), '{}_{}.txt'.format(self._get_comp_id(), self._image_set))

    def _eval_image_set_file(self, output_dir: Optional[str]) -> str:
        """The image set file itself when its lines are exactly the images evaluated, else a list of those
        written beside the results files (images skipped as broken left out; VOC's '<id> <flag>' lines)."""
        ids = _unique(self.image_index)
        with open(self._image_set_file(), 'rb') as f:
            lines = [x.strip() for x in f.read().decode('utf-8').lstrip('\ufeff').splitlines() if x.strip()]
        if lines == ids:
            return self._image_set_file()
        path = self._written_image_set_file(output_dir)
        _atomic_write(path, lambda f: f.write(('\n'.join(ids) + '\n').encode('utf-8')))
        return path

    def _eval_recs(self) -> Dict[str, List[Dict[str, Any]]]:
        """The checked objects of every image kept, difficult ones included, as voc_eval's recs: {id: [{'name':
        class, 'difficult': 0/1, 'bbox': [x1, y1, x2, y2] 1-based, clipped to the image}]} (from the gt cache)."""
        arrays = self._gt_arrays(set_index=False)
        ends = np.cumsum(arrays['eval_counts'])
        recs = {}
        for idx, e, c in zip(arrays['index'], ends, arrays['eval_counts']):
            objs = []
            for k in range(e - c, e):
                objs.append({'name': self._classes[int(arrays['eval_classes'][k])],
                             'difficult': int(bool(arrays['eval_difficult'][k])),
                             'bbox': [int(v) if float(v).is_integer() else float(v)
                                      for v in arrays['eval_boxes'][k]]})
            recs[str(idx)] = objs
        return recs

    def _do_python_eval(self, output_dir: str = 'output') -> List[float]:
        annopath = osp.join(self._data_path, 'Annotations', '{:s}.xml')
        # score against the checked ground truth (what training would use, difficult objects marked), never the
        # raw XML: an object of an unknown class or a box outside the image is an error or skipped, not a miss
        recs = self._eval_recs()
        missing = [i for i in _unique(self.image_index) if i not in recs]
        if missing:
            raise AnnotationError('{}: the images {} were found broken when their annotations were checked for '
                                  'the evaluation, after their detections were computed: fix them, or rerun '
                                  'with SKIP_BAD_ANNOTATIONS True from the start'.format(
                                      self.name, ', '.join(repr(m) for m in missing[:5])
                                      + (' and {} more'.format(len(missing) - 5) if len(missing) > 5 else '')))
        imagesetfile = self._eval_image_set_file(output_dir)
        cachedir = self._eval_cache_dir()
        aps = []
        curves = {}
        use_07_metric = self._use_07_metric()
        print('VOC07 metric? ' + ('Yes' if use_07_metric else 'No'))
        os.makedirs(output_dir, exist_ok=True)
        for i, cls in enumerate(self._classes):
            if cls == '__background__':
                continue
            filename = self._get_voc_results_file_template(output_dir).format(cls)
            rec, prec, ap = voc_eval(filename, annopath, imagesetfile, cls, cachedir, ovthresh=0.5,
                                     use_07_metric=use_07_metric, canonical_names=self._canonical_eval_names,
                                     recs=recs)
            aps += [ap]
            print('AP for {} = {:.4f}'.format(cls, ap))
            np.savez(osp.join(output_dir, cls + '_pr.npz'), rec=rec, prec=prec, ap=ap)
            curves[cls] = (np.asarray(rec, dtype=np.float64), np.asarray(prec, dtype=np.float64))
        # the last evaluation's numbers, for test_net's metrics.json and pr_curves.png (fast_rcnn.test)
        self.last_eval = {'metric': 'voc07_11point' if use_07_metric else 'area', 'dataset': self.name,
                          'classes': [c for c in self._classes if c != '__background__'],
                          'ap': {c: float(a) for c, a in zip(curves, aps)},
                          'mean_ap': float(np.mean(aps)), 'curves': curves}
        print('Mean AP = {:.4f}'.format(np.mean(aps)))
        print('~~~~~~~~')
        print('Results:')
        for ap in aps:
            print('{:.3f}'.format(ap))
        print('{:.3f}'.format(np.mean(aps)))
        print('~~~~~~~~')
        print('')
        print('--------------------------------------------------------------')
        print('Results computed with the **unofficial** Python eval code.')
        print('-- Thanks, The Management')
        print('--------------------------------------------------------------')
        return aps

    def _do_matlab_eval(self, output_dir: str = 'output') -> None:
        print('-----------------------------------------------------')
        print('Computing results with the official MATLAB eval code.')
        print('-----------------------------------------------------')
        path = osp.join(self.cfg.ROOT_DIR, 'lib', 'datasets', 'VOCdevkit-matlab-wrapper')
        if not osp.isdir(path):
            print('MATLAB evaluation skipped: {} is not part of this project (the official devkit code is '
                  'MATLAB); the Python evaluation above is the result.'.format(path))
            return
        cmd = 'cd {} && '.format(path)
        cmd += '{:s} -nodisplay -nodesktop '.format(self.cfg.MATLAB)
        cmd += '-r "dbstop if error; '
        cmd += 'voc_eval(\'{:s}\',\'{:s}\',\'{:s}\',\'{:s}\'); quit;"'.format(
            self._devkit_path, self._get_comp_id(), self._image_set, output_dir)
        print('Running:\n{}'.format(cmd))
        subprocess.call(cmd, shell=True)

    def evaluate_detections(self, all_boxes, output_dir: str) -> float:
        """Write comp4 results files, print each class's AP and 'Mean AP = 0.xxxx'; return the mean AP.

        all_boxes[cls][image]: (D, 5) [x1, y1, x2, y2, score], 0-based, or [] for none.
        """
        self._write_voc_results_file(all_boxes, output_dir)
        aps = self._do_python_eval(output_dir)
        if self.config['matlab_eval']:
            self._do_matlab_eval(output_dir)
        if self.config['cleanup']:
            for cls in self._classes:
                if cls == '__background__':
                    continue
                filename = self._get_voc_results_file_template(output_dir).format(cls)
                if osp.exists(filename):
                    os.remove(filename)
            listed = self._written_image_set_file(output_dir)
            if not self._keep_eval_image_list and osp.exists(listed):
                os.remove(listed)
        return float(np.mean(aps))


class pascal_voc(voc_layout):
    """VOC<year> <image_set> from data/VOCdevkit<year> (or devkit_path): 21 classes, VOC07 metric before 2010."""

    def __init__(self, image_set: str, year: str, devkit_path: Optional[str] = None,
                 cache_dir: Optional[str] = None, cfg=None):
        self.cfg = given_or_default(cfg)
        self._year = str(year)
        self._devkit_path = self._get_default_path() if devkit_path is None else devkit_path
        data_path = osp.join(self._devkit_path, 'VOC' + self._year)
        if not osp.exists(self._devkit_path):
            raise FileNotFoundError('VOCdevkit path does not exist: {}'.format(self._devkit_path))
        if not osp.exists(data_path):
            raise FileNotFoundError('Path does not exist: {}'.format(data_path))
        voc_layout.__init__(self, 'voc_' + self._year + '_' + image_set, image_set, data_path, VOC_CLASSES,
                            cache_dir=cache_dir, cfg=self.cfg)

    def _get_default_path(self) -> str:
        return osp.join(self.cfg.DATA_DIR, 'VOCdevkit' + self._year)
