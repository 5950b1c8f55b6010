"""train_net.py's command line: a mistake ends in one line `train_net.py: ...` with exit status 2 (the command
line) or 1 (a file), never a traceback; --set wins over the solver, as documented."""
import argparse
import os
import os.path as osp
import subprocess
import sys

import pytest

from fast_rcnn.config import cfg, cfg_copy
from fast_rcnn.train import load_solver

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY_SOLVER = osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_end2end', 'solver.yml')
END2END = osp.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml')


def _train_net(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train_net.py')] + list(args), cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    return p.returncode, p.stderr


def _one_line(err):
    assert 'Traceback' not in err, err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize('iters', ['-5', '0'])
def test_iters_below_1_is_a_command_line_error(iters):
    rc, err = _train_net('--solver', TINY_SOLVER, '--iters', iters)
    assert rc == 2 and _one_line(err) == 'train_net.py: error: --iters must be at least 1, got {}'.format(iters)


def test_a_nan_base_lr_in_the_solver_names_the_file_and_key(tmp_path):
    solver = tmp_path / 'solver.yml'
    solver.write_text('net: TINY\nbase_lr: .nan\n')
    rc, err = _train_net('--solver', str(solver), '--imdb', 'shapes_trainval')
    assert rc == 1
    assert _one_line(err) == 'train_net.py: {}: solver key base_lr: must be finite, got nan (allowed: [1e-12, ' \
                             '1.0])'.format(solver)


def test_a_bad_value_in_the_solvers_cfg_block_names_the_solver(tmp_path):
    solver = tmp_path / 'solver.yml'
    solver.write_text('net: TINY\ncfg:\n  TRAIN:\n    SCALES: [-400]\n')
    rc, err = _train_net('--solver', str(solver))
    assert rc == 1 and _one_line(err).startswith('train_net.py: {}: cfg: config key TRAIN.SCALES: (-400,) is out '
                                                 'of range'.format(solver))


def test_a_bad_set_value_and_an_option_after_set_are_command_line_errors():
    rc, err = _train_net('--solver', TINY_SOLVER, '--set', 'TRAIN.FG_FRACTION', '1e999')
    assert rc == 2 and _one_line(err) == ('train_net.py: --set config key TRAIN.FG_FRACTION: must be a finite '
                                          'number, got inf')
    rc, err = _train_net('--solver', TINY_SOLVER, '--set', 'EXP_DIR', 'x', '--iters', '5')
    assert rc == 2 and 'unknown config key: --iters (an option after --set?' in _one_line(err)


def test_missing_solver_and_cfg_files_are_one_line(tmp_path):
    rc, err = _train_net('--solver', str(tmp_path / 'nope.yml'))
    assert rc == 1 and _one_line(err) == 'train_net.py: solver file not found: {}'.format(tmp_path / 'nope.yml')
    rc, err = _train_net('--solver', TINY_SOLVER, '--cfg', str(tmp_path / 'nope.yml'))
    assert rc == 1 and _one_line(err) == 'train_net.py: config file not found: {}'.format(tmp_path / 'nope.yml')


def test_set_wins_over_the_solvers_snapshot_key():
    import train_net
    solver = load_solver(TINY_SOLVER)
    assert solver['snapshot'] == 2000
    args = argparse.Namespace(cfg_file=END2END, solver=TINY_SOLVER, set_cfgs=['TRAIN.SNAPSHOT_ITERS', '5'])
    assert train_net.build_train_cfg(args, solver, cfg_copy(cfg)).TRAIN.SNAPSHOT_ITERS == 5
    args.set_cfgs = None
    assert train_net.build_train_cfg(args, solver, cfg_copy(cfg)).TRAIN.SNAPSHOT_ITERS == 2000
