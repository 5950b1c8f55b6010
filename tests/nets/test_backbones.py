"""Backbones: feature-map sizes against the oracle's Caffe shape rules, TINY's stride and context, the known networks,
pooling output sizes, the original's frozen layers and COCO heads without dropout."""
import json
import os.path as osp

import pytest
import torch

from fast_rcnn.config import default_cfg
from nets.backbones import build_net, list_nets
from nets.faster_rcnn import FasterRCNN
from nets.layers import pool_out_size

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_feature_map_sizes_match_caffe_shape_rules(oracle_dir):
    with open(osp.join(oracle_dir, 'feature_map_sizes.json')) as f:
        sizes = json.load(f)['conv5_size']
    for net, table in sizes.items():
        feats = build_net(net).features.to('meta')
        for side, expected in table.items():
            out = feats(torch.empty(1, 3, int(side), int(side), device='meta'))
            assert out.shape[-1] == expected, (net, side, out.shape)
            assert out.shape[-2] == expected


def test_tiny_is_stride_8_with_context_from_stride_32():
    net = build_net('TINY')
    assert net.feat_stride == 8 and net.feat_channels == 64 and net.from_scratch
    # 3x3 convs with padding 1: each stride-2 layer gives ceil(n / 2); 4 of them before the stride-8 tap
    for h, w in ((96, 128), (97, 130), (480, 640)):
        out = net.features(torch.zeros(1, 3, h, w))
        assert out.shape == (1, 64, -(-h // 8), -(-w // 8)), (h, w, out.shape)
    # the stride-8 output depends on pixels far outside a stride-8 cell's own neighbourhood (via stride 32)
    feats = net.features.eval()
    x = (torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 50).requires_grad_()
    feats(x)[0, :, 0, 0].sum().backward()
    reach = torch.nonzero(x.grad.abs().sum(1)[0])
    assert int(reach[:, 0].max()) > 150 and int(reach[:, 1].max()) > 150
    c = default_cfg()  # FEAT_STRIDE 16, the original's default: a clear error, not a silent misalignment
    with pytest.raises(ValueError, match='FEAT_STRIDE is 16 but TINY has stride 8'):
        FasterRCNN('TINY', 3, c)


def test_known_networks():
    assert set(list_nets()) >= {'VGG16', 'ZF', 'VGG_CNN_M_1024', 'TINY'}
    with pytest.raises(ValueError, match='unknown network'):
        build_net('RESNET9000')


def test_pool_out_size_padded_window_clip():
    # ceil((5 + 2 - 3) / 2) + 1 = 3; no clip needed.  ceil((4 + 2 - 3)/2) + 1 = 3, last window starts at
    # 2*2 = 4 >= 4 + 1? no -> 3.  A case that clips: size 3, k 2, s 2, pad 1: ceil(3/2)+1 = 3, (3-1)*2 = 4 >= 3+1.
    assert pool_out_size(5, 3, 2, 1) == 3
    assert pool_out_size(3, 2, 2, 1) == 2
    pool = torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)
    assert pool(torch.zeros(1, 1, 3, 3)).shape[-1] == 2


def test_frozen_layers_of_the_original():
    assert build_net('VGG16').frozen == ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2']
    assert build_net('VGG_CNN_M_1024').frozen == ['conv1']
    assert build_net('ZF').frozen == []
    with torch.device('meta'):
        m = FasterRCNN('VGG16', 3, default_cfg())
    m.frozen_parameters(m.netdef.frozen)
    frozen = sorted({n.split('.')[1] for n, p in m.named_parameters() if not p.requires_grad})
    assert frozen == ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2']
    with pytest.raises(ValueError, match='no such layer'):
        m.frozen_parameters(['conv9'])


def test_coco_solvers_build_heads_without_dropout():
    from fast_rcnn.config import cfg, cfg_copy, cfg_from_dict
    from fast_rcnn.train import load_solver
    for net in ('VGG16', 'VGG_CNN_M_1024'):
        solver = load_solver(osp.join(ROOT, 'models', 'coco', net, 'faster_rcnn_end2end', 'solver.yml'))
        c = cfg_copy(cfg)
        cfg_from_dict(solver['cfg'], c)
        assert c.FC_DROPOUT is False
        head = build_net(net, c.FC_DROPOUT).head
        assert list(head._modules) == ['fc6', 'relu6', 'fc7', 'relu7']
        x = torch.randn(2, head.fc6.in_features)
        assert torch.equal(head.train()(x), head.eval()(x))  # nothing random left
    pascal = load_solver(osp.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end', 'solver.yml'))
    assert 'FC_DROPOUT' not in pascal.get('cfg', {}) and cfg.FC_DROPOUT is True
