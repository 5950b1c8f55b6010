"""nets.layers.GroupNormReLU (the fused CPU op of lib/nets/csrc/group_norm_relu.cpp) against PyTorch's group_norm +
relu, in float64 (exact up to rounding), float32 and bfloat16, channels last and contiguous; gradcheck; the
thread-count independence the training's reproducibility relies on; the fallback without the extension."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nets.layers as layers
from nets.layers import GroupNormReLU, native_group_norm_relu

pytestmark = pytest.mark.skipif(not native_group_norm_relu(), reason='nets._C is not built (make setup)')

CASES = [(1, 16, 37, 41, 4), (2, 64, 13, 9, 16), (1, 8, 300, 1, 2), (1, 6, 5, 7, 1)]


def _reference(x, weight, bias, groups, dy):
    """relu(group_norm(x)) and its gradients, computed by PyTorch in float64."""
    x = x.detach().double().requires_grad_()
    w = weight.detach().double().requires_grad_()
    b = bias.detach().double().requires_grad_()
    y = F.relu(F.group_norm(x, groups, w, b, 1e-5))
    y.backward(dy.double())
    return y.detach(), x.grad, w.grad, b.grad


def _ours(x, weight, bias, groups, dy):
    x = x.detach().requires_grad_()
    w = weight.detach().clone().requires_grad_()
    b = bias.detach().clone().requires_grad_()
    layer = GroupNormReLU(groups, x.shape[1])
    y = layers._GroupNormReLUFunction.apply(x, w, b, groups, layer.eps)
    y.backward(dy.to(x.dtype))
    return y.detach(), x.grad, w.grad, b.grad, y


def _inputs(n, c, h, w, seed, dtype, channels_last):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3 + 1.5   # an offset: mean != 0
    dy = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(dtype).contiguous(memory_format=fmt)
    dy = dy.to(dtype).contiguous(memory_format=fmt)
    pdt = torch.float64 if dtype == torch.float64 else torch.float32
    return x, weight.to(pdt), bias.to(pdt), dy


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 2e-6), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('case', CASES)
def test_matches_pytorch_group_norm_relu(dtype, tol, channels_last, case):
    n, c, h, w, groups = case
    x, weight, bias, dy = _inputs(n, c, h, w, 0, dtype, channels_last)
    # the reference sees the same (rounded) inputs, so the tolerance measures our arithmetic, not the rounding
    ry, rdx, rdw, rdb = _reference(x, weight, bias, groups, dy.to(dtype))
    y, dx, dw, db, out = _ours(x, weight, bias, groups, dy)
    assert out.dtype == dtype and out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert dw.dtype == weight.dtype and db.dtype == bias.dtype

    def rel(a, r):
        return float((a.double() - r).abs().max() / r.abs().max())

    assert rel(y, ry) < tol and rel(dx, rdx) < tol and rel(dw, rdw) < tol and rel(db, rdb) < tol
    assert (y >= 0).all()


def test_hand_worked_forward_and_mask():
    # one group of 4 values [0, 1, 2, 3]: mean 1.5, variance 1.25, xhat = [-3, -1, 1, 3] / sqrt(5); weight 2,
    # bias -0.5 -> 2 * xhat - 0.5, then relu
    x = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64).view(1, 1, 2, 2)
    layer = GroupNormReLU(1, 1, eps=0.0).double()
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.bias.fill_(-0.5)
    xhat = (np.array([0, 1, 2, 3]) - 1.5) / np.sqrt(1.25)
    expected = np.maximum(2 * xhat - 0.5, 0)        # [0, 0, 0.394..., 2.183...]
    got = layer(x).detach().numpy().ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert got[0] == 0 and got[1] == 0               # masked by the relu: no gradient flows through them
    xg = x.clone().requires_grad_()
    layer(xg).sum().backward()
    # d/dx of sum(relu(2 xhat - 0.5)) = 2 * d/dx sum_{i in {2, 3}} xhat_i; by hand for a group of N = 4:
    # d xhat_i / d x_j = (delta_ij - 1/N - xhat_i xhat_j / N) / sigma
    sigma = np.sqrt(1.25)
    jac = (np.eye(4) - 0.25 - np.outer(xhat, xhat) / 4) / sigma
    np.testing.assert_allclose(xg.grad.numpy().ravel(), 2 * jac[[2, 3]].sum(0), rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: layers._GroupNormReLUFunction.apply(x, w, b, 2, 1e-5),
                                    (x, w, b))
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: layers._GroupNormReLUFunction.apply(x, w, b, 4, 1e-5),
                                    (xc, w, b))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_same_bits_with_any_number_of_threads(dtype):
    # exact resume and --nproc rely on it: the sums run over fixed pixel blocks, added in order
    x, weight, bias, dy = _inputs(1, 32, 150, 211, 3, dtype, True)
    old = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_ours(x, weight, bias, 8, dy)[:4])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_module_keeps_group_norm_parameters_and_falls_back(monkeypatch):
    layer = GroupNormReLU(4, 16)
    assert set(dict(layer.named_parameters())) == {'weight', 'bias'}
    x = torch.randn(1, 16, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
        fused = layer(x)
        monkeypatch.setattr(layers, '_C', None)
        monkeypatch.setattr(layers, '_warned_fallback', False)
        with pytest.warns(RuntimeWarning, match='nets._C is not built'):
            plain = layer(x)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain, F.relu(F.group_norm(x, 4, layer.weight, layer.bias)))


def test_bad_groups_is_an_error():
    with pytest.raises(RuntimeError, match='do not split into 3 groups'):
        layers._C.group_norm_relu_forward(torch.zeros(1, 8, 2, 2), torch.ones(8), torch.zeros(8), 3, 1e-5)
