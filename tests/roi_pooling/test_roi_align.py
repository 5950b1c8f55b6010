"""RoIAlign (our CPU kernels) against hand-computed bilinear samples and torchvision.ops.roi_align (an independent
implementation of the same arithmetic): forward, gradients, edge RoIs, adaptive sampling, gradcheck."""
import numpy as np
import pytest
import torch
import torchvision

import roi_pooling
from roi_pooling import RoIAlign, roi_align

native = pytest.mark.skipif(roi_pooling._C is None, reason='roi_pooling._C is not built (make setup)')


def _rois(rng, n, H, W, batch, scale):
    """RoIs in image pixels, some partly or wholly outside the map, some thinner than a cell."""
    xy = rng.uniform(-3, max(H, W) + 3, size=(n, 4)) / scale
    x1, x2 = np.minimum(xy[:, 0], xy[:, 2]), np.maximum(xy[:, 0], xy[:, 2])
    y1, y2 = np.minimum(xy[:, 1], xy[:, 3]) * H / W, np.maximum(xy[:, 1], xy[:, 3]) * H / W
    x2[: n // 8] = x1[: n // 8] + 0.3 / scale  # thinner than a cell
    return torch.tensor(np.stack([rng.randint(0, batch, n), x1, y1, x2, y2], 1), dtype=torch.float32)


def test_hand_computed_samples():
    # f(y, x) = 4y + x on a 4x4 map: bilinear interpolation of it is exact inside the map.
    feats = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 2, 2],    # points at 0.5 and 1.5: mean of f = 4 * 1 + 1
                         [0, 2, 2, 3, 3],    # 1 px wide: points at 2.25, 2.75 -> 4 * 2.5 + 2.5
                         [0, 3, 3, 5, 5]],   # points at 3.5 (clamped to the last cell, f = 15) and 4.5 (outside: 0)
                        dtype=torch.float32)
    out = roi_align(feats, rois, 1, 1, 1.0, sampling_ratio=2, aligned=False)
    np.testing.assert_allclose(out.flatten().numpy(), [5.0, 12.5, 15.0 / 4], rtol=1e-6)
    # aligned: corners shifted by half a cell, so RoI 0's points are at 0 and 1 -> 4 * 0.5 + 0.5
    out = roi_align(feats, rois[:1], 1, 1, 1.0, sampling_ratio=2, aligned=True)
    np.testing.assert_allclose(out.flatten().numpy(), [2.5], rtol=1e-6)


def test_hand_computed_gradient():
    feats = torch.zeros(1, 1, 4, 4, requires_grad=True)
    out = roi_align(feats, torch.tensor([[0, 0, 0, 2, 2.]]), 1, 1, 1.0, sampling_ratio=2, aligned=False)
    out.sum().backward()
    # four points at (0.5|1.5, 0.5|1.5), each a quarter of the bin, each spread 1/4 on its 4 neighbours
    expected = np.zeros((4, 4), np.float32)
    expected[:3, :3] = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    np.testing.assert_allclose(feats.grad[0, 0].numpy(), expected / 16.0, rtol=1e-6)


@native
@pytest.mark.parametrize('aligned', [False, True])
@pytest.mark.parametrize('sampling_ratio', [2, 1, 0])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_forward_and_gradient_match_torchvision(aligned, sampling_ratio, dtype):
    rng = np.random.RandomState(sampling_ratio + 3 * aligned)
    N, C, H, W, scale = 2, 5, 13, 17, 1.0 / 8
    feats = torch.randn(N, C, H, W, dtype=dtype, generator=torch.Generator().manual_seed(1))
    rois = _rois(rng, 60, H, W, N, scale).to(dtype)
    grad = torch.randn(60, C, 7, 6, dtype=dtype, generator=torch.Generator().manual_seed(2))
    a, b = feats.clone().requires_grad_(), feats.clone().requires_grad_()
    out = roi_align(a, rois, 7, 6, scale, sampling_ratio, aligned)
    ref = torchvision.ops.roi_align(b, rois, (7, 6), scale, sampling_ratio, aligned)
    tol = {'rtol': 1e-5, 'atol': 1e-6} if dtype == torch.float32 else {'rtol': 1e-12, 'atol': 1e-12}
    torch.testing.assert_close(out, ref, **tol)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(a.grad, b.grad, **tol)


@native
def test_gradcheck_float64():
    feats = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1, 2, 40, 30], [1, 10, 5, 90, 80], [0, -20, -20, 300, 300]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 3, 2, 1.0 / 16, 2, False), (feats,))


def test_module_repr():
    assert 'sampling_ratio=2, aligned=False' in repr(RoIAlign(7, 7, 1.0 / 8))


def test_without_the_native_build_torchvision_runs(monkeypatch):
    monkeypatch.setattr(roi_pooling, '_C', None)
    feats = torch.randn(1, 3, 9, 9)
    rois = torch.tensor([[0, 0, 0, 100, 80.], [0, 30, 10, 60, 90]])
    torch.testing.assert_close(roi_align(feats, rois, 3, 3, 1.0 / 16),
                               torchvision.ops.roi_align(feats, rois, (3, 3), 1.0 / 16, 2, False))
