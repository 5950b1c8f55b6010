"""Process-wide settings of the CPU runtime that the command-line tools make before any network runs."""
from __future__ import annotations

import os

#: oneDNN primitives (JIT-compiled convolution kernels) kept for reuse; oneDNN's default is 1024.
ONEDNN_PRIMITIVE_CACHE = 16384


def tune_cpu_runtime() -> None:
    """Let oneDNN keep more compiled convolutions than its default 1024, unless the user set
    ONEDNN_PRIMITIVE_CACHE_CAPACITY.

    oneDNN compiles a convolution (forward, backward-data, backward-weights) for every input size it meets and keeps
    the last 1024. A training run of TINY meets a few dozen padded image sizes (cfg.SIZE_DIVISIBILITY 32) times
    ~50 primitives, so with the default each minibatch recompiled most of them: a training minibatch took ~145 ms
    instead of ~100 ms (one thread, bf16), for ~90 MB more memory. Must run before the first convolution; spawned
    processes inherit it."""
    os.environ.setdefault('ONEDNN_PRIMITIVE_CACHE_CAPACITY', str(ONEDNN_PRIMITIVE_CACHE))
