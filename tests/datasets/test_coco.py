"""coco: a tiny COCO json written here, its gt roidb (crowd, clipping) and evaluation through pycocotools."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from datasets.coco import coco


@pytest.fixture
def coco_dir(tmp_path):
    root = str(tmp_path / 'coco')
    os.makedirs(osp.join(root, 'annotations'))
    os.makedirs(osp.join(root, 'images', 'val2014'))
    images = [{'id': 1, 'width': 100, 'height': 80, 'file_name': 'COCO_val2014_000000000001.jpg'},
              {'id': 2, 'width': 50, 'height': 60, 'file_name': 'COCO_val2014_000000000002.jpg'}]
    for im in images:
        cv2.imwrite(osp.join(root, 'images', 'val2014', im['file_name']),
                    np.zeros((im['height'], im['width'], 3), np.uint8))
    anns = [
        {'id': 1, 'image_id': 1, 'category_id': 3, 'bbox': [10, 20, 30, 40], 'area': 1200, 'iscrowd': 0},
        {'id': 2, 'image_id': 1, 'category_id': 7, 'bbox': [0, 0, 100, 80], 'area': 8000, 'iscrowd': 0},
        {'id': 3, 'image_id': 1, 'category_id': 7, 'bbox': [50, 50, 20, 20], 'area': 400, 'iscrowd': 1},
        {'id': 4, 'image_id': 2, 'category_id': 3, 'bbox': [20, 10, 10, 10], 'area': 100, 'iscrowd': 0},
        {'id': 5, 'image_id': 2, 'category_id': 7, 'bbox': [5, 5, 10, 10], 'area': 0, 'iscrowd': 0},
        {'id': 6, 'image_id': 2, 'category_id': 7, 'bbox': [40.5, 50, 20, 20], 'area': 150, 'iscrowd': 0}]
    for a in anns:
        x, y, w, h = a['bbox']
        a['segmentation'] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    cats = [{'id': 3, 'name': 'cat', 'supercategory': 'animal'}, {'id': 7, 'name': 'dog', 'supercategory': 'animal'}]
    with open(osp.join(root, 'annotations', 'instances_minival2014.json'), 'w') as f:
        json.dump({'images': images, 'annotations': anns, 'categories': cats}, f)
    return root


def test_gt_roidb(coco_dir, tmp_path):
    d = coco('minival', '2014', data_path=coco_dir, cache_dir=str(tmp_path / 'cache'))
    assert d.name == 'coco_2014_minival' and d.classes == ('__background__', 'cat', 'dog')
    assert d.image_path_at(1).endswith(osp.join('val2014', 'COCO_val2014_000000000002.jpg'))
    for r in (d.gt_roidb(), coco('minival', '2014', data_path=coco_dir, cache_dir=str(tmp_path / 'cache')).gt_roidb()):
        e = r[0]
        # [x, y, w, h] -> [x, y, min(W-1, x + w - 1), min(H-1, y + h - 1)]
        np.testing.assert_array_equal(e['boxes'], [[10, 20, 39, 59], [0, 0, 99, 79], [50, 50, 69, 69]])
        np.testing.assert_array_equal(e['gt_classes'], [1, 2, 2])
        np.testing.assert_array_equal(e['gt_overlaps'], [[0, 1, 0], [0, 0, 1], [-1, -1, -1]])  # crowd: -1
        np.testing.assert_array_equal(e['seg_areas'], [1200, 8000, 400])
        assert (e['width'], e['height']) == (100, 80)
        # area 0 dropped; the box crossing the right border clipped to W - 1 = 49
        np.testing.assert_array_equal(r[1]['boxes'], [[20, 10, 29, 19], [40.5, 50, 49, 59]])
    d.append_flipped_images()  # widths from the json
    np.testing.assert_array_equal(d.roidb[3]['boxes'][0], [50 - 29 - 1, 10, 50 - 20 - 1, 19])


def test_evaluate_perfect_and_against_cocoeval(coco_dir, tmp_path, capsys):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    # pycocotools counts the area-0 object as a gt to find (the roidb drops it): leave it out here
    ann_file = osp.join(coco_dir, 'annotations', 'instances_minival2014.json')
    with open(ann_file) as f:
        js = json.load(f)
    js['annotations'] = [a for a in js['annotations'] if a['area'] > 0]
    with open(ann_file, 'w') as f:
        json.dump(js, f)
    d = coco('minival', '2014', data_path=coco_dir, cache_dir=str(tmp_path / 'cache'))
    # perfect detections of every non-crowd object (0-based inclusive boxes from the json's [x, y, w, h])
    all_boxes = [[[] for _ in range(2)] for _ in range(3)]
    all_boxes[1][0] = np.array([[10, 20, 39, 59, 0.9]], np.float32)
    all_boxes[2][0] = np.array([[0, 0, 99, 79, 0.8]], np.float32)
    all_boxes[1][1] = np.array([[20, 10, 29, 19, 0.7]], np.float32)
    all_boxes[2][1] = np.array([[40.5, 50, 59.5, 69, 0.6]], np.float32)
    out = str(tmp_path / 'out')
    ap = d.evaluate_detections(all_boxes, out)
    assert ap == pytest.approx(1.0)
    text = capsys.readouterr().out
    assert 'Mean and per-category AP @ IoU=[0.50,0.95]' in text
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]' in text
    # imperfect detections: the same AP as COCOeval run here on the equivalent json results
    all_boxes[1][0] = np.array([[12, 20, 39, 55, 0.9], [60, 60, 70, 70, 0.95]], np.float32)
    all_boxes[2][1] = np.array([[35, 45, 59.5, 69, 0.6]], np.float32)
    ap = d.evaluate_detections(all_boxes, out)
    results = [{'image_id': 1, 'category_id': 3, 'bbox': [12, 20, 28, 36], 'score': 0.9},
               {'image_id': 1, 'category_id': 3, 'bbox': [60, 60, 11, 11], 'score': 0.95},
               {'image_id': 1, 'category_id': 7, 'bbox': [0, 0, 100, 80], 'score': 0.8},
               {'image_id': 2, 'category_id': 3, 'bbox': [20, 10, 10, 10], 'score': 0.7},
               {'image_id': 2, 'category_id': 7, 'bbox': [35, 45, 25.5, 25], 'score': 0.6}]
    gt = COCO(osp.join(coco_dir, 'annotations', 'instances_minival2014.json'))
    ev = COCOeval(gt, gt.loadRes(results), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ap == pytest.approx(ev.stats[0]) and 0 < ap < 1
    assert os.listdir(out) == ['detection_results.json']  # the results json was cleaned up


def test_no_detections(coco_dir, tmp_path):
    d = coco('minival', '2014', data_path=coco_dir, cache_dir=str(tmp_path / 'cache'))
    assert d.evaluate_detections([[[] for _ in range(2)] for _ in range(3)], str(tmp_path / 'o')) == 0.0
