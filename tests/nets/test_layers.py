"""Caffe layers against hand computation: LRN (within and across channels), ZF's dropout, the RPN softmax layout, the
ignore-label softmax loss, RoI pooling against the oracle, TINY's per-RoI head normalisation."""
import os.path as osp

import numpy as np
import pytest
import torch

from nets.backbones import build_net
from nets.faster_rcnn import rpn_softmax
from nets.layers import CaffeDropout, CaffeLRN


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


def test_roi_pool_matches_caffe_oracle(oracle_dir):
    from nets.ops import make_roi_pool
    z = np.load(osp.join(oracle_dir, 'roi_pooling.npz'))
    for s in (7, 6):
        pool = make_roi_pool(s, float(z['spatial_scale']))
        got = pool(torch.from_numpy(z['features']), torch.from_numpy(z['rois'])).numpy()
        np.testing.assert_allclose(got, z['pooled_{0}x{0}'.format(s)], rtol=1e-5, atol=1e-4)


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
