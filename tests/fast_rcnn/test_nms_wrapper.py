"""fast_rcnn.nms_wrapper.nms: numpy in -> numpy out, torch in -> torch out on the same device, the same indices as
py_cpu_nms on every path, and loud fallbacks."""
import numpy as np
import pytest
import torch
from easydict import EasyDict

from fast_rcnn import nms_wrapper
from fast_rcnn.nms_wrapper import nms
from nms import gpu_nms as gpu
from nms.py_cpu_nms import py_cpu_nms


def _dets(n=400, seed=0):
    rng = np.random.RandomState(seed)
    c = rng.uniform(0, 500, size=(15, 2))[rng.randint(0, 15, n)]
    xy = c + rng.randn(n, 2) * 15
    return np.hstack([xy, xy + rng.uniform(10, 100, (n, 2)), rng.rand(n, 1)]).astype(np.float32)


CPU_CFG = EasyDict(USE_GPU_NMS=False, GPU_ID=0)


@pytest.mark.parametrize('force_cpu', [False, True])
def test_numpy_in_numpy_out(force_cpu):
    d = _dets()
    keep = nms(d, 0.5, force_cpu=force_cpu, cfg=CPU_CFG)
    assert isinstance(keep, np.ndarray) and keep.dtype == np.int64
    np.testing.assert_array_equal(keep, py_cpu_nms(d, 0.5))


def test_default_cfg_is_read_when_none():
    d = _dets(seed=1)
    np.testing.assert_array_equal(nms(d, 0.3), py_cpu_nms(d, 0.3))


def test_torch_in_torch_out_cpu():
    d = _dets(seed=2)
    keep = nms(torch.from_numpy(d), 0.7)
    assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64 and keep.device.type == 'cpu'
    np.testing.assert_array_equal(keep.numpy(), py_cpu_nms(d, 0.7))
    t = torch.from_numpy(d).requires_grad_()
    np.testing.assert_array_equal(nms(t, 0.7).numpy(), keep.numpy())


def test_empty_and_bad_shape():
    assert nms(np.zeros((0, 5), np.float32), 0.5, cfg=CPU_CFG).shape == (0,)
    assert nms(torch.zeros((0, 5)), 0.5).shape == (0,)
    with pytest.raises(ValueError, match='nms_wrapper.py'):
        nms(np.zeros((4, 3), np.float32), 0.5)
    with pytest.raises(ValueError, match='nms_wrapper.py'):
        nms(torch.zeros((4, 3)), 0.5)


def test_missing_cpu_extension_falls_back_loudly(monkeypatch):
    monkeypatch.setattr(nms_wrapper, '_cpu_nms', None)
    monkeypatch.setattr(nms_wrapper, '_CPU_ERROR', 'simulated')
    monkeypatch.setattr(nms_wrapper, '_warned', set())
    d = _dets(seed=3)
    with pytest.warns(RuntimeWarning, match='not built .*simulated'):
        keep = nms(d, 0.5, force_cpu=True)
    np.testing.assert_array_equal(keep, py_cpu_nms(d, 0.5))


def test_max_keep_is_the_head_of_the_full_result(monkeypatch):
    d = _dets(n=2000, seed=4)
    full = py_cpu_nms(d, 0.7)
    assert len(full) > 50
    np.testing.assert_array_equal(nms(d, 0.7, cfg=CPU_CFG, max_keep=50), full[:50])
    np.testing.assert_array_equal(nms(torch.from_numpy(d), 0.7, max_keep=50).numpy(), full[:50])
    monkeypatch.setattr(nms_wrapper, '_cpu_nms', None)  # the numpy fallback slices its full answer
    monkeypatch.setattr(nms_wrapper, '_warned', set())
    with pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(nms(d, 0.7, force_cpu=True, max_keep=50), full[:50])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_cuda_tensor_stays_on_device():
    d = _dets(seed=4)
    keep = nms(torch.from_numpy(d).cuda(), 0.5)
    assert keep.is_cuda
    np.testing.assert_array_equal(keep.cpu().numpy(), py_cpu_nms(d, 0.5))
    keep_cpu = nms(torch.from_numpy(d).cuda(), 0.5, force_cpu=True)
    assert keep_cpu.is_cuda
    np.testing.assert_array_equal(keep_cpu.cpu().numpy(), py_cpu_nms(d, 0.5))


@pytest.mark.skipif(not gpu.available(), reason='needs a GPU and the CUDA build')
def test_numpy_with_use_gpu_nms():
    d = _dets(seed=5)
    keep = nms(d, 0.5, cfg=EasyDict(USE_GPU_NMS=True, GPU_ID=0))
    assert isinstance(keep, np.ndarray)
    np.testing.assert_array_equal(keep, py_cpu_nms(d, 0.5))
