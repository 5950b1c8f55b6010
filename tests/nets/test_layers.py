"""Networks and Caffe layers: shape rules against the oracle, LRN/dropout against hand computation, the RPN
reshape layout, initialisation, input conventions."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from nets.backbones import build_net, list_nets
from nets.layers import CaffeDropout, CaffeLRN, pool_out_size
from nets.faster_rcnn import FasterRCNN, fold_bbox_normalization, rpn_softmax

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_feature_map_sizes_match_caffe_shape_rules(oracle_dir):
    with open(osp.join(oracle_dir, 'feature_map_sizes.json')) as f:
        sizes = json.load(f)['conv5_size']
    for net, table in sizes.items():
        feats = build_net(net).features.to('meta')
        for side, expected in table.items():
            out = feats(torch.empty(1, 3, int(side), int(side), device='meta'))
            assert out.shape[-1] == expected, (net, side, out.shape)
            assert out.shape[-2] == expected


def test_tiny_is_stride_8_with_context_from_stride_32():
    net = build_net('TINY')
    assert net.feat_stride == 8 and net.feat_channels == 64 and net.from_scratch
    # 3x3 convs with padding 1: each stride-2 layer gives ceil(n / 2); 4 of them before the stride-8 tap
    for h, w in ((96, 128), (97, 130), (480, 640)):
        out = net.features(torch.zeros(1, 3, h, w))
        assert out.shape == (1, 64, -(-h // 8), -(-w // 8)), (h, w, out.shape)
    # the stride-8 output depends on pixels far outside a stride-8 cell's own neighbourhood (via stride 32)
    feats = net.features.eval()
    x = (torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 50).requires_grad_()
    feats(x)[0, :, 0, 0].sum().backward()
    reach = torch.nonzero(x.grad.abs().sum(1)[0])
    assert int(reach[:, 0].max()) > 150 and int(reach[:, 1].max()) > 150
    c = _cfg()  # FEAT_STRIDE 16, the original's default: a clear error, not a silent misalignment
    with pytest.raises(ValueError, match='FEAT_STRIDE is 16 but TINY has stride 8'):
        FasterRCNN('TINY', 3, c)


def test_tiny_head_normalises_each_roi_on_its_own():
    head = build_net('TINY').head
    x = torch.randn(5, 64 * 7 * 7, generator=torch.Generator().manual_seed(0)) * 3 + 1
    out = head(x)
    assert out.shape == (5, 256)
    # a RoI's features do not depend on the other RoIs of the minibatch (unlike BatchNorm)
    for i in range(5):
        torch.testing.assert_close(head(x[i:i + 1])[0], out[i])
    # fc6 then LayerNorm: every RoI's 256 values have mean 0 and variance 1 before the ReLU (weight 1, bias 0)
    pre = head.norm6(head.fc6(x))
    torch.testing.assert_close(pre.mean(1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(pre.var(1, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)


def test_known_networks():
    assert set(list_nets()) >= {'VGG16', 'ZF', 'VGG_CNN_M_1024', 'TINY'}
    with pytest.raises(ValueError, match='unknown network'):
        build_net('RESNET9000')


def test_pool_out_size_padded_window_clip():
    # ceil((5 + 2 - 3) / 2) + 1 = 3; no clip needed.  ceil((4 + 2 - 3)/2) + 1 = 3, last window starts at
    # 2*2 = 4 >= 4 + 1? no -> 3.  A case that clips: size 3, k 2, s 2, pad 1: ceil(3/2)+1 = 3, (3-1)*2 = 4 >= 3+1.
    assert pool_out_size(5, 3, 2, 1) == 3
    assert pool_out_size(3, 2, 2, 1) == 2
    pool = torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)
    assert pool(torch.zeros(1, 1, 3, 3)).shape[-1] == 2


def _lrn_within_reference(x, size, alpha, beta):
    n, c, h, w = x.shape
    pad = (size - 1) // 2
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            acc = np.zeros((n, c))
            for di in range(-pad, pad + 1):
                for dj in range(-pad, pad + 1):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < h and 0 <= jj < w:
                        acc += x[:, :, ii, jj] ** 2
            out[:, :, i, j] = x[:, :, i, j] * (1 + alpha * acc / (size * size)) ** (-beta)
    return out


def _lrn_across_reference(x, size, alpha, beta, k):
    n, c, h, w = x.shape
    pad = (size - 1) // 2
    out = np.zeros_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - pad), min(c, ch + pad + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out


def test_lrn_within_channel_matches_caffe_formula():
    rng = np.random.RandomState(0)
    x = rng.randn(1, 2, 5, 4).astype(np.float64) * 30
    got = CaffeLRN(3, 5e-3, 0.75, within_channel=True)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _lrn_within_reference(x, 3, 5e-3, 0.75), rtol=1e-10)


def test_lrn_across_channels_matches_caffe_formula():
    rng = np.random.RandomState(1)
    x = rng.randn(2, 7, 3, 3).astype(np.float64) * 30
    got = CaffeLRN(5, 5e-4, 0.75, k=2.0)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _lrn_across_reference(x, 5, 5e-4, 0.75, 2.0), rtol=1e-10)


def test_zf_dropout_does_not_scale_in_training_and_halves_at_test():
    torch.manual_seed(0)
    d = CaffeDropout(0.5, scale_train=False)
    x = torch.full((1000,), 3.0)
    y = d.train()(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 3.0}
    assert 0.4 < float((y > 0).float().mean()) < 0.6
    assert torch.equal(d.eval()(x), torch.full((1000,), 1.5))
    # the usual (inverted) dropout scales by 2 in training and not at test
    y2 = CaffeDropout(0.5).train()(x)
    assert set(torch.unique(y2).tolist()) <= {0.0, 6.0}
    assert torch.equal(CaffeDropout(0.5).eval()(x), x)
    assert isinstance(build_net('ZF').head.drop6, CaffeDropout) and not build_net('ZF').head.drop6.scale_train
    assert build_net('VGG16').head.drop6.scale_train


def test_rpn_softmax_background_channels_first():
    # A = 2 anchors, H = 1, W = 2. Channel a (bg) pairs with channel A + a (fg).
    A, H, W = 2, 1, 2
    score = torch.zeros(1, 2 * A, H, W)
    score[0, 2, 0, 0] = np.log(3.0)   # anchor 0 fg at (0, 0): p_fg = 3 / (1 + 3)
    score[0, 1, 0, 1] = np.log(4.0)   # anchor 1 bg at (0, 1): p_bg = 4 / 5
    reshape, prob = rpn_softmax(score)
    assert reshape.shape == (1, 2, A * H, W)
    assert prob.shape == (1, 2 * A, H, W)
    assert abs(float(prob[0, 2, 0, 0]) - 0.75) < 1e-6 and abs(float(prob[0, 0, 0, 0]) - 0.25) < 1e-6
    assert abs(float(prob[0, 1, 0, 1]) - 0.8) < 1e-6 and abs(float(prob[0, 3, 0, 1]) - 0.2) < 1e-6
    assert abs(float(prob[0, 1, 0, 0]) - 0.5) < 1e-6


def _cfg():
    from fast_rcnn.config import cfg, cfg_copy
    return cfg_copy(cfg)


@pytest.mark.parametrize('net,pool,rpn_ch,head_dim', [('VGG16', 7, 512, 4096), ('ZF', 6, 256, 4096),
                                                      ('VGG_CNN_M_1024', 6, 256, 1024), ('TINY', 7, 64, 256)])
def test_heads_shapes_and_init(net, pool, rpn_ch, head_dim):
    torch.manual_seed(0)
    c = _cfg()
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


def test_frozen_layers_of_the_original():
    assert build_net('VGG16').frozen == ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2']
    assert build_net('VGG_CNN_M_1024').frozen == ['conv1']
    assert build_net('ZF').frozen == []
    with torch.device('meta'):
        m = FasterRCNN('VGG16', 3, _cfg())
    m.frozen_parameters(m.netdef.frozen)
    frozen = sorted({n.split('.')[1] for n, p in m.named_parameters() if not p.requires_grad})
    assert frozen == ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2']
    with pytest.raises(ValueError, match='no such layer'):
        m.frozen_parameters(['conv9'])


def test_torchvision_input_convention():
    c = _cfg()
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


def test_roi_pool_matches_caffe_oracle(oracle_dir):
    from nets.ops import make_roi_pool
    z = np.load(osp.join(oracle_dir, 'roi_pooling.npz'))
    for s in (7, 6):
        pool = make_roi_pool(s, float(z['spatial_scale']))
        got = pool(torch.from_numpy(z['features']), torch.from_numpy(z['rois'])).numpy()
        np.testing.assert_allclose(got, z['pooled_{0}x{0}'.format(s)], rtol=1e-5, atol=1e-4)


def test_train_forward_gives_four_finite_losses_and_test_forward_shapes():
    torch.manual_seed(0)
    np.random.seed(0)
    c = _cfg()
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


def test_ohem_keeps_the_rois_of_highest_loss():
    # a stub head with known outputs: loss = softmax loss + smooth L1 (sigma 1) of the weighted box error
    c = _cfg()
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    m = FasterRCNN('TINY', 3, c).train()
    scores = torch.tensor([[5.0, 0.0, 0.0],    # bg, right: softmax loss log(1 + 2e-5) ~ 0
                           [0.0, 0.0, 0.0],    # fg 1: log 3
                           [0.0, 5.0, 0.0],    # fg 2, called 1: 5 + log(2 + e^-5) ~ 5.69
                           [0.0, 0.0, 0.0],    # bg: log 3, plus nothing (no box weights)
                           [0.0, 6.0, 0.0]])   # bg called 1: 6 + log(2 + e^-6) ~ 6.69, on RoI 2's box
    deltas = torch.zeros(5, 12)
    deltas[1, 4:8] = torch.tensor([3.0, 0.0, 0.0, 0.5])   # fg 1's box error: (3 - 0.5) + 0.5 * 0.25 = 2.625
    m._head = lambda feat, rois: (scores[:len(rois)], deltas[:len(rois)])
    labels = torch.tensor([0, 1, 2, 0, 0])
    targets = torch.zeros(5, 12)
    w = torch.zeros(5, 12)
    w[1, 4:8] = 1
    w[2, 8:12] = 1
    rois = torch.tensor([[0, 0, 0, 9, 9], [0, 20, 0, 29, 9], [0, 40, 0, 49, 9], [0, 60, 0, 69, 9],
                         [0, 40, 0, 49, 8]], dtype=torch.float32)   # RoI 4: IoU 0.9 with RoI 2
    feat = torch.zeros(1, 64, 4, 4)
    # losses ~ (0, 1.10 + 2.63, 5.69, 1.10, 6.69): RoI 4 is the hardest and suppresses RoI 2 (IoU 0.9 > 0.7);
    # then RoI 1, RoI 3, RoI 0
    keep = m._hardest_rois(feat, rois, labels, targets, w, w, 2)
    assert keep.tolist() == [4, 1]
    assert m.head.training  # the read-only pass put the head back in training mode
    assert m._hardest_rois(feat, rois, labels, targets, w, w, 8).tolist() == [4, 1, 3, 0]
    # without RoI 4, RoI 2 is the hardest
    assert m._hardest_rois(feat, rois[:4], labels[:4], targets[:4], w[:4], w[:4], 2).tolist() == [2, 1]


def test_ohem_training_forward_trains_batch_size_rois():
    torch.manual_seed(0)
    c = _cfg()
    c.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    c.TRAIN.RPN_PRE_NMS_TOP_N = 200
    c.TRAIN.RPN_POST_NMS_TOP_N = 50
    c.TRAIN.BATCH_SIZE = 16
    c.TRAIN.OHEM = True
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    m = FasterRCNN('TINY', 4, c).train()
    seen = []
    head = m._head
    m._head = lambda feat, rois: (seen.append((feat.requires_grad, rois.shape[0])), head(feat, rois))[1]
    losses = m(torch.randn(1, 3, 96, 128) * 50, np.array([[96, 128, 1.0]], np.float32),
               np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32))
    # one read-only pass over every candidate (up to 50 proposals + 2 gt boxes), then at most the 16 hardest (fewer
    # when the NMS leaves fewer) with gradient
    assert len(seen) == 2 and seen[0][0] is False and 16 < seen[0][1] <= 52
    assert seen[1][0] is True and 0 < seen[1][1] <= 16
    assert all(torch.isfinite(v) for v in losses.values())


def test_amp_dtype_follows_cfg_and_hardware(monkeypatch):
    import nets.faster_rcnn as frc
    cpu = torch.device('cpu')
    assert frc.amp_dtype('off', cpu) is None
    assert frc.amp_dtype('bf16', cpu) is torch.bfloat16
    monkeypatch.setattr(frc, '_cpu_has_amx', lambda: True)
    assert frc.amp_dtype('auto', cpu) is torch.bfloat16
    monkeypatch.setattr(frc, '_cpu_has_amx', lambda: False)
    assert frc.amp_dtype('auto', cpu) is None          # float32 where bfloat16 would be slow
    with pytest.raises(ValueError, match="cfg.AMP must be 'off', 'bf16' or 'auto'"):
        frc.amp_dtype('fp16', cpu)


def test_bf16_autocast_forward_is_close_to_float32_and_keeps_float32_outputs():
    c = _cfg()
    c.TRAIN.RPN_PRE_NMS_TOP_N = 200
    c.TRAIN.RPN_POST_NMS_TOP_N = 50
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    torch.manual_seed(0)
    m32 = FasterRCNN('TINY', 4, c)
    from fast_rcnn.config import cfg_copy
    c16 = cfg_copy(c)
    c16.AMP = 'bf16'
    m16 = FasterRCNN('TINY', 4, c16)
    m16.load_state_dict(m32.state_dict())
    data = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(1)) * 50
    gt = np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32)
    info = np.array([[96, 128, 1.0]], np.float32)
    out = {}
    for name, m in (('fp32', m32), ('bf16', m16)):
        np.random.seed(0)
        m.rng = np.random.RandomState(0)   # the same RPN and RoI sampling in both
        losses = m.train()(data, info, gt)
        sum(losses.values()).backward()
        out[name] = ({k: float(v.detach()) for k, v in losses.items()}, m.features.conv1.weight.grad.clone())
        for v in losses.values():
            assert v.dtype == torch.float32 and torch.isfinite(v)
    for k, v in out['fp32'][0].items():
        assert out['bf16'][0][k] == pytest.approx(v, rel=0.05, abs=1e-3), k
    g32, g16 = out['fp32'][1], out['bf16'][1]
    assert g16.dtype == torch.float32                  # master weights and their gradients stay float32
    cos = float((g32 * g16).sum() / (g32.norm() * g16.norm()))
    assert cos > 0.98
    with torch.no_grad():
        rois, prob, deltas = m16.eval()(data, info)
    assert rois.dtype == prob.dtype == deltas.dtype == torch.float32


def test_softmax_loss_ignore_hand_case_and_dense_gradient():
    from nets.ops import softmax_loss_ignore
    # (N=1, C=2, 1, 3): positions 0 and 2 labelled, position 1 ignored
    score = torch.tensor([[[[0.0, 5.0, np.log(3.0)]], [[np.log(3.0), -2.0, 0.0]]]], requires_grad=True)
    labels = torch.tensor([[[1, -1, 1]]])
    loss = softmax_loss_ignore(score, labels)
    # position 0: p(1) = 3/4; position 2: p(1) = 1/4; VALID normalisation: divided by 2
    np.testing.assert_allclose(float(loss.detach()), (-np.log(0.75) - np.log(0.25)) / 2, rtol=1e-6)
    loss.backward()
    # d/dscore = (softmax - onehot) / 2 at labelled positions, 0 at the ignored one
    want = np.array([[[[0.25, 0.0, 0.75]], [[-0.25, 0.0, -0.75]]]]) / 2
    np.testing.assert_allclose(score.grad.numpy(), want, rtol=1e-6, atol=1e-7)
    assert float(softmax_loss_ignore(score, torch.full((1, 1, 3), -1)).detach()) == 0.0
    with pytest.raises(ValueError, match='labels'):
        softmax_loss_ignore(score, torch.zeros(1, 1, 4, dtype=torch.long))


def test_rpn_losses_of_the_sampled_anchors_equal_the_whole_maps(monkeypatch):
    from fast_rcnn.losses import smooth_l1_loss
    from nets import ops
    c = _cfg()
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
    labels, bt, biw, bow = (torch.from_numpy(x) for x in seen['targets'])
    assert int((biw != 0).sum()) > 0
    # the dense computation, Caffe's layers as written: every anchor of the map
    cls = seen['cls'].detach().contiguous().requires_grad_()
    bbox = seen['bbox'].detach().contiguous().requires_grad_()
    A, H, W = cls.shape[1] // 2, cls.shape[2], cls.shape[3]
    score = cls.view(1, 2, A * H, W)
    lab = labels.long().view(1, A * H, W)
    valid = (lab != -1).float()
    ce = torch.nn.functional.cross_entropy(score, lab.clamp(min=0), reduction='none')
    dense_cls = (ce * valid).sum() / valid.sum()
    dense_bbox = smooth_l1_loss(bbox, bt, biw, bow, sigma=3.0)
    (dense_cls + dense_bbox).backward()
    torch.testing.assert_close(losses['rpn_loss_cls'].detach(), dense_cls.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(losses['rpn_loss_bbox'].detach(), dense_bbox.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(seen['cls'].grad, cls.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(seen['bbox'].grad, bbox.grad, rtol=1e-6, atol=1e-9)


def test_coco_solvers_build_heads_without_dropout():
    from fast_rcnn.config import cfg, cfg_copy, cfg_from_dict
    from fast_rcnn.train import load_solver
    for net in ('VGG16', 'VGG_CNN_M_1024'):
        solver = load_solver(osp.join(ROOT, 'models', 'coco', net, 'faster_rcnn_end2end', 'solver.yml'))
        c = cfg_copy(cfg)
        cfg_from_dict(solver['cfg'], c)
        assert c.FC_DROPOUT is False
        head = build_net(net, c.FC_DROPOUT).head
        assert list(head._modules) == ['fc6', 'relu6', 'fc7', 'relu7']
        x = torch.randn(2, head.fc6.in_features)
        assert torch.equal(head.train()(x), head.eval()(x))  # nothing random left
    pascal = load_solver(osp.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end', 'solver.yml'))
    assert 'FC_DROPOUT' not in pascal.get('cfg', {}) and cfg.FC_DROPOUT is True
