"""nets.compress and tools/compress_net.py: truncated SVD of fc6/fc7 (hand-worked factors, a compressed snapshot
that loads and detects like the original at full rank)."""
import os.path as osp

import numpy as np
import pytest
import torch
from torch import nn

import compress_net
from fast_rcnn.test import load_detector
from fast_rcnn.train import load_snapshot, train_net
from nets.compress import SVDLinear, factor_linear, factor_state, svd_factors
from tiny_training import CLASSES, TinyData, tiny_cfg, tiny_model, tiny_solver


def test_svd_factors_by_hand():
    # W = diag(3, 2, 1) (3 x 3) plus a zero row: singular values 3, 2, 1
    w = torch.tensor([[3., 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0]])
    L, U, energy = svd_factors(w, 2)
    assert L.shape == (2, 3) and U.shape == (4, 2)
    torch.testing.assert_close(U @ L, torch.tensor([[3., 0, 0], [0, 2, 0], [0, 0, 0], [0, 0, 0]]))
    assert energy == pytest.approx((9 + 4) / 14)
    with pytest.raises(ValueError, match=r'SVD rank 4 must be in \[1, 3\]'):
        svd_factors(w, 4)


def test_factor_linear_close_to_the_layer():
    torch.manual_seed(0)
    layer = nn.Linear(64, 32)
    x = torch.randn(10, 64)
    full = factor_linear(layer, 32)   # full rank: the same map up to float rounding
    torch.testing.assert_close(full(x), layer(x), rtol=1e-5, atol=1e-5)
    low = factor_linear(layer, 8)
    assert isinstance(low, SVDLinear) and low.L.bias is None and low.L.weight.shape == (8, 64)
    # rank 8 is the best rank-8 map: its error is the norm of the dropped singular values
    s = torch.linalg.svdvals(layer.weight.detach().double())
    err = torch.linalg.matrix_norm((low.U.weight @ low.L.weight - layer.weight).detach().double())
    assert float(err) == pytest.approx(float(s[8:].pow(2).sum().sqrt()), rel=1e-5)


def test_factor_state_keys():
    state = {'head.fc6.weight': torch.randn(6, 10), 'head.fc6.bias': torch.arange(6.), 'head.fc7.weight':
             torch.randn(6, 6), 'head.fc7.bias': torch.zeros(6), 'cls_score.weight': torch.ones(2, 6)}
    out, energy = factor_state(state, (3, 0))  # fc7 left as it is
    assert sorted(out) == ['cls_score.weight', 'head.fc6.L.weight', 'head.fc6.U.bias', 'head.fc6.U.weight',
                           'head.fc7.bias', 'head.fc7.weight']
    assert torch.equal(out['head.fc6.U.bias'], torch.arange(6.)) and set(energy) == {'fc6'}


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory):
    c = tiny_cfg()
    d = tmp_path_factory.mktemp('snap')
    return train_net(tiny_model(c), TinyData(), str(d), tiny_solver(), c, CLASSES, 2, resume=False)


def _detect(path):
    net, _, _ = load_detector(path)
    data = torch.from_numpy(TinyData().items[0][0])
    with torch.no_grad():
        return net(data, np.array([[96, 128, 1.0]], np.float32))


def test_full_rank_compression_detects_as_the_original(snapshot, capsys):
    assert compress_net.main(['--net', snapshot, '--fc6', '256', '--fc7', '256']) == 0
    out = compress_net.output_path(snapshot, 256, 256)
    assert osp.basename(out) == 't_iter_2_svd_fc6_256_fc7_256.pth'
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == 'Wrote compressed snapshot to: {}'.format(out)
    snap = load_snapshot(out)  # checksum verified
    assert snap['cfg']['FC_SVD_RANKS'] == [256, 256] and 'optimizer' not in snap
    (r1, p1, d1), (r2, p2, d2) = _detect(snapshot), _detect(out)
    assert torch.equal(r1, r2)  # the RPN is untouched
    torch.testing.assert_close(p2, p1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d2, d1, rtol=1e-4, atol=1e-4)


def test_low_rank_compression_loads_and_refuses_a_second_pass(snapshot, tmp_path, capsys):
    out = str(tmp_path / 'small.pth')
    assert compress_net.main(['--net', snapshot, '--fc6', '16', '--fc7', '8', '--out', out]) == 0
    text = capsys.readouterr().out
    # 256 * 3136 = 802816 weights become 16 * (256 + 3136) = 54272
    assert 'fc6: 256 x 3136 -> rank 16' in text and '802816 -> 54272 weights' in text
    net, c, _ = load_detector(out)
    assert tuple(c.FC_SVD_RANKS) == (16, 8) and net.head.fc7.L.weight.shape == (8, 256)
    assert compress_net.main(['--net', out, '--out', str(tmp_path / 'again.pth')]) == 1
    assert 'already compressed' in capsys.readouterr().err


def test_a_rank_too_large_is_one_line(snapshot, tmp_path, capsys):
    assert compress_net.main(['--net', snapshot, '--fc6', '1024', '--fc7', '256', '--out',
                              str(tmp_path / 'x.pth')]) == 1
    err = capsys.readouterr().err
    assert err.strip() == 'compress_net.py: SVD rank 1024 must be in [1, 256] for a 3136 -> 256 layer'
    assert not osp.exists(str(tmp_path / 'x.pth'))
