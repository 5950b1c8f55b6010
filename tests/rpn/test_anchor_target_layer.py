"""rpn.anchor_target_layer: labels, sampling, targets and weights, checked against hand-worked values.

The small case: a 2 x 3 feature map, stride 16, a 32 x 48 image, anchor_scales=(1,) so A = 3 anchors per cell.
Hand-worked cell anchors (base 16, ratios h/w 0.5, 1, 2; w = round(sqrt(256/r)), h = round(w r), half to even;
centre 7.5):
  a0 (r=0.5): w 23, h 12 -> [-3.5, 2, 18.5, 13]
  a1 (r=1):   w 16, h 16 -> [0, 0, 15, 15]
  a2 (r=2):   w 11, h 22 -> [2.5, -3, 12.5, 18]
Cell (h, w) shifts them by (16w, 16h). Inside the image (x1 >= 0, y1 >= 0, x2 < 48, y2 < 32):
  a1 at all six cells; a0 only at w = 1 (x1 = 12.5; at w = 2, x2 = 50.5); a2 nowhere (y1 = -3, or y2 = 34).
"""
import copy

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from fast_rcnn.config import cfg as default_cfg
from rpn.anchor_target_layer import anchor_target_layer

H, W, A = 2, 3, 3
IM_INFO = np.array([[32, 48, 1.0]], dtype=np.float32)
SCORE = np.zeros((1, 2 * A, H, W), dtype=np.float32)
CELL = np.array([[-3.5, 2, 18.5, 13], [0, 0, 15, 15], [2.5, -3, 12.5, 18]])

GT1 = [16, 0, 31, 15, 1]   # exactly a1 at (0, 1)
GT2 = [0, 16, 23, 31, 2]   # best anchor a1 at (1, 0) with IoU 256/384 = 0.667 < 0.7

# The nine default anchors (base 16, scales 8, 16, 32), written out.
DEFAULT_CELL = np.array([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                         [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                         [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]], dtype=float)


def make_cfg(**train):
    c = copy.deepcopy(default_cfg)
    for k, v in train.items():
        c.TRAIN[k] = v
    return c


def anchor(h, w, a):
    return CELL[a] + [16 * w, 16 * h, 16 * w, 16 * h]


def iou_plus1(a, b):
    """Independent IoU: torchvision's box_iou on boxes grown by one pixel (the +1 convention)."""
    a = torch.as_tensor(np.asarray(a, dtype=np.float64)[:, :4]) + torch.tensor([0., 0., 1., 1.], dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b, dtype=np.float64)[:, :4]) + torch.tensor([0., 0., 1., 1.], dtype=torch.float64)
    return box_iou(a, b).numpy()


def all_default_anchors(height, width):
    """(h, w, a)-ordered anchors of the default set, built here from the written-out cell anchors."""
    rows = []
    for h in range(height):
        for w in range(width):
            rows.append(DEFAULT_CELL + [16 * w, 16 * h, 16 * w, 16 * h])
    return np.concatenate(rows)


def test_hand_worked_iou_claims():
    # the IoUs the small case relies on, checked with torchvision (fixes the hand arithmetic, not the layer)
    ious = iou_plus1([anchor(0, 1, 1), anchor(0, 1, 0), anchor(1, 0, 1), anchor(1, 1, 1), anchor(1, 1, 0)],
                     [GT1, GT2])
    np.testing.assert_allclose(ious[0], [1, 0])
    np.testing.assert_allclose(ious[1], [192 / 340, 0])
    np.testing.assert_allclose(ious[2], [0, 256 / 384])
    np.testing.assert_allclose(ious[3], [0, 128 / 512])
    np.testing.assert_allclose(ious[4], [0, 138 / 522])


def test_small_map_labels_targets_weights():
    labels, targets, inside_w, outside_w = anchor_target_layer(
        SCORE, np.array([GT1, GT2], dtype=np.float32), IM_INFO, feat_stride=16, anchor_scales=(1,),
        cfg=make_cfg(), rng=np.random.RandomState(0))
    assert labels.shape == (1, 1, A * H, W) and labels.dtype == np.float32
    for blob in (targets, inside_w, outside_w):
        assert blob.shape == (1, 4 * A, H, W) and blob.dtype == np.float32

    # expected[a, h, w]: -1 outside or ignored, 0 bg, 1 fg
    expected = np.full((A, H, W), -1, dtype=np.float32)
    expected[1] = [[0, 1, 0], [1, 0, 0]]       # a1: gt1 IoU 1 at (0,1); gt2's best at (1,0); the rest IoU < 0.3
    expected[0, 1, 1] = 0                      # a0 at (1,1): IoU 0.264 with gt2
    # a0 at (0,1): IoU 0.565 with gt1 -> stays -1
    np.testing.assert_array_equal(labels, expected.reshape(1, 1, A * H, W))
    # the layout: anchor a at cell (h, w) lives at [0, 0, a*H + h, w]
    assert labels[0, 0, 1 * H + 0, 1] == 1 and labels[0, 0, 1 * H + 1, 0] == 1

    def tgt(h, w, a):
        return targets[0, 4 * a:4 * a + 4, h, w]

    np.testing.assert_allclose(tgt(0, 1, 1), [0, 0, 0, 0], atol=1e-7)                          # the fg matching gt1
    np.testing.assert_allclose(tgt(1, 0, 1), [4 / 16, 0, np.log(24 / 16), 0], rtol=1e-6)      # fg on gt2
    np.testing.assert_allclose(tgt(0, 1, 0), [0, 0, np.log(16 / 23), np.log(16 / 12)], rtol=1e-6)  # ignored
    np.testing.assert_allclose(tgt(0, 0, 1), [1, 0, 0, 0], atol=1e-7)                          # IoU 0: gt1 (first)
    np.testing.assert_allclose(tgt(1, 1, 1), [-0.75, 0, np.log(1.5), 0], rtol=1e-6)
    np.testing.assert_allclose(tgt(1, 2, 1), [-1, -1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(tgt(1, 1, 0), [-12 / 23, 0, np.log(24 / 23), np.log(16 / 12)], rtol=1e-6)
    np.testing.assert_array_equal(targets[0, 8:12], 0)           # a2 is never inside
    np.testing.assert_array_equal(tgt(0, 0, 0), 0)               # a0 outside at (0, 0)

    exp_in = np.zeros((1, 4 * A, H, W), dtype=np.float32)
    exp_in[0, 4:8, 0, 1] = 1
    exp_in[0, 4:8, 1, 0] = 1
    np.testing.assert_array_equal(inside_w, exp_in)

    exp_out = np.zeros((1, 4 * A, H, W), dtype=np.float32)
    for a in range(A):
        for h in range(H):
            for w in range(W):
                if expected[a, h, w] >= 0:
                    exp_out[0, 4 * a:4 * a + 4, h, w] = 1 / 7   # 2 fg + 5 bg sampled
    np.testing.assert_allclose(outside_w, exp_out, rtol=1e-6)


def test_positive_weight_p_form():
    _, _, _, outside_w = anchor_target_layer(SCORE, np.array([GT1, GT2], dtype=np.float32), IM_INFO,
                                             anchor_scales=(1,), cfg=make_cfg(RPN_POSITIVE_WEIGHT=0.25))
    np.testing.assert_allclose(outside_w[0, 4:8, 0, 1], 0.25 / 2)     # fg: p / #fg
    np.testing.assert_allclose(outside_w[0, 4:8, 0, 0], 0.75 / 5)     # bg: (1 - p) / #bg
    np.testing.assert_allclose(outside_w[0, 0:4, 1, 1], 0.75 / 5)
    assert np.all(outside_w[0, 0:4, 0, 1] == 0)                       # ignored


def test_bad_positive_weight_rejected():
    with pytest.raises(ValueError, match='anchor_target_layer.py.*RPN_POSITIVE_WEIGHT'):
        anchor_target_layer(SCORE, np.array([GT1], dtype=np.float32), IM_INFO, anchor_scales=(1,),
                            cfg=make_cfg(RPN_POSITIVE_WEIGHT=1.5))


@pytest.mark.parametrize('clobber, expected_label', [(False, 1), (True, 0)])
def test_clobber_positives(clobber, expected_label):
    # a 5x5 gt inside a1 at (1,1): its best IoU is 25/256 < 0.3, so it is fg by the "best anchor" rule unless
    # the negatives are assigned last
    gt = np.array([[16, 16, 20, 20, 1]], dtype=np.float32)
    np.testing.assert_allclose(iou_plus1([anchor(1, 1, 1)], gt), [[25 / 256]])
    labels = anchor_target_layer(SCORE, gt, IM_INFO, anchor_scales=(1,),
                                 cfg=make_cfg(RPN_CLOBBER_POSITIVES=clobber))[0].reshape(A, H, W)
    assert labels[1, 1, 1] == expected_label
    assert (labels == 1).sum() == (1 if not clobber else 0)
    assert (labels == 0).sum() == 8 - (labels == 1).sum()   # the 8 inside anchors


def test_empty_gt_all_inside_background():
    for gt in (np.zeros((0, 5), dtype=np.float32), torch.zeros((0, 5))):
        labels, targets, inside_w, outside_w = anchor_target_layer(SCORE, gt, IM_INFO, anchor_scales=(1,),
                                                                   cfg=make_cfg())
        labels = np.asarray(labels).reshape(A, H, W)
        expected = np.full((A, H, W), -1, dtype=np.float32)
        expected[1] = 0
        expected[0, :, 1] = 0
        np.testing.assert_array_equal(labels, expected)
        assert np.all(np.asarray(targets) == 0) and np.all(np.asarray(inside_w) == 0)
        np.testing.assert_allclose(np.asarray(outside_w).sum(), 8 * 4 / 8, rtol=1e-6)


def _inside_default(height, width, im_h, im_w):
    anchors = all_default_anchors(height, width)
    inside = np.where((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < im_w) &
                      (anchors[:, 3] < im_h))[0]
    return anchors, inside


def _to_hwa(labels, height, width, a=9):
    """(1, 1, A*H, W) blob -> flat (h, w, a)-ordered vector, independent of the layer's reshapes."""
    return labels.reshape(a, height, width).transpose(1, 2, 0).ravel()


def test_zero_overlap_quirk_every_inside_anchor_fg():
    # a 4x4 gt in the top-left corner touches no inside anchor of the default set (inside anchors start at x1 or
    # y1 >= 8), so its best IoU is 0 and every inside anchor ties it: all become fg
    height, width, im_h, im_w = 38, 50, 600, 800
    anchors, inside = _inside_default(height, width, im_h, im_w)
    gt = np.array([[0, 0, 3, 3, 1]], dtype=np.float32)
    assert iou_plus1(anchors[inside], gt).max() == 0
    score = np.zeros((1, 18, height, width), dtype=np.float32)
    info = np.array([[im_h, im_w, 1.0]], dtype=np.float32)

    labels = anchor_target_layer(score, gt, info, cfg=make_cfg(RPN_BATCHSIZE=10 ** 6))[0]
    flat = _to_hwa(labels, height, width)
    np.testing.assert_array_equal(np.where(flat == 1)[0], inside)
    assert np.all(flat[np.setdiff1d(np.arange(flat.size), inside)] == -1)

    # with the default batch: 128 of them kept, no bg, outside weights 1/128
    labels, _, inside_w, outside_w = anchor_target_layer(score, gt, info, cfg=make_cfg(),
                                                         rng=np.random.RandomState(1))
    assert (labels == 1).sum() == 128 and (labels == 0).sum() == 0
    np.testing.assert_allclose(np.unique(outside_w), [0, 1 / 128], rtol=1e-6)
    assert inside_w.sum() == 128 * 4


def test_zero_overlap_guard_opt_in():
    height, width, im_h, im_w = 38, 50, 600, 800
    gt = np.array([[0, 0, 3, 3, 1]], dtype=np.float32)
    labels = anchor_target_layer(np.zeros((1, 18, height, width)), gt, np.array([[im_h, im_w, 1.0]]),
                                 cfg=make_cfg(RPN_GUARD_ZERO_OVERLAP=True), rng=np.random.RandomState(1))[0]
    assert (labels == 1).sum() == 0 and (labels == 0).sum() == 256


def test_subsampling_follows_rng_choice_semantics():
    # all inside anchors fg (the quirk case) -> the layer disables rng.choice(fg_inds, n - 128, replace=False)
    height, width, im_h, im_w = 38, 50, 600, 800
    _, inside = _inside_default(height, width, im_h, im_w)
    gt = np.array([[0, 0, 3, 3, 1]], dtype=np.float32)
    labels = anchor_target_layer(np.zeros((1, 18, height, width)), gt, np.array([[im_h, im_w, 1.0]]),
                                 cfg=make_cfg(), rng=np.random.RandomState(7))[0]
    disabled = np.random.RandomState(7).choice(np.arange(len(inside)), size=len(inside) - 128, replace=False)
    expected_fg = np.setdiff1d(np.arange(len(inside)), disabled)
    np.testing.assert_array_equal(np.where(_to_hwa(labels, height, width) == 1)[0], inside[expected_fg])


def test_batch_outside_weights_and_reproducible():
    height, width, im_h, im_w = 38, 50, 600, 800
    gt = np.array([[100, 100, 299, 249, 1], [400, 50, 599, 399, 2], [500, 300, 789, 589, 3]], dtype=np.float32)
    args = (np.zeros((1, 18, height, width)), gt, np.array([[im_h, im_w, 1.6]], dtype=np.float32))
    out1 = anchor_target_layer(*args, cfg=make_cfg(), rng=np.random.RandomState(3))
    out2 = anchor_target_layer(*args, cfg=make_cfg(), rng=np.random.RandomState(3))
    out3 = anchor_target_layer(*args, cfg=make_cfg(), rng=np.random.RandomState(4))
    for a, b in zip(out1, out2):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(out1[0], out3[0])
    labels, _, inside_w, outside_w = out1
    n_fg, n_bg = (labels == 1).sum(), (labels == 0).sum()
    assert 0 < n_fg <= 128 and n_fg + n_bg == 256
    np.testing.assert_allclose(np.unique(outside_w), [0, 1 / 256], rtol=1e-6)
    assert np.count_nonzero(outside_w) == 256 * 4 and np.count_nonzero(inside_w) == n_fg * 4

    # every fg has IoU >= 0.7 with some gt or is some gt's best inside anchor (checked with torchvision)
    anchors, inside = _inside_default(height, width, im_h, im_w)
    ious = iou_plus1(anchors[inside], gt)
    flat = _to_hwa(labels, height, width)[inside]
    best_of_gt = np.zeros(len(inside), dtype=bool)
    best_of_gt[np.where(ious == ious.max(axis=0))[0]] = True
    assert np.all((ious.max(axis=1)[flat == 1] >= 0.7) | best_of_gt[flat == 1])
    assert np.all(ious.max(axis=1)[flat == 0] < 0.3)


def test_torch_inputs_give_same_tensors():
    gt = np.array([GT1, GT2], dtype=np.float32)
    ref = anchor_target_layer(SCORE, gt, IM_INFO, anchor_scales=(1,), cfg=make_cfg(), rng=np.random.RandomState(0))
    got = anchor_target_layer(torch.from_numpy(SCORE), torch.from_numpy(gt), torch.from_numpy(IM_INFO),
                              anchor_scales=(1,), cfg=make_cfg(), rng=np.random.RandomState(0))
    for r, g in zip(ref, got):
        assert isinstance(g, torch.Tensor) and g.device.type == 'cpu'
        np.testing.assert_array_equal(g.numpy(), r)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_outputs_on_device():
    gt = torch.tensor([GT1, GT2], dtype=torch.float32, device='cuda')
    out = anchor_target_layer(torch.zeros((1, 6, H, W), device='cuda'), gt, IM_INFO, anchor_scales=(1,),
                              cfg=make_cfg())
    assert all(o.is_cuda for o in out)


def test_only_shape_of_score_is_used():
    class Shaped:
        shape = (1, 6, H, W)
    labels = anchor_target_layer(Shaped(), np.array([GT1], dtype=np.float32), IM_INFO, anchor_scales=(1,),
                                 cfg=make_cfg())[0]
    assert labels.shape == (1, 1, A * H, W)


def test_bad_gt_shape_is_a_clear_error():
    with pytest.raises(ValueError, match='anchor_target_layer.py.*gt_boxes'):
        anchor_target_layer(SCORE, np.array([1, 2, 3]), IM_INFO, anchor_scales=(1,), cfg=make_cfg())


def test_inside_means_x2_below_width_and_y2_below_height():
    # a1 at w = 2 ends at x2 = 47 and at h = 1 at y2 = 31: inside a 48 x 32 image, outside a 47 x 31 one
    gt = np.array([GT1], dtype=np.float32)
    full = anchor_target_layer(SCORE, gt, IM_INFO, anchor_scales=(1,), cfg=make_cfg())[0].reshape(A, H, W)
    assert np.all(full[1] >= 0)
    small = anchor_target_layer(SCORE, gt, np.array([[31, 47, 1.0]], dtype=np.float32), anchor_scales=(1,),
                                cfg=make_cfg())[0].reshape(A, H, W)
    np.testing.assert_array_equal(small[1], [[0, 1, -1], [-1, -1, -1]])
    # a0 stays inside at w = 1 (x2 34.5, y2 13 or 29): ignored at (0,1) (IoU 0.565), bg at (1,1) (IoU 0)
    np.testing.assert_array_equal(small[0], [[-1, -1, -1], [-1, 0, -1]])
