"""rpn.proposal_target_layer: RoI sampling, labels, class-specific targets and weights (hand-worked values)."""
import copy

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from fast_rcnn.config import cfg as default_cfg
from rpn.proposal_target_layer import proposal_target_layer

K = 5
GT = np.array([[10, 10, 49, 49, 3]], dtype=np.float32)   # 40 x 40, class 3
# IoUs with GT, worked by hand (+1 widths):
ROIS = np.array([
    [0, 10, 10, 49, 49],     # r0: identical, 1.0                 -> fg
    [0, 10, 10, 49, 59],     # r1: 1600 / 2000 = 0.8              -> fg
    [0, 10, 10, 49, 89],     # r2: 1600 / 3200 = 0.5 (>= 0.5)      -> fg
    [0, 10, 10, 49, 90],     # r3: 1600 / 3240 = 0.494            -> bg
    [0, 30, 10, 69, 49],     # r4: 800 / 2400 = 0.333             -> bg
    [0, 100, 100, 139, 139],  # r5: 0                              -> below BG_THRESH_LO 0.1
    [0, 45, 10, 84, 49],     # r6: 200 / 3000 = 0.067             -> below BG_THRESH_LO 0.1
], dtype=np.float32)
GT_ROI = [0, 10, 10, 49, 49]   # appended as candidate r7 -> fg


def make_cfg(**train):
    c = copy.deepcopy(default_cfg)
    for k, v in train.items():
        c.TRAIN[k] = v
    return c


def iou_plus1(a, b):
    one = torch.tensor([0., 0., 1., 1.], dtype=torch.float64)
    return box_iou(torch.as_tensor(np.asarray(a, np.float64)[:, :4]) + one,
                   torch.as_tensor(np.asarray(b, np.float64)[:, :4]) + one).numpy()


def rows_by_roi(rois):
    return {tuple(r[1:].tolist()): i for i, r in enumerate(rois)}


def test_hand_worked_iou_claims():
    np.testing.assert_allclose(iou_plus1(ROIS[:, 1:], GT)[:, 0],
                               [1, 0.8, 0.5, 1600 / 3240, 800 / 2400, 0, 200 / 3000])


def test_small_case_labels_targets_weights():
    rois, labels, targets, w_in, w_out = proposal_target_layer(
        ROIS, GT, K, cfg=make_cfg(BBOX_NORMALIZE_TARGETS_PRECOMPUTED=True), rng=np.random.RandomState(0))
    assert rois.shape == (6, 5) and labels.shape == (6,)
    for blob in (targets, w_in, w_out):
        assert blob.shape == (6, 4 * K) and blob.dtype == np.float32
    np.testing.assert_array_equal(labels, [3, 3, 3, 3, 0, 0])   # fg first
    rows = rows_by_roi(rois)
    # the gt box is among the candidates (r0 and the appended gt are the same box)
    assert sum(1 for r in rois if tuple(r[1:]) == tuple(GT_ROI[1:])) == 2
    assert set(rows) == {tuple(map(float, r[1:])) for r in ROIS[:5]}
    assert {tuple(r[1:]) for r in rois[4:]} == {(10, 10, 49, 90), (30, 10, 69, 49)}

    # r1: ex w 40 h 50, centre (30, 35); gt centre (30, 30), h 40 -> (0, -0.1, 0, log 0.8) / (.1, .1, .2, .2)
    i1 = rows[(10, 10, 49, 59)]
    np.testing.assert_allclose(targets[i1, 12:16], [0, -1, 0, np.log(0.8) / 0.2], rtol=1e-5, atol=1e-6)
    # r2: h 80, centre y 50 -> dy -0.25, dh log 0.5
    i2 = rows[(10, 10, 49, 89)]
    np.testing.assert_allclose(targets[i2, 12:16], [0, -2.5, 0, np.log(0.5) / 0.2], rtol=1e-5, atol=1e-6)
    # only class 3's columns are written; bg rows are all zero
    mask = np.zeros((6, 4 * K), dtype=bool)
    mask[:4, 12:16] = True
    assert np.all(targets[~mask] == 0)
    np.testing.assert_array_equal(w_in, mask.astype(np.float32))
    np.testing.assert_array_equal(w_out, mask.astype(np.float32))


def test_unnormalised_and_means():
    rois, _, targets, _, _ = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(
        BBOX_NORMALIZE_TARGETS_PRECOMPUTED=False), rng=np.random.RandomState(0))
    i2 = rows_by_roi(rois)[(10, 10, 49, 89)]
    np.testing.assert_allclose(targets[i2, 12:16], [0, -0.25, 0, np.log(0.5)], rtol=1e-5, atol=1e-6)

    rois, _, targets, _, _ = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(
        BBOX_NORMALIZE_TARGETS_PRECOMPUTED=True, BBOX_NORMALIZE_MEANS=(0.1, 0.0, 0.0, -0.1),
        BBOX_NORMALIZE_STDS=(0.5, 0.1, 0.2, 0.2)), rng=np.random.RandomState(0))
    i2 = rows_by_roi(rois)[(10, 10, 49, 89)]
    np.testing.assert_allclose(targets[i2, 12:16], [-0.1 / 0.5, -2.5, 0, (np.log(0.5) + 0.1) / 0.2],
                               rtol=1e-5, atol=1e-6)


def test_inside_weights_from_cfg():
    _, labels, _, w_in, w_out = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(
        BBOX_INSIDE_WEIGHTS=(1.0, 0.5, 0.0, 2.0)), rng=np.random.RandomState(0))
    np.testing.assert_array_equal(w_in[0, 12:16], [1, 0.5, 0, 2])
    np.testing.assert_array_equal(w_out[0, 12:16], [1, 1, 0, 1])


def test_bg_thresh_lo_zero_takes_the_far_rois():
    _, labels, _, _, _ = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(BG_THRESH_LO=0.0),
                                               rng=np.random.RandomState(0))
    np.testing.assert_array_equal(labels, [3] * 4 + [0] * 4)


def _many_rois():
    """A 100x100 gt and boxes shifted by d in x or y: IoU (100 - d) / (100 + d); plus far boxes (IoU 0)."""
    gt = np.array([[100, 100, 199, 199, 1], [400, 400, 449, 479, 2]], dtype=np.float32)
    rois = [[0, 100 + d, 100, 199 + d, 199] for d in range(0, 81)]
    rois += [[0, 100, 100 + d, 199, 199 + d] for d in range(1, 81)]
    rois += [[0, 600 + 3 * d, 10, 640 + 3 * d, 60] for d in range(60)]
    return np.array(rois, dtype=np.float32), gt


def test_counts_and_rng_choice_semantics():
    rois_in, gt = _many_rois()
    all_rois = np.vstack((rois_in, np.hstack((np.zeros((2, 1), np.float32), gt[:, :4]))))
    ious = iou_plus1(all_rois[:, 1:], gt)
    best = ious.max(axis=1)
    fg_inds = np.where(best >= 0.5)[0]
    bg_inds = np.where((best < 0.5) & (best >= 0.1))[0]
    assert len(fg_inds) > 32 and len(bg_inds) < 96

    # default cfg (IMS_PER_BATCH 2 does not matter: one image per call, 128 RoIs, 32 fg)
    rng = np.random.RandomState(11)
    rois, labels, targets, w_in, _ = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(), rng=rng)
    exp = np.random.RandomState(11)
    exp_fg = exp.choice(fg_inds, size=32, replace=False)
    exp_bg = exp.choice(bg_inds, size=len(bg_inds), replace=False)
    np.testing.assert_array_equal(rois, all_rois[np.append(exp_fg, exp_bg)])
    assert len(labels) == 32 + len(bg_inds) < 128
    cls = gt[ious.argmax(axis=1), 4]
    np.testing.assert_array_equal(labels[:32], cls[exp_fg])
    assert np.all(labels[32:] == 0)
    assert np.count_nonzero(w_in) == 32 * 4


def test_full_batch_when_many_bg():
    rois_in, gt = _many_rois()
    _, labels, _, _, _ = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(BG_THRESH_LO=0.0),
                                               rng=np.random.RandomState(0))
    assert len(labels) == 128 and (labels > 0).sum() == 32


@pytest.mark.parametrize('batch, n_fg', [(10, 2), (14, 4), (64, 16)])   # round half to even: 2.5 -> 2, 3.5 -> 4
def test_fg_per_image_rounding(batch, n_fg):
    rois_in, gt = _many_rois()
    _, labels, _, _, _ = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(BATCH_SIZE=batch),
                                               rng=np.random.RandomState(0))
    assert (labels > 0).sum() == n_fg and len(labels) == batch


def test_seeded_reproducible():
    rois_in, gt = _many_rois()
    a = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(), rng=np.random.RandomState(5))
    b = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(), rng=np.random.RandomState(5))
    c = proposal_target_layer(rois_in, gt, 3, cfg=make_cfg(), rng=np.random.RandomState(6))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_no_gt_all_background():
    rois, labels, targets, w_in, w_out = proposal_target_layer(ROIS, np.zeros((0, 5), np.float32), K,
                                                               cfg=make_cfg(), rng=np.random.RandomState(0))
    assert rois.shape == (7, 5) and {tuple(r) for r in rois.tolist()} == {tuple(r) for r in ROIS.tolist()}
    assert np.all(labels == 0) and targets.shape == (7, 4 * K)
    assert not targets.any() and not w_in.any() and not w_out.any()
    rois, labels, targets, _, _ = proposal_target_layer(np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32),
                                                        K, cfg=make_cfg())
    assert rois.shape == (0, 5) and labels.shape == (0,) and targets.shape == (0, 4 * K)


def test_torch_inputs_give_same_tensors():
    ref = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(), rng=np.random.RandomState(2))
    got = proposal_target_layer(torch.from_numpy(ROIS), torch.from_numpy(GT), K, cfg=make_cfg(),
                                rng=np.random.RandomState(2))
    for r, g in zip(ref, got):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_array_equal(g.numpy(), r)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_outputs_on_device():
    out = proposal_target_layer(torch.from_numpy(ROIS).cuda(), torch.from_numpy(GT).cuda(), K, cfg=make_cfg())
    assert all(o.is_cuda for o in out)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match='proposal_target_layer.py.*single-image'):
        proposal_target_layer(np.array([[1, 0, 0, 5, 5]], np.float32), GT, K, cfg=make_cfg())
    with pytest.raises(ValueError, match='proposal_target_layer.py.*classes'):
        proposal_target_layer(ROIS, GT, 3, cfg=make_cfg())
    with pytest.raises(ValueError, match='proposal_target_layer.py.*rpn_rois'):
        proposal_target_layer(ROIS[:, :4], GT, K, cfg=make_cfg())


def test_full_take_still_draws_like_the_original():
    # the original calls rng.choice whenever there is a candidate, even when it takes them all: the order of the
    # RoIs and the rest of the random stream depend on it. fg candidates are r0, r1, r2 and the gt (index 7).
    all_rois = np.vstack((ROIS, [GT_ROI]))
    for seed in range(5):
        exp = np.random.RandomState(seed)
        keep = np.append(exp.choice([0, 1, 2, 7], size=4, replace=False), exp.choice([3, 4], size=2, replace=False))
        rng = np.random.RandomState(seed)
        rois = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(), rng=rng)[0]
        np.testing.assert_array_equal(rois, all_rois[keep])
        assert rng.randint(10 ** 9) == exp.randint(10 ** 9)


def test_unsampled_returns_every_candidate_fg_first_in_order():
    # sample=False (TRAIN.OHEM's pool): fg r0, r1, r2 and the appended gt (r7), then bg r3, r4; r5 and r6 lie
    # below BG_THRESH_LO; no draws from rng, whatever BATCH_SIZE says
    rng = np.random.RandomState(0)
    state = rng.get_state()[1].copy()
    rois, labels, targets, w_in, w_out = proposal_target_layer(ROIS, GT, K, cfg=make_cfg(BATCH_SIZE=2), rng=rng,
                                                               sample=False)
    np.testing.assert_array_equal(rois, np.vstack((ROIS[[0, 1, 2]], [GT_ROI], ROIS[[3, 4]])))
    np.testing.assert_array_equal(labels, [3, 3, 3, 3, 0, 0])
    np.testing.assert_array_equal(rng.get_state()[1], state)
    # targets as the sampled call's: r2 -> (0, -0.25, 0, log 0.5)
    np.testing.assert_allclose(targets[2, 12:16], [0, -0.25, 0, np.log(0.5)], rtol=1e-5, atol=1e-6)
    assert np.all(w_in[:4, 12:16] == 1) and np.all(w_in[4:] == 0) and np.array_equal(w_in, w_out)
