"""Process-wide settings of the CPU runtime that the command-line tools make before any network runs."""
from __future__ import annotations

import os

import torch

#: oneDNN primitives (JIT-compiled convolution kernels) kept for reuse; oneDNN's default is 1024.
ONEDNN_PRIMITIVE_CACHE = 16384


def tune_cpu_runtime() -> None:
    """Let oneDNN keep more compiled convolutions than its default 1024, unless the user set
    ONEDNN_PRIMITIVE_CACHE_CAPACITY, and flush denormal floats to zero on the CPU.

    oneDNN compiles a convolution (forward, backward-data, backward-weights) for every input size it meets and keeps
    the last 1024. A training run of TINY meets a few dozen padded image sizes (cfg.SIZE_DIVISIBILITY 32) times
    ~50 primitives, so with the default each minibatch recompiled most of them: a training minibatch took ~145 ms
    instead of ~100 ms (one thread, bf16), for ~90 MB more memory. Must run before the first convolution; spawned
    processes inherit it.

    Denormals (|x| < 1.2e-38): weights that get no gradient but weight decay shrink geometrically under Adam until
    they are denormal (TINY's snapshot after 4000 iterations: 4111 of them, most in the RPN's convolutions, the
    weights of anchors no object matches), and every multiply-add that meets one takes a microcode assist: the
    RPN stage of a TINY minibatch took ~45 ms instead of ~4.5 ms (forward + backward 160-200 ms instead of
    125-155 ms, one thread, the same minibatch). Flushing them (x86's FTZ/DAZ, what GPUs' fast paths do) changes
    results only below 1.2e-38. It is a setting of the calling thread: threads and forked processes started
    afterwards inherit it, spawned processes must call this again."""
    os.environ.setdefault('ONEDNN_PRIMITIVE_CACHE_CAPACITY', str(ONEDNN_PRIMITIVE_CACHE))
    torch.set_flush_denormal(True)  # False (and nothing done) where the CPU has no such mode
