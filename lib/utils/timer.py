"""A tic/toc timer that keeps the running average."""
import time


class Timer:
    """Wall-clock timer: ``tic()``, then ``toc()`` returns the average (or the last, average=False) in seconds."""

    def __init__(self) -> None:
        self.total_time = 0.
        self.calls = 0
        self.start_time = 0.
        self.diff = 0.
        self.average_time = 0.

    def tic(self) -> None:
        self.start_time = time.perf_counter()

    def toc(self, average: bool = True) -> float:
        self.diff = time.perf_counter() - self.start_time
        self.total_time += self.diff
        self.calls += 1
        self.average_time = self.total_time / self.calls
        return self.average_time if average else self.diff


def median_seconds(fn, repeat: int = 5, cuda: bool = True) -> float:
    """Median wall seconds of ``repeat`` calls of fn() after one warm-up call; with ``cuda``, the GPU's queued work
    is waited for around each call (torch.cuda.synchronize)."""
    import torch
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]
