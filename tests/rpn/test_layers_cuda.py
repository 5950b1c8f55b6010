"""The three RPN layers on a GPU give what they give on the CPU for the same inputs and the same seeded draws
(skipped without CUDA). Indices, labels and weights must be equal; float32 boxes and targets agree to rounding."""
import numpy as np
import pytest
import torch

from fast_rcnn.config import default_cfg
from rpn.anchor_target_layer import anchor_target_layer
from rpn.proposal_layer import proposal_layer
from rpn.proposal_target_layer import proposal_target_layer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')

H, W = 38, 50
IM_INFO = np.array([[600, 800, 1.6]], dtype=np.float32)


def _gt(rng, n=5):
    xy = rng.uniform(0, 600, size=(n, 2))
    wh = rng.uniform(20, 300, size=(n, 2))
    boxes = np.minimum(np.hstack([xy, xy + wh]), [799, 599, 799, 599])
    return np.hstack([np.round(boxes), rng.randint(1, 21, size=(n, 1))]).astype(np.float32)


def _cuda(x):
    return torch.from_numpy(x).cuda()


def test_proposal_layer():
    rng = np.random.RandomState(1)
    prob = rng.uniform(size=(1, 18, H, W)).astype(np.float32)
    prob[:, :, :5] = 0.5  # tied scores: the order must still be numpy's
    pred = (rng.randn(1, 36, H, W) * 0.2).astype(np.float32)
    for key in ('TRAIN', 'TEST'):
        ref_rois, ref_scores = proposal_layer(prob, pred, IM_INFO, key, cfg=default_cfg())
        rois, scores = proposal_layer(_cuda(prob), _cuda(pred), IM_INFO, key, cfg=default_cfg())
        assert rois.is_cuda and scores.is_cuda
        assert rois.shape == ref_rois.shape
        np.testing.assert_allclose(rois.cpu().numpy(), ref_rois, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(scores.cpu().numpy(), ref_scores)


def test_anchor_target_layer():
    rng = np.random.RandomState(2)
    gt = _gt(rng)
    ref = anchor_target_layer(np.zeros((1, 18, H, W), np.float32), gt, IM_INFO, cfg=default_cfg(),
                              rng=np.random.RandomState(9))
    got = anchor_target_layer(torch.zeros((1, 18, H, W), device='cuda'), _cuda(gt), IM_INFO, cfg=default_cfg(),
                              rng=np.random.RandomState(9))
    assert all(g.is_cuda for g in got)
    for name, g, r in zip(('labels', 'targets', 'inside', 'outside'), got, ref):
        if name == 'targets':
            np.testing.assert_allclose(g.cpu().numpy(), r, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(g.cpu().numpy(), r, err_msg=name)


def test_proposal_target_layer():
    rng = np.random.RandomState(3)
    gt = _gt(rng)
    xy = rng.uniform(0, 600, size=(2000, 2))
    rois = np.hstack([np.zeros((2000, 1)), xy, xy + rng.uniform(10, 200, size=(2000, 2))]).astype(np.float32)
    rois[:50, 1:] = gt[rng.randint(0, 5, 50), :4] + rng.randn(50, 4).astype(np.float32) * 8
    c = default_cfg()
    c.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    ref = proposal_target_layer(rois, gt, 21, cfg=c, rng=np.random.RandomState(4))
    got = proposal_target_layer(_cuda(rois), _cuda(gt), 21, cfg=c, rng=np.random.RandomState(4))
    assert all(g.is_cuda for g in got)
    for i, (g, r) in enumerate(zip(got, ref)):
        if i == 2:
            np.testing.assert_allclose(g.cpu().numpy(), r, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(g.cpu().numpy(), r)


def test_rpn_losses_of_a_model_on_the_gpu_match_the_cpu(monkeypatch):
    # the anchor targets depend on the gt boxes only, so the RPN's losses agree to float rounding; the RoI head's
    # depend on which proposals win near-ties of an untrained network, so they are only checked to be finite
    from nets.faster_rcnn import FasterRCNN
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)  # float32 convolutions, as on the CPU
    c = default_cfg()
    c.AMP = 'off'
    torch.manual_seed(0)
    cpu = FasterRCNN('TINY', 4, c).train()
    gpu = FasterRCNN('TINY', 4, c).train()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    data = torch.randn(1, 3, 240, 320) * 50
    gt = np.array([[10, 10, 90, 120, 1], [150, 40, 300, 200, 3]], np.float32)
    info = np.array([[240, 320, 1.0]], np.float32)
    cpu.rng, gpu.rng = np.random.RandomState(0), np.random.RandomState(0)
    want = cpu(data, info, gt)
    got = gpu(data.cuda(), info, gt)
    for k in ('rpn_loss_cls', 'rpn_loss_bbox'):
        torch.testing.assert_close(got[k].cpu(), want[k], rtol=1e-3, atol=1e-5)
    assert all(bool(torch.isfinite(got[k])) for k in ('loss_cls', 'loss_bbox'))
