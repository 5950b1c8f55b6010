"""utils.runtime: the tools' process-wide CPU and CUDA settings."""
import os

import pytest
import torch

from utils import runtime


@pytest.fixture
def restore_denormals():
    yield
    torch.set_flush_denormal(False)  # the process's default, for the tests that follow


def test_onednn_cache_raised_unless_the_user_set_it(monkeypatch, restore_denormals):
    monkeypatch.delenv('ONEDNN_PRIMITIVE_CACHE_CAPACITY', raising=False)
    runtime.tune_cpu_runtime()
    assert os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'] == str(runtime.ONEDNN_PRIMITIVE_CACHE)
    assert runtime.ONEDNN_PRIMITIVE_CACHE > 1024          # oneDNN's own default
    monkeypatch.setenv('ONEDNN_PRIMITIVE_CACHE_CAPACITY', '77')
    runtime.tune_cpu_runtime()
    assert os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'] == '77'


def test_denormals_flushed_to_zero(restore_denormals):
    if not torch.set_flush_denormal(False):
        pytest.skip('this CPU has no flush-to-zero mode')
    tiny = torch.tensor([1e-39, -3e-39, 1e-30], dtype=torch.float32)   # two denormals and a normal number
    assert (tiny[:2] != 0).all()                                        # kept without the setting
    w = torch.full((8, 8), 1e-39)                                       # a denormal weight, made before
    assert torch.mm(w, torch.ones(8, 8)).min().item() > 0
    runtime.tune_cpu_runtime()
    flushed = torch.tensor([1e-39, -3e-39, 1e-30], dtype=torch.float32)
    assert flushed.tolist()[:2] == [0.0, 0.0]
    assert flushed[2].item() == pytest.approx(1e-30)
    # arithmetic: a denormal input counts as 0 and a product below the normal range becomes 0
    assert torch.mm(w, torch.ones(8, 8)).abs().max().item() == 0.0
    assert (torch.full((4,), 1e-20) * 1e-20).tolist() == [0.0] * 4


def test_cudnn_benchmark_follows_the_cfg_on_a_cuda_device_only(monkeypatch):
    from utils.runtime import tune_cuda_runtime
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', False)
    tune_cuda_runtime(torch.device('cpu'), True)
    assert torch.backends.cudnn.benchmark is False
    tune_cuda_runtime(torch.device('cuda', 0), True)
    assert torch.backends.cudnn.benchmark is True
    tune_cuda_runtime(torch.device('cuda', 0), False)
    assert torch.backends.cudnn.benchmark is False
