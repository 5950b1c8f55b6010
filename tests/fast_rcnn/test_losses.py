import os.path as osp

import numpy as np
import pytest
import torch

from fast_rcnn.losses import smooth_l1_loss


@pytest.mark.parametrize('case', ['rpn_sigma3', 'frcn_sigma1'])
def test_matches_caffe_layer(oracle_dir, case):
    d = np.load(osp.join(oracle_dir, 'smooth_l1.npz'))
    pred = torch.tensor(d[case + '_pred'], requires_grad=True)
    loss = smooth_l1_loss(pred, torch.tensor(d[case + '_target']), torch.tensor(d[case + '_inside_w']),
                          torch.tensor(d[case + '_outside_w']), sigma=float(d[case + '_sigma']))
    loss.backward()
    np.testing.assert_allclose(loss.item(), d[case + '_loss'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.grad.numpy(), d[case + '_grad_pred'], rtol=1e-5, atol=1e-7)


def test_hand_worked_sigma3():
    # sigma=3: quadratic below 1/9. x = 0.1 -> 0.5*9*0.01 = 0.045; x = -1 -> 1 - 0.5/9; x=0.3 with w_in 0 -> 0.
    pred = torch.tensor([[0.1, -1.0, 0.3, 0.0], [0.0, 0.0, 0.0, 2.0]], requires_grad=True)
    target = torch.zeros(2, 4)
    w_in = torch.tensor([[1., 1., 0., 1.], [1., 1., 1., 1.]])
    w_out = torch.full((2, 4), 0.5)
    loss = smooth_l1_loss(pred, target, w_in, w_out, sigma=3.0)
    expected = 0.5 * (0.045 + (1 - 0.5 / 9) + (2 - 0.5 / 9)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(pred.grad.numpy(), [[0.5 * 9 * 0.1 / 2, -0.5 / 2, 0, 0], [0, 0, 0, 0.5 / 2]],
                               rtol=1e-6)
    # per_row: each row's sum, not divided by R
    rows = smooth_l1_loss(pred, target, w_in, w_out, sigma=3.0, per_row=True)
    np.testing.assert_allclose(rows.detach().numpy(), [0.5 * (0.045 + 1 - 0.5 / 9), 0.5 * (2 - 0.5 / 9)], rtol=1e-6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='shapes differ'):
        smooth_l1_loss(torch.zeros(2, 4), torch.zeros(2, 8), torch.zeros(2, 4), torch.zeros(2, 4))
