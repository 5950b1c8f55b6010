"""Training: Caffe SGD and lr policies against hand computation, a short run whose loss falls, snapshots that
load to the same detections, resuming that reproduces the uninterrupted run, solver files."""
import os.path as osp

import numpy as np
import pytest
import torch

from fast_rcnn.train import (CaffeAdam, CaffeSGD, SolverWrapper, find_snapshots, learning_rate, load_solver,
                             load_snapshot, make_optimizer, param_groups, train_net)
from tiny_training import CLASSES, TinyData as _TinyData, tiny_cfg as _cfg, tiny_model as _model
from tiny_training import tiny_solver as _solver

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_caffe_sgd_update_by_hand():
    # w0 = 1, grad = 2 (accumulated over iter_size 2 -> diff 1), wd 0.1, momentum 0.5, lr_mult 2.
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = CaffeSGD([('b', p, 2.0, 1.0)], momentum=0.5, weight_decay=0.1)
    p.grad = torch.tensor([2.0])
    opt.step(lr=0.1, iter_size=2)
    # diff = 2/2 + 0.1*1 = 1.1; h = 0.1*2*1.1 = 0.22; w = 0.78
    assert abs(float(p.detach()) - 0.78) < 1e-6
    p.grad = torch.tensor([2.0])
    opt.step(lr=0.01, iter_size=2)
    # diff = 1 + 0.1*0.78 = 1.078; h = 0.5*0.22 + 0.01*2*1.078 = 0.13156; w = 0.78 - 0.13156
    assert abs(float(p.detach()) - (0.78 - 0.13156)) < 1e-6
    # the lr scales the new gradient only (Caffe), unlike torch.optim.SGD which scales the whole history


def test_caffe_adam_update_by_hand():
    # w0 = 1, grad 2 over iter_size 2 -> diff 1, wd 0.1 -> 1.1; b1 0.5, b2 0.75, lr 0.1, lr_mult 2, delta 0.
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = CaffeAdam([('b', p, 2.0, 1.0)], momentum=0.5, weight_decay=0.1, momentum2=0.75, delta=0.0)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step(lr=0.1, iter_size=2)
    # m = 0.5 * 1.1 = 0.55; v = 0.25 * 1.21 = 0.3025; t = 1: sqrt(1 - .75) / (1 - .5) = 1
    # w = 1 - 0.1 * 2 * 1 * 0.55 / 0.55 = 0.8
    assert float(p.detach()) == pytest.approx(0.8, abs=1e-12)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step(lr=0.1, iter_size=2)
    # diff = 1 + 0.08 = 1.08; m = 0.275 + 0.54 = 0.815; v = 0.226875 + 0.25 * 1.1664 = 0.518475
    # t = 2: sqrt(1 - 0.5625) / (1 - 0.25) = 0.881917...; w = 0.8 - 0.2 * 0.881917 * 0.815 / sqrt(0.518475)
    expected = 0.8 - 0.2 * (0.4375 ** 0.5 / 0.75) * 0.815 / 0.518475 ** 0.5
    assert float(p.detach()) == pytest.approx(expected, abs=1e-12)


def test_caffe_adam_delta_sits_outside_the_bias_correction():
    # Caffe: w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + delta). w0 = 1, grad 1 each step, no decay,
    # b1 0.5, b2 0.75, delta 0.1, lr 0.1.
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = CaffeAdam([('w', p, 1.0, 1.0)], momentum=0.5, weight_decay=0.0, momentum2=0.75, delta=0.1)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step(lr=0.1)
    # m = 0.5, v = 0.25, correction sqrt(0.25) / 0.5 = 1: w = 1 - 0.1 * 0.5 / (0.5 + 0.1)
    w1 = 1.0 - 0.05 / 0.6
    assert float(p.detach()) == pytest.approx(w1, abs=1e-12)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step(lr=0.1)
    # m = 0.25 + 0.5 = 0.75, v = 0.1875 + 0.25 = 0.4375, correction sqrt(0.4375) / 0.75
    w2 = w1 - 0.1 * (0.4375 ** 0.5 / 0.75) * 0.75 / (0.4375 ** 0.5 + 0.1)
    assert float(p.detach()) == pytest.approx(w2, abs=1e-12)


def test_clip_gradients_scales_the_summed_gradient_before_iter_size():
    # Caffe clips the gradient summed over iter_size (global L2 norm over all parameters), then divides by
    # iter_size: grads (3,) and (4,) -> norm 5, clipped to 1 -> (0.6, 0.8), / 2 -> (0.3, 0.4); lr 1, no momentum.
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = CaffeSGD([('a', a, 1.0, 1.0), ('b', b, 1.0, 1.0)], momentum=0.0, weight_decay=0.0)
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    opt.step(lr=1.0, iter_size=2, clip_gradients=1.0)
    assert float(a.detach()) == pytest.approx(-0.3) and float(b.detach()) == pytest.approx(-0.4)
    # below the threshold nothing is clipped
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    opt.step(lr=1.0, iter_size=2, clip_gradients=10.0)
    assert float(a.detach()) == pytest.approx(-1.8) and float(b.detach()) == pytest.approx(-2.4)


def test_caffe_adam_matches_torch_adam():
    # Caffe's delta sits outside the bias correction, torch's eps inside: with delta = eps = 0 the two are one
    # algorithm. Per-parameter lr_mult as torch param groups; weight decay is L2 added to the gradient in both.
    torch.manual_seed(0)
    w0, b0 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    ours = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    ref = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    opt = CaffeAdam([('w', ours[0], 1.0, 1.0), ('b', ours[1], 2.0, 1.0)], momentum=0.9, weight_decay=1e-3,
                    momentum2=0.999, delta=0.0)
    ropt = torch.optim.Adam([{'params': [ref[0]], 'lr': 0.01}, {'params': [ref[1]], 'lr': 0.02}],
                            betas=(0.9, 0.999), eps=0.0, weight_decay=1e-3)
    for _ in range(5):
        g = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
        for p, q, gi in zip(ours, ref, g):
            p.grad, q.grad = gi.clone(), gi.clone()
        opt.step(lr=0.01)
        ropt.step()
    for p, q in zip(ours, ref):
        assert torch.allclose(p.detach(), q.detach(), rtol=0, atol=1e-12)


def test_solver_type_selects_the_optimizer_and_resume_checks_it():
    m = torch.nn.Linear(2, 2)
    adam = make_optimizer(m, dict(load_solver(osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_end2end',
                                                        'solver.yml')), type='Adam'))
    sgd = make_optimizer(m, load_solver(osp.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end',
                                                 'solver.yml')))
    assert isinstance(adam, CaffeAdam) and type(sgd) is CaffeSGD
    with pytest.raises(ValueError, match='Adam solver, this solver is SGD'):
        sgd.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match='SGD solver, this solver is Adam'):
        adam.load_state_dict(sgd.state_dict())


def test_param_groups_bias_lr_and_decay():
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.GroupNorm(1, 2))
    solver = dict(load_solver(osp.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end', 'solver.yml')))
    g = {n: (lr, d) for n, _, lr, d in param_groups(m, solver)}
    assert g['0.weight'] == (1.0, 1.0) and g['0.bias'] == (2.0, 1.0)
    assert g['1.weight'] == (1.0, 0.0) and g['1.bias'] == (1.0, 0.0)
    m[0].weight.requires_grad_(False)
    assert '0.weight' not in {n for n, _, _, _ in param_groups(m, solver)}


def test_learning_rate_policies():
    s = {'base_lr': 0.001, 'lr_policy': 'step', 'gamma': 0.1, 'stepsize': 50000, 'stepvalues': None,
         'warmup_iters': 0, 'warmup_factor': 1.0}
    assert learning_rate(s, 0) == 0.001 and learning_rate(s, 49999) == 0.001
    assert abs(learning_rate(s, 50000) - 0.0001) < 1e-12
    s.update(lr_policy='multistep', stepvalues=[10, 20], base_lr=1.0)
    assert [learning_rate(s, i) for i in (9, 10, 19, 20)] == [1.0, 0.1, 0.1, pytest.approx(0.01)]
    s.update(warmup_iters=4, warmup_factor=0.2)
    assert learning_rate(s, 0) == pytest.approx(0.2) and learning_rate(s, 2) == pytest.approx(0.6)
    assert learning_rate(s, 4) == 1.0
    # Caffe's poly: base_lr (1 - iter / max_iter) ^ power
    s.update(lr_policy='poly', power=2.0, max_iter=100, warmup_iters=0)
    assert learning_rate(s, 0) == 1.0 and learning_rate(s, 50) == pytest.approx(0.25)
    assert learning_rate(s, 90) == pytest.approx(0.01) and learning_rate(s, 100) == 0.0


def test_solver_files_load_and_name_networks():
    expected = {('pascal_voc', 'VGG16'): (2, 70000, 50000), ('pascal_voc', 'ZF'): (2, 70000, 50000),
                ('pascal_voc', 'VGG_CNN_M_1024'): (1, 70000, 50000), ('coco', 'VGG16'): (2, 490000, 350000)}
    for (ds, net), (iter_size, max_iter, stepsize) in expected.items():
        s = load_solver(osp.join(ROOT, 'models', ds, net, 'faster_rcnn_end2end', 'solver.yml'))
        assert s['net'] == net and s['iter_size'] == iter_size and s['max_iter'] == max_iter
        assert s['stepsize'] == stepsize and s['base_lr'] == 0.001 and s['momentum'] == 0.9
        assert s['weight_decay'] == 0.0005 and s['snapshot_prefix'] == net.lower() + '_faster_rcnn'
    coco = load_solver(osp.join(ROOT, 'models', 'coco', 'VGG16', 'faster_rcnn_end2end', 'solver.yml'))
    assert list(coco['cfg']['ANCHOR_SCALES']) == [4, 8, 16, 32]
    tiny = load_solver(osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_end2end', 'solver.yml'))
    assert tiny['net'] == 'TINY' and 'NUM_CLASSES' not in str(tiny)


def test_solver_unknown_key_is_an_error(tmp_path):
    p = tmp_path / 'solver.yml'
    p.write_text('net: TINY\nbase_lrr: 0.1\n')
    with pytest.raises(ValueError, match='base_lrr'):
        load_solver(str(p))
    p.write_text('net: TINY\ntype: RMSProp\n')
    with pytest.raises(ValueError, match="solver type 'RMSProp' is not supported"):
        load_solver(str(p))


# ----------------------------------------------------------------------------- tiny end-to-end runs
def test_short_training_run_loss_falls(tmp_path):
    c = _cfg()
    c.TRAIN.SNAPSHOT_ITERS = 1000
    m = _model(c)
    sw = SolverWrapper(m, _TinyData(), str(tmp_path), _solver(), c, CLASSES)
    losses = []
    orig = m.forward

    def spy(*a, **k):
        out = orig(*a, **k)
        losses.append(float(sum(out.values()).detach()))
        return out
    m.forward = spy
    # 80 iterations: in the first ~40 the box loss grows while the RPN starts proposing foreground RoIs
    sw.train_model(80)
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), losses


def test_resume_reproduces_uninterrupted_run(tmp_path):
    c = _cfg()
    a_dir, b_dir = str(tmp_path / 'a'), str(tmp_path / 'b')
    last_a = train_net(_model(c), _TinyData(), a_dir, _solver(), c, CLASSES, 6, resume=False)
    # "killed" after iteration 3: train to 3, then a new process (new objects, other RNG positions) resumes.
    train_net(_model(c), _TinyData(), b_dir, _solver(), c, CLASSES, 3, resume=False)
    np.random.seed(123)
    torch.manual_seed(123)
    m2 = _model(c, seed=99)
    data = _TinyData()
    data.forward()
    data.rng.randint(10, size=7)
    last_b = train_net(m2, data, b_dir, _solver(), c, CLASSES, 6, resume=True)
    assert [i for i, _ in find_snapshots(b_dir, _solver(), c)] == [3, 6]
    sa, sb = load_snapshot(last_a), load_snapshot(last_b)
    assert sb['iter'] == 6
    for k in sa['model']:
        assert torch.equal(sa['model'][k], sb['model'][k]), k
    assert sa['optimizer']['type'] == 'Adam' and sa['optimizer']['t'] == sb['optimizer']['t'] == 6
    for key in ('history', 'history2'):  # Adam's first and second moments
        for ha, hb in zip(sa['optimizer'][key], sb['optimizer'][key]):
            assert torch.equal(ha, hb)


def test_snapshot_contents_and_identical_detections(tmp_path):
    from fast_rcnn.test import load_detector
    c = _cfg()
    m = _model(c)
    sw = SolverWrapper(m, _TinyData(), str(tmp_path), _solver(), c, CLASSES, 'tiny_imdb')
    path = sw.train_model(3)
    assert osp.basename(path) == 't_iter_3.pth'
    snap = torch.load(path, weights_only=True)
    assert snap['classes'] == CLASSES and snap['net'] == 'TINY' and snap['iter'] == 3
    assert isinstance(snap['cfg'], dict) and snap['cfg']['TRAIN']['BATCH_SIZE'] == 32
    net, c2, classes = load_detector(path)
    assert classes == CLASSES and tuple(c2.ANCHOR_SCALES) == (2, 4)
    data = torch.from_numpy(_TinyData().items[0][0])
    info = np.array([[96, 128, 1.0]], np.float32)
    m.eval()
    with torch.no_grad():
        r1, p1, d1 = m(data, info)
        r2, p2, d2 = net(data, info)
    assert torch.equal(r1, r2) and torch.equal(p1, p2)
    stds = torch.tensor(np.tile(c.TRAIN.BBOX_NORMALIZE_STDS, 3), dtype=torch.float32)
    means = torch.tensor(np.tile(c.TRAIN.BBOX_NORMALIZE_MEANS, 3), dtype=torch.float32)
    torch.testing.assert_close(d2, d1 * stds + means, rtol=1e-5, atol=1e-6)
    # weights of an older version of the network (here: TINY's head without its LayerNorm): the file is named
    del snap['model']['head.norm6.weight']
    from fast_rcnn.train import tensors_checksum
    snap['checksum'] = tensors_checksum(snap)  # a well-formed file of that older version
    old = str(tmp_path / 'old.pth')
    torch.save(snap, old)
    with pytest.raises(RuntimeError, match=r'(?s)old\.pth: its weights do not fit the TINY network.*'
                                           r'head\.norm6\.weight'):
        load_detector(old)


def test_fresh_removes_old_snapshots(tmp_path):
    c = _cfg()
    train_net(_model(c), _TinyData(), str(tmp_path), _solver(), c, CLASSES, 6, resume=False)
    train_net(_model(c), _TinyData(), str(tmp_path), _solver(), c, CLASSES, 3, resume=False)
    assert [i for i, _ in find_snapshots(str(tmp_path), _solver(), c)] == [3]


def test_snapshot_of_another_file_is_a_clear_error(tmp_path):
    p = tmp_path / 'x.pth'
    torch.save({'a': torch.zeros(1)}, str(p))
    with pytest.raises(ValueError, match='not a py-faster-rcnn-torch snapshot'):
        load_snapshot(str(p))


# ----------------------------------------------------------------------------- float16 loss scaling
def test_loss_scale_halves_on_overflow_and_doubles_after_good_steps():
    from fast_rcnn.solver import LossScale
    ls = LossScale(True, init_scale=8.0, growth_interval=3)
    assert ls.update(False) is False and ls.scale == 4.0
    assert [ls.update(True) for _ in range(3)] == [True] * 3 and ls.scale == 8.0  # doubled after 3 good ones
    assert ls.update(True) and ls.good_steps == 1
    other = LossScale(True)
    other.load_state_dict(ls.state_dict())
    assert (other.scale, other.good_steps) == (8.0, 1)
    off = LossScale(False)
    assert off.scale == 1.0 and off.update(False) is True  # bf16 / float32: every step taken


def test_step_with_grad_scale_is_the_unscaled_step():
    # gradients 2^10 times too large and grad_scale 2^-10: bit for bit the plain step (powers of two are exact),
    # gradient clipping included (it sees the true norm)
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    g = torch.randn(5) * 3
    out = []
    for factor, grad_scale in ((1.0, 1.0), (1024.0, 1.0 / 1024)):
        p = torch.nn.Parameter(w.detach().clone())
        opt = CaffeSGD([('w', p, 1.0, 1.0)], momentum=0.9, weight_decay=0.01)
        p.grad = g * factor
        opt.step(0.1, iter_size=2, clip_gradients=1.0, grad_scale=grad_scale)
        out.append(p.detach().clone())
    assert torch.equal(out[0], out[1])
    p.grad = torch.tensor([1.0, float('inf'), 0, 0, 0])
    assert opt.grads_finite() is False


def test_float16_training_runs_skips_overflows_and_resumes_its_scale(tmp_path):
    c = _cfg()
    c.AMP = 'fp16'
    c.TRAIN.SNAPSHOT_ITERS = 1000
    sw = SolverWrapper(_model(c), _TinyData(), str(tmp_path), _solver(), c, CLASSES)
    assert sw.loss_scale.enabled and sw.loss_scale.scale == 2.0 ** 16
    sw.loss_scale.scale = 2.0 ** 140  # overflows float32 gradients at once: skipped, halved
    path = sw.train_model(4)
    assert sw.loss_scale.scale < 2.0 ** 140
    snap = load_snapshot(path)
    assert snap['loss_scale']['scale'] == sw.loss_scale.scale
    assert all(torch.isfinite(v).all() for v in snap['model'].values())
    again = SolverWrapper(_model(c), _TinyData(), str(tmp_path / 'b'), _solver(), c, CLASSES)
    again.restore(path)
    assert again.loss_scale.scale == sw.loss_scale.scale
