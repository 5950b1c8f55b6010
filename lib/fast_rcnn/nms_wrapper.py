"""Dispatch NMS to the best back-end for the input; every back-end keeps exactly what py_cpu_nms keeps.

numpy dets: the CUDA NMS when cfg.USE_GPU_NMS, a GPU is visible and the extension is built (on cfg.GPU_ID), else
the C++ CPU NMS (cfg: the model's, which load_detector sets from its device; None: config.py's defaults). Torch dets: decided by their device (CUDA NMS for CUDA tensors, CPU NMS for CPU tensors).
force_cpu=True always takes the CPU NMS. A missing extension falls back to a slower exact one with one warning.
"""
import warnings
from typing import Union

import numpy as np
import torch

from fast_rcnn.config import given_or_default
from nms import gpu_nms as _gpu
from nms.py_cpu_nms import py_cpu_nms

try:
    from nms.cpu_nms import cpu_nms as _cpu_nms
    _CPU_ERROR = ''
except ImportError as e:  # not built: the numpy reference is exact, only slower
    _cpu_nms = None
    _CPU_ERROR = str(e)

_warned = set()

Dets = Union[np.ndarray, torch.Tensor]


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _cpu(dets: np.ndarray, thresh: float, max_keep: int) -> np.ndarray:
    if _cpu_nms is not None:
        return _cpu_nms(dets, thresh, max_keep)
    _warn_once('nms_wrapper: the C++ CPU NMS (nms.cpu_nms) is not built (%s); using the slow numpy py_cpu_nms. '
               'Build it with `make setup`.' % _CPU_ERROR)
    return _first(py_cpu_nms(dets, thresh), max_keep)


def _first(keep: Dets, max_keep: int) -> Dets:
    return keep[:max_keep] if max_keep > 0 else keep


def nms(dets: Dets, thresh: float, force_cpu: bool = False, cfg=None, max_keep: int = 0) -> Dets:
    """Greedy NMS. dets: (N, 5) [x1, y1, x2, y2, score], numpy or torch; thresh: IoU above which the lower-scored
    box is dropped; max_keep > 0: only the first max_keep kept (what slicing the full result gives; the CPU NMS
    stops there, which is what makes RPN_PRE_NMS_TOP_N -1 affordable). Returns (K,) int64 kept row indices in
    descending score order: numpy for numpy input, a tensor on dets' device for torch input."""
    if isinstance(dets, torch.Tensor):
        if dets.dim() != 2 or dets.shape[1] < 5:
            raise ValueError('fast_rcnn/nms_wrapper.py: dets must be (N, 5), got shape %s' % (tuple(dets.shape),))
        if dets.is_cuda and not force_cpu:
            if _gpu.available():
                return _first(_gpu.gpu_nms(dets, thresh), max_keep)
            _warn_once('nms_wrapper: CUDA tensors but %s; running NMS on the CPU instead.' % _gpu.unavailable_reason())
        keep = _cpu(dets.detach().cpu().numpy(), thresh, max_keep)
        return torch.from_numpy(keep).to(dets.device)

    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError('fast_rcnn/nms_wrapper.py: dets must be (N, 5), got shape %s' % (dets.shape,))
    if dets.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    if not force_cpu:
        cfg = given_or_default(cfg)
        if cfg.USE_GPU_NMS and torch.cuda.is_available():
            if _gpu.available():
                device = torch.device('cuda', int(cfg.GPU_ID))
                keep = _gpu.gpu_nms(torch.from_numpy(np.ascontiguousarray(dets)).to(device), thresh)
                return _first(keep, max_keep).cpu().numpy()
            _warn_once('nms_wrapper: cfg.USE_GPU_NMS is set but %s; using the CPU NMS.' % _gpu.unavailable_reason())
    return _cpu(dets, thresh, max_keep)
