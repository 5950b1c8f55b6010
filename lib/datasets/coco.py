"""MS COCO (as the original's datasets/coco.py), on PyPI's pycocotools.

Names: coco_2014_{train,val,minival,valminusminival}, coco_2015_{test,test-dev}. Data under data/coco (or
``data_path``): annotations/{instances|image_info}_<set><year>.json and images/<set><year>/ (minival and
valminusminival images live in val2014, test-dev's in test2015), file names COCO_<dir>_<id:012d>.jpg (or the
json's file_name when that file is there). Ground truth: [x, y, w, h] -> x2 = min(W - 1, x + max(0, w - 1)),
objects with area > 0 and a non-empty box kept; a crowd object gets -1 in every column of gt_overlaps, so it
is never a foreground target. Results go to detections_<set><year>_results[_<salt>].json as [x, y, w, h] with
w = x2 - x1 + 1 and are evaluated by COCOeval (bbox) on non-test sets, printing the mean and per-class AP at
IoU 0.50:0.95 and COCOeval's summary table. The gt roidb cache is a keyed .npz (never stale, no pickle);
the COCOeval object is not pickled (the original wrote detection_results.pkl).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import uuid
from typing import Any, Dict, List, Optional

import numpy as np

from datasets import ds_utils
from datasets.cache import load_npz_if_key, make_key, save_npz_with_key, stat_signature
from datasets.imdb import as_overlaps, imdb, roidb_from_arrays, roidb_to_arrays


class coco(imdb):
    """COCO <image_set><year> (e.g. coco('train', '2014'))."""

    def __init__(self, image_set: str, year: str, data_path: Optional[str] = None,
                 cache_dir: Optional[str] = None, cfg=None):
        from pycocotools.coco import COCO
        imdb.__init__(self, 'coco_' + year + '_' + image_set, cfg=cfg)
        self._cache_dir = cache_dir
        # dataset options
        self.config = {'top_k': 2000,
                       'use_salt': True,
                       'cleanup': True,
                       'crowd_thresh': 0.7,
                       'min_size': 2}
        self._year = year
        self._image_set = image_set
        self._data_path = data_path or osp.join(self.cfg.DATA_DIR, 'coco')
        ann_file = self._get_ann_file()
        if not osp.exists(ann_file):
            raise FileNotFoundError('{}: annotation file not found: {}'.format(self.name, ann_file))
        self._ann_file = ann_file
        self._COCO = COCO(ann_file)
        cats = self._COCO.loadCats(self._COCO.getCatIds())
        self._classes = tuple(['__background__'] + [c['name'] for c in cats])
        self._class_to_ind = dict(zip(self.classes, range(self.num_classes)))
        self._class_to_coco_cat_id = dict(zip([c['name'] for c in cats], self._COCO.getCatIds()))
        self._image_index = self._load_image_set_index()
        self.set_proposal_method('gt')
        self.competition_mode(False)
        # minival / valminusminival / test-dev take their images from another split's folder
        self._view_map = {'minival2014': 'val2014',
                          'valminusminival2014': 'val2014',
                          'test-dev2015': 'test2015'}
        coco_name = image_set + year  # e.g., "val2014"
        self._data_name = self._view_map.get(coco_name, coco_name)

    def _get_ann_file(self) -> str:
        prefix = 'instances' if self._image_set.find('test') == -1 else 'image_info'
        return osp.join(self._data_path, 'annotations', prefix + '_' + self._image_set + self._year + '.json')

    def _load_image_set_index(self) -> List[int]:
        return self._COCO.getImgIds()

    def _get_widths(self) -> List[int]:
        anns = self._COCO.loadImgs(self._image_index)
        return [ann['width'] for ann in anns]

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    def image_path_from_index(self, index: int) -> str:
        """images/<dir>/COCO_<dir>_<id:012d>.jpg, or images/<dir>/<file_name> of the json when that exists."""
        file_name = 'COCO_' + self._data_name + '_' + str(index).zfill(12) + '.jpg'
        image_path = osp.join(self._data_path, 'images', self._data_name, file_name)
        if not osp.exists(image_path):
            alt = self._COCO.imgs.get(index, {}).get('file_name')
            if alt:
                alt_path = osp.join(self._data_path, 'images', self._data_name, alt)
                if osp.exists(alt_path):
                    return alt_path
            raise FileNotFoundError('{}: image {} not found: {}'.format(self.name, index, image_path))
        return image_path

    def gt_roidb(self) -> List[Dict[str, Any]]:
        """Ground-truth roidb (with 'width' and 'height'), cached under a key of the annotation file."""
        key = make_key(kind='coco_gt_roidb', name=self.name, ann=stat_signature([self._ann_file]),
                       classes=list(self.classes), index=[int(i) for i in self._image_index])
        cache_file = osp.join(self.cache_path, self.name + '_gt_roidb.npz')
        arrays = load_npz_if_key(cache_file, key)
        if arrays is not None:
            print('{} gt roidb loaded from {}'.format(self.name, cache_file))
            return roidb_from_arrays(arrays, self.num_classes)
        gt_roidb = [self._load_coco_annotation(index) for index in self._image_index]
        save_npz_with_key(cache_file, key, roidb_to_arrays(gt_roidb))
        print('wrote gt roidb to {}'.format(cache_file))
        return gt_roidb

    def _load_coco_annotation(self, index: int) -> Dict[str, Any]:
        """One gt entry from the COCO api; crowd objects get gt_overlaps -1 for every class."""
        im_ann = self._COCO.loadImgs(index)[0]
        width = im_ann['width']
        height = im_ann['height']
        ann_ids = self._COCO.getAnnIds(imgIds=index, iscrowd=None)
        objs = self._COCO.loadAnns(ann_ids)
        # keep objects with a positive area and a non-empty box after clipping to the image
        valid_objs = []
        for obj in objs:
            x1 = np.max((0, obj['bbox'][0]))
            y1 = np.max((0, obj['bbox'][1]))
            x2 = np.min((width - 1, x1 + np.max((0, obj['bbox'][2] - 1))))
            y2 = np.min((height - 1, y1 + np.max((0, obj['bbox'][3] - 1))))
            if obj['area'] > 0 and x2 >= x1 and y2 >= y1:
                valid_objs.append((obj, [x1, y1, x2, y2]))
        num_objs = len(valid_objs)
        boxes = np.zeros((num_objs, 4), dtype=np.float32)
        gt_classes = np.zeros((num_objs,), dtype=np.int32)
        overlaps = np.zeros((num_objs, self.num_classes), dtype=np.float32)
        seg_areas = np.zeros((num_objs,), dtype=np.float32)
        cat_to_ind = dict([(self._class_to_coco_cat_id[cls], self._class_to_ind[cls])
                           for cls in self._classes[1:]])
        for ix, (obj, box) in enumerate(valid_objs):
            cls = cat_to_ind[obj['category_id']]
            boxes[ix, :] = box
            gt_classes[ix] = cls
            seg_areas[ix] = obj['area']
            if obj.get('iscrowd', 0):
                overlaps[ix, :] = -1.0  # never a foreground target
            else:
                overlaps[ix, cls] = 1.0
        ds_utils.validate_boxes(boxes, width=width, height=height)
        return {'width': width, 'height': height, 'boxes': boxes, 'gt_classes': gt_classes,
                'gt_overlaps': as_overlaps(overlaps), 'flipped': False, 'seg_areas': seg_areas}

    def rpn_roidb(self) -> List[Dict[str, Any]]:
        """gt roidb merged with the proposals of config['rpn_file'] (gt splits), proposals only otherwise."""
        if self._image_set not in ('test', 'test-dev'):
            gt_roidb = self.gt_roidb()
            return imdb.merge_roidbs(gt_roidb, self._load_rpn_roidb(gt_roidb))
        return self._load_rpn_roidb(None)

    def _load_rpn_roidb(self, gt_roidb):
        filename = self.config.get('rpn_file')
        if not filename:
            raise ValueError('{}: config["rpn_file"] is not set'.format(self.name))
        box_list = ds_utils.load_proposals(filename, self.image_index)
        return self.create_roidb_from_box_list(box_list, gt_roidb)

    # ------------------------------------------------------------------ results and evaluation
    def _print_detection_eval_metrics(self, coco_eval) -> float:
        IoU_lo_thresh = 0.5
        IoU_hi_thresh = 0.95

        def _get_thr_ind(coco_eval, thr):
            ind = np.where((coco_eval.params.iouThrs > thr - 1e-5) & (coco_eval.params.iouThrs < thr + 1e-5))[0][0]
            iou_thr = coco_eval.params.iouThrs[ind]
            assert np.isclose(iou_thr, thr)
            return ind

        ind_lo = _get_thr_ind(coco_eval, IoU_lo_thresh)
        ind_hi = _get_thr_ind(coco_eval, IoU_hi_thresh)
        # precision has dims (iou, recall, cls, area range, max dets); area range 0 = all, max dets 2 = 100
        precision = coco_eval.eval['precision'][ind_lo:(ind_hi + 1), :, :, 0, 2]
        ap_default = np.mean(precision[precision > -1]) if (precision > -1).any() else 0.0
        print('~~~~ Mean and per-category AP @ IoU=[{:.2f},{:.2f}] ~~~~'.format(IoU_lo_thresh, IoU_hi_thresh))
        print('{:.1f}'.format(100 * ap_default))
        for cls_ind, cls in enumerate(self.classes):
            if cls == '__background__':
                continue
            precision = coco_eval.eval['precision'][ind_lo:(ind_hi + 1), :, cls_ind - 1, 0, 2]
            ap = np.mean(precision[precision > -1]) if (precision > -1).any() else float('nan')
            print('{:.1f}'.format(100 * ap))
        print('~~~~ Summary metrics ~~~~')
        coco_eval.summarize()
        return float(ap_default)

    def _do_detection_eval(self, res_file: str, output_dir: str) -> float:
        from pycocotools.cocoeval import COCOeval
        with open(res_file) as f:
            results = json.load(f)
        if len(results) == 0:
            print('No detections: AP = 0')
            return 0.0
        coco_dt = self._COCO.loadRes(res_file)
        coco_eval = COCOeval(self._COCO, coco_dt, 'bbox')
        coco_eval.evaluate()
        coco_eval.accumulate()
        ap = self._print_detection_eval_metrics(coco_eval)
        names = ('AP', 'AP50', 'AP75', 'AP_small', 'AP_medium', 'AP_large', 'AR_1', 'AR_10', 'AR_100', 'AR_small',
                 'AR_medium', 'AR_large')
        # the last evaluation's numbers, for test_net's metrics.json (fast_rcnn.test)
        self.last_eval = {'metric': 'coco', 'dataset': self.name, 'mean_ap': float(ap),
                          'coco': {n: float(v) for n, v in zip(names, coco_eval.stats)}}
        eval_file = osp.join(output_dir, 'detection_results.json')
        with open(eval_file, 'w') as fid:
            json.dump({'ap_50_95': ap, 'stats': [float(s) for s in coco_eval.stats]}, fid)
        print('Wrote COCO eval results to: {}'.format(eval_file))
        return ap

    def _coco_results_one_category(self, boxes, cat_id: int) -> List[Dict[str, Any]]:
        results = []
        for im_ind, index in enumerate(self.image_index):
            dets = boxes[im_ind]
            if isinstance(dets, list) and dets == []:
                continue
            dets = np.asarray(dets, dtype=np.float64)
            scores = dets[:, -1]
            xs = dets[:, 0]
            ys = dets[:, 1]
            ws = dets[:, 2] - xs + 1
            hs = dets[:, 3] - ys + 1
            results.extend([{'image_id': int(index), 'category_id': int(cat_id),
                             'bbox': [float(xs[k]), float(ys[k]), float(ws[k]), float(hs[k])],
                             'score': float(scores[k])} for k in range(dets.shape[0])])
        return results

    def _write_coco_results_file(self, all_boxes, res_file: str) -> None:
        # one json list of {image_id, category_id, bbox [x, y, w, h], score}
        results = []
        for cls_ind, cls in enumerate(self.classes):
            if cls == '__background__':
                continue
            print('Collecting {} results ({:d}/{:d})'.format(cls, cls_ind, self.num_classes - 1))
            coco_cat_id = self._class_to_coco_cat_id[cls]
            results.extend(self._coco_results_one_category(all_boxes[cls_ind], coco_cat_id))
        print('Writing results json to {}'.format(res_file))
        with open(res_file, 'w') as fid:
            json.dump(results, fid)

    def evaluate_detections(self, all_boxes, output_dir: str) -> float:
        """Write the json results; on non-test sets run COCOeval and return AP@[.5:.95] (else 0.0)."""
        os.makedirs(output_dir, exist_ok=True)
        res_file = osp.join(output_dir, ('detections_' + self._image_set + self._year + '_results'))
        if self.config['use_salt']:
            res_file += '_{}'.format(str(uuid.uuid4()))
        res_file += '.json'
        self._write_coco_results_file(all_boxes, res_file)
        self.last_eval = None
        ap = 0.0
        # test splits have no public ground truth
        if self._image_set.find('test') == -1:
            ap = self._do_detection_eval(res_file, output_dir)
        if self.config['cleanup']:
            os.remove(res_file)
        return ap
