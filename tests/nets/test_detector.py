"""The detector (nets.faster_rcnn.FasterRCNN): head shapes and initialisation, input conventions, folding the target
normalisation into bbox_pred, training and test forward passes, and the RPN losses over the sampled anchors."""

import numpy as np
import pytest
import torch

from fast_rcnn.config import default_cfg
from nets.backbones import build_net
from nets.faster_rcnn import FasterRCNN, fold_bbox_normalization


@pytest.mark.parametrize('net,pool,rpn_ch,head_dim', [('VGG16', 7, 512, 4096), ('ZF', 6, 256, 4096),
                                                      ('VGG_CNN_M_1024', 6, 256, 1024), ('TINY', 7, 64, 256)])
def test_heads_shapes_and_init(net, pool, rpn_ch, head_dim):
    torch.manual_seed(0)
    c = default_cfg()
    c.ANCHOR_SCALES = (4, 8, 16, 32)
    c.FEAT_STRIDE = build_net(net).feat_stride
    with torch.device('meta') if net != 'TINY' else torch.device('cpu'):
        m = FasterRCNN(net, 7, c)
    A = 12
    assert m.rpn_conv.out_channels == rpn_ch
    assert m.rpn_cls_score.out_channels == 2 * A and m.rpn_bbox_pred.out_channels == 4 * A
    assert m.cls_score.out_features == 7 and m.bbox_pred.out_features == 28
    assert m.cls_score.in_features == head_dim
    assert m.netdef.pooled_size == pool
    if net == 'TINY':
        assert abs(float(m.cls_score.weight.detach().std()) - 0.01) < 0.002
        assert abs(float(m.bbox_pred.weight.detach().std()) - 0.001) < 0.0002
        assert float(m.bbox_pred.bias.detach().abs().max()) == 0.0


def test_torchvision_input_convention():
    c = default_cfg()
    c.FEAT_STRIDE = 8
    m = FasterRCNN('TINY', 3, c)
    bgr = torch.tensor([10.0, 128.0, 250.0]).view(1, 3, 1, 1)   # B, G, R in 0-255
    means = torch.tensor(c.PIXEL_MEANS.reshape(3), dtype=torch.float32).view(1, 3, 1, 1)
    blob = bgr - means
    assert torch.equal(m._convert_input(blob), blob)
    m.set_input_mode('torchvision')
    got = m._convert_input(blob).view(3)
    want = [(250 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert 'input_mode' in m.state_dict()


def test_fold_bbox_normalization_hand_case():
    state = {'bbox_pred.weight': torch.ones(8, 3), 'bbox_pred.bias': torch.ones(8)}
    out = fold_bbox_normalization(state, 2, (0.0, 1.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2))
    np.testing.assert_allclose(out['bbox_pred.weight'][:, 0].numpy(), [.1, .1, .2, .2, .1, .1, .2, .2], rtol=1e-6)
    np.testing.assert_allclose(out['bbox_pred.bias'].numpy(), [.1, 1.1, .2, .2, .1, 1.1, .2, .2], rtol=1e-6)
    assert torch.equal(state['bbox_pred.weight'], torch.ones(8, 3))  # input untouched


def test_train_forward_gives_four_finite_losses_and_test_forward_shapes():
    torch.manual_seed(0)
    np.random.seed(0)
    c = default_cfg()
    c.TRAIN.HAS_RPN = True
    c.TRAIN.IMS_PER_BATCH = 1
    c.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    c.TRAIN.RPN_PRE_NMS_TOP_N = 200
    c.TRAIN.RPN_POST_NMS_TOP_N = 50
    c.TEST.RPN_PRE_NMS_TOP_N = 100
    c.TEST.RPN_POST_NMS_TOP_N = 20
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    m = FasterRCNN('TINY', 4, c)
    data = torch.randn(1, 3, 96, 128) * 50
    gt = np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32)
    losses = m.train()(data, np.array([[96, 128, 1.0]], np.float32), gt)
    assert set(losses) == {'rpn_loss_cls', 'rpn_loss_bbox', 'loss_cls', 'loss_bbox'}
    for v in losses.values():
        assert torch.isfinite(v) and v.dim() == 0
    # untrained: both softmax losses near log(#classes)
    assert abs(float(losses['rpn_loss_cls'].detach()) - np.log(2)) < 0.05
    assert abs(float(losses['loss_cls'].detach()) - np.log(4)) < 0.1
    sum(losses.values()).backward()
    assert m.features.conv1.weight.grad is not None
    with torch.no_grad():
        rois, prob, deltas = m.eval()(data, np.array([[96, 128, 1.0]], np.float32))
    assert rois.shape[1] == 5 and rois.shape[0] <= 20
    assert prob.shape == (rois.shape[0], 4) and deltas.shape == (rois.shape[0], 16)
    np.testing.assert_allclose(prob.sum(1).numpy(), 1.0, rtol=1e-5)


def test_rpn_losses_of_the_sampled_anchors_equal_the_whole_maps(monkeypatch):
    from fast_rcnn.losses import smooth_l1_loss
    from nets import ops
    c = default_cfg()
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    c.TRAIN.RPN_PRE_NMS_TOP_N = 200
    c.TRAIN.RPN_POST_NMS_TOP_N = 50
    torch.manual_seed(0)
    m = FasterRCNN('TINY', 4, c).train()
    m.rng = np.random.RandomState(3)
    seen = {}
    atl = ops.anchor_target_layer
    monkeypatch.setattr(ops, 'anchor_target_layer', lambda *a, **k: seen.setdefault('targets', atl(*a, **k)))

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            seen[name] = output
        return hook
    m.rpn_cls_score.register_forward_hook(keep('cls'))
    m.rpn_bbox_pred.register_forward_hook(keep('bbox'))
    data = torch.randn(1, 3, 96, 128) * 50
    gt = np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32)
    losses = m(data, np.array([[96, 128, 1.0]], np.float32), gt)
    (losses['rpn_loss_cls'] + losses['rpn_loss_bbox']).backward()
    labels, bbox_targets, bbox_inside_weights, bbox_outside_weights = seen['targets']
    assert int((bbox_inside_weights != 0).sum()) > 0
    # the dense computation, Caffe's layers as written: every anchor of the map
    cls = seen['cls'].detach().contiguous().requires_grad_()
    bbox = seen['bbox'].detach().contiguous().requires_grad_()
    A, H, W = cls.shape[1] // 2, cls.shape[2], cls.shape[3]
    score = cls.view(1, 2, A * H, W)
    lab = labels.long().view(1, A * H, W)
    valid = (lab != -1).float()
    ce = torch.nn.functional.cross_entropy(score, lab.clamp(min=0), reduction='none')
    dense_cls = (ce * valid).sum() / valid.sum()
    dense_bbox = smooth_l1_loss(bbox, bbox_targets, bbox_inside_weights, bbox_outside_weights, sigma=3.0)
    (dense_cls + dense_bbox).backward()
    torch.testing.assert_close(losses['rpn_loss_cls'].detach(), dense_cls.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(losses['rpn_loss_bbox'].detach(), dense_bbox.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(seen['cls'].grad, cls.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(seen['bbox'].grad, bbox.grad, rtol=1e-6, atol=1e-9)
