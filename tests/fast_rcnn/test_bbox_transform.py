import os.path as osp

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fast_rcnn.bbox_transform import bbox_transform, bbox_transform_inv, clip_boxes


@pytest.fixture(scope='module')
def fx(oracle_dir):
    return np.load(osp.join(oracle_dir, 'bbox_transform.npz'))


def test_transform_matches_original(fx):
    np.testing.assert_allclose(bbox_transform(fx['bt_ex_rois'], fx['bt_gt_rois']), fx['bt_targets'],
                               rtol=0, atol=1e-10)


def test_inverse_matches_original_f64_and_f32(fx):
    np.testing.assert_allclose(bbox_transform_inv(fx['inv_boxes'], fx['inv_deltas']), fx['inv_pred'],
                               rtol=1e-12, atol=1e-10)
    got = bbox_transform_inv(fx['inv_boxes'], fx['inv_deltas_f32'])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, fx['inv_pred_f32'], rtol=1e-5, atol=1e-4)


def test_roundtrip_is_off_by_one_as_the_original(fx):
    got = bbox_transform_inv(fx['bt_ex_rois'], bbox_transform(fx['bt_ex_rois'], fx['bt_gt_rois']))
    np.testing.assert_allclose(got, fx['roundtrip_pred'], atol=1e-9)
    np.testing.assert_allclose(got - fx['roundtrip_expected_gt'], np.tile([0, 0, 1, 1], (len(got), 1)), atol=1e-9)


def test_empty(fx):
    got = bbox_transform_inv(np.zeros((0, 4)), np.zeros((0, 8), dtype=np.float32))
    assert got.shape == fx['inv_empty_pred'].shape and got.dtype == fx['inv_empty_pred'].dtype


def test_clip_matches_original(fx):
    np.testing.assert_array_equal(clip_boxes(fx['clip_boxes_in'], fx['clip_im_shape']), fx['clip_boxes_out'])
    got = clip_boxes(fx['clip_boxes_in_f32'], fx['clip_im_shape_f32'])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, fx['clip_boxes_out_f32'])


def test_hand_worked():
    # ex: 10x20 box at (0,0): w=10, h=20, centre (5, 10); gt: 20x20 at (5,0): centre (15, 10)
    t = bbox_transform(np.array([[0., 0., 9., 19.]]), np.array([[5., 0., 24., 19.]]))
    np.testing.assert_allclose(t, [[1.0, 0.0, np.log(2.0), 0.0]])
    # zero deltas decode to x2 + 1, y2 + 1
    p = bbox_transform_inv(np.array([[0., 0., 9., 19.]]), np.zeros((1, 8)))
    np.testing.assert_allclose(p, [[0, 0, 10, 20, 0, 0, 10, 20]])
    c = clip_boxes(np.array([[-5., -1., 700., 50., 3., 4., 5., 400.]]), (300, 600))
    np.testing.assert_array_equal(c, [[0, 0, 599, 50, 3, 4, 5, 299]])


def test_torch_equals_numpy(fx):
    t = bbox_transform(torch.from_numpy(fx['bt_ex_rois']), torch.from_numpy(fx['bt_gt_rois']))
    np.testing.assert_allclose(t.numpy(), fx['bt_targets'], atol=1e-10)
    p = bbox_transform_inv(torch.from_numpy(fx['inv_boxes']), torch.from_numpy(fx['inv_deltas_f32']))
    assert p.dtype == torch.float32
    np.testing.assert_allclose(p.numpy(), fx['inv_pred_f32'], rtol=1e-5, atol=1e-4)
    c = clip_boxes(torch.from_numpy(fx['clip_boxes_in']), fx['clip_im_shape'])
    np.testing.assert_array_equal(c.numpy(), fx['clip_boxes_out'])
    assert bbox_transform_inv(torch.zeros(0, 4), torch.zeros(0, 8)).shape == (0, 8)


coords = st.floats(min_value=0, max_value=500, allow_nan=False, width=64, allow_subnormal=False)
sizes = st.floats(min_value=1, max_value=400, allow_nan=False, width=64, allow_subnormal=False)


@st.composite
def box_arrays(draw, n=5):
    x = draw(arrays(np.float64, (n, 2), elements=coords))
    wh = draw(arrays(np.float64, (n, 2), elements=sizes))
    return np.hstack([x, x + wh - 1])


@settings(max_examples=60, deadline=None)
@given(box_arrays(), box_arrays())
def test_property_decode_of_encode_is_gt_plus_one(ex, gt):
    got = bbox_transform_inv(ex, bbox_transform(ex, gt))
    np.testing.assert_allclose(got, gt + [0, 0, 1, 1], rtol=1e-9, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(box_arrays(), arrays(np.float64, (5, 4), elements=st.floats(-1, 1, allow_subnormal=False)))
def test_property_encode_of_decode_recovers_deltas_with_plus_one(ex, deltas):
    # decoded boxes are 1 px wider than x1 + w - 1, so encoding them back uses w' = w_pred + 1
    pred = bbox_transform_inv(ex, deltas)
    back = bbox_transform(ex, pred - [0, 0, 1, 1])
    np.testing.assert_allclose(back, deltas, rtol=1e-7, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (6, 8), elements=st.floats(-2000, 2000, allow_subnormal=False)), st.integers(1, 900), st.integers(1, 900))
def test_property_clip_stays_inside(boxes, h, w):
    c = clip_boxes(boxes, (h, w))
    assert (c[:, 0::2] >= 0).all() and (c[:, 0::2] <= w - 1).all()
    assert (c[:, 1::2] >= 0).all() and (c[:, 1::2] <= h - 1).all()
    inside = (boxes[:, 0::2] >= 0) & (boxes[:, 0::2] <= w - 1)
    np.testing.assert_array_equal(c[:, 0::2][inside], boxes[:, 0::2][inside])
