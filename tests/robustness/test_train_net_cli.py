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

pytestmark = pytest.mark.slow  # runs the tools end to end; `pytest -m "not slow"` skips it
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


def test_device_cuda_without_a_gpu_is_one_line_before_anything_heavy():
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    # the solver does not even exist: the device is checked first
    rc, err = _train_net('--solver', 'nope.yml', '--device', 'cuda')
    assert rc == 2 and _one_line(err).startswith('train_net.py: CUDA is not available on this machine (--device '
                                                 'cuda; torch ')
    assert _one_line(err).endswith(': use --device cpu')


def test_a_missing_weights_file_names_the_fetch_script(tmp_path):
    rc, err = _train_net('--solver', TINY_SOLVER, '--weights', str(tmp_path / 'VGG16.v2.caffemodel'))
    assert rc == 1
    line = _one_line(err)
    assert line.startswith('train_net.py: --weights {}: file not found. data/scripts/fetch_imagenet_models.sh '
                           'downloads'.format(tmp_path / 'VGG16.v2.caffemodel'))
    assert 'VGG16.v2.caffemodel, ZF.v2.caffemodel and VGG_CNN_M_1024.v2.caffemodel' in line


def test_display_below_1_is_a_command_line_error():
    rc, err = _train_net('--solver', TINY_SOLVER, '--display', '0')
    assert rc == 2 and _one_line(err) == 'train_net.py: error: --display must be at least 1, got 0'


def _toy_folder(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location('_cli_helpers', osp.join(ROOT, 'tests', 'tools', 'test_cli.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._make_folder(path, ['box', 'plate'])
    return mod.SOLVER


@pytest.mark.parametrize('signame', ['SIGINT', 'SIGTERM'])
def test_a_signal_stops_train_net_with_a_snapshot_and_its_record(tmp_path, signame):
    """Ctrl-C or kill: the run finishes its iteration, writes a snapshot, prints `Wrote snapshot to:` last and
    exits 128 + the signal's number; no traceback; its record (log.txt, config.yml, train_log.jsonl) is there."""
    import signal
    import time
    import torch
    folder = str(tmp_path / 'toyset')
    solver_text = _toy_folder(folder).replace('max_iter: 4', 'max_iter: 5000')
    solver = tmp_path / 'solver.yml'
    solver.write_text(solver_text.replace('snapshot: 2', 'snapshot: 1000'))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.Popen([sys.executable, 'tools/train_net.py', '--solver', str(solver), '--imdb',
                          folder + ':trainval', '--cfg', END2END, '--threads', '1', '--display', '2',
                          '--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', 'sig'],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    lines = []
    deadline = time.time() + 120
    try:
        for line in p.stdout:
            lines.append(line.rstrip('\n'))
            if '] Iteration 2, loss = ' in line:
                p.send_signal(getattr(signal, signame))
                break
            assert time.time() < deadline, lines
        rest, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    lines += rest.strip().splitlines()
    assert p.returncode == 128 + getattr(signal, signame), (lines, err)
    assert 'Traceback' not in err, err
    out_dir = osp.join(str(tmp_path), 'output', 'sig', 'toyset_trainval')
    stopped = [line for line in lines if line.startswith('Stopped by {} after iteration '.format(signame))]
    assert len(stopped) == 1
    it = int(stopped[0].split('after iteration ')[1].split(';')[0])
    assert it >= 2
    snap = osp.join(out_dir, 'cli_tiny_iter_{}.pth'.format(it))
    assert lines[-1] == 'Wrote snapshot to: {}'.format(snap)
    assert lines[-2].startswith('Total training time: ')
    assert torch.load(snap, weights_only=True)['iter'] == it
    logged = open(osp.join(out_dir, 'log.txt')).read().strip().splitlines()
    assert logged[0] == 'Called with args:' and logged[-1] == lines[-1]
    assert osp.isfile(osp.join(out_dir, 'config.yml'))
    import json
    entries = [json.loads(x) for x in open(osp.join(out_dir, 'train_log.jsonl'))]
    # iteration 1's line, then every --display 2
    assert [e['iteration'] for e in entries] == [1] + list(range(2, it + 1, 2))


def test_evaluation_during_training_logs_mean_ap_keeps_the_best_and_changes_no_weight(tmp_path):
    import json
    import torch
    folder = str(tmp_path / 'toyset')
    solver = tmp_path / 'solver.yml'
    solver.write_text(_toy_folder(folder).replace('snapshot: 2', 'snapshot: 1000'))
    env = dict(os.environ, OMP_NUM_THREADS='1')

    def train(exp, *extra):
        p = subprocess.run([sys.executable, 'tools/train_net.py', '--solver', str(solver), '--imdb',
                            folder + ':trainval', '--cfg', END2END, '--threads', '1'] + list(extra) +
                           ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', exp],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout.strip().splitlines(), osp.join(str(tmp_path), 'output', exp, 'toyset_trainval')

    out, d = train('val', '--val-imdb', folder + ':test', '--eval-every', '2')
    _, plain = train('plain')
    entries = [json.loads(x) for x in open(osp.join(d, 'train_log.jsonl'))]
    maps = [(e['iteration'], e['val_map']) for e in entries if 'val_map' in e]
    assert [i for i, _ in maps] == [2, 4] and all(0.0 <= m <= 1.0 for _, m in maps)
    best_it = 2 if maps[0][1] >= maps[1][1] else 4  # a tie keeps the first
    best = open(osp.join(d, 'cli_tiny_best.pth'), 'rb').read()
    assert best == open(osp.join(d, 'cli_tiny_iter_{}.pth'.format(best_it)), 'rb').read()
    assert [x for x in out if x.startswith('Best validation mean AP so far')][-1].endswith(
        'iteration {:d}): copied to {}'.format(best_it, osp.join(d, 'cli_tiny_best.pth')))
    assert out[-1] == 'Wrote snapshot to: {}'.format(osp.join(d, 'cli_tiny_iter_4.pth'))
    # evaluating changed nothing in the training: the same weights as the run without it
    a = torch.load(osp.join(d, 'cli_tiny_iter_4.pth'), weights_only=True)
    b = torch.load(osp.join(plain, 'cli_tiny_iter_4.pth'), weights_only=True)
    for k in b['model']:
        assert torch.equal(a['model'][k], b['model'][k]), k


def test_val_imdb_without_eval_every_is_a_command_line_error():
    rc, err = _train_net('--solver', TINY_SOLVER, '--val-imdb', 'x')
    assert rc == 2 and _one_line(err) == 'train_net.py: error: --val-imdb and --eval-every go together'


def test_a_signal_stops_both_processes_of_nproc_2_at_one_iteration(tmp_path):
    """--nproc 2: SIGTERM to the parent alone is passed on to the training processes, which agree (through the
    gradient sum) on the iteration to stop after; the snapshot is written once, the run exits 143, and resuming
    from it reaches the weights of the run that was not stopped."""
    import signal
    import socket
    import time
    import torch
    try:  # gloo talks over the loopback interface
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
    except OSError as e:
        pytest.skip('no loopback networking here ({}): torch.distributed cannot run'.format(e))
    folder = str(tmp_path / 'toyset')
    text = _toy_folder(folder).replace('max_iter: 4', 'max_iter: 12\niter_size: 2')
    solver = tmp_path / 'solver.yml'
    solver.write_text(text.replace('snapshot: 2', 'snapshot: 1000'))
    env = dict(os.environ, OMP_NUM_THREADS='1')

    def cmd(exp, *extra):
        return [sys.executable, 'tools/train_net.py', '--solver', str(solver), '--imdb', folder + ':trainval',
                '--cfg', END2END, '--nproc', '2', '--threads', '2'] + list(extra) + \
               ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', exp]
    p = subprocess.Popen(cmd('sig', '--display', '1'), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip('\n'))
            if '] Iteration 3, loss = ' in line:
                p.send_signal(signal.SIGTERM)
                break
        rest, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    lines += rest.strip().splitlines()
    assert p.returncode == 143, (lines, err)
    assert 'Traceback' not in err, err
    stopped = [x for x in lines if x.startswith('Stopped by SIGTERM after iteration ')]
    assert len(stopped) == 1, lines
    it = int(stopped[0].split('after iteration ')[1].split(';')[0])
    assert 3 <= it < 12
    d = osp.join(str(tmp_path), 'output', 'sig', 'toyset_trainval')
    assert lines[-1] == 'Wrote snapshot to: {}'.format(osp.join(d, 'cli_tiny_iter_{}.pth'.format(it)))
    assert sorted(f for f in os.listdir(d) if f.endswith('.pth')) == ['cli_tiny_iter_{}.pth'.format(it)]
    r = subprocess.run(cmd('sig'), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 0 and 'Resuming from ' in r.stdout, r.stdout
    r = subprocess.run(cmd('straight'), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stdout
    a = torch.load(osp.join(d, 'cli_tiny_iter_12.pth'), weights_only=True)
    b = torch.load(osp.join(str(tmp_path), 'output', 'straight', 'toyset_trainval', 'cli_tiny_iter_12.pth'),
                   weights_only=True)
    for k in b['model']:
        assert torch.equal(a['model'][k], b['model'][k]), k
