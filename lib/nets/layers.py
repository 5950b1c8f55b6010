"""Caffe layers that PyTorch lacks or defines differently.

- ``CaffeLRN``: Caffe's LRN, ACROSS_CHANNELS (VGG_CNN_M) or WITHIN_CHANNEL (ZF).
- ``CaffeDropout``: Caffe dropout, optionally with caffe-fast-rcnn's ``scale_train: false`` (ZF): no scaling while
  training, outputs multiplied by (1 - p) at test time.
- ``caffe_max_pool``: max pooling with Caffe's shape rule (ceil mode, last window must start inside the padded input),
  which is PyTorch's ``ceil_mode=True`` rule.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


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
