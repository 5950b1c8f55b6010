"""rpn.proposal_layer: decoding, clipping, min-size filter, ordering, top-N caps and NMS (hand-worked values).

The small case: a 2 x 3 feature map, stride 16, a 32 x 48 image, anchor_scales=(1,) so A = 3 anchors per cell.
Hand-worked cell anchors (see test_anchor_target_layer.py): a0 [-3.5, 2, 18.5, 13], a1 [0, 0, 15, 15],
a2 [2.5, -3, 12.5, 18], shifted by (16w, 16h). Zero deltas decode to the anchor plus (0, 0, 1, 1) (the original's
off-by-one), then x is clipped to [0, 47] and y to [0, 31].
"""
import copy

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou, nms as tv_nms

from fast_rcnn.config import cfg as default_cfg
from rpn.proposal_layer import proposal_layer

H, W, A = 2, 3, 3
IM_INFO = np.array([[32, 48, 1.0]], dtype=np.float32)
CELL = np.array([[-3.5, 2, 18.5, 13], [0, 0, 15, 15], [2.5, -3, 12.5, 18]])


def make_cfg(key='TRAIN', **kw):
    c = copy.deepcopy(default_cfg)
    c.TRAIN.update(RPN_PRE_NMS_TOP_N=-1, RPN_POST_NMS_TOP_N=-1, RPN_NMS_THRESH=0.7, RPN_MIN_SIZE=0)
    c.TEST.update(RPN_PRE_NMS_TOP_N=-1, RPN_POST_NMS_TOP_N=-1, RPN_NMS_THRESH=0.7, RPN_MIN_SIZE=0)
    for k, v in kw.items():
        c[key][k] = v
    return c


def expected_boxes():
    """(H*W*A, 4) zero-delta proposals in (h, w, a) order, from the hand-worked anchors."""
    out = []
    for h in range(H):
        for w in range(W):
            for a in range(A):
                b = CELL[a] + [16 * w, 16 * h, 16 * w + 1, 16 * h + 1]
                out.append([np.clip(b[0], 0, 47), np.clip(b[1], 0, 31), np.clip(b[2], 0, 47), np.clip(b[3], 0, 31)])
    return np.array(out)


def blobs(fg_scores_hwa, deltas_hwa=None):
    """Caffe blobs from per-anchor values in (h, w, a) order: fg probs -> channels A + a, deltas -> 4a + k."""
    prob = np.zeros((1, 2 * A, H, W), dtype=np.float32)
    s = np.asarray(fg_scores_hwa, dtype=np.float32).reshape(H, W, A)
    prob[0, A:] = s.transpose(2, 0, 1)
    prob[0, :A] = 1 - prob[0, A:]
    pred = np.zeros((1, 4 * A, H, W), dtype=np.float32)
    if deltas_hwa is not None:
        d = np.asarray(deltas_hwa, dtype=np.float32).reshape(H, W, A, 4)
        pred[0] = d.transpose(2, 3, 0, 1).reshape(4 * A, H, W)
    return prob, pred


def iou_plus1(a, b):
    one = torch.tensor([0., 0., 1., 1.], dtype=torch.float64)
    return box_iou(torch.as_tensor(np.asarray(a, np.float64)) + one,
                   torch.as_tensor(np.asarray(b, np.float64)) + one).numpy()


SCORES = (np.random.RandomState(0).permutation(H * W * A) + 1) / 100.0   # distinct


def test_zero_deltas_give_clipped_anchors_plus_one_sorted():
    boxes = expected_boxes()
    ious = iou_plus1(boxes, boxes) - np.eye(len(boxes))
    assert ious.max() < 0.7          # so NMS at 0.7 removes nothing here
    rois, scores = proposal_layer(*blobs(SCORES), IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
    order = np.argsort(-SCORES)
    assert rois.shape == (18, 5) and scores.shape == (18, 1)
    assert rois.dtype == np.float32 and scores.dtype == np.float32
    np.testing.assert_array_equal(rois[:, 0], 0)
    np.testing.assert_allclose(rois[:, 1:], boxes[order], atol=1e-5)
    np.testing.assert_allclose(scores[:, 0], SCORES[order], rtol=1e-6)
    # spot checks of the hand-worked boxes: a1 at (0,0) -> [0,0,16,16]; a0 at (0,2) -> [28.5, 2, 47(clip), 14]
    assert [0, 0, 16, 16] in rois[:, 1:].tolist()
    assert [28.5, 2, 47, 14] in rois[:, 1:].tolist()


def _nms_case():
    # a2 at (0,0) (w 11, h 22, centre (8, 8)) with deltas (0, 0, log 16/11, log 16/22) decodes to [0, 0, 16, 16],
    # the same box as a1 at (0,0); give it the higher score so a1(0,0) is suppressed
    deltas = np.zeros((H, W, A, 4))
    deltas[0, 0, 2] = [0, 0, np.log(16 / 11), np.log(16 / 22)]
    scores = SCORES.copy().reshape(H, W, A)
    scores[0, 0, 2], scores[0, 0, 1] = 0.5, 0.4
    return scores.ravel(), deltas


def test_nms_suppresses_the_duplicate():
    scores, deltas = _nms_case()
    rois, out_scores = proposal_layer(*blobs(scores, deltas), IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
    boxes = expected_boxes()
    boxes[2] = [0, 0, 16, 16]
    keep = np.array([i for i in np.argsort(-scores) if i != 1])   # a1(0,0) is index 1 in (h, w, a) order
    assert rois.shape == (17, 5)
    np.testing.assert_allclose(rois[:, 1:], boxes[keep], atol=1e-4)
    np.testing.assert_allclose(out_scores[:, 0], scores[keep], rtol=1e-6)
    # with the threshold above 1 nothing is suppressed
    rois, _ = proposal_layer(*blobs(scores, deltas), IM_INFO, 'TRAIN', anchor_scales=(1,),
                             cfg=make_cfg(RPN_NMS_THRESH=1.01))
    assert rois.shape == (18, 5)


@pytest.mark.parametrize('min_size, scale, n_left', [
    (12, 1.0, 18),   # the a2 boxes are 12 wide with +1 widths (13.5 - 2.5 + 1): kept
    (13, 1.0, 12),   # ... and dropped at 13; the a0 boxes are 13 high: kept
    (14, 1.0, 6),    # only the a1 boxes (16 or 17 wide and high) stay
    (26, 0.5, 12),   # RPN_MIN_SIZE is scaled by im_info[2]: 26 * 0.5 = 13
])
def test_min_size_filter_plus_one(min_size, scale, n_left):
    info = np.array([[32, 48, scale]], dtype=np.float32)
    rois, _ = proposal_layer(*blobs(SCORES), info, 'TEST', anchor_scales=(1,),
                             cfg=make_cfg('TEST', RPN_MIN_SIZE=min_size))
    assert rois.shape[0] == n_left
    widths = rois[:, 3] - rois[:, 1] + 1
    heights = rois[:, 4] - rois[:, 2] + 1
    assert np.all(widths >= min_size * scale) and np.all(heights >= min_size * scale)


def test_top_n_caps():
    order = np.argsort(-SCORES)
    boxes = expected_boxes()
    rois, _ = proposal_layer(*blobs(SCORES), IM_INFO, 'TRAIN', anchor_scales=(1,),
                             cfg=make_cfg(RPN_PRE_NMS_TOP_N=5))
    np.testing.assert_allclose(rois[:, 1:], boxes[order[:5]], atol=1e-5)
    rois, _ = proposal_layer(*blobs(SCORES), IM_INFO, 'TRAIN', anchor_scales=(1,),
                             cfg=make_cfg(RPN_POST_NMS_TOP_N=3))
    np.testing.assert_allclose(rois[:, 1:], boxes[order[:3]], atol=1e-5)
    # pre-NMS cap of the two duplicates: NMS then leaves one box
    scores, deltas = _nms_case()
    rois, s = proposal_layer(*blobs(scores, deltas), IM_INFO, 'TRAIN', anchor_scales=(1,),
                             cfg=make_cfg(RPN_PRE_NMS_TOP_N=2))
    assert rois.shape == (1, 5) and s[0, 0] == np.float32(0.5)


def test_cfg_key_selects_settings():
    c = make_cfg()
    c.TRAIN.RPN_POST_NMS_TOP_N = 4
    c.TEST.RPN_POST_NMS_TOP_N = 7
    assert proposal_layer(*blobs(SCORES), IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=c)[0].shape[0] == 4
    assert proposal_layer(*blobs(SCORES), IM_INFO, 'TEST', anchor_scales=(1,), cfg=c)[0].shape[0] == 7
    c.TEST.RPN_MIN_SIZE = 14
    c.TEST.RPN_POST_NMS_TOP_N = -1
    assert proposal_layer(*blobs(SCORES), IM_INFO, 'TEST', anchor_scales=(1,), cfg=c)[0].shape[0] == 6
    with pytest.raises(ValueError, match='proposal_layer.py.*cfg_key'):
        proposal_layer(*blobs(SCORES), IM_INFO, 'VAL', anchor_scales=(1,), cfg=c)


def test_everything_filtered_gives_empty():
    rois, scores = proposal_layer(*blobs(SCORES), IM_INFO, 'TEST', anchor_scales=(1,),
                                  cfg=make_cfg('TEST', RPN_MIN_SIZE=100))
    assert rois.shape == (0, 5) and scores.shape == (0, 1)
    rois, scores = proposal_layer(*[torch.from_numpy(b) for b in blobs(SCORES)], IM_INFO, 'TEST',
                                  anchor_scales=(1,), cfg=make_cfg('TEST', RPN_MIN_SIZE=100))
    assert tuple(rois.shape) == (0, 5) and tuple(scores.shape) == (0, 1)


def test_torch_matches_numpy_and_is_detached():
    scores, deltas = _nms_case()
    prob, pred = blobs(scores, deltas)
    ref = proposal_layer(prob, pred, IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
    tprob = torch.from_numpy(prob).requires_grad_()
    tpred = torch.from_numpy(pred).requires_grad_()
    got = proposal_layer(tprob, tpred, torch.from_numpy(IM_INFO), 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
    for r, g in zip(ref, got):
        assert isinstance(g, torch.Tensor) and not g.requires_grad and g.dtype == torch.float32
        np.testing.assert_allclose(g.numpy(), r, atol=1e-5)


def test_torch_ties_prefer_higher_anchor_index():
    # equal scores: a stable ascending sort reversed puts the higher (h, w, a) index first, so a pre-NMS cap of 5
    # keeps anchors 13..17 (the output order among equal scores is then up to the NMS back-end)
    rois, _ = proposal_layer(*[torch.from_numpy(b) for b in blobs(np.full(18, 0.5))], IM_INFO, 'TRAIN',
                             anchor_scales=(1,), cfg=make_cfg(RPN_PRE_NMS_TOP_N=5))
    got = sorted(map(tuple, np.round(rois[:, 1:].numpy(), 4).tolist()))
    assert got == sorted(map(tuple, np.round(expected_boxes()[13:], 4).tolist()))


def test_default_map_properties():
    # a 38 x 50 map with the default anchors: TRAIN caps 12000 -> NMS 0.7 -> 2000
    rng = np.random.RandomState(0)
    prob = rng.uniform(size=(1, 18, 38, 50)).astype(np.float32)
    pred = (rng.randn(1, 36, 38, 50) * 0.2).astype(np.float32)
    info = np.array([[600, 800, 1.6]], dtype=np.float32)
    rois, scores = proposal_layer(prob, pred, info, 'TRAIN', cfg=copy.deepcopy(default_cfg))
    assert rois.shape == (2000, 5) and scores.shape == (2000, 1)
    assert np.all(np.diff(scores[:, 0]) <= 0)
    assert rois[:, 1:].min() >= 0 and rois[:, [1, 3]].max() <= 799 and rois[:, [2, 4]].max() <= 599
    assert np.all(rois[:, 3] - rois[:, 1] + 1 >= 16 * 1.6) and np.all(rois[:, 4] - rois[:, 2] + 1 >= 16 * 1.6)
    ious = iou_plus1(rois[:, 1:], rois[:, 1:]) - np.eye(2000)
    assert ious.max() <= 0.7 + 1e-6
    # the scores are the fg probabilities (channels 9..17) of the kept anchors: all come from the top 12000
    fg = np.sort(prob[0, 9:].ravel())[::-1]
    assert scores[0, 0] == fg[0] and scores[-1, 0] >= fg[11999]
    # the torch path agrees
    trois, tscores = proposal_layer(torch.from_numpy(prob), torch.from_numpy(pred), info, 'TRAIN',
                                    cfg=copy.deepcopy(default_cfg))
    np.testing.assert_allclose(trois.numpy(), rois, atol=1e-3)
    np.testing.assert_array_equal(tscores.numpy(), scores)


DEFAULT_CELL = np.array([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                         [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                         [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]], dtype=float)


def independent_proposals(prob, pred, im_h, im_w, scale, pre, post, thresh, min_size):
    """The layer's recipe written out in float64 with torchvision's NMS (on boxes grown by 1 pixel)."""
    _, _, height, width = prob.shape
    rows, scores, deltas = [], [], []
    for h in range(height):
        for w in range(width):
            for a in range(9):
                rows.append(DEFAULT_CELL[a] + [16 * w, 16 * h, 16 * w, 16 * h])
                scores.append(prob[0, 9 + a, h, w])
                deltas.append(pred[0, 4 * a:4 * a + 4, h, w])
    anc, scores, d = np.array(rows), np.array(scores, np.float64), np.array(deltas, np.float64)
    wa, ha = anc[:, 2] - anc[:, 0] + 1, anc[:, 3] - anc[:, 1] + 1
    cx, cy = anc[:, 0] + 0.5 * wa, anc[:, 1] + 0.5 * ha
    pcx, pcy, pw, ph = d[:, 0] * wa + cx, d[:, 1] * ha + cy, np.exp(d[:, 2]) * wa, np.exp(d[:, 3]) * ha
    boxes = np.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], 1)
    boxes = np.clip(boxes, 0, [im_w - 1, im_h - 1, im_w - 1, im_h - 1])
    ok = ((boxes[:, 2] - boxes[:, 0] + 1 >= min_size * scale) & (boxes[:, 3] - boxes[:, 1] + 1 >= min_size * scale))
    boxes, scores = boxes[ok], scores[ok]
    order = np.argsort(-scores, kind='stable')[:pre]
    boxes, scores = boxes[order], scores[order]
    keep = tv_nms(torch.from_numpy(boxes + [0, 0, 1, 1]), torch.from_numpy(scores), thresh).numpy()[:post]
    return boxes[keep], scores[keep]


@pytest.mark.parametrize('key, pre, post', [('TRAIN', 12000, 2000), ('TEST', 6000, 300)])
def test_default_map_matches_independent_pipeline(key, pre, post):
    rng = np.random.RandomState(3)
    prob = np.zeros((1, 18, 38, 50), dtype=np.float32)
    prob[0, 9:] = ((rng.permutation(9 * 38 * 50) + 1) / (9 * 38 * 50 + 1)).reshape(9, 38, 50)   # distinct
    prob[0, :9] = 1 - prob[0, 9:]
    pred = (rng.randn(1, 36, 38, 50) * 0.3).astype(np.float32)
    info = np.array([[600, 800, 1.6]], dtype=np.float32)
    exp_boxes, exp_scores = independent_proposals(prob, pred, 600, 800, 1.6, pre, post, 0.7, 16)
    for p, d in ((prob, pred), (torch.from_numpy(prob), torch.from_numpy(pred))):
        rois, scores = proposal_layer(p, d, info, key, cfg=copy.deepcopy(default_cfg))
        rois, scores = np.asarray(rois), np.asarray(scores)
        assert rois.shape == (post, 5)
        np.testing.assert_allclose(rois[:, 1:], exp_boxes, atol=2e-3)
        np.testing.assert_allclose(scores[:, 0], exp_scores, rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    rng = np.random.RandomState(1)
    prob = rng.uniform(size=(1, 18, 38, 50)).astype(np.float32)
    pred = (rng.randn(1, 36, 38, 50) * 0.2).astype(np.float32)
    info = np.array([[600, 800, 1.6]], dtype=np.float32)
    ref_rois, ref_scores = proposal_layer(prob, pred, info, 'TRAIN', cfg=copy.deepcopy(default_cfg))
    rois, scores = proposal_layer(torch.from_numpy(prob).cuda(), torch.from_numpy(pred).cuda(), info, 'TRAIN',
                                  cfg=copy.deepcopy(default_cfg))
    assert rois.is_cuda and scores.is_cuda
    np.testing.assert_allclose(rois.cpu().numpy(), ref_rois, atol=1e-3)
    np.testing.assert_array_equal(scores.cpu().numpy(), ref_scores)


def test_bad_shapes_are_clear_errors():
    prob, pred = blobs(SCORES)
    with pytest.raises(ValueError, match='proposal_layer.py.*rpn_cls_prob_reshape'):
        proposal_layer(prob[:, :4], pred, IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
    with pytest.raises(ValueError, match='proposal_layer.py.*rpn_bbox_pred'):
        proposal_layer(prob, pred[:, :, :1], IM_INFO, 'TRAIN', anchor_scales=(1,), cfg=make_cfg())
