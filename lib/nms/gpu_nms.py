"""CUDA NMS: the original's 64-box bitmask kernel (lib/nms/csrc), as a torch extension op.

gpu_nms(dets, thresh) keeps exactly what py_cpu_nms keeps (same float arithmetic, IoU > thresh suppresses), for
boxes already on a GPU. On first use per GPU it runs a self-check against the CPU NMS and refuses to run if they
differ (a build for the wrong CUDA architecture can otherwise silently drop the wrong boxes). Then it times ours and
torchvision.ops.nms (given the boxes in our score order with strictly decreasing stand-in scores, and x2, y2 + 1
for its IoU without "+1") on 12000 proposal-like boxes; torchvision's runs from then on if it is faster and keeps
the same boxes on the check's inputs. One printed line says which and why.
"""
from typing import Dict, Optional

import numpy as np
import torch

from rpn.device_ops import descending_order
from utils.timer import median_seconds

try:
    from nms import _gpu_nms as _ext  # type: ignore[attr-defined]
    IMPORT_ERROR: Optional[str] = None
except ImportError as e:
    _ext = None
    IMPORT_ERROR = str(e)

_choice: Dict[str, str] = {}  # per GPU, after its first use: 'native' or 'torchvision'


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


def torchvision_keep(dets: torch.Tensor, thresh) -> torch.Tensor:
    """What _raw keeps, computed by torchvision.ops.nms (any device): the boxes go in our score order (numpy's,
    ties included) with scores n, n-1, ..., 1, so its sort cannot reorder them; x2 and y2 + 1 make its IoU ours."""
    import torchvision
    if dets.dtype not in (torch.float32, torch.float64):
        dets = dets.float()
    order = descending_order(dets[:, 4])
    boxes = dets.index_select(0, order)[:, :4].clone()
    boxes[:, 2:] += 1
    stand_in = torch.arange(boxes.shape[0], 0, -1, device=boxes.device, dtype=boxes.dtype)
    # torchvision compares its IoU with a double: a thresh that numpy compares in float32 goes in as that float32
    limit = float(thresh) if _compare_in_f64(dets.dtype, thresh) else float(np.float32(thresh))
    return order[torchvision.ops.nms(boxes, stand_in, limit)]


def _proposal_like(n: int, seed: int) -> np.ndarray:
    """(n, 5) float32 boxes in an 800x600 image, 16-300 px, uniform scores."""
    rng = np.random.RandomState(seed)
    xy = rng.uniform(0, [800, 600], size=(n, 2))
    wh = rng.uniform(16, 300, size=(n, 2))
    return np.hstack([xy, np.minimum(xy + wh, [799, 599]), rng.uniform(size=(n, 1))]).astype(np.float32)


def _pick(device: torch.device, check_sets) -> str:
    """'torchvision' when torchvision's NMS keeps what ours keeps on ``check_sets`` ((dets, thresh) pairs) and on
    12000 proposal-like boxes at IoU 0.7, and is faster there; else 'native'. Says which in one line."""
    name = torch.cuda.get_device_name(device)
    try:
        dets = torch.from_numpy(_proposal_like(12000, 7)).to(device)
        same = all(torch.equal(torchvision_keep(d, t), _raw(d, t)) for d, t in list(check_sets) + [(dets, 0.7)])
        t_ours = median_seconds(lambda: _raw(dets, 0.7))
        t_tv = median_seconds(lambda: torchvision_keep(dets, 0.7))
    except Exception as e:  # noqa: BLE001 - torchvision's NMS is only ever an alternative
        print('gpu_nms on %s: torchvision\'s NMS could not be compared (%s); using ours' % (name, e), flush=True)
        return 'native'
    choice = 'torchvision' if same and t_tv < t_ours else 'native'
    print('gpu_nms on %s: 12000 boxes at IoU 0.7: ours %.3f ms, torchvision\'s %.3f ms, same boxes kept: %s; using %s'
          % (name, t_ours * 1e3, t_tv * 1e3, same, 'ours' if choice == 'native' else "torchvision's"), flush=True)
    return choice


def _rebuild_hint(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return ('Rebuild the CUDA ops for this GPU: TORCH_CUDA_ARCH_LIST="%d.%d" WITH_CUDA=1 make setup '
            '(built for: %s)' % (major, minor, getattr(_ext, 'cuda_archs', '?')))


CHECK_THRESHOLDS = (0.3, 0.5, 0.7)


def _check_boxes() -> np.ndarray:
    """600 seeded random (x1, y1, x2, y2, score) float32 rows, 40 of them integer boxes (exact IoU ties occur)."""
    rng = np.random.RandomState(1234)
    xy = rng.uniform(0, 400, size=(600, 2))
    wh = rng.uniform(8, 120, size=(600, 2))
    dets = np.hstack([xy, xy + wh, rng.permutation(600)[:, None] / 600.0]).astype(np.float32)
    dets[:40, :4] = np.round(dets[:40, :4])
    return dets


def self_check(device: torch.device) -> None:
    """Compare GPU and CPU NMS on seeded random boxes (ties at the threshold included); raise if they differ."""
    from nms.cpu_nms import cpu_nms

    dets = _check_boxes()
    name = torch.cuda.get_device_name(device)
    for thresh in CHECK_THRESHOLDS:
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
    index = dets.device.index if dets.device.index is not None else torch.cuda.current_device()
    key = 'cuda:%d' % index
    if key not in _choice:
        self_check(dets.device)
        check = torch.from_numpy(_check_boxes()).to(dets.device)
        _choice[key] = _pick(dets.device, [(check, t) for t in CHECK_THRESHOLDS])
    if dets.shape[0] == 0:
        return torch.zeros((0,), dtype=torch.int64, device=dets.device)
    if _choice[key] == 'torchvision':
        return torchvision_keep(dets.detach(), thresh)
    return _raw(dets.detach(), thresh)
