"""RoI pooling against the original Caffe layer's outputs (oracle) and torchvision.ops.roi_pool (an independent
implementation of the same algorithm): forward, argmax, gradients, edge RoIs, gradcheck; CUDA tests skip without a
GPU. The module and bad-input checks also for RoIAlign (its own tests: test_roi_align.py)."""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
import torchvision

import roi_pooling
from roi_pooling import RoIAlign, RoIPool, backend, roi_align, roi_pool

CUDA = torch.cuda.is_available() and roi_pooling._C is not None and roi_pooling._C.has_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason='needs a GPU and the CUDA build (WITH_CUDA=1 make setup)')

SCALE = 1.0 / 16


def _edge_rois(H, W, batch=0):
    """RoIs in image pixels (scale 1/16) that hit every special case of the Caffe layer."""
    w, h = W * 16.0, H * 16.0
    return torch.tensor([
        [batch, 0, 0, w - 1, h - 1],          # the whole map
        [batch, 0, 0, w * 4, h * 4],          # larger than the map (clipped bins)
        [batch, 40, 40, 40, 40],              # a single point
        [batch, 200, 120, 40, 30],            # inverted (size clamped to 1)
        [batch, -300, -300, -100, -120],      # fully outside, negative
        [batch, w + 100, h + 100, w + 400, h + 300],  # fully outside, beyond the map
        [batch, 8, 8, 24, 24],                # .5 roundings (8/16 rounds half away from zero)
        [batch, -8, -24, 8, 24],              # negative .5 roundings
        [batch, w - 16, h - 16, w - 1, h - 1],  # the last cell
        [batch, 3.3, 5.7, 77.9, 61.2],        # fractional
    ], dtype=torch.float32)


def _random_rois(rng, n, H, W, batch):
    xy = rng.uniform(-40, max(W, H) * 16 + 40, size=(n, 4))
    x1 = np.minimum(xy[:, 0], xy[:, 2]); x2 = np.maximum(xy[:, 0], xy[:, 2])
    y1 = np.minimum(xy[:, 1], xy[:, 3]) * H / W; y2 = np.maximum(xy[:, 1], xy[:, 3]) * H / W
    b = rng.randint(0, batch, n)
    return torch.tensor(np.stack([b, x1, y1, x2, y2], 1), dtype=torch.float32)


def _distinct_features(shape, seed, dtype=torch.float32):
    """Random features with no repeated values (so the max, and hence the gradient, is unique)."""
    g = torch.Generator().manual_seed(seed)
    n = int(np.prod(shape))
    return (torch.randperm(n, generator=g).to(torch.float64) / n - 0.5).reshape(shape).to(dtype)


def _tv(features, rois, ph, pw, scale=SCALE):
    return torchvision.ops.roi_pool(features, rois, (ph, pw), scale)


def test_native_backend_is_built():
    assert roi_pooling._C is not None, roi_pooling._IMPORT_ERROR
    assert backend('cpu') == 'native'
    assert backend() == 'native'


@pytest.mark.parametrize('size', ['7x7', '6x6', '2x3'])
def test_oracle_fixture(oracle_dir, size):
    o = np.load(osp.join(oracle_dir, 'roi_pooling.npz'))
    ph, pw = map(int, size.split('x'))
    feats, rois = torch.from_numpy(o['features']), torch.from_numpy(o['rois'])
    out, argmax = roi_pooling._forward(feats, rois, ph, pw, float(o['spatial_scale']))
    np.testing.assert_array_equal(out.numpy(), o['pooled_' + size])
    np.testing.assert_array_equal(argmax.numpy(), o['argmax_' + size])
    np.testing.assert_array_equal(RoIPool(ph, pw, float(o['spatial_scale']))(feats, rois).numpy(),
                                  o['pooled_' + size])


def test_hand_computed_small_case():
    feats = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 3, 3], [0, 1, 1, 2, 2], [0, 5, 5, 9, 9]], dtype=torch.float32)
    out = roi_pool(feats, rois, 2, 2, 1.0)
    # RoI 0: 4x4 -> bins of 2: maxima 5, 7, 13, 15. RoI 1: 2x2 at (1,1) -> 5, 6, 9, 10. RoI 2: outside -> 0.
    np.testing.assert_array_equal(out.numpy().reshape(3, 4), [[5, 7, 13, 15], [5, 6, 9, 10], [0, 0, 0, 0]])
    _, argmax = roi_pooling._forward(feats, rois, 2, 2, 1.0)
    np.testing.assert_array_equal(argmax.numpy().reshape(3, 4), [[5, 7, 13, 15], [5, 6, 9, 10], [-1, -1, -1, -1]])


@pytest.mark.parametrize('ph,pw', [(7, 7), (6, 6), (2, 3), (1, 1)])
def test_forward_and_gradient_match_torchvision(ph, pw):
    rng = np.random.RandomState(ph * 10 + pw)
    N, C, H, W = 2, 5, 19, 25
    feats = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(ph))
    feats[:, :, 3:6, 3:9] = 0.0  # ties: equal values, the first one wins in both
    rois = torch.cat([_edge_rois(H, W, 0), _edge_rois(H, W, 1), _random_rois(rng, 80, H, W, N)])
    grad = torch.randn(rois.shape[0], C, ph, pw, generator=torch.Generator().manual_seed(7))
    a = feats.clone().requires_grad_()
    b = feats.clone().requires_grad_()
    out = roi_pool(a, rois, ph, pw, SCALE)
    ref = _tv(b, rois, ph, pw)
    assert torch.equal(out, ref)
    out.backward(grad)
    ref.backward(grad)
    assert torch.equal(a.grad, b.grad)


def test_float64_and_other_scales_match_torchvision():
    rng = np.random.RandomState(1)
    feats = torch.randn(1, 3, 10, 12, dtype=torch.float64)
    rois = _random_rois(rng, 50, 10, 12, 1).double()
    for scale in (1.0 / 16, 0.125, 1.0):  # powers of two: the scaled corners are exact in float and double
        assert torch.equal(roi_pool(feats, rois, 3, 3, scale), _tv(feats, rois, 3, 3, scale))


def test_gradcheck_float64():
    feats = _distinct_features((2, 2, 6, 7), seed=3, dtype=torch.float64).requires_grad_()
    rois = torch.tensor([[0, 0, 0, 50, 40], [1, 10, 5, 100, 90], [0, 30, 30, 31, 31], [1, -20, -20, 300, 300]],
                        dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_pool(f, rois, 3, 2, SCALE), (feats,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize('pool', [RoIPool(7, 7, SCALE), RoIAlign(7, 7, SCALE)], ids=['RoIPool', 'RoIAlign'])
def test_module_and_shapes(pool):
    assert 'pooled_height=7' in repr(pool)
    feats = torch.randn(1, 4, 8, 8)
    assert pool(feats, torch.zeros((0, 5))).shape == (0, 4, 7, 7)
    out = pool(feats.half(), torch.tensor([[0, 0, 0, 60, 60.]]))
    assert out.dtype == torch.float16 and out.shape == (1, 4, 7, 7)


@pytest.mark.parametrize('op', [roi_pool, roi_align])
def test_bad_input_is_refused(op):
    feats = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match='rois must be'):
        op(feats, torch.zeros(3, 4), 2, 2, 1.0)
    with pytest.raises(ValueError, match='features must be'):
        op(feats[0], torch.zeros(3, 5), 2, 2, 1.0)
    with pytest.raises(ValueError, match='batch indices'):
        op(feats, torch.tensor([[1, 0, 0, 3, 3.]]), 2, 2, 1.0)


def test_fallback_to_torchvision_warns_once(monkeypatch):
    monkeypatch.setattr(roi_pooling, '_C', None)
    monkeypatch.setattr(roi_pooling, '_IMPORT_ERROR', 'simulated')
    monkeypatch.setattr(roi_pooling, '_warned', set())
    assert backend('cpu') == 'torchvision'
    feats = torch.randn(1, 2, 9, 9, requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 100, 80.], [0, 30, 10, 60, 90]])
    with pytest.warns(RuntimeWarning, match='not built .*simulated.*torchvision'):
        out = roi_pool(feats, rois, 3, 3, SCALE)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out2 = roi_pool(feats, rois, 3, 3, SCALE)  # no second warning
    assert torch.equal(out, _tv(feats, rois, 3, 3)) and torch.equal(out, out2)


@needs_cuda
def test_cuda_matches_cpu_and_torchvision():
    rng = np.random.RandomState(2)
    N, C, H, W = 2, 16, 38, 50
    feats = torch.randn(N, C, H, W)
    rois = torch.cat([_edge_rois(H, W, 0), _edge_rois(H, W, 1), _random_rois(rng, 300, H, W, N)])
    grad = torch.randn(rois.shape[0], C, 7, 7)
    assert roi_pooling._fallback_reason(torch.device('cuda')) is None  # our CUDA kernels are built
    a = feats.cuda().requires_grad_()
    out = roi_pool(a, rois.cuda(), 7, 7, SCALE)
    assert torch.equal(out.cpu(), roi_pool(feats, rois, 7, 7, SCALE))
    _, arg_gpu = roi_pooling._forward(feats.cuda(), rois.cuda(), 7, 7, SCALE)
    _, arg_cpu = roi_pooling._forward(feats, rois, 7, 7, SCALE)
    assert torch.equal(arg_gpu.cpu(), arg_cpu)
    out.backward(grad.cuda())
    b = feats.cuda().requires_grad_()
    _tv(b, rois.cuda(), 7, 7).backward(grad.cuda())
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)  # atomicAdd order differs


@needs_cuda
def test_cuda_gradcheck_float64():
    feats = _distinct_features((2, 2, 6, 7), seed=4, dtype=torch.float64).cuda().requires_grad_()
    rois = torch.tensor([[0, 0, 0, 50, 40], [1, 10, 5, 100, 90], [1, -20, -20, 300, 300]],
                        dtype=torch.float64).cuda()
    assert torch.autograd.gradcheck(lambda f: roi_pool(f, rois, 3, 2, SCALE), (feats,), eps=1e-6, atol=1e-8)


def test_torchvision_runs_on_a_gpu_only_when_faster_and_the_same():
    from roi_pooling import faster_backend
    assert faster_backend(2e-3, 1e-3, True) == 'torchvision'
    assert faster_backend(2e-3, 1e-3, False) == 'native'   # never with another output
    assert faster_backend(1e-3, 2e-3, True) == 'native'


@needs_cuda
def test_the_gpu_backend_is_picked_once_and_reported(capsys):
    import roi_pooling as rp
    rp._cuda_choice.pop('cuda:0', None)
    feats = torch.randn(1, 8, 10, 10, device='cuda')
    rois = torch.tensor([[0, 0, 0, 50, 60.0]], device='cuda')
    with torch.no_grad():  # as at test time: the timing still runs a backward
        rp.roi_pool(feats, rois, 2, 2, 1 / 8.0)
    assert 'roi_pooling on' in capsys.readouterr().out
    assert rp.backend('cuda:0') == rp._cuda_choice['cuda:0'] in ('native', 'torchvision')
