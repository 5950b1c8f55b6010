"""The convolutional bodies and fc heads of the original's networks, plus a small from-scratch CPU network.

Each network is a ``NetDef``: ``features`` (image -> conv map at stride 16; TINY 8), ``head`` (pooled RoI features
flattened -> fc7 features) and the facts the detector needs (channels, RoI pool size, RPN conv width, frozen
layers, input convention). Layer names follow the original's prototxts (``conv1_1``, ``fc6`` ...), so Caffe-converted
weights map by name.

Shapes (Caffe rules, ceil-mode pooling): for a 600-pixel side the conv map has 38 cells (VGG16), 39 (ZF),
36 (VGG_CNN_M_1024); see ../shared/oracle/feature_map_sizes.json.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import torch.nn as nn
import torch.nn.functional as F

from nets.layers import CaffeDropout, CaffeLRN, GroupNormReLU, caffe_max_pool


@dataclass
class NetDef:
    """A network's body and head with what the detector needs to know about them.

    features: (1, 3, H, W) -> (1, feat_channels, ~H/feat_stride, ~W/feat_stride)
    head: (R, feat_channels * pooled_size**2) -> (R, head_dim)
    """
    name: str
    features: nn.Module
    head: nn.Module
    feat_channels: int
    head_dim: int
    rpn_channels: int
    pooled_size: int
    frozen: List[str] = field(default_factory=list)   # parameter-name prefixes the original keeps at lr 0
    from_scratch: bool = False                        # designed to train without ImageNet weights
    feat_stride: int = 16
    init_std: Dict[str, float] = field(default_factory=dict)


def _conv_relu(layers: "OrderedDict[str, nn.Module]", name: str, cin: int, cout: int, k: int, s: int = 1,
               p: int = 0) -> None:
    layers[name] = nn.Conv2d(cin, cout, k, s, p)
    layers['relu' + name[4:]] = nn.ReLU(inplace=True)


def _fc_head(in_dim: int, fc6: int, fc7: int, scale_train: bool = True, dropout: float = 0.5) -> nn.Sequential:
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers['fc6'] = nn.Linear(in_dim, fc6)
    layers['relu6'] = nn.ReLU(inplace=True)
    if dropout > 0:
        layers['drop6'] = CaffeDropout(dropout, scale_train)
    layers['fc7'] = nn.Linear(fc6, fc7)
    layers['relu7'] = nn.ReLU(inplace=True)
    if dropout > 0:
        layers['drop7'] = CaffeDropout(dropout, scale_train)
    return nn.Sequential(layers)


def vgg16() -> NetDef:
    """VGG16: 13 3x3 convs (64x2, 128x2, 256x3, 512x3, 512x3), 2x2/2 ceil-mode max pools after blocks 1-4;
    RoI pool 7x7; fc6 4096, fc7 4096; RPN conv 512; conv1_1..conv2_2 frozen."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    cin = 3
    for block, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            _conv_relu(layers, 'conv{}_{}'.format(block, i), cin, width, 3, 1, 1)
            cin = width
        if block < 5:
            layers['pool{}'.format(block)] = caffe_max_pool(2, 2)
    frozen = ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2']
    return NetDef('VGG16', nn.Sequential(layers), _fc_head(512 * 7 * 7, 4096, 4096), 512, 4096, 512, 7,
                  frozen=frozen)


def zf() -> NetDef:
    """ZF: conv1 96 7x7/2 p3, LRN (3, 5e-5, .75, within channel), pool 3x3/2 p1; conv2 256 5x5/2 p2, LRN, pool;
    conv3 384, conv4 384, conv5 256 (3x3 p1). RoI pool 6x6, fc6/fc7 4096 with dropout that does not scale in
    training (scale_train: false). RPN conv 256. Nothing frozen."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    _conv_relu(layers, 'conv1', 3, 96, 7, 2, 3)
    layers['norm1'] = CaffeLRN(3, 5e-5, 0.75, within_channel=True)
    layers['pool1'] = caffe_max_pool(3, 2, 1)
    _conv_relu(layers, 'conv2', 96, 256, 5, 2, 2)
    layers['norm2'] = CaffeLRN(3, 5e-5, 0.75, within_channel=True)
    layers['pool2'] = caffe_max_pool(3, 2, 1)
    _conv_relu(layers, 'conv3', 256, 384, 3, 1, 1)
    _conv_relu(layers, 'conv4', 384, 384, 3, 1, 1)
    _conv_relu(layers, 'conv5', 384, 256, 3, 1, 1)
    return NetDef('ZF', nn.Sequential(layers), _fc_head(256 * 6 * 6, 4096, 4096, scale_train=False), 256, 4096,
                  256, 6)


def vgg_cnn_m_1024() -> NetDef:
    """VGG_CNN_M_1024: conv1 96 7x7/2, LRN (5, 5e-4, .75, k 2), pool 3x3/2; conv2 256 5x5/2 p1, LRN, pool;
    conv3-5 512 (3x3 p1). RoI pool 6x6, fc6 4096, fc7 1024. RPN conv 256. conv1 frozen."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    _conv_relu(layers, 'conv1', 3, 96, 7, 2, 0)
    layers['norm1'] = CaffeLRN(5, 5e-4, 0.75, k=2.0)
    layers['pool1'] = caffe_max_pool(3, 2)
    _conv_relu(layers, 'conv2', 96, 256, 5, 2, 1)
    layers['norm2'] = CaffeLRN(5, 5e-4, 0.75, k=2.0)
    layers['pool2'] = caffe_max_pool(3, 2)
    _conv_relu(layers, 'conv3', 256, 512, 3, 1, 1)
    _conv_relu(layers, 'conv4', 512, 512, 3, 1, 1)
    _conv_relu(layers, 'conv5', 512, 512, 3, 1, 1)
    return NetDef('VGG_CNN_M_1024', nn.Sequential(layers), _fc_head(512 * 6 * 6, 4096, 1024), 512, 1024, 256, 6,
                  frozen=['conv1'])


def _gn(c: int) -> GroupNormReLU:
    return GroupNormReLU(min(16, c // 4) if c >= 8 else 1, c)


class TinyFPN(nn.Module):
    """TINY's body: 3x3 conv (no bias) + GroupNorm + ReLU layers conv1..conv9 (the GN and ReLU of layer i are one
    GroupNormReLU, ``gn<i>``) down to stride 32, then a top-down path back to stride 8 (1x1 lateral convs
    lat32/lat16/lat8, nearest upsampling, sums) and one 3x3 conv + GN + ReLU (``smooth``), so that the stride-8 map
    also sees the stride-32 context.

    (1, 3, H, W) -> (1, out_channels, ceil(H/8), ceil(W/8)).
    """

    # (width, stride) of conv1..conv9; the maps after conv5, conv7 and conv9 are at strides 8, 16 and 32.
    LAYERS = ((16, 2), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 2), (128, 1))
    TAPS = (5, 7, 9)

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        cin = 3
        for i, (w, s) in enumerate(self.LAYERS, start=1):
            self.add_module('conv{}'.format(i), _conv3x3(cin, w, s))
            self.add_module('gn{}'.format(i), _gn(w))
            cin = w
        w8, w16, w32 = (self.LAYERS[t - 1][0] for t in self.TAPS)
        self.lat32 = nn.Conv2d(w32, out_channels, 1)
        self.lat16 = nn.Conv2d(w16, out_channels, 1)
        self.lat8 = nn.Conv2d(w8, out_channels, 1)
        self.smooth = _conv3x3(out_channels, out_channels, 1)
        self.gn_smooth = _gn(out_channels)

    def forward(self, x):
        taps = []
        for i in range(1, len(self.LAYERS) + 1):
            x = getattr(self, 'gn{}'.format(i))(getattr(self, 'conv{}'.format(i))(x))
            if i in self.TAPS:
                taps.append(x)
        c8, c16, c32 = taps
        p = self.lat16(c16) + F.interpolate(self.lat32(c32), size=c16.shape[-2:], mode='nearest')
        p = self.lat8(c8) + F.interpolate(p, size=c8.shape[-2:], mode='nearest')
        return self.gn_smooth(self.smooth(p))


def _conv3x3(cin: int, cout: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
    return conv


def _tiny_head(cin: int, pool: int, dim: int) -> nn.Sequential:
    """fc6/fc7 of ``dim`` units, each followed by LayerNorm and ReLU (no dropout); kaiming-uniform weights, zero
    biases. (R, cin * pool * pool) -> (R, dim)."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers['fc6'] = nn.Linear(cin * pool * pool, dim)
    layers['norm6'] = nn.LayerNorm(dim)
    layers['relu6'] = nn.ReLU(inplace=True)
    layers['fc7'] = nn.Linear(dim, dim)
    layers['norm7'] = nn.LayerNorm(dim)
    layers['relu7'] = nn.ReLU(inplace=True)
    head = nn.Sequential(layers)
    for m in (head.fc6, head.fc7):
        nn.init.kaiming_uniform_(m.weight, a=1)
        nn.init.zeros_(m.bias)
    return head


def tiny() -> NetDef:
    """TINY: a small stride-8 network for training from scratch on a CPU in minutes.

    ``TinyFPN``: nine narrow 3x3 conv + GroupNorm + ReLU layers (widths 16-32-32-64-64-128-128-128-128, stride 32
    at the end) and a top-down path to a 64-channel stride-8 map. GroupNorm (not BatchNorm) because a minibatch is
    one image; stride 8 because objects of 16-30 px are 1-2 cells of a stride-16 map, too coarse for the RoI head
    to tell their shapes apart; the top-down path gives that map the context of the large objects. RoI pool 7x7
    at 1/8 of 64 channels, fc6/fc7 256 without dropout (with so small a head dropout only slowed learning), each
    followed by LayerNorm, which normalises every RoI on its own and so works with one-image minibatches (it
    learns faster from scratch than the plain fc head: 0.867 vs 0.860 on shapes), RPN conv 64. Set
    ``FEAT_STRIDE: 8`` in its solver's cfg: block. Nothing frozen; kaiming initialisation. Each GroupNorm and the
    ReLU after it run as one op on the CPU (``GroupNormReLU``), also on the bfloat16 maps of ``AMP``.
    """
    return NetDef('TINY', TinyFPN(64), _tiny_head(64, 7, 256), 64, 256, 64, 7, from_scratch=True, feat_stride=8)


NETWORKS: Dict[str, Callable[[], NetDef]] = {
    'VGG16': vgg16,
    'ZF': zf,
    'VGG_CNN_M_1024': vgg_cnn_m_1024,
    'TINY': tiny,
}


def build_net(name: str, fc_dropout: bool = True) -> NetDef:
    """The NetDef for ``name`` (case-insensitive: VGG16, ZF, VGG_CNN_M_1024, TINY); ``fc_dropout=False`` leaves
    out the dropout after fc6/fc7 (the original's COCO prototxts)."""
    key = name.upper()
    if key not in NETWORKS:
        raise ValueError('unknown network {!r}; known: {}'.format(name, ', '.join(sorted(NETWORKS))))
    netdef = NETWORKS[key]()
    if not fc_dropout:
        for layer in ('drop6', 'drop7'):
            if layer in netdef.head._modules:
                delattr(netdef.head, layer)
    return netdef


def list_nets() -> Tuple[str, ...]:
    return tuple(sorted(NETWORKS))
