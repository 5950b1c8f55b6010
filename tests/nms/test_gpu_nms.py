"""CUDA NMS against the CPU NMS and py_cpu_nms (exact indices); skipped without a GPU and the CUDA build."""
import numpy as np
import pytest
import torch

from nms import gpu_nms as gpu
from nms.cpu_nms import cpu_nms
from nms.py_cpu_nms import py_cpu_nms

pytestmark = pytest.mark.skipif(not gpu.available(), reason='needs a GPU and the CUDA build (WITH_CUDA=1 make setup)')


def _boxes(rng, n, dtype=np.float32, integer=False):
    c = rng.uniform(0, 600, size=(25, 2))[rng.randint(0, 25, n)]
    xy = c + rng.randn(n, 2) * 20
    wh = rng.uniform(10, 150, size=(n, 2))
    d = np.hstack([xy, xy + wh, rng.rand(n, 1)])
    if integer:
        d[:, :4] = np.round(d[:, :4])
    return d.astype(dtype)


def test_self_check_passes():
    gpu.self_check(torch.device('cuda'))


@pytest.mark.parametrize('n', [1, 63, 64, 65, 1000, 12000])
@pytest.mark.parametrize('thresh', [0.3, 0.5, 0.7])
def test_gpu_matches_cpu(n, thresh):
    rng = np.random.RandomState(n)
    for integer in (False, True):
        dets = _boxes(rng, n, integer=integer)
        keep = gpu.gpu_nms(torch.from_numpy(dets).cuda(), thresh)
        assert keep.is_cuda and keep.dtype == torch.int64
        np.testing.assert_array_equal(keep.cpu().numpy(), cpu_nms(dets, thresh))


def test_gpu_float64_ties_and_odd_boxes():
    rng = np.random.RandomState(1)
    d = _boxes(rng, 500, dtype=np.float64, integer=True)
    d[::9, 2] = d[::9, 0] - 1   # zero-area boxes (NaN IoU in numpy: suppressed)
    d[::17, 1] = np.nan
    d[:, 4] = np.round(d[:, 4] * 5)  # tied scores
    with np.errstate(invalid='ignore', divide='ignore'):
        for thresh in (0.3, 0.5, np.float64(0.7)):
            np.testing.assert_array_equal(gpu.gpu_nms(torch.from_numpy(d).cuda(), thresh).cpu().numpy(),
                                          py_cpu_nms(d, thresh))
    tie = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 4, 0.8], [50, 50, 60, 60, 0.95]], dtype=np.float32)
    np.testing.assert_array_equal(gpu.gpu_nms(torch.from_numpy(tie).cuda(), 0.5).cpu().numpy(), [2, 0, 1])


def test_gpu_empty():
    keep = gpu.gpu_nms(torch.zeros((0, 5), device='cuda'), 0.5)
    assert keep.shape == (0,) and keep.is_cuda


@pytest.mark.parametrize('thresh', [0.3, 0.7])
def test_both_gpu_back_ends_match_cpu_and_the_pick_is_reported(thresh, capsys):
    # gpu_nms runs our kernel or torchvision's, whichever was faster at first use with the same boxes kept
    rng = np.random.RandomState(5)
    dets = _boxes(rng, 6000)
    dets[:, 4] = np.round(dets[:, 4], 2)  # tied scores
    want = cpu_nms(dets, thresh)
    d = torch.from_numpy(dets).cuda()
    np.testing.assert_array_equal(gpu._raw(d, thresh).cpu().numpy(), want)
    np.testing.assert_array_equal(gpu.torchvision_keep(d, thresh).cpu().numpy(), want)
    gpu._choice.clear()
    np.testing.assert_array_equal(gpu.gpu_nms(d, thresh).cpu().numpy(), want)
    assert 'gpu_nms on' in capsys.readouterr().out and gpu._choice['cuda:0'] in ('native', 'torchvision')
