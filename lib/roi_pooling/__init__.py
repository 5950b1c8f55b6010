"""RoI max pooling with caffe-fast-rcnn's semantics, as a differentiable torch op.

Semantics (the original ROIPoolingLayer): RoI corners are scaled by spatial_scale and rounded with C round() (half
away from zero); sizes are end - start + 1, at least 1; bin (i, j) covers rows floor(i * bin_h) .. ceil((i + 1) *
bin_h) (exclusive) offset by the RoI start and clipped to the map (columns likewise); an empty bin gives 0; the first
maximum wins; the gradient flows to that maximum only (none to the RoIs).

Back-ends: our C++/CUDA op (lib/roi_pooling/csrc, built by setup.py) is 'native'. Without it (not built, or built
without CUDA and used on a GPU) torchvision.ops.roi_pool, which implements the same algorithm, is used instead and
one warning says why. On a GPU, at first use, ours and torchvision's are also timed (forward + backward, VGG16's
sizes) and torchvision's runs from then on if it is faster and gives the same output there (one printed line says
which and why); backend(device) tells which one runs.

    pool = RoIPool(7, 7, 1.0 / 16)
    out = pool(features, rois)   # features (N, C, H, W), rois (R, 5) [batch, x1, y1, x2, y2] -> (R, C, 7, 7)

RoIAlign (``RoIAlign`` / ``roi_align``, opt-in with ``POOLING_MODE: align``) has torchvision.ops.roi_align's
semantics; on the CPU our kernels run it (torchvision's CPU forward + backward is ~6x slower), on a GPU and
without the native build torchvision's does.
"""
from typing import Dict, Optional, Union
import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from utils.timer import median_seconds

__all__ = ['RoIPool', 'roi_pool', 'RoIAlign', 'roi_align', 'backend']

try:
    from roi_pooling import _C  # type: ignore[attr-defined]
    _IMPORT_ERROR: Optional[str] = None
except ImportError as e:  # not built: fall back to torchvision
    _C = None
    _IMPORT_ERROR = str(e)

_warned = set()
_cuda_choice: Dict[str, str] = {}  # per GPU, after its first use: 'native' or 'torchvision'


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _fallback_reason(device: torch.device) -> Optional[str]:
    """Why the native op cannot run on `device`, or None when it can."""
    if _C is None:
        return ('roi_pooling: the native extension roi_pooling._C is not built (%s); using torchvision.ops.roi_pool. '
                'Build it with `make setup` (or `.venv/bin/python setup.py build_ext --inplace`).' % _IMPORT_ERROR)
    if device.type == 'cuda' and not _C.has_cuda():
        return ('roi_pooling: roi_pooling._C was built without CUDA kernels; using torchvision.ops.roi_pool on %s. '
                'Rebuild with `WITH_CUDA=1 make setup`.' % device)
    if device.type not in ('cpu', 'cuda'):
        return 'roi_pooling: no native kernel for device type %s; using torchvision.ops.roi_pool.' % device.type
    return None


def backend(device: Union[str, torch.device] = 'cpu') -> str:
    """'native' when our op runs for tensors on `device`, 'torchvision' when torchvision's does (the fallback, or
    on a GPU where it was found faster at first use)."""
    device = torch.device(device)
    if _fallback_reason(device) is not None:
        return 'torchvision'
    return _cuda_choice.get(_key(device), 'native') if device.type == 'cuda' else 'native'


def _key(device: torch.device) -> str:
    """'cuda:N' of a CUDA device ('cuda' alone: the current one)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return 'cuda:%d' % index


def _rebuild_hint(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return 'TORCH_CUDA_ARCH_LIST="%d.%d" WITH_CUDA=1 make setup' % (major, minor)


def _forward(features: torch.Tensor, rois: torch.Tensor, ph: int, pw: int, scale: float):
    """The native forward: (output (R, C, ph, pw), argmax (R, C, ph, pw) int32); raises on a CUDA failure."""
    output, argmax, err = _C.forward(features, rois, int(ph), int(pw), float(scale))
    if err:
        raise RuntimeError(err + '. Rebuild for this GPU: ' + _rebuild_hint(features.device))
    return output, argmax


class _RoIPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, rois: torch.Tensor, pooled_height: int, pooled_width: int,
                spatial_scale: float) -> torch.Tensor:
        output, argmax = _forward(features, rois, pooled_height, pooled_width, spatial_scale)
        ctx.save_for_backward(rois, argmax)
        ctx.feature_shape = tuple(features.shape)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        rois, argmax = ctx.saved_tensors
        n, c, h, w = ctx.feature_shape
        grad_features, err = _C.backward(grad_output, rois, argmax, n, c, h, w)
        if err:
            raise RuntimeError(err + '. Rebuild for this GPU: ' + _rebuild_hint(grad_output.device))
        return grad_features, None, None, None, None


def _check_args(features: torch.Tensor, rois: torch.Tensor) -> None:
    if features.dim() != 4:
        raise ValueError('roi_pooling: features must be (N, C, H, W), got shape %s' % (tuple(features.shape),))
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError('roi_pooling: rois must be (R, 5) [batch, x1, y1, x2, y2], got shape %s'
                         % (tuple(rois.shape),))
    if features.device != rois.device:
        raise ValueError('roi_pooling: features are on %s but rois on %s' % (features.device, rois.device))
    if rois.shape[0] == 0:
        return
    batch = rois[:, 0]
    n = features.shape[0]
    if rois.device.type == 'cpu':
        lo, hi = float(batch.min()), float(batch.max())
        if not (lo >= 0 and hi < n):
            raise ValueError('roi_pooling: RoI batch indices must lie in [0, %d), got [%g, %g]' % (n, lo, hi))
    else:  # no host sync on the GPU: a device-side assert (the kernels skip such RoIs)
        torch._assert_async(((batch >= 0) & (batch < n)).all(), 'roi_pooling: RoI batch indices must lie in [0, N)')


def faster_backend(native_s: float, torchvision_s: float, same_output: bool) -> str:
    """The RoI pooling to run on a GPU: torchvision's only when it gives the same output and is faster."""
    return 'torchvision' if same_output and torchvision_s < native_s else 'native'


def _pick_cuda_backend(device: torch.device) -> str:
    """Time ours and torchvision's forward + backward at VGG16's sizes (1x512x38x50, 300 RoIs, 7x7, 1/16) on
    ``device``; say which runs from now on and why."""
    with torch.enable_grad(), torch.autocast('cuda', enabled=False):  # the first use may come under no_grad
        return _time_both(device)


def _time_both(device: torch.device) -> str:
    from torchvision.ops import roi_pool as tv_roi_pool
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(1, 512, 38, 50, generator=g).to(device).requires_grad_()
    xy = torch.rand(300, 4, generator=g) * torch.tensor([800.0, 600.0, 800.0, 600.0])
    rois = torch.cat([torch.zeros(300, 1), torch.minimum(xy[:, :2], xy[:, 2:]), torch.maximum(xy[:, :2], xy[:, 2:])],
                     1).to(device)
    grad = torch.randn(300, 512, 7, 7, generator=g).to(device)

    def ours():
        feats.grad = None
        _RoIPoolFunction.apply(feats, rois, 7, 7, 1.0 / 16).backward(grad)

    def theirs():
        feats.grad = None
        tv_roi_pool(feats, rois, (7, 7), 1.0 / 16).backward(grad)

    with torch.no_grad():
        same = torch.equal(_RoIPoolFunction.apply(feats, rois, 7, 7, 1.0 / 16), tv_roi_pool(feats, rois, (7, 7),
                                                                                             1.0 / 16))
    t_ours, t_tv = median_seconds(ours), median_seconds(theirs)
    choice = faster_backend(t_ours, t_tv, same)
    print('roi_pooling on %s: forward + backward (300 RoIs, 512x38x50) ours %.3f ms, torchvision\'s %.3f ms, same '
          'output: %s; using %s' % (torch.cuda.get_device_name(device), t_ours * 1e3, t_tv * 1e3, same,
                                    'ours' if choice == 'native' else "torchvision's"), flush=True)
    return choice


def _self_check_cuda(device: torch.device) -> None:
    """Once per GPU: the CUDA kernels must agree with the CPU ones, else refuse (wrong-arch builds); then the faster
    of ours and torchvision's is picked (_pick_cuda_backend)."""
    key = _key(device)
    if key in _cuda_choice:
        return
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 12, 17, generator=g)
    xy = torch.rand(40, 4, generator=g) * torch.tensor([17 * 8.0, 12 * 8.0, 17 * 8.0, 12 * 8.0])
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), torch.minimum(xy[:, :2], xy[:, 2:]),
                      torch.maximum(xy[:, :2], xy[:, 2:])], 1)
    ref, ref_arg = _forward(feats, rois, 3, 4, 0.125)
    out, arg = _forward(feats.to(device), rois.to(device), 3, 4, 0.125)  # raises if the kernels cannot run here
    if not (torch.equal(out.cpu(), ref) and torch.equal(arg.cpu(), ref_arg)):
        raise RuntimeError('roi_pooling: the CUDA kernels disagree with the CPU ones on %s (compiled for %s); '
                           'refusing to run. Rebuild for this GPU: %s'
                           % (torch.cuda.get_device_name(device), _C.cuda_archs, _rebuild_hint(device)))
    _cuda_choice[key] = _pick_cuda_backend(device)


def roi_pool(features: torch.Tensor, rois: torch.Tensor, pooled_height: int, pooled_width: int,
             spatial_scale: float) -> torch.Tensor:
    """Caffe RoI max pooling.

    features: (N, C, H, W) float; rois: (R, 5) [batch index, x1, y1, x2, y2] in image pixels (inclusive);
    spatial_scale: feature-map cells per image pixel (1/16 for VGG16). Returns (R, C, pooled_height, pooled_width).
    float16/bfloat16 features are pooled in float32 and cast back.
    """
    _check_args(features, rois)
    out_dtype = features.dtype
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()
    rois = rois.to(features.dtype)
    reason = _fallback_reason(features.device)
    if reason is not None:
        _warn_once(reason, reason)
    elif features.device.type == 'cuda':
        _self_check_cuda(features.device)
    if backend(features.device) == 'torchvision':
        from torchvision.ops import roi_pool as tv_roi_pool
        out = tv_roi_pool(features, rois, (int(pooled_height), int(pooled_width)), float(spatial_scale))
    else:
        out = _RoIPoolFunction.apply(features, rois, int(pooled_height), int(pooled_width), float(spatial_scale))
    return out.to(out_dtype)


class RoIPool(nn.Module):
    """RoI max pooling layer (caffe-fast-rcnn ROIPooling). forward(features (N,C,H,W), rois (R,5)) -> (R,C,ph,pw)."""

    def __init__(self, pooled_height: int, pooled_width: int, spatial_scale: float):
        super().__init__()
        self.pooled_height = int(pooled_height)
        self.pooled_width = int(pooled_width)
        self.spatial_scale = float(spatial_scale)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_pool(features, rois, self.pooled_height, self.pooled_width, self.spatial_scale)

    def extra_repr(self) -> str:
        return 'pooled_height=%d, pooled_width=%d, spatial_scale=%g' % (
            self.pooled_height, self.pooled_width, self.spatial_scale)


class _RoIAlignFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, rois: torch.Tensor, pooled_height: int, pooled_width: int,
                spatial_scale: float, sampling_ratio: int, aligned: bool) -> torch.Tensor:
        ctx.save_for_backward(rois)
        ctx.args = (tuple(features.shape), spatial_scale, sampling_ratio, aligned)
        return _C.align_forward(features, rois, pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        rois, = ctx.saved_tensors
        (n, _, h, w), spatial_scale, sampling_ratio, aligned = ctx.args
        grad = _C.align_backward(grad_output, rois, n, h, w, spatial_scale, sampling_ratio, aligned)
        return grad, None, None, None, None, None, None


def roi_align(features: torch.Tensor, rois: torch.Tensor, pooled_height: int, pooled_width: int,
              spatial_scale: float, sampling_ratio: int = 2, aligned: bool = False) -> torch.Tensor:
    """RoIAlign with torchvision.ops.roi_align's semantics.

    features: (N, C, H, W) float; rois: (R, 5) [batch index, x1, y1, x2, y2] in image pixels; sampling_ratio:
    points per bin side (<= 0: ceil(RoI size / bins)); aligned: shift by half a cell (Detectron2's choice; False is
    Mask R-CNN's original). Returns (R, C, pooled_height, pooled_width).
    """
    _check_args(features, rois)
    if _C is None or features.device.type != 'cpu' or not hasattr(_C, 'align_forward'):
        from torchvision.ops import roi_align as tv_roi_align
        return tv_roi_align(features, rois.to(features.dtype), (int(pooled_height), int(pooled_width)),
                            float(spatial_scale), int(sampling_ratio), bool(aligned))
    out_dtype = features.dtype
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()
    out = _RoIAlignFunction.apply(features, rois.to(features.dtype), int(pooled_height), int(pooled_width),
                                  float(spatial_scale), int(sampling_ratio), bool(aligned))
    return out.to(out_dtype)


class RoIAlign(nn.Module):
    """RoIAlign layer. forward(features (N, C, H, W), rois (R, 5)) -> (R, C, ph, pw)."""

    def __init__(self, pooled_height: int, pooled_width: int, spatial_scale: float, sampling_ratio: int = 2,
                 aligned: bool = False):
        super().__init__()
        self.pooled_height = int(pooled_height)
        self.pooled_width = int(pooled_width)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_align(features, rois, self.pooled_height, self.pooled_width, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return 'pooled_height=%d, pooled_width=%d, spatial_scale=%g, sampling_ratio=%d, aligned=%s' % (
            self.pooled_height, self.pooled_width, self.spatial_scale, self.sampling_ratio, self.aligned)
