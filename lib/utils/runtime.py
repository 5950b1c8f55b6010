"""Process-wide settings of the CPU and CUDA runtimes that the command-line tools make before any network runs."""
from __future__ import annotations

import os

import torch

#: oneDNN primitives (JIT-compiled convolution kernels) kept for reuse; oneDNN's default is 1024.
ONEDNN_PRIMITIVE_CACHE = 16384


def tune_cpu_runtime() -> None:
    """Let oneDNN keep more compiled convolutions than its default 1024 (unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is
    set), and flush denormal floats to zero on the CPU.

    Why: oneDNN compiles each convolution for every input size it meets, and a training run meets a few dozen
    sizes times ~50 primitives; with the default cache most were recompiled each minibatch. Weights that get no
    gradient but weight decay shrink under Adam until they are denormal, and each multiply with one takes a slow
    microcode assist; flushing changes results only below 1.2e-38 (figures: docs/EXPERIMENTS.md).
    Call before the first convolution; threads and forked processes inherit it, spawned processes must call it
    again."""
    os.environ.setdefault('ONEDNN_PRIMITIVE_CACHE_CAPACITY', str(ONEDNN_PRIMITIVE_CACHE))
    torch.set_flush_denormal(True)  # False (and nothing done) where the CPU has no such mode


def tune_cuda_runtime(device: torch.device, cudnn_benchmark: bool) -> None:
    """On a CUDA device, cfg.CUDNN_BENCHMARK: let cuDNN time its convolution algorithms for each new input shape
    (worth it when the shapes repeat; the first minibatch of each shape is slower). Nothing on other devices."""
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
