"""cfg.ANCHOR_RATIOS reaches both RPN layers (the original's layers always used 0.5, 1, 2, whatever the count).

Hand-worked cell anchors (base 16, centre 7.5): ratio 0.5 -> w = round(sqrt(512)) = 23, h = round(11.5) = 12
(half to even) -> [-3.5, 2, 18.5, 13]; ratio 2 -> w = 11, h = 22 -> [2.5, -3, 12.5, 18]; ratio 1 with scales
8, 16, 32 -> squares of side 128, 256, 512: [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263].
"""
import numpy as np
import pytest
import torch

from fast_rcnn.config import cfg as default_cfg, cfg_copy
from rpn.anchor_target_layer import anchor_target_layer
from rpn.proposal_layer import map_anchors, num_anchors, proposal_layer
from tiny_training import TinyData, tiny_cfg, tiny_model


def test_map_anchors_uses_the_ratios():
    np.testing.assert_array_equal(map_anchors(1, 1, 16, (1,), (0.5, 2.0)),
                                  [[-3.5, 2, 18.5, 13], [2.5, -3, 12.5, 18]])
    np.testing.assert_array_equal(map_anchors(1, 1, 16, (8, 16, 32), (1.0,)),
                                  [[-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263]])
    assert num_anchors((8, 16, 32), (1.0,)) == 3 and num_anchors((8, 16, 32)) == 9
    # the second cell of a 1 x 2 map is the first shifted by the stride in x
    np.testing.assert_array_equal(map_anchors(1, 2, 16, (1,), (0.5,)), [[-3.5, 2, 18.5, 13], [12.5, 2, 34.5, 13]])


def test_proposal_layer_takes_the_ratios():
    c = cfg_copy(default_cfg)
    c.TEST.RPN_MIN_SIZE = 0
    prob = np.zeros((1, 4, 1, 1), np.float32)      # A = 2 anchors: ratios 0.5 and 2, scale 1
    prob[0, 2:] = [[[0.9]], [[0.6]]]                # fg channels
    pred = np.zeros((1, 8, 1, 1), np.float32)
    info = np.array([[40, 40, 1.0]], np.float32)
    rois, scores = proposal_layer(prob, pred, info, 'TEST', 16, (1,), c, anchor_ratios=(0.5, 2.0))
    # zero deltas: the anchor plus (0, 0, 1, 1), clipped to the 40 x 40 image
    np.testing.assert_allclose(rois, [[0, 0, 2, 19.5, 14], [0, 2.5, 0, 13.5, 19]])
    np.testing.assert_allclose(scores.ravel(), [0.9, 0.6])
    with pytest.raises(ValueError, match='A=3 anchors'):  # 3 default ratios x 1 scale do not fit 4 channels
        proposal_layer(prob, pred, info, 'TEST', 16, (1,), c)


def test_anchor_target_layer_takes_the_ratios():
    c = cfg_copy(default_cfg)
    gt = np.array([[0, 0, 15, 15, 1]], np.float32)
    info = np.array([[16, 16, 1.0]], np.float32)
    labels, targets, _, _ = anchor_target_layer(np.zeros((1, 1, 1, 1)), gt, info, 16, (1,), c,
                                                rng=np.random.RandomState(0), anchor_ratios=(1.0,))
    # one square anchor [0, 0, 15, 15] exactly on the gt box: foreground with zero targets
    assert labels.shape == (1, 1, 1, 1) and labels[0, 0, 0, 0] == 1
    np.testing.assert_array_equal(targets, np.zeros((1, 4, 1, 1)))


def test_network_with_one_ratio_trains():
    c = tiny_cfg()
    c.ANCHOR_RATIOS = (1.0,)
    m = tiny_model(c)
    assert m.num_anchors == 2 and m.rpn_cls_score.out_channels == 4 and m.rpn_bbox_pred.out_channels == 8
    blobs = TinyData().forward()
    losses = m(torch.from_numpy(blobs['data']), blobs['im_info'], blobs['gt_boxes'])
    assert all(torch.isfinite(v) for v in losses.values())
