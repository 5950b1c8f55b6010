"""CPU NMS back-ends: py_cpu_nms against the original's fixtures and hand-computed cases, cpu_nms (the C++ grid
NMS) against py_cpu_nms and torchvision on many random inputs, including the inputs that leave its fast path."""
import os.path as osp

import numpy as np
import pytest
import torch
import torchvision

from nms.cpu_nms import cpu_nms
from nms.py_cpu_nms import py_cpu_nms

BACKENDS = [py_cpu_nms, cpu_nms]


def _clustered(rng, n, centers=20, spread=20.0, size=(10, 120), dtype=np.float32):
    c = rng.uniform(0, 600, size=(centers, 2))[rng.randint(0, centers, n)]
    xy = c + rng.randn(n, 2) * spread
    wh = rng.uniform(size[0], size[1], size=(n, 2))
    return np.hstack([xy, xy + wh, rng.rand(n, 1)]).astype(dtype)


def _torchvision_keep(dets, thresh):
    """Independent reference: torchvision's NMS on +1-shifted corners (IoU identical for integer float64 boxes)."""
    b = torch.from_numpy(dets[:, :4].astype(np.float64))
    b[:, 2:] += 1
    return torchvision.ops.nms(b, torch.from_numpy(dets[:, 4].astype(np.float64)), thresh).numpy()


@pytest.mark.parametrize('nms', BACKENDS)
@pytest.mark.parametrize('t', ['0p3', '0p5', '0p7'])
def test_oracle_fixtures(oracle_dir, nms, t):
    o = np.load(osp.join(oracle_dir, 'nms.npz'))
    thresh = float(t.replace('p', '.'))
    np.testing.assert_array_equal(nms(o['dets_f32'], thresh), o['keep_py_cpu_nms_f32_t' + t])
    np.testing.assert_array_equal(nms(o['dets_f32'].astype(np.float64), thresh), o['keep_py_cpu_nms_f64_t' + t])


@pytest.mark.parametrize('nms', BACKENDS)
def test_oracle_tie_case_keeps_iou_equal_to_thresh(oracle_dir, nms):
    o = np.load(osp.join(oracle_dir, 'nms.npz'))
    np.testing.assert_array_equal(nms(o['tie_dets'], float(o['tie_thresh'])), o['tie_keep_py_cpu_nms'])
    np.testing.assert_array_equal(nms(o['tie_dets'], o['tie_thresh']), o['tie_keep_py_cpu_nms'])


@pytest.mark.parametrize('nms', BACKENDS)
def test_hand_computed_ties(nms):
    # [0,0,9,9] (area 100) and [0,0,9,4] (area 50): IoU exactly 0.5
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 4, 0.8], [50, 50, 60, 60, 0.95]], dtype=np.float32)
    np.testing.assert_array_equal(nms(dets, 0.5), [2, 0, 1])       # IoU == thresh: kept
    np.testing.assert_array_equal(nms(dets, 0.49), [2, 0])         # IoU > thresh: dropped
    np.testing.assert_array_equal(nms(dets.astype(np.float64), 0.5), [2, 0, 1])


@pytest.mark.parametrize('nms', BACKENDS)
def test_threshold_dtype_follows_numpy(nms):
    # IoU 30/100 = 0.3 exactly; float32(0.3) > 0.3. py_cpu_nms compares the float32 IoU with a Python float in
    # float32 (kept) but with a numpy float64 in float64 (0.30000001 > 0.3: dropped).
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 2, 0.8]], dtype=np.float32)
    np.testing.assert_array_equal(nms(dets, 0.3), [0, 1])
    np.testing.assert_array_equal(nms(dets, np.float64(0.3)), [0])
    np.testing.assert_array_equal(nms(dets.astype(np.float64), np.float64(0.3)), [0, 1])


@pytest.mark.parametrize('nms', BACKENDS)
def test_empty_and_single(nms):
    for dtype in (np.float32, np.float64):
        keep = nms(np.zeros((0, 5), dtype=dtype), 0.7)
        assert keep.dtype == np.int64 and keep.shape == (0,)
        np.testing.assert_array_equal(nms(np.array([[1, 2, 3, 4, 0.5]], dtype=dtype), 0.7), [0])


@pytest.mark.parametrize('nms', BACKENDS)
def test_bad_shape_is_refused(nms):
    with pytest.raises(ValueError, match='dets must be'):
        nms(np.zeros((3, 4), dtype=np.float32), 0.5)


def test_descending_score_order_and_identical_boxes():
    dets = np.array([[0, 0, 10, 10, 0.1], [0, 0, 10, 10, 0.3], [100, 0, 110, 10, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(cpu_nms(dets, 0.5), [1, 2])


@pytest.mark.parametrize('thresh', [0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_cpu_nms_matches_py_cpu_nms_random(thresh):
    rng = np.random.RandomState(int(thresh * 100))
    for trial in range(4):
        n = [1, 37, 500, 3000][trial]
        dets = _clustered(rng, n, spread=[5.0, 20.0, 60.0, 30.0][trial])
        np.testing.assert_array_equal(cpu_nms(dets, thresh), py_cpu_nms(dets, thresh))
        d64 = dets.astype(np.float64)
        np.testing.assert_array_equal(cpu_nms(d64, thresh), py_cpu_nms(d64, thresh))


def test_cpu_nms_matches_torchvision_on_integer_boxes():
    rng = np.random.RandomState(3)
    for thresh in (0.3, 0.5, 0.7):
        dets = _clustered(rng, 4000, spread=15.0, dtype=np.float64)
        dets[:, :4] = np.round(dets[:, :4])     # integer boxes: many exact IoU ties, exact in float64
        dets[:, 4] = rng.permutation(len(dets))  # distinct scores
        np.testing.assert_array_equal(cpu_nms(dets, thresh), _torchvision_keep(dets, thresh))


def test_cpu_nms_rpn_like_proposals():
    """Many boxes of a few anchor shapes on a stride-16 grid, clipped to the image (the proposal layer's input)."""
    rng = np.random.RandomState(0)
    sizes = np.array([[184, 96], [368, 192], [736, 384], [128, 128], [256, 256], [512, 512], [88, 176],
                      [176, 352], [352, 704]], dtype=np.float64)
    cx, cy = np.meshgrid(np.arange(50) * 16 + 7.5, np.arange(38) * 16 + 7.5)
    ctr = np.stack([cx.ravel(), cy.ravel()], 1).repeat(9, 0)
    wh = np.tile(sizes, (1900, 1)) * np.exp(rng.randn(len(ctr), 2) * 0.1)
    ctr = ctr + rng.randn(len(ctr), 2) * 0.1 * wh
    b = np.hstack([ctr - wh / 2, ctr + wh / 2])
    b[:, 0::2] = b[:, 0::2].clip(0, 799)
    b[:, 1::2] = b[:, 1::2].clip(0, 599)
    dets = np.hstack([b, rng.rand(len(b), 1)]).astype(np.float32)[:12000]
    for thresh in (0.7, 0.5):
        np.testing.assert_array_equal(cpu_nms(dets, thresh), py_cpu_nms(dets, thresh))


def test_cpu_nms_degenerate_and_odd_boxes():
    """Zero/negative widths, NaN/inf coordinates, tiny fractional boxes, huge coordinates: the exact slow path."""
    rng = np.random.RandomState(5)
    base = _clustered(rng, 300, spread=10.0, size=(1, 30))
    cases = []
    d = base.copy(); d[::7, 2] = d[::7, 0] - 1; cases.append(d)                # zero width (area 0)
    d = base.copy(); d[::5, 2] = d[::5, 0] - 3; cases.append(d)                # negative width
    d = base.copy(); d[::11, 1] = np.nan; cases.append(d)                      # NaN coordinate
    d = base.copy(); d[::13, 3] = np.inf; cases.append(d)                      # infinite coordinate
    d = base.copy(); d[::3, 4] = np.nan; cases.append(d)                       # NaN score
    d = base.copy(); d[:, 2:4] = d[:, 0:2] - 1 + rng.uniform(1e-4, 2e-3, (300, 2)); cases.append(d)  # tiny
    d = base.copy(); d[:, :4] *= 1e5; cases.append(d)                          # beyond the fast path's range
    d = base.copy(); d[:, 4] = np.round(d[:, 4] * 4); cases.append(d)          # many tied scores
    with np.errstate(invalid='ignore', divide='ignore'):  # py_cpu_nms meets 0/0 and inf - inf here
        for d in cases:
            for thresh in (0.0, 0.3, 0.7, float('nan'), -0.5):
                np.testing.assert_array_equal(cpu_nms(d, thresh), py_cpu_nms(d, thresh))


def test_cpu_nms_integer_dtype_and_extra_columns():
    rng = np.random.RandomState(9)
    d = _clustered(rng, 200, spread=10.0, dtype=np.float64)
    d = np.hstack([np.round(d[:, :4]), rng.permutation(200)[:, None], rng.rand(200, 2)])
    np.testing.assert_array_equal(cpu_nms(d.astype(np.int64), 0.5), py_cpu_nms(d.astype(np.int64), 0.5))
    np.testing.assert_array_equal(cpu_nms(d, 0.5), py_cpu_nms(d[:, :5], 0.5))
    np.testing.assert_array_equal(cpu_nms(np.asfortranarray(d), 0.5), py_cpu_nms(d, 0.5))


@pytest.mark.parametrize('nice', [True, False])
def test_cpu_nms_max_keep_is_the_head_of_the_full_result(nice):
    """max_keep stops the greedy loop early: the kept rows are the first max_keep of py_cpu_nms's full answer, on the
    grid path (ordinary boxes) and the plain loop (a zero-width box sends the input there)."""
    rng = np.random.RandomState(11)
    dets = _clustered(rng, 3000, spread=30.0)
    if not nice:
        dets[0, 2] = dets[0, 0] - 1.0  # width 0: the exact slow path
    full = py_cpu_nms(dets, 0.7)
    assert len(full) > 300
    for k in (1, 7, 300, len(full), len(full) + 5):
        np.testing.assert_array_equal(cpu_nms(dets, 0.7, k), full[:k])
    np.testing.assert_array_equal(cpu_nms(dets, 0.7, 0), full)


@pytest.mark.parametrize('thresh', [0.3, 0.5, 0.7, np.float64(0.7)])
def test_torchvision_keep_is_ours_given_our_order_and_plus_one_boxes(thresh):
    # what a GPU may run instead of our kernel when it is faster: torchvision.ops.nms on the boxes in numpy's score
    # order (tied scores included) with stand-in scores it cannot reorder, x2/y2 + 1 for the +1 areas
    from nms import gpu_nms
    rng = np.random.RandomState(11)
    xy = rng.uniform(0, 300, size=(3000, 2))
    dets = np.hstack([xy, xy + rng.uniform(8, 150, size=(3000, 2)),
                      np.round(rng.uniform(size=(3000, 1)), 2)]).astype(np.float32)  # many tied scores
    dets[:500, :4] = np.round(dets[:500, :4])  # integer boxes: exact IoU ties too
    got = gpu_nms.torchvision_keep(torch.from_numpy(dets), thresh).numpy()
    np.testing.assert_array_equal(got, cpu_nms(dets, thresh))


def test_torchvision_keep_compares_a_python_float_thresh_in_float32():
    # IoU exactly float32(0.3) (> 0.3 in double): numpy's rule compares in float32, so the box is kept, as here.
    # Boxes [0, 0, 9, 9] and [0, 0, 9, h-1]: IoU = 10 h / 100 for h <= 10 -> 0.3 at h = 3 (float32 rounding of 30/100)
    from nms import gpu_nms
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 2, 0.8]], np.float32)
    want = cpu_nms(dets, 0.3)
    np.testing.assert_array_equal(gpu_nms.torchvision_keep(torch.from_numpy(dets), 0.3).numpy(), want)
    np.testing.assert_array_equal(gpu_nms.torchvision_keep(torch.from_numpy(dets), np.float64(0.3)).numpy(),
                                  cpu_nms(dets, np.float64(0.3)))
