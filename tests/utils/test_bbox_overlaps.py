import os.path as osp

import numpy as np
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from utils.cython_bbox import bbox_overlaps


def test_matches_original(oracle_dir):
    d = np.load(osp.join(oracle_dir, 'bbox_overlaps.npz'))
    got = bbox_overlaps(d['boxes'], d['query_boxes'])
    assert got.dtype == np.float64 and got.shape == (120, 30)
    np.testing.assert_allclose(got, d['overlaps'], rtol=0, atol=1e-12)


def test_hand_worked():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9], [3, 3, 3, 3]], dtype=float)
    query = np.array([[0, 0, 9, 9], [9, 9, 18, 18], [10, 0, 19, 9], [0, 0, 19, 19], [3, 3, 3, 3]], dtype=float)
    got = bbox_overlaps(boxes, query)
    # identical; one shared corner pixel: 1 / (100 + 100 - 1); adjacent: 0; contained: 100/400; single pixel
    np.testing.assert_allclose(np.diag(got), [1.0, 1.0 / 199, 0.0, 0.25, 1.0])
    assert got[4, 0] == 1.0 / 100
    assert bbox_overlaps(np.zeros((0, 4)), query).shape == (0, 5)
    assert bbox_overlaps(boxes, np.zeros((0, 4))).shape == (5, 0)


boxes_st = arrays(np.float64, (7, 4), elements=st.integers(0, 60).map(float))


@settings(max_examples=60, deadline=None)
@given(boxes_st, boxes_st)
def test_property_equals_torchvision_with_plus_one(a, b):
    a = np.hstack([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])])
    b = np.hstack([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])])
    # torchvision uses exclusive x2, y2: shift by +1 so its areas and intersections equal ours
    tv = torchvision.ops.box_iou(torch.from_numpy(a + [0, 0, 1, 1]), torch.from_numpy(b + [0, 0, 1, 1])).numpy()
    np.testing.assert_allclose(bbox_overlaps(a, b), tv, rtol=1e-12, atol=1e-12)


def test_fifth_column_is_ignored_and_bad_shapes_are_errors():
    boxes = np.array([[0, 0, 9, 9]], dtype=float)
    gt = np.array([[0, 0, 9, 9, 3], [0, 0, 19, 19, 1], [5, 0, 14, 9, 2], [0, 0, 4, 4, 1]], dtype=float)
    np.testing.assert_allclose(bbox_overlaps(boxes, gt), [[1.0, 0.25, 50 / 150, 0.25]])
    import pytest
    with pytest.raises(ValueError, match='query_boxes'):
        bbox_overlaps(boxes, np.zeros((3, 3)))
