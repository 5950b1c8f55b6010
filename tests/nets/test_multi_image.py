"""TRAIN.IMS_PER_BATCH > 1 end to end (opt-in): a minibatch of N images gives the losses and gradients of N
one-image minibatches (iter_size N), and get_minibatch gives each image its own im_info row and gt boxes."""
import cv2
import numpy as np
import pytest
import torch

from fast_rcnn.config import default_cfg
from nets.faster_rcnn import FasterRCNN
from roi_data_layer.minibatch import get_minibatch


def _cfg():
    c = default_cfg()
    c.AMP = 'off'
    c.TRAIN.RPN_PRE_NMS_TOP_N = 300
    c.TRAIN.RPN_POST_NMS_TOP_N = 80
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    return c


@pytest.mark.parametrize('ohem', [False, True])
def test_two_images_weigh_as_two_one_image_minibatches(ohem):
    c = _cfg()
    c.TRAIN.OHEM = ohem
    torch.manual_seed(0)
    model = FasterRCNN('TINY', 4, c).train()
    # two images of one size: no padding, so the only difference is the batched arithmetic
    data = torch.randn(2, 3, 96, 128) * 50
    info = np.array([[96, 128, 1.0], [90, 120, 1.5]], np.float32)
    gts = [np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32),
           np.array([[30, 5, 90, 70, 2]], np.float32)]

    model.rng = np.random.RandomState(7)
    model.zero_grad()
    batched = model(data, info, gts)
    sum(batched.values()).backward()
    batched_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.rng = np.random.RandomState(7)  # the same draws, image 0's first
    model.zero_grad()
    singles = [model(data[n:n + 1], info[n:n + 1], gts[n]) for n in range(2)]
    for losses in singles:
        (sum(losses.values()) / 2).backward()  # iter_size 2: each minibatch's loss halved

    for k in batched:
        want = (singles[0][k] + singles[1][k]).detach() / 2
        torch.testing.assert_close(batched[k].detach(), want, rtol=1e-4, atol=1e-6)
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(batched_grads[n], p.grad, rtol=1e-3, atol=1e-6, msg=n)


def test_the_rpn_alone_and_the_test_pass_take_several_images():
    c = _cfg()
    torch.manual_seed(0)
    model = FasterRCNN('TINY', 4, c).train()
    data = torch.randn(2, 3, 96, 128) * 50
    info = np.array([[96, 128, 1.0], [64, 100, 1.0]], np.float32)  # the second image padded into the blob
    gts = [np.array([[10, 10, 50, 60, 1]], np.float32), np.zeros((0, 5), np.float32)]
    losses = model.rpn_losses(data, info, gts)
    assert set(losses) == {'rpn_loss_cls', 'rpn_loss_bbox'} and all(torch.isfinite(v) for v in losses.values())
    c.TEST.RPN_POST_NMS_TOP_N = 20
    with torch.no_grad():
        rois, cls_prob, bbox_pred = model.eval()(data, info)
    assert set(rois[:, 0].tolist()) == {0.0, 1.0}
    second = rois[rois[:, 0] == 1]
    assert float(second[:, 3].max()) <= 99 and float(second[:, 4].max()) <= 63  # inside its own image
    assert cls_prob.shape == (rois.shape[0], 4) and bbox_pred.shape == (rois.shape[0], 16)


def test_several_images_need_one_gt_array_each():
    model = FasterRCNN('TINY', 4, _cfg()).train()
    with pytest.raises(ValueError, match='2 images in the blob need a list of 2 gt_boxes'):
        model(torch.zeros(2, 3, 64, 64), np.array([[64, 64, 1], [64, 64, 1]], np.float32),
              np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match='one im_info row per image'):
        model(torch.zeros(2, 3, 64, 64), np.array([[64, 64, 1]], np.float32), [np.zeros((0, 5))] * 2)


def test_get_minibatch_of_two_images(tmp_path, cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = True
    cfg_copy.TRAIN.SCALES = (80,)
    cfg_copy.TRAIN.MAX_SIZE = 1000
    entries = []
    for i, (h, w) in enumerate(((40, 60), (40, 50))):
        p = str(tmp_path / ('im%d.png' % i))
        cv2.imwrite(p, np.full((h, w, 3), 100, np.uint8))
        entries.append({'image': p, 'flipped': False, 'width': w, 'height': h,
                        'boxes': np.array([[1, 2, 10, 20]], np.float32) + i, 'gt_classes': np.array([1 + i]),
                        'gt_overlaps': np.eye(3, dtype=np.float32)[1 + i:2 + i]})
    b = get_minibatch(entries, 3, cfg_copy, rng=np.random.RandomState(0))
    assert b['data'].shape == (2, 3, 80, 120)  # the second (80 x 100) image padded to the first's width
    np.testing.assert_array_equal(b['im_info'], [[80, 120, 2], [80, 100, 2]])
    assert isinstance(b['gt_boxes'], list) and len(b['gt_boxes']) == 2
    np.testing.assert_array_equal(b['gt_boxes'][0], [[2, 4, 20, 40, 1]])
    np.testing.assert_array_equal(b['gt_boxes'][1], [[4, 6, 22, 42, 2]])
    assert not b['data'][1, :, :, 100:].any()
