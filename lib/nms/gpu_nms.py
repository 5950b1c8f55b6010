"""CUDA NMS: the original's 64-box bitmask kernel (lib/nms/csrc), as a torch extension op.

gpu_nms(dets, thresh) keeps exactly what py_cpu_nms keeps (same float arithmetic, IoU > thresh suppresses), for
boxes already on a GPU. On first use per GPU it runs a self-check against the CPU NMS and refuses to run if they
differ (a build for the wrong CUDA architecture can otherwise silently drop the wrong boxes).
"""
from typing import Dict, Optional

import numpy as np
import torch

from rpn.device_ops import descending_order

try:
    from nms import _gpu_nms as _ext  # type: ignore[attr-defined]
    IMPORT_ERROR: Optional[str] = None
except ImportError as e:
    _ext = None
    IMPORT_ERROR = str(e)

_checked: Dict[str, bool] = {}


def available() -> bool:
    """True when the CUDA extension is built and a GPU is visible."""
    return _ext is not None and torch.cuda.is_available()


def unavailable_reason() -> str:
    if _ext is None:
        return 'the CUDA NMS extension nms._gpu_nms is not built (%s); build it with `WITH_CUDA=1 make setup`' \
            % IMPORT_ERROR
    if not torch.cuda.is_available():
        return 'no GPU is visible'
    return ''


def _compare_in_f64(dtype: torch.dtype, thresh) -> bool:
    """numpy's rule (NEP 50): a Python float thresh is compared in the dets' dtype, a numpy float64 in float64."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    return np.result_type(np_dtype, thresh) == np.float64


def _raw(dets: torch.Tensor, thresh) -> torch.Tensor:
    if dets.dtype not in (torch.float32, torch.float64):
        dets = dets.float()
    dets = dets.contiguous()
    order = descending_order(dets[:, 4])  # py_cpu_nms's order, ties included
    keep, err = _ext.nms_cuda(dets, order, float(thresh), _compare_in_f64(dets.dtype, thresh))
    if err:
        raise RuntimeError(err)
    return keep


def _rebuild_hint(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return ('Rebuild the CUDA ops for this GPU: TORCH_CUDA_ARCH_LIST="%d.%d" WITH_CUDA=1 make setup '
            '(built for: %s)' % (major, minor, getattr(_ext, 'cuda_archs', '?')))


def self_check(device: torch.device) -> None:
    """Compare GPU and CPU NMS on seeded random boxes (ties at the threshold included); raise if they differ."""
    from nms.cpu_nms import cpu_nms

    rng = np.random.RandomState(1234)
    xy = rng.uniform(0, 400, size=(600, 2))
    wh = rng.uniform(8, 120, size=(600, 2))
    dets = np.hstack([xy, xy + wh, rng.permutation(600)[:, None] / 600.0]).astype(np.float32)
    dets[:40, :4] = np.round(dets[:40, :4])  # integer boxes: exact IoU ties occur
    name = torch.cuda.get_device_name(device)
    for thresh in (0.3, 0.5, 0.7):
        try:
            got = _raw(torch.from_numpy(dets).to(device), thresh).cpu().numpy()
        except RuntimeError as e:
            raise RuntimeError('gpu_nms: the CUDA kernel does not run on %s (%s). %s'
                               % (name, e, _rebuild_hint(device))) from e
        want = cpu_nms(dets, thresh)
        if not np.array_equal(got, want):
            raise RuntimeError('gpu_nms: GPU NMS disagrees with CPU NMS on %s (thresh %.1f: %d vs %d boxes kept); '
                               'refusing to run. %s' % (name, thresh, len(got), len(want), _rebuild_hint(device)))


def gpu_nms(dets: torch.Tensor, thresh: float) -> torch.Tensor:
    """dets: (N, 5) [x1, y1, x2, y2, score] CUDA tensor; returns (K,) int64 kept row indices on the same device,
    best score first."""
    if _ext is None:
        raise RuntimeError('gpu_nms: ' + unavailable_reason())
    if not isinstance(dets, torch.Tensor) or not dets.is_cuda:
        raise ValueError('nms/gpu_nms.py: dets must be a CUDA tensor')
    if dets.dim() != 2 or dets.shape[1] < 5:
        raise ValueError('nms/gpu_nms.py: dets must be (N, 5), got shape %s' % (tuple(dets.shape),))
    key = str(dets.device)
    if not _checked.get(key):
        self_check(dets.device)
        _checked[key] = True
    if dets.shape[0] == 0:
        return torch.zeros((0,), dtype=torch.int64, device=dets.device)
    return _raw(dets.detach(), thresh)
