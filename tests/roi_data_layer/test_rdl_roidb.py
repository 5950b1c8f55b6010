"""prepare_roidb, add_bbox_regression_targets and filter_roidb on hand-worked entries."""
import cv2
import numpy as np
import pytest

from datasets.imdb import imdb
from roi_data_layer.roidb import add_bbox_regression_targets, filter_roidb, prepare_roidb


class TinyImdb(imdb):
    def __init__(self, paths, roidb):
        imdb.__init__(self, 'tiny', ('__background__', 'a', 'b'))
        self._paths = paths
        self._image_index = [str(i) for i in range(len(paths))]
        self._roidb = roidb

    def image_path_at(self, i):
        return self._paths[i]


def _entry(boxes, classes, overlaps):
    return {'boxes': np.array(boxes, np.float32).reshape(-1, 4), 'gt_classes': np.array(classes, np.int32),
            'gt_overlaps': np.array(overlaps, np.float32).reshape(-1, 3), 'flipped': False,
            'seg_areas': np.zeros(len(classes), np.float32)}


def test_prepare_roidb(tmp_path):
    p = str(tmp_path / 'im.png')
    cv2.imwrite(p, np.zeros((30, 50, 3), np.uint8))
    e = _entry([[0, 0, 9, 9], [0, 0, 9, 19], [20, 20, 29, 29]], [1, 0, 0],
               [[0, 1, 0], [0, 0.5, 0], [0, 0, 0]])
    d = TinyImdb([p], [e])
    prepare_roidb(d)
    assert (e['image'], e['width'], e['height']) == (p, 50, 30)  # from the file
    np.testing.assert_array_equal(e['max_overlaps'], [1, 0.5, 0])
    np.testing.assert_array_equal(e['max_classes'], [1, 1, 0])


@pytest.mark.filterwarnings('ignore:invalid value encountered in divide')  # std 0 -> nan, as the original
def test_bbox_regression_targets(cfg_copy):
    e = _entry([[0, 0, 9, 9], [0, 0, 9, 19], [20, 20, 29, 29]], [1, 0, 0], [[0, 1, 0], [0, 0.5, 0], [0, 0, 0]])
    e['max_overlaps'] = np.array([1, 0.5, 0], np.float32)
    e['max_classes'] = np.array([1, 1, 0])
    # row 1 (IoU 0.5 >= BBOX_THRESH) regresses to the gt: ex w 10 h 20 ctr (5, 10); gt w 10 h 10 ctr (5, 5)
    raw = np.array([[1, 0, 0, 0, 0], [1, 0, -0.25, 0, np.log(0.5)], [0, 0, 0, 0, 0]])
    cfg_copy.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    roidb = [dict(e)]
    means, stds = add_bbox_regression_targets(roidb, cfg_copy)
    np.testing.assert_allclose(means, np.zeros(12))
    np.testing.assert_allclose(stds, np.tile([0.1, 0.1, 0.2, 0.2], 3))
    expect = raw.copy()
    expect[:2, 1:] /= [0.1, 0.1, 0.2, 0.2]
    np.testing.assert_allclose(roidb[0]['bbox_targets'], expect, rtol=1e-6, atol=1e-6)
    # empirical: class 1 rows (0, 0, 0, 0) and (0, -.25, 0, log .5): mean (0, -.125, 0, log(.5)/2),
    # std = |difference| / 2 = (0, .125, 0, -log(.5)/2)
    cfg_copy.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = False
    roidb = [dict(e)]
    means, stds = add_bbox_regression_targets(roidb, cfg_copy)
    np.testing.assert_allclose(means.reshape(3, 4)[1], [0, -0.125, 0, np.log(0.5) / 2], atol=1e-7)
    np.testing.assert_allclose(stds.reshape(3, 4)[1], [0, 0.125, 0, -np.log(0.5) / 2], atol=1e-6)
    np.testing.assert_allclose(means.reshape(3, 4)[2], 0)
    # normalised: the two rows become -1 and +1 where std > 0
    np.testing.assert_allclose(roidb[0]['bbox_targets'][:2, [2, 4]], [[1, 1], [-1, -1]], atol=1e-5)


def test_filter_roidb(cfg_copy):
    def ent(ov):
        return {'max_overlaps': np.array(ov, np.float32)}
    cfg_copy.TRAIN.FG_THRESH, cfg_copy.TRAIN.BG_THRESH_HI, cfg_copy.TRAIN.BG_THRESH_LO = 0.5, 0.5, 0.1
    roidb = [ent([]), ent([1.0]), ent([0.05]), ent([0.3]), ent([0.5])]
    kept = filter_roidb(roidb, cfg_copy)
    assert [list(e['max_overlaps']) for e in kept] == [[1.0], [pytest.approx(0.3)], [0.5]]
    cfg_copy.TRAIN.BG_THRESH_LO = 0.0
    assert len(filter_roidb(roidb, cfg_copy)) == 4
