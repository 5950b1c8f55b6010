"""voc_eval / voc_ap against hand-worked cases (expected values computed by hand in the comments)."""
import os
import os.path as osp

import numpy as np
import pytest

from datasets.voc_eval import parse_rec, voc_ap, voc_eval
from voc_testutils import write_annotation, write_image_set


def test_voc_ap_hand():
    rec = np.array([0.5, 0.5, 0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 0.5, 1 / 3., 0.5])
    # 11-point: t = 0 .. 0.5 -> max prec 1.0 (6 points); t = 0.6 .. 1.0 -> 0.5 (5 points)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(8.5 / 11)
    # area under the envelope: 0.5 * 1 + 0.5 * 0.5
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.75)
    # no recall at all
    assert voc_ap(np.zeros(3), np.zeros(3), True) == 0
    assert voc_ap(np.array([]), np.array([]), False) == 0


def _dataset(root):
    # im1: dog A [1,1,10,10]; dog B [21,21,30,30] difficult; cat [1,1,10,10]. im2: dog C [1,1,20,20]
    write_annotation(root, 'im1', [
        {'name': 'dog', 'bbox': (1, 1, 10, 10), 'difficult': 0},
        {'name': 'dog', 'bbox': (21, 21, 30, 30), 'difficult': 1},
        {'name': 'cat', 'bbox': (1, 1, 10, 10), 'difficult': 0}])
    write_annotation(root, 'im2', [{'name': 'dog', 'bbox': (1, 1, 20, 20), 'difficult': 0}])
    write_image_set(root, 'test', ['im1', 'im2'])


def _dets(path, lines):
    with open(path, 'w') as f:
        f.write(''.join(l + '\n' for l in lines))


DOG_DETS = ['im1 0.900 1.0 1.0 10.0 10.0',    # TP (A)
            'im1 0.800 1.0 1.0 10.0 10.0',    # FP: A already matched
            'im1 0.700 21.0 21.0 30.0 30.0',  # best gt is difficult: ignored
            'im2 0.600 1.0 1.0 10.0 10.0',    # IoU 100/400 = 0.25: FP
            'im2 0.500 1.0 1.0 20.0 19.0']    # IoU 380/400 = 0.95: TP


def test_voc_eval_hand(tmp_path):
    root = str(tmp_path / 'VOC')
    _dataset(root)
    det = str(tmp_path / 'det_{:s}.txt')
    _dets(det.format('dog'), DOG_DETS[::-1])  # order in the file does not matter: sorted by score
    ann = osp.join(root, 'Annotations', '{:s}.xml')
    iset = osp.join(root, 'ImageSets', 'Main', 'test.txt')
    cache = str(tmp_path / 'cache')
    rec, prec, ap = voc_eval(det, ann, iset, 'dog', cache, ovthresh=0.5, use_07_metric=True)
    # npos = 2 (B is difficult); tp = [1,1,1,2], fp = [0,1,2,2] over the 4 counted detections,
    # the difficult one counts as neither: tp/fp cumsums [1,1,1,1,2] / [0,1,1,2,2]
    np.testing.assert_allclose(rec, [0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 0.5, 1 / 3., 0.5])
    assert ap == pytest.approx(8.5 / 11)
    rec, prec, ap = voc_eval(det, ann, iset, 'dog', cache, ovthresh=0.5, use_07_metric=False)
    assert ap == pytest.approx(0.75)


def test_voc_eval_iou_must_exceed_thresh(tmp_path):
    root = str(tmp_path / 'VOC')
    _dataset(root)
    det = str(tmp_path / 'det_{:s}.txt')
    # cat gt [1,1,10,10]: [1,1,10,20] has IoU exactly 100/200 = 0.5 -> FP (needs > 0.5); then an exact TP
    _dets(det.format('cat'), ['im1 0.9 1 1 10 20', 'im1 0.3 1 1 10 10'])
    rec, prec, ap = voc_eval(det, osp.join(root, 'Annotations', '{:s}.xml'),
                             osp.join(root, 'ImageSets', 'Main', 'test.txt'), 'cat', None, 0.5, True)
    np.testing.assert_allclose(rec, [0, 1])
    np.testing.assert_allclose(prec, [0, 0.5])
    assert ap == pytest.approx(0.5)


def test_voc_eval_empty_detections_is_zero(tmp_path):
    root = str(tmp_path / 'VOC')
    _dataset(root)
    det = str(tmp_path / 'det_{:s}.txt')
    _dets(det.format('dog'), [])
    rec, prec, ap = voc_eval(det, osp.join(root, 'Annotations', '{:s}.xml'),
                             osp.join(root, 'ImageSets', 'Main', 'test.txt'), 'dog', str(tmp_path / 'c'))
    assert ap == 0.0 and len(rec) == 0 and len(prec) == 0


def test_parse_rec_floats_and_missing_tags(tmp_path):
    root = str(tmp_path)
    write_annotation(root, 'a', [{'name': 'dog', 'bbox': (1.5, 2, 10.25, 11), 'difficult': None, 'extra': ''}])
    objs = parse_rec(osp.join(root, 'Annotations', 'a.xml'))
    assert objs == [{'name': 'dog', 'pose': 'Unspecified', 'truncated': 0, 'difficult': 0,
                     'bbox': [1.5, 2, 10.25, 11]}]


def test_voc_eval_cache_follows_annotations_and_image_set(tmp_path):
    root = str(tmp_path / 'VOC')
    _dataset(root)
    det = str(tmp_path / 'det_{:s}.txt')
    _dets(det.format('dog'), DOG_DETS)
    ann = osp.join(root, 'Annotations', '{:s}.xml')
    iset = osp.join(root, 'ImageSets', 'Main', 'test.txt')
    cache = str(tmp_path / 'cache')
    assert voc_eval(det, ann, iset, 'dog', cache, use_07_metric=False)[2] == pytest.approx(0.75)
    assert os.listdir(cache)  # a cache was written
    # move C so that the 0.6 detection [1,1,10,10] matches it (IoU 1) and the 0.5 one does not (IoU 90/110)
    write_annotation(root, 'im2', [{'name': 'dog', 'bbox': (1, 1, 10, 10), 'difficult': 0}])
    rec, prec, ap = voc_eval(det, ann, iset, 'dog', cache, use_07_metric=False)
    # tp [1,1,1,2,2], fp [0,1,1,1,2]: rec [.5,.5,.5,1,1], prec [1,.5,.5,2/3,.5] -> .5*1 + .5*(2/3)
    np.testing.assert_allclose(prec, [1, 0.5, 0.5, 2 / 3., 0.5])
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3.)
    # image set without im2 (its detections removed too): npos = 1; dets on im1: TP, FP, ignored
    write_image_set(root, 'test', ['im1'])
    _dets(det.format('dog'), DOG_DETS[:3])
    rec, prec, ap = voc_eval(det, ann, iset, 'dog', cache, use_07_metric=False)
    np.testing.assert_allclose(rec, [1, 1, 1])
    assert ap == pytest.approx(1.0)


def test_voc_eval_npos_zero_matches_original_arithmetic(tmp_path):
    # no gt of the class but detections: rec = tp / 0 (inf / nan) as the original; 11-point AP is 0
    root = str(tmp_path / 'VOC')
    _dataset(root)
    det = str(tmp_path / 'det_{:s}.txt')
    _dets(det.format('bird'), ['im1 0.9 1 1 10 10'])
    rec, prec, ap = voc_eval(det, osp.join(root, 'Annotations', '{:s}.xml'),
                             osp.join(root, 'ImageSets', 'Main', 'test.txt'), 'bird', None, 0.5, True)
    assert np.isnan(rec[0]) and prec[0] == 0 and ap == 0


def test_names_compared_as_written_unless_canonical(tmp_path):
    # the original compared <name> text unstripped: ' dog ' is not 'dog'; canonical_names (folders) strips
    root = str(tmp_path / 'VOC')
    write_annotation(root, 'im1', [{'name': ' Dog ', 'bbox': (1, 1, 10, 10), 'difficult': 0}])
    write_image_set(root, 'test', ['im1'])
    det = str(tmp_path / 'det_{:s}.txt')
    _dets(det.format('dog'), ['im1 0.9 1 1 10 10'])
    args = (det, osp.join(root, 'Annotations', '{:s}.xml'), osp.join(root, 'ImageSets', 'Main', 'test.txt'),
            'dog', None, 0.5, True)
    assert voc_eval(*args)[2] == 0
    assert voc_eval(*args, canonical_names=True)[2] == pytest.approx(1.0)
