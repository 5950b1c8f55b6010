"""PASCAL VOC 2007 / 2012 (as the original's datasets/pascal_voc.py) and the shared VOC-layout loading.

Layout: <devkit>/VOC<year>/{Annotations/<id>.xml, JPEGImages/<id>.jpg, ImageSets/Main/<split>.txt}.
Departures from the original (all fix bugs; results on standard VOC are the same):
- boxes are float32 (the original's uint16 wrapped a -1 to 65535); coordinates crossing the border are clipped
  to the image (its XML <size> when given) and a box left empty by clipping is an error naming file and object;
- the gt roidb cache is a .npz keyed by the annotations' contents, the image set, use_diff, the classes and a
  format version (never stale, no pickle); voc_eval's annotation cache likewise;
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
from datasets.cache import (dir_signature, hash_files, load_npz_if_key, make_key, save_npz_with_key,
                            stat_signature)
from datasets.imdb import _cfg, as_overlaps, imdb, roidb_from_arrays, roidb_to_arrays
from datasets.voc_eval import voc_eval
from datasets.voc_xml import AnnotationError, canonical_class_name, describe_object, image_size, parse_voc_xml

VOC_CLASSES = ('__background__',  # always index 0
               'aeroplane', 'bicycle', 'bird', 'boat',
               'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')


def skip_bad_annotations(cfg=None) -> bool:
    """cfg.SKIP_BAD_ANNOTATIONS (default False): warn and skip broken objects/images instead of raising."""
    return bool(_cfg(cfg).SKIP_BAD_ANNOTATIONS)


class voc_layout(imdb):
    """Common code of every dataset laid out as VOC: image set file, XML annotations, comp4 results files.

    Subclasses set: self._data_path (the folder holding Annotations/, JPEGImages/, ImageSets/), self._image_set,
    self._classes, and may override _image_path_from_index, _strict (images must exist; sizes from the image
    files), _use_07_metric, _results_dir, _eval_cache_dir.
    """

    _strict = False
    _canonical_eval_names = False

    def __init__(self, name: str, image_set: str, data_path: str, classes: Sequence[str],
                 cache_dir: Optional[str] = None):
        imdb.__init__(self, name)
        self._image_set = image_set
        self._data_path = data_path
        self._classes = tuple(classes)
        self._class_to_ind = dict(zip(self.classes, range(self.num_classes)))
        self._image_ext = '.jpg'
        self._cache_dir = cache_dir
        self._salt = str(uuid.uuid4())
        self._comp_id = 'comp4'
        self._image_paths: Dict[str, str] = {}
        self._image_index = self._load_image_set_index()
        self._roidb_handler = self.selective_search_roidb
        # dataset options, read when the data is loaded or evaluated
        self.config = {'cleanup': True,
                       'use_salt': True,
                       'use_diff': False,
                       'matlab_eval': False,
                       'rpn_file': None,
                       'min_size': 2}

    # ------------------------------------------------------------------ paths
    def _image_set_file(self) -> str:
        return osp.join(self._data_path, 'ImageSets', 'Main', self._image_set + '.txt')

    def _annotation_path(self, index: str) -> str:
        return osp.join(self._data_path, 'Annotations', index + '.xml')

    def _load_image_set_index(self) -> List[str]:
        """Image ids, one per line of ImageSets/Main/<image_set>.txt."""
        image_set_file = self._image_set_file()
        if not osp.exists(image_set_file):
            raise FileNotFoundError('{}: image set file does not exist: {}'.format(self.name, image_set_file))
        with open(image_set_file) as f:
            image_index = [x.strip().split()[0] for x in f.readlines() if x.strip()]
        return image_index

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    def image_path_from_index(self, index: str) -> str:
        if index in self._image_paths:
            return self._image_paths[index]
        path = self._image_path_from_index(index)
        self._image_paths[index] = path
        return path

    def _image_path_from_index(self, index: str) -> str:
        image_path = osp.join(self._data_path, 'JPEGImages', index + self._image_ext)
        if not osp.exists(image_path):
            raise FileNotFoundError('{}: image {!r} not found: {}'.format(self.name, index, image_path))
        return image_path

    # ------------------------------------------------------------------ ground truth
    def _gt_cache_key(self, index: List[str]) -> str:
        ann = [self._annotation_path(i) for i in index]
        parts = dict(kind='voc_gt_roidb', name=self.name, classes=list(self.classes), image_index=index,
                     use_diff=bool(self.config['use_diff']), strict=self._strict,
                     skip=skip_bad_annotations(), annotations=hash_files(ann))
        if self._strict:
            parts['images'] = dir_signature(osp.join(self._data_path, 'JPEGImages'))
        return make_key(**parts)

    def gt_roidb(self) -> List[Dict[str, Any]]:
        """Ground-truth roidb, one entry per image of the image set (see datasets.imdb for the fields).

        Cached in <cache_path>/<name>_gt_roidb.npz under a key of everything it was built from; a cache whose
        key differs is rebuilt, so edits to annotations, the image set, use_diff or the classes are always seen.
        """
        index = list(self._image_index)
        key = self._gt_cache_key(index)
        cache_file = osp.join(self.cache_path, self.name + '_gt_roidb.npz')
        arrays = load_npz_if_key(cache_file, key)
        if arrays is not None:
            kept = [str(s) for s in arrays['index']]
            roidb = roidb_from_arrays(arrays, self.num_classes)
            for msg in arrays['skipped']:
                warnings.warn(str(msg))
            images = [str(s) for s in arrays['images']]
            for idx, im, entry in zip(kept, images, roidb):
                if im:
                    self._image_paths[idx] = im
                    entry['image'] = im
            self._image_index = kept
            print('{} gt roidb loaded from {}'.format(self.name, cache_file))
            return roidb

        roidb, kept, skipped = [], [], []
        skip = skip_bad_annotations()
        for idx in index:
            try:
                entry = self._load_pascal_annotation(idx, skipped if skip else None)
            except AnnotationError as e:
                if not skip:
                    raise
                skipped.append('skipping image {!r}: {}'.format(idx, e))
                warnings.warn(skipped[-1])
                continue
            roidb.append(entry)
            kept.append(idx)
        arrays = roidb_to_arrays(roidb)
        arrays['index'] = np.array(kept, dtype=str)
        arrays['images'] = np.array([e.get('image', '') for e in roidb], dtype=str)
        arrays['skipped'] = np.array(skipped, dtype=str)
        save_npz_with_key(cache_file, key, arrays)
        print('wrote gt roidb to {}'.format(cache_file))
        self._image_index = kept
        return roidb

    def _image_for_annotation(self, index: str, rec: Dict[str, Any], ann_path: str) -> Tuple[str, Optional[Tuple[int, int]]]:
        """(image path, (width, height) or None) for an annotation; strict layouts need the image file."""
        if not self._strict:
            path = osp.join(self._data_path, 'JPEGImages', index + self._image_ext)
            return path, rec['size']
        try:
            path = self.image_path_from_index(index)
        except FileNotFoundError as e:
            raise AnnotationError('{}: {}'.format(ann_path, e))
        try:
            size = image_size(path)
        except Exception as e:
            raise AnnotationError('{}: cannot read the image {}: {}'.format(ann_path, path, e))
        return path, size

    def _load_pascal_annotation(self, index: str, skipped: Optional[List[str]] = None) -> Dict[str, Any]:
        """One gt roidb entry from Annotations/<index>.xml.

        Coordinates are the XML's minus 1 (0-based), float32, clipped to [0, W-1] x [0, H-1] where the image
        size is known. Difficult objects are dropped unless config['use_diff']. With ``skipped`` (a list), a
        bad object is reported there and left out instead of raising AnnotationError.
        """
        filename = self._annotation_path(index)
        rec = parse_voc_xml(filename)
        image_path, size = self._image_for_annotation(index, rec, filename)
        objs = list(enumerate(rec['objects']))
        if not self.config['use_diff']:
            objs = [(ix, obj) for ix, obj in objs if int(obj['difficult']) == 0]
        boxes, gt_classes, seg_areas = [], [], []
        for ix, obj in objs:
            try:
                cls_name = canonical_class_name(obj['name'])
                if cls_name not in self._class_to_ind or cls_name == '__background__':
                    raise AnnotationError('{}: {}: class {!r} is not one of {}\'s classes {}'.format(
                        filename, describe_object(ix, obj['name']), cls_name, self.name,
                        self._class_source()))
                x1, y1, x2, y2 = [float(v) - 1 for v in obj['bbox']]
                x1, y1 = max(x1, 0.0), max(y1, 0.0)
                if size is not None:
                    x2, y2 = min(x2, size[0] - 1.0), min(y2, size[1] - 1.0)
                if x2 < x1 or y2 < y1:
                    raise AnnotationError('{}: {}: box {} lies outside the {}x{} image'.format(
                        filename, describe_object(ix, obj['name']), list(obj['bbox']),
                        size[0] if size else '?', size[1] if size else '?'))
            except AnnotationError as e:
                if skipped is None:
                    raise
                skipped.append('skipping {}'.format(e))
                warnings.warn(skipped[-1])
                continue
            boxes.append([x1, y1, x2, y2])
            gt_classes.append(self._class_to_ind[cls_name])
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
        if self._strict:
            entry['width'], entry['height'] = int(size[0]), int(size[1])
            entry['image'] = image_path
        return entry

    def _class_source(self) -> str:
        return 'list'

    # ------------------------------------------------------------------ proposals
    def selective_search_roidb(self) -> List[Dict[str, Any]]:
        """gt roidb merged with selective-search boxes from data/selective_search_data/<name>.mat (cached)."""
        gt_roidb = self.gt_roidb()
        filename = osp.abspath(osp.join(_cfg().DATA_DIR, 'selective_search_data', self.name + '.mat'))
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
        box_list = ds_utils.load_proposals(filename)
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
            with open(filename, 'wt') as f:
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

    def _eval_image_set_file(self, output_dir: Optional[str]) -> str:
        return self._image_set_file()

    def _do_python_eval(self, output_dir: str = 'output') -> List[float]:
        annopath = osp.join(self._data_path, 'Annotations', '{:s}.xml')
        imagesetfile = self._eval_image_set_file(output_dir)
        cachedir = self._eval_cache_dir()
        aps = []
        use_07_metric = self._use_07_metric()
        print('VOC07 metric? ' + ('Yes' if use_07_metric else 'No'))
        os.makedirs(output_dir, exist_ok=True)
        for i, cls in enumerate(self._classes):
            if cls == '__background__':
                continue
            filename = self._get_voc_results_file_template(output_dir).format(cls)
            rec, prec, ap = voc_eval(filename, annopath, imagesetfile, cls, cachedir, ovthresh=0.5,
                                     use_07_metric=use_07_metric, canonical_names=self._canonical_eval_names)
            aps += [ap]
            print('AP for {} = {:.4f}'.format(cls, ap))
            np.savez(osp.join(output_dir, cls + '_pr.npz'), rec=rec, prec=prec, ap=ap)
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
        print('Results should be very close to the official MATLAB eval code.')
        print('Recompute with `./tools/reval.py --matlab ...` for your paper.')
        print('-- Thanks, The Management')
        print('--------------------------------------------------------------')
        return aps

    def _do_matlab_eval(self, output_dir: str = 'output') -> None:
        print('-----------------------------------------------------')
        print('Computing results with the official MATLAB eval code.')
        print('-----------------------------------------------------')
        path = osp.join(_cfg().ROOT_DIR, 'lib', 'datasets', 'VOCdevkit-matlab-wrapper')
        if not osp.isdir(path):
            print('MATLAB evaluation skipped: {} is not part of this project (the official devkit code is '
                  'MATLAB); the Python evaluation above is the result.'.format(path))
            return
        cmd = 'cd {} && '.format(path)
        cmd += '{:s} -nodisplay -nodesktop '.format(_cfg().MATLAB)
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
        return float(np.mean(aps))


class pascal_voc(voc_layout):
    """VOC<year> <image_set> from data/VOCdevkit<year> (or devkit_path): 21 classes, VOC07 metric before 2010."""

    def __init__(self, image_set: str, year: str, devkit_path: Optional[str] = None,
                 cache_dir: Optional[str] = None):
        self._year = str(year)
        self._devkit_path = self._get_default_path() if devkit_path is None else devkit_path
        data_path = osp.join(self._devkit_path, 'VOC' + self._year)
        if not osp.exists(self._devkit_path):
            raise FileNotFoundError('VOCdevkit path does not exist: {}'.format(self._devkit_path))
        if not osp.exists(data_path):
            raise FileNotFoundError('Path does not exist: {}'.format(data_path))
        voc_layout.__init__(self, 'voc_' + self._year + '_' + image_set, image_set, data_path, VOC_CLASSES,
                            cache_dir=cache_dir)

    def _get_default_path(self) -> str:
        return osp.join(_cfg().DATA_DIR, 'VOCdevkit' + self._year)
