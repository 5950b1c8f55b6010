"""Opt-in training extras of the detector: online hard example mining (OHEM) and bf16 autocast (AMP)."""

import numpy as np
import pytest
import torch

from fast_rcnn.config import default_cfg
from nets.faster_rcnn import FasterRCNN


def test_ohem_keeps_the_rois_of_highest_loss():
    # a stub head with known outputs: loss = softmax loss + smooth L1 (sigma 1) of the weighted box error
    c = default_cfg()
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
    c = default_cfg()
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
    assert frc.amp_dtype('fp16', cpu) is torch.float16
    cuda = torch.device('cuda')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    assert frc.amp_dtype('auto', cuda) is torch.float16  # a GPU before Ampere
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    assert frc.amp_dtype('auto', cuda) is torch.bfloat16
    with pytest.raises(ValueError, match="cfg.AMP must be 'off', 'bf16', 'fp16' or 'auto'"):
        frc.amp_dtype('half', cpu)


def test_bf16_autocast_forward_is_close_to_float32_and_keeps_float32_outputs():
    c = default_cfg()
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
