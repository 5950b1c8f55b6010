"""The command lines end to end on a tiny labelImg-style folder: train_net (and resuming), test_net, demo, the
class-mismatch error and the refusal to train ImageNet networks without weights."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from tiny_training import make_voc_folder as _make_folder

pytestmark = pytest.mark.slow  # runs the tools end to end; `pytest -m "not slow"` skips it

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PY = sys.executable

SOLVER = """net: TINY
base_lr: 0.002
lr_policy: step
stepsize: 1000
max_iter: 4
display: 1
snapshot_prefix: cli_tiny
snapshot: 2
warmup_iters: 2
warmup_factor: 0.5
cfg:
  TRAIN:
    SCALES: [96]
    MAX_SIZE: 160
    RPN_PRE_NMS_TOP_N: 200
    RPN_POST_NMS_TOP_N: 50
    RPN_BATCHSIZE: 64
    BATCH_SIZE: 16
    RPN_MIN_SIZE: 2
  TEST:
    SCALES: [96]
    MAX_SIZE: 160
    RPN_PRE_NMS_TOP_N: 200
    RPN_POST_NMS_TOP_N: 20
    RPN_MIN_SIZE: 2
  ANCHOR_SCALES: [2, 4]
  FEAT_STRIDE: 8
"""


def _run(args, cwd=ROOT):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    p = subprocess.run([PY] + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=240)
    return p.returncode, p.stdout


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cli')
    folder = str(tmp / 'toyset')
    _make_folder(folder, ['box', 'plate'])
    solver = str(tmp / 'solver.yml')
    with open(solver, 'w') as f:
        f.write(SOLVER)
    sets = ['--set', 'ROOT_DIR', str(tmp), 'DATA_DIR', str(tmp / 'data'), 'EXP_DIR', 'cli']
    base = ['tools/train_net.py', '--solver', solver, '--imdb', folder + ':trainval',
            '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml', '--threads', '1']
    rc1, out1 = _run(base + ['--iters', '2'] + sets)       # "killed" after 2 iterations
    rc2, out2 = _run(base + sets)                          # the same command again: resumes, solver's max_iter
    straight = sets[:-1] + ['cli_straight']
    rc3, out3 = _run(base + straight)                      # uninterrupted, for comparison
    return {'tmp': tmp, 'folder': folder, 'sets': sets, 'runs': [(rc1, out1), (rc2, out2), (rc3, out3)],
            'straight': osp.join(str(tmp), 'output', 'cli_straight', 'toyset_trainval', 'cli_tiny_iter_4.pth'),
            'snap': osp.join(str(tmp), 'output', 'cli', 'toyset_trainval', 'cli_tiny_iter_4.pth')}


def test_train_net_logs_snapshots_and_resumes(trained):
    (rc1, out1), (rc2, out2), _ = trained['runs']
    assert rc1 == 0, out1
    assert rc2 == 0, out2
    assert 'Iteration 1, loss = ' in out1 and 'lr = ' in out1 and 's/iter' in out1 and 'ETA' in out1
    # the dataset summary (its counts: tests/datasets/test_summary.py) comes before training
    assert re.search(r'^toyset_trainval: \d+ images, \d+ boxes$', out1, re.M)
    assert re.search(r'^  plate +\d+ +\d+$', out1, re.M)
    assert out1.index('toyset_trainval: ') < out1.index('Iteration 1, ')
    assert out1.strip().splitlines()[-1].startswith('Wrote snapshot to: ')
    assert out1.strip().splitlines()[-1].endswith('cli_tiny_iter_2.pth')
    assert 'Resuming from ' in out2 and 'cli_tiny_iter_2.pth' in out2
    assert 'Iteration 3, ' in out2 and 'Iteration 1, ' not in out2
    assert out2.strip().splitlines()[-1] == 'Wrote snapshot to: {}'.format(trained['snap'])


def test_resumed_run_is_bit_identical_to_the_uninterrupted_one(trained):
    import torch
    rc3, out3 = trained['runs'][2]
    assert rc3 == 0, out3
    a = torch.load(trained['snap'], weights_only=True)
    b = torch.load(trained['straight'], weights_only=True)
    assert a['iter'] == b['iter'] == 4
    for k in b['model']:
        assert torch.equal(a['model'][k], b['model'][k]), k
    for ha, hb in zip(a['optimizer']['history'], b['optimizer']['history']):
        assert torch.equal(ha, hb)


def test_test_net_prints_mean_ap_and_writes_results(trained):
    rc, out = _run(['tools/test_net.py', '--net', trained['snap'], '--imdb', trained['folder'] + ':test',
                    '--threads', '1'] + trained['sets'])
    assert rc == 0, out
    assert 'Mean AP = 0.' in out or 'Mean AP = 1.' in out
    assert re.search(r'^toyset_test: \d+ images, \d+ boxes$', out, re.M)
    res = osp.join(str(trained['tmp']), 'output', 'cli', 'toyset_test', 'cli_tiny_iter_4', 'detections.pkl')
    assert osp.isfile(res)


def test_demo_draws_one_picture_per_input(trained):
    out_dir = str(trained['tmp'] / 'demo')
    imgs = osp.join(trained['folder'], 'JPEGImages')
    rc, out = _run(['tools/demo.py', '--net', trained['snap'], '--conf-thresh', '0.0', '--out', out_dir, imgs])
    assert rc == 0, out
    assert sorted(os.listdir(out_dir)) == sorted(os.listdir(imgs) + ['index.html'])


def test_test_net_on_other_classes_is_a_clear_error(trained, tmp_path):
    other = str(tmp_path / 'other')
    _make_folder(other, ['cat', 'dog'], seed=1)
    rc, out = _run(['tools/test_net.py', '--net', trained['snap'], '--imdb', other + ':test'] + trained['sets'])
    assert rc != 0
    assert 'classes' in out and 'cat' in out and 'box' in out


def test_test_net_hands_its_set_down_to_the_dataset(trained, tmp_path):
    """--set SKIP_BAD_ANNOTATIONS True reaches the test set's loader: a box with xmax < xmin in test.txt's images
    is an error naming the file without it, a warning and a skip with it."""
    import shutil
    broken = str(tmp_path / 'toyset')
    shutil.copytree(trained['folder'], broken)
    ann = osp.join(broken, 'Annotations', 'im004.xml')
    with open(ann) as f:
        text = f.read()
    with open(ann, 'w') as f:
        f.write(re.sub(r'<xmax>\d+</xmax>', '<xmax>1</xmax>', text, count=1))
    cmd = ['tools/test_net.py', '--net', trained['snap'], '--imdb', broken + ':test', '--threads', '1']
    rc, out = _run(cmd + trained['sets'])
    assert rc != 0 and 'im004.xml' in out and 'Traceback' not in out
    rc, out = _run(cmd + trained['sets'] + ['SKIP_BAD_ANNOTATIONS', 'True'])
    assert rc == 0, out
    assert 'im004.xml' in out and 'Mean AP = ' in out


def test_vgg16_without_weights_is_refused_with_the_reason(tmp_path):
    rc, out = _run(['tools/train_net.py', '--solver', 'models/pascal_voc/VGG16/faster_rcnn_end2end/solver.yml',
                    '--imdb', 'voc_2007_trainval', '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml'])
    assert rc != 0
    assert '--weights' in out and '--from-scratch' in out



def test_nproc_2_computes_what_one_process_does_and_resumes(tmp_path):
    """--nproc 2 (and torchrun --nproc_per_node 2) share each iteration's iter_size = 2 minibatches between two
    processes and sum their gradients: bit for bit what one process computes (one thread each, so the same
    arithmetic), also when a stopped run is resumed (by one process, or under torchrun again); more processes than
    iter_size is refused."""
    import socket
    import torch
    try:  # gloo talks over the loopback interface
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
    except OSError as e:
        pytest.skip('no loopback networking here ({}): torch.distributed cannot run'.format(e))
    folder = str(tmp_path / 'toyset')
    _make_folder(folder, ['box', 'plate'], n_train=5)
    solver = str(tmp_path / 'solver.yml')
    with open(solver, 'w') as f:
        f.write(SOLVER.replace('max_iter: 4', 'max_iter: 4\niter_size: 2'))

    def train(exp, *extra):
        return _run(['tools/train_net.py', '--solver', solver, '--imdb', folder + ':trainval',
                     '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml'] + list(extra) +
                    ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', exp])

    rc, out = train('two', '--nproc', '2', '--threads', '2', '--iters', '2')  # "killed" after 2
    assert rc == 0, out
    assert 'Training in 2 processes of 1 thread(s) each' in out
    assert out.count('Iteration 2, ') == 1  # one log, from process 0
    assert out.strip().splitlines()[-1].endswith('cli_tiny_iter_2.pth')
    rc, out = train('two', '--threads', '1')  # resumed by one process, to the solver's 4
    assert rc == 0, out
    assert 'Resuming from ' in out and 'Iteration 3, ' in out
    rc, out = train('one', '--threads', '1')
    assert rc == 0, out
    rc, out = train('two_straight', '--nproc', '2', '--threads', '2')
    assert rc == 0, out
    a, b, c = (torch.load(osp.join(str(tmp_path), 'output', e, 'toyset_trainval', 'cli_tiny_iter_4.pth'),
                          weights_only=True) for e in ('two', 'one', 'two_straight'))
    assert a['iter'] == b['iter'] == c['iter'] == 4
    for k in b['model']:
        assert torch.equal(a['model'][k], b['model'][k]) and torch.equal(c['model'][k], b['model'][k]), k
    rc, out = train('three', '--nproc', '3')
    assert rc != 0 and "between 1 and the solver's iter_size (2)" in out

    # the same under torchrun (env:// rendezvous): a run stopped after 2 iterations, then the same command again
    def torchrun(exp, *extra):
        return _run(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', 'tools/train_net.py',
                     '--solver', solver, '--imdb', folder + ':trainval', '--threads', '2',
                     '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml'] + list(extra) +
                    ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', exp])

    rc, out = torchrun('torchrun', '--iters', '2')
    assert rc == 0, out
    assert out.count('Iteration 2, ') == 1  # rank 0 alone logs
    rc, out = torchrun('torchrun')
    assert rc == 0, out
    assert 'Resuming from ' in out and 'Iteration 3, ' in out
    d = torch.load(osp.join(str(tmp_path), 'output', 'torchrun', 'toyset_trainval', 'cli_tiny_iter_4.pth'),
                   weights_only=True)
    for k in b['model']:
        assert torch.equal(d['model'][k], b['model'][k]), k


def test_end2end_with_two_images_a_minibatch(tmp_path):
    """TRAIN.IMS_PER_BATCH 2 (opt-in) trains end to end: aspect-grouped pairs, padded into one blob."""
    folder = str(tmp_path / 'toyset')
    _make_folder(folder, ['box', 'plate'], n_train=5)
    solver = str(tmp_path / 'solver.yml')
    with open(solver, 'w') as f:
        f.write(SOLVER)
    rc, out = _run(['tools/train_net.py', '--solver', solver, '--imdb', folder + ':trainval', '--threads', '1',
                    '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml', '--iters', '2',
                    '--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', 'pairs',
                    'TRAIN.IMS_PER_BATCH', '2'])
    assert rc == 0, out
    assert 'Iteration 2, ' in out and out.strip().splitlines()[-1].endswith('cli_tiny_iter_2.pth')


def test_prefetching_workers_train_the_same_weights(trained):
    """TRAIN.USE_PREFETCH (DataLoader workers make the minibatches): bit for bit the weights of the plain run."""
    import torch
    tmp = trained['tmp']
    rc, out = _run(['tools/train_net.py', '--solver', str(tmp / 'solver.yml'),
                    '--imdb', trained['folder'] + ':trainval',
                    '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml', '--threads', '1',
                    '--set', 'ROOT_DIR', str(tmp), 'DATA_DIR', str(tmp / 'data'), 'EXP_DIR', 'cli_prefetch',
                    'TRAIN.USE_PREFETCH', 'True', 'TRAIN.PREFETCH_WORKERS', '2'])
    assert rc == 0, out
    got = torch.load(osp.join(str(tmp), 'output', 'cli_prefetch', 'toyset_trainval', 'cli_tiny_iter_4.pth'),
                     weights_only=True)
    want = torch.load(trained['straight'], weights_only=True)
    for k in want['model']:
        assert torch.equal(got['model'][k], want['model'][k]), k
