"""Caffe layers that PyTorch lacks or defines differently.

- ``CaffeLRN``: Caffe's LRN, ACROSS_CHANNELS (VGG_CNN_M) or WITHIN_CHANNEL (ZF).
- ``CaffeDropout``: Caffe dropout, optionally with caffe-fast-rcnn's ``scale_train: false`` (ZF): no scaling while
  training, outputs multiplied by (1 - p) at test time.
- ``GroupNormReLU``: ``relu(group_norm(x))`` in one op on the CPU (lib/nets/csrc, the extension ``nets._C``), with
  ``nn.GroupNorm``'s parameters; elsewhere, or without the build, PyTorch's group_norm and relu.
- ``caffe_max_pool``: max pooling with Caffe's shape rule (ceil mode, last window must start inside the padded input),
  which is PyTorch's ``ceil_mode=True`` rule.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

try:
    from nets import _C  # type: ignore[attr-defined]
    _IMPORT_ERROR: Optional[str] = None
except ImportError as e:  # not built: PyTorch's ops instead
    _C = None
    _IMPORT_ERROR = str(e)
_warned_fallback = False


class CaffeLRN(nn.Module):
    """Caffe's LRN layer on (N, C, H, W) float tensors.

    ACROSS_CHANNELS: ``x / (k + alpha/n * sum_{c' in window} x_{c'}^2) ** beta`` (n = local_size).
    WITHIN_CHANNEL: ``x / (1 + alpha * avg_{n x n window, zero padded, count includes padding} x^2) ** beta``;
    Caffe builds it from a power / average-pooling / power chain whose shift is 1 (``k`` is not used).
    """

    def __init__(self, local_size: int, alpha: float, beta: float, k: float = 1.0,
                 within_channel: bool = False) -> None:
        super().__init__()
        if local_size % 2 != 1:
            raise ValueError('CaffeLRN: local_size must be odd, got {}'.format(local_size))
        self.local_size = local_size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.within_channel = within_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.within_channel:
            return F.local_response_norm(x, self.local_size, alpha=self.alpha, beta=self.beta, k=self.k)
        pad = (self.local_size - 1) // 2
        avg = F.avg_pool2d(x * x, self.local_size, stride=1, padding=pad, count_include_pad=True)
        return x * (1.0 + self.alpha * avg).pow(-self.beta)

    def extra_repr(self) -> str:
        return 'local_size={}, alpha={}, beta={}, k={}, within_channel={}'.format(
            self.local_size, self.alpha, self.beta, self.k, self.within_channel)


class CaffeDropout(nn.Module):
    """Dropout with ratio ``p``. ``scale_train=True`` is the usual inverted dropout (Caffe's default);
    ``scale_train=False`` (ZF in caffe-fast-rcnn) keeps training outputs unscaled and multiplies test outputs by
    ``1 - p``, so the expected activation is the same in both phases."""

    def __init__(self, p: float = 0.5, scale_train: bool = True) -> None:
        super().__init__()
        self.p = p
        self.scale_train = scale_train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_train:
            return F.dropout(x, self.p, self.training)
        if self.training:
            keep = torch.empty_like(x).bernoulli_(1.0 - self.p)
            return x * keep
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return 'p={}, scale_train={}'.format(self.p, self.scale_train)


class _GroupNormReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int,
                eps: float) -> torch.Tensor:
        y, mean, rstd = _C.group_norm_relu_forward(x, weight, bias, groups, eps)
        ctx.save_for_backward(x, mean, rstd, weight, bias)
        ctx.groups = groups
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, mean, rstd, weight, bias = ctx.saved_tensors
        dx, dw, db = _C.group_norm_relu_backward(grad_y, x, mean, rstd, weight, bias, ctx.groups)
        return dx, dw, db, None, None


def native_group_norm_relu() -> bool:
    """Whether GroupNormReLU runs the fused CPU op (the extension nets._C is built)."""
    return _C is not None


class GroupNormReLU(nn.GroupNorm):
    """``relu(group_norm(x))``: (N, C, H, W) -> the same shape, dtype and memory format.

    On the CPU the fused op of lib/nets/csrc/group_norm_relu.cpp runs it (the map in float32, its per-channel sums
    added up in double; a bfloat16 input, as bf16 autocast's convolutions emit, gives a bfloat16 output; the same
    bits with any number of threads). On other devices, or when the
    extension is not built (one warning says so), PyTorch's group_norm (in float32 on the CPU) and relu. Parameters
    and state-dict keys are nn.GroupNorm's (``weight``, ``bias``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == 'cpu' and _C is not None and self.affine and x.dtype != torch.float16:
            return _GroupNormReLUFunction.apply(x, self.weight, self.bias, self.num_groups, self.eps)
        if x.device.type == 'cpu':
            global _warned_fallback
            if _C is None and not _warned_fallback:
                _warned_fallback = True
                warnings.warn('nets: the extension nets._C is not built ({}); GroupNormReLU runs PyTorch\'s '
                              'group_norm and relu (slower). Build it with `make setup`.'.format(_IMPORT_ERROR),
                              RuntimeWarning, stacklevel=2)
            x = x.float()  # PyTorch's bfloat16 group_norm is slow on the CPU (float16: the fused op has none)
        return F.relu(F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps), inplace=True)


def caffe_max_pool(kernel: int, stride: int, pad: int = 0) -> nn.MaxPool2d:
    """Max pooling with Caffe's output size: ceil((H + 2 pad - k) / s) + 1, minus one if the last window would start
    in the padding (identical to PyTorch's ceil_mode rule)."""
    return nn.MaxPool2d(kernel, stride, pad, ceil_mode=True)


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe convolution output size (floor)."""
    return (size + 2 * pad - kernel) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe pooling output size (ceil, with the padded-last-window clip)."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out
