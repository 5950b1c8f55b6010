"""rpn.device_ops: the torch pieces the RPN layers share, against the original's implementations (the Cython IoU,
numpy's argsort and RandomState.choice)."""
import numpy as np
import pytest
import torch

from rpn.device_ops import anchor_map, bbox_overlaps, descending_order, rng_choice
from rpn.generate_anchors import generate_anchors, shift_anchors
from utils.cython_bbox import bbox_overlaps as cython_bbox_overlaps


def _boxes(rng, n, integer):
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(-3, 60, size=(n, 2))  # some empty boxes (x2 < x1) too
    boxes = np.hstack([xy, xy + wh])
    return np.round(boxes) if integer else boxes


@pytest.mark.parametrize('integer', [True, False])
def test_bbox_overlaps_is_the_cython_loop_bit_for_bit(integer):
    # integer boxes: touching edges (iw == 0), shared pixels and exact IoU ties all occur
    rng = np.random.RandomState(0)
    boxes, query = _boxes(rng, 400, integer), _boxes(rng, 30, integer)
    got = bbox_overlaps(torch.from_numpy(boxes), torch.from_numpy(query)).numpy()
    want = cython_bbox_overlaps(boxes, query)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_bbox_overlaps_hand_worked_and_extra_columns_ignored():
    # [0, 0, 9, 9] (area 100) and [5, 5, 14, 14] share 5 x 5 pixels: 25 / 175; [10, 0, 19, 9] touches, shares none
    a = torch.tensor([[0, 0, 9, 9, 3.0]])
    b = torch.tensor([[5, 5, 14, 14], [10, 0, 19, 9], [0, 0, 9, 9]], dtype=torch.float32)
    np.testing.assert_array_equal(bbox_overlaps(a, b).numpy(), [[25 / 175, 0, 1]])


def test_descending_order_is_numpys_argsort_reversed_with_ties():
    rng = np.random.RandomState(3)
    for n in (5, 40, 3000):
        scores = np.round(rng.uniform(size=n), 1).astype(np.float32)  # many ties
        np.testing.assert_array_equal(descending_order(torch.from_numpy(scores)).numpy(), scores.argsort()[::-1])


def test_rng_choice_draws_what_numpy_choice_draws_from_the_array():
    inds = torch.tensor([4, 8, 15, 16, 23, 42, 99])
    got = rng_choice(np.random.RandomState(7), inds, 4)
    want = np.random.RandomState(7).choice(inds.numpy(), size=4, replace=False)
    np.testing.assert_array_equal(got.numpy(), want)
    # a Generator (whose choice(n) and choice(array) also agree) works as well
    got = rng_choice(np.random.default_rng(1), inds, 3)
    np.testing.assert_array_equal(got.numpy(), np.random.default_rng(1).choice(inds.numpy(), size=3, replace=False))


def test_anchor_map_is_the_shifted_cell_anchors_and_cached():
    a = anchor_map(3, 4, 16, (8, 16, 32), (0.5, 1, 2), torch.device('cpu'))
    np.testing.assert_array_equal(a.numpy(), shift_anchors(generate_anchors(), 3, 4, 16))
    assert anchor_map(3, 4, 16, [8.0, 16.0, 32.0], np.array([0.5, 1, 2]), 'cpu') is a


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    rng = np.random.RandomState(5)
    boxes, query = _boxes(rng, 3000, True), _boxes(rng, 20, True)
    np.testing.assert_array_equal(bbox_overlaps(torch.from_numpy(boxes).cuda(), torch.from_numpy(query).cuda())
                                  .cpu().numpy(), cython_bbox_overlaps(boxes, query))
    scores = np.round(rng.uniform(size=5000), 2).astype(np.float32)
    np.testing.assert_array_equal(descending_order(torch.from_numpy(scores).cuda()).cpu().numpy(),
                                  scores.argsort()[::-1])
    distinct = rng.permutation(5000).astype(np.float32)
    np.testing.assert_array_equal(descending_order(torch.from_numpy(distinct).cuda()).cpu().numpy(),
                                  distinct.argsort()[::-1])
