"""The solver files under models/: every one loads, and the alt-opt and fast_rcnn ones carry the original's
schedules (stepsize / iterations / snapshot prefix from its solver prototxts and scripts, written out here)."""
import glob
import os.path as osp

import numpy as np
import pytest

from fast_rcnn.alt_opt import MODEL_KEYS, STAGES
from fast_rcnn.config import cfg_copy, cfg_from_dict, check_cfg
from fast_rcnn.train import load_solver
from tiny_training import ROOT

PREFIX = {'ZF': 'zf', 'VGG_CNN_M_1024': 'vgg_cnn_m_1024', 'VGG16': 'vgg16'}
# the original: stage{1,2}_rpn_solver60k80k, stage{1,2}_fast_rcnn_solver30k40k, fast_rcnn/solver (40k, COCO 280k)
ALT_OPT = {'rpn': (60000, 80000), 'fast_rcnn': (30000, 40000)}


def test_every_solver_file_loads_and_its_cfg_checks():
    paths = sorted(glob.glob(osp.join(ROOT, 'models', '*', '*', '*', '*.yml')))
    assert len(paths) >= 28
    for path in paths:
        solver = load_solver(path)
        assert osp.basename(osp.dirname(osp.dirname(path))) == solver['net'], path
        c = cfg_copy()
        if solver['cfg']:
            cfg_from_dict(solver['cfg'], c)
        check_cfg(c)


@pytest.mark.parametrize('net', sorted(PREFIX))
def test_pascal_voc_alt_opt_solvers_are_the_originals(net):
    for st in STAGES:
        solver = load_solver(osp.join(ROOT, 'models', 'pascal_voc', net, 'faster_rcnn_alt_opt', st.solver_name))
        assert (solver['stepsize'], solver['max_iter']) == ALT_OPT[st.kind]
        assert (solver['base_lr'], solver['gamma'], solver['momentum'], solver['weight_decay']) == (
            0.001, 0.1, 0.9, 0.0005)
        assert solver['iter_size'] == 1 and solver['snapshot_prefix'] == '{}_{}'.format(PREFIX[net], st.kind)
    fast = load_solver(osp.join(ROOT, 'models', 'pascal_voc', net, 'fast_rcnn', 'solver.yml'))
    assert (fast['stepsize'], fast['max_iter'], fast['snapshot_prefix']) == (30000, 40000, PREFIX[net] + '_fast_rcnn')


@pytest.mark.parametrize('net', ['VGG16', 'VGG_CNN_M_1024'])
def test_coco_fast_rcnn_solvers_are_the_originals(net):
    fast = load_solver(osp.join(ROOT, 'models', 'coco', net, 'fast_rcnn', 'solver.yml'))
    assert (fast['stepsize'], fast['max_iter'], fast['snapshot_prefix']) == (200000, 280000, PREFIX[net] + '_fast_rcnn')
    assert fast['cfg']['FC_DROPOUT'] is False


@pytest.mark.parametrize('folder', sorted(glob.glob(osp.join(ROOT, 'models', '*', '*', 'faster_rcnn_alt_opt'))))
def test_alt_opt_stages_build_the_same_network(folder):
    """AltOpt refuses stage solvers that disagree on a network-defining key; none of ours may."""
    values = []
    for st in STAGES:
        c = cfg_copy()
        cfg_from_dict(load_solver(osp.join(folder, st.solver_name))['cfg'] or {}, c)
        values.append([np.asarray(c[k]).tolist() for k in MODEL_KEYS])
    assert all(v == values[0] for v in values), folder
