"""Training refuses nonsense, stops on divergence and never loses a snapshot: solver and cfg values checked when
read, NaN/Inf caught before a snapshot of them is written, checksummed snapshots, atomic writes that leave no temp
file (a real full disk included), the output folder's lock, --fresh that keeps the earlier snapshots."""
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from fast_rcnn.config import ConfigError, cfg, cfg_copy, cfg_from_file, cfg_from_list, cfg_to_dict, check_cfg
from fast_rcnn.train import (SolverError, SolverWrapper, TrainingDiverged, atomic_torch_save, find_snapshots,
                             load_snapshot, load_solver, tensors_checksum, train_net)
from tiny_training import CLASSES, TinyData, tiny_cfg, tiny_model, tiny_solver
from utils.atomic import DiskFullError, atomic_write, clean_stale_temps, temp_prefix
from utils.lock import LockedError, OutputLock

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _solver_file(tmp_path, body):
    p = tmp_path / 'solver.yml'
    p.write_text('net: TINY\n' + body)
    return str(p)


# ----------------------------------------------------------------------------- solver values
@pytest.mark.parametrize('line, message', [
    ('base_lr: .nan', r'base_lr: must be finite'),
    ('base_lr: 1.0e6', r'base_lr: out of range.*\[1e-12, 1.0\]'),
    ('base_lr: -0.5', r'base_lr: out of range'),
    ('base_lr: fast', r'base_lr: expected a number'),
    ('momentum: 1.5', r'momentum: out of range'),
    ('weight_decay: .inf', r'weight_decay: must be finite'),
    ('max_iter: 2.5', r'max_iter: expected an integer'),
    ('iter_size: 0', r'iter_size: out of range'),
    ('stepvalues: [300, 100]', r'stepvalues: must be increasing'),
    ('display: true', r'display: expected a number'),
    ('snapshot_prefix: ../x', r'snapshot_prefix: must be a file name'),
    ('frozen_layers: conv1', r'frozen_layers: expected a list'),
])
def test_bad_solver_values_are_refused_with_file_key_and_range(tmp_path, line, message):
    path = _solver_file(tmp_path, line + '\n')
    with pytest.raises(SolverError, match=r'solver\.yml: solver key ' + message):
        load_solver(path)


def test_caffe_style_exponent_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; Caffe's prototxt users write it so
    s = load_solver(_solver_file(tmp_path, 'base_lr: 1e-3\nmax_iter: 1.0e+4\n'))
    assert s['base_lr'] == 0.001 and s['max_iter'] == 10000 and isinstance(s['max_iter'], int)


# ----------------------------------------------------------------------------- cfg values
@pytest.mark.parametrize('key, value, message', [
    ('TRAIN.FG_FRACTION', '1e999', r'--set config key TRAIN.FG_FRACTION: must be a finite number'),
    ('TRAIN.FG_FRACTION', '1.5', r'TRAIN.FG_FRACTION: 1.5 is out of range \(allowed: \[0, 1\]\)'),
    ('TRAIN.SCALES', '[-400]', r'TRAIN.SCALES: \(-400,\) is out of range'),
    ('TRAIN.SCALES', '[]', r'TRAIN.SCALES: must not be empty'),
    ('TEST.NMS', 'nan', r'TEST.NMS'),                       # 'nan' is not a literal: a str where a float goes
    ('PIXEL_MEANS', '[[[1, 2, 1e999]]]', r'PIXEL_MEANS: must be a finite number'),
    ('TRAIN.RPN_POST_NMS_TOP_N', '0', r'out of range \(allowed: \[1, inf\] or -1\)'),
    ('RNG_SEED', '-1', r'RNG_SEED: -1 is out of range'),
])
def test_bad_cfg_values_are_refused_naming_set_and_key(key, value, message):
    c = cfg_copy(cfg)
    with pytest.raises(ConfigError, match=message):
        cfg_from_list([key, value], c)
    assert cfg_to_dict(c) == cfg_to_dict(cfg)  # nothing half-applied


def test_special_values_and_bounds_are_accepted():
    c = cfg_copy(cfg)
    cfg_from_list(['TRAIN.RPN_PRE_NMS_TOP_N', '-1', 'TRAIN.RPN_POSITIVE_WEIGHT', '-1', 'TRAIN.FG_FRACTION', '1',
                   'TRAIN.BG_THRESH_LO', '0'], c)
    assert c.TRAIN.RPN_PRE_NMS_TOP_N == -1 and c.TRAIN.FG_FRACTION == 1.0


def test_cfg_file_values_name_the_file(tmp_path):
    f = tmp_path / 'bad.yml'
    f.write_text('TRAIN:\n  FG_THRESH: .inf\n')
    with pytest.raises(ConfigError, match=r'bad\.yml: config key TRAIN\.FG_THRESH: must be a finite number'):
        cfg_from_file(str(f), cfg_copy(cfg))


def test_keys_that_must_agree_are_checked_together():
    c = cfg_copy(cfg)
    cfg_from_list(['TRAIN.BG_THRESH_LO', '0.6'], c)
    with pytest.raises(ConfigError, match='BG_THRESH_LO .* > TRAIN.BG_THRESH_HI'):
        check_cfg(c)


def test_an_option_after_set_is_explained():
    with pytest.raises(ConfigError, match=r'unknown config key: --iters \(an option after --set\?'):
        cfg_from_list(['--iters', '5'], cfg_copy(cfg))


# ----------------------------------------------------------------------------- divergence
class _NamedData(TinyData):
    """TinyData whose minibatches name their image, as RoIDataLayer's do."""

    def forward(self):
        blobs = super().forward()
        blobs['image_paths'] = ['img{}.jpg'.format(self.perm[self.cur - 1])]
        return blobs


def test_nan_learning_rate_stops_at_iteration_1_without_a_snapshot(tmp_path):
    c = tiny_cfg()
    solver = tiny_solver(warmup_iters=0)
    solver['base_lr'] = float('nan')  # past load_solver's check, as a library caller could
    with pytest.raises(TrainingDiverged, match=r'iteration 1: the update made weights NaN or Inf \(.*images: '
                                               r'img\d\.jpg, img\d\.jpg\).*No snapshot'):
        train_net(tiny_model(c), _NamedData(), str(tmp_path), solver, c, CLASSES, 1, resume=False)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('every_iteration', [True, False], ids=['cpu_check', 'gpu_device_flag'])
def test_weights_that_overflow_later_stop_the_run_before_the_next_snapshot(tmp_path, every_iteration):
    c = tiny_cfg()  # snapshots every 3 iterations
    solver = tiny_solver()
    m = tiny_model(c)
    sw = SolverWrapper(m, _NamedData(), str(tmp_path), solver, c, CLASSES)
    sw.check_every_iteration = every_iteration  # False: the GPU's path (a flag tensor read at display/snapshot)
    sw.train_model(3)
    step = sw.optimizer.step

    def overflowing_step(*a, **k):  # iteration 4's update overflows one weight
        step(*a, **k)
        with torch.no_grad():
            m.bbox_pred.weight[0, 0] = float('inf')
    sw.optimizer.step = overflowing_step
    with pytest.raises(TrainingDiverged, match=r'iteration 4: .*bbox_pred\.weight'):
        sw.train_model(6)
    assert [i for i, _ in find_snapshots(str(tmp_path), solver, c)] == [3]


def test_a_nan_loss_names_the_iteration_and_images(tmp_path):
    c = tiny_cfg()
    m = tiny_model(c)
    orig = m.forward
    m.forward = lambda *a, **k: {k2: v * float('nan') for k2, v in orig(*a, **k).items()}
    with pytest.raises(TrainingDiverged, match=r'iteration 1: the loss is nan .*images: img\d\.jpg'):
        train_net(m, _NamedData(), str(tmp_path), tiny_solver(), c, CLASSES, 2, resume=False)
    assert os.listdir(str(tmp_path)) == []


def _trained_snapshot(tmp_path, iters=3):
    c = tiny_cfg()
    return train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, iters, resume=False), c


def test_test_net_and_resume_refuse_non_finite_weights(tmp_path):
    from fast_rcnn.test import load_detector
    path, c = _trained_snapshot(tmp_path)
    snap = torch.load(path, weights_only=True)
    snap['model']['rpn_conv.weight'][0, 0, 0, 0] = float('nan')
    snap['checksum'] = tensors_checksum(snap)  # a well-formed file whose weights diverged
    torch.save(snap, path)
    with pytest.raises(ValueError, match=r'iter_3\.pth: the snapshot holds NaN or Inf weights \(rpn_conv\.weight'):
        load_detector(path)
    with pytest.raises(ValueError, match='none of the 1 snapshots there can be resumed'):
        train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 6, resume=True)


# ----------------------------------------------------------------------------- checksums
def test_a_changed_tensor_fails_the_checksum(tmp_path):
    path, _ = _trained_snapshot(tmp_path)
    snap = torch.load(path, weights_only=True)
    snap['model']['rpn_conv.weight'][0, 0, 0, 0] += 1e-3  # bytes changed on disk, the checksum not
    torch.save(snap, path)
    with pytest.raises(ValueError, match=r'iter_3\.pth: the checksum of its tensors does not match'):
        load_snapshot(path)


def test_byte_flips_anywhere_in_a_snapshot_are_refused_naming_the_file(tmp_path):
    path, _ = _trained_snapshot(tmp_path)
    raw = open(path, 'rb').read()
    rng = np.random.RandomState(0)
    for pos in list(rng.randint(0, len(raw), size=6)) + [len(raw) // 2]:
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        p = tmp_path / 'flipped.pth'
        p.write_bytes(bytes(bad))
        try:
            snap = load_snapshot(str(p))
        except ValueError as e:
            assert 'flipped.pth' in str(e)
        else:  # a flip in zip padding or an unused header field changes nothing that is loaded
            assert tensors_checksum(snap) == tensors_checksum(load_snapshot(path))


def test_damaged_newest_snapshot_resumes_from_the_one_before(tmp_path, capsys):
    c = tiny_cfg()
    train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 6, resume=False)
    newest = str(tmp_path / 't_iter_6.pth')
    with open(newest, 'r+b') as f:
        f.truncate(os.path.getsize(newest) // 2)  # a copy cut short
    last = train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 6, resume=True)
    out = capsys.readouterr().out
    assert 'Skipping ' in out and 't_iter_6.pth: not a loadable snapshot' in out
    assert 'Resuming from ' + str(tmp_path / 't_iter_3.pth') in out
    assert load_snapshot(last)['iter'] == 6


# ----------------------------------------------------------------------------- atomic writes, temp files, disk full
def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path):
    target = tmp_path / 'x.pth'
    target.write_bytes(b'previous')

    def fail(f):
        f.write(b'half')
        raise KeyboardInterrupt  # Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), fail)
    assert target.read_bytes() == b'previous' and os.listdir(str(tmp_path)) == ['x.pth']


def test_enospc_is_reported_naming_the_file(tmp_path):
    def full(f):
        raise OSError(28, 'No space left on device')

    with pytest.raises(DiskFullError, match='no space left on device while writing .*y.pth'):
        atomic_write(str(tmp_path / 'y.pth'), full)
    assert os.listdir(str(tmp_path)) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / 'disk'
    mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mnt)], stderr=subprocess.PIPE)
    if r.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: ' + r.stderr.decode(errors='replace').strip())
    try:
        yield str(mnt)
    finally:
        subprocess.run(['umount', '-l', str(mnt)])


def test_a_real_full_disk_keeps_the_previous_snapshot_and_says_so(tiny_disk):
    path = osp.join(tiny_disk, 'net_iter_1.pth')
    first = {'w': torch.ones(256, 1024)}  # 1 MiB
    atomic_torch_save(first, path)
    with pytest.raises(DiskFullError, match='no space left on device while writing ' + path):
        atomic_torch_save({'w': torch.ones(768, 1024)}, path)  # 3 MiB do not fit beside the first
    assert os.listdir(tiny_disk) == ['net_iter_1.pth']  # the temp file is gone, the disk usable again
    assert torch.equal(torch.load(path, weights_only=True)['w'], first['w'])


def _dead_pid():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    return p.pid


def test_temp_files_of_killed_writers_are_cleaned_and_live_ones_kept(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / '.a.pth.tmp-{}-{}-abc'.format(host, _dead_pid())
    live = tmp_path / (temp_prefix(str(tmp_path / 'b.pth')) + 'xyz')
    other_host = tmp_path / '.c.pth.tmp-elsewhere-1-abc'
    for p in (dead, live, other_host):
        p.write_bytes(b'x')
    assert clean_stale_temps(str(tmp_path)) == [str(dead)]
    assert sorted(os.listdir(str(tmp_path))) == sorted([live.name, other_host.name])


def test_training_removes_temp_files_left_by_a_killed_run(tmp_path, capsys):
    host = socket.gethostname()
    left = [tmp_path / '.t_iter_3.pth.tmp-{}-{}-q1'.format(host, _dead_pid()),
            tmp_path / 't_iter_3.pth.tmp.{}'.format(_dead_pid())]  # the earlier versions' naming
    for p in left:
        p.write_bytes(b'\0' * 100)
    _trained_snapshot(tmp_path, iters=3)
    assert sorted(os.listdir(str(tmp_path))) == ['t_iter_3.pth']
    assert capsys.readouterr().out.count('the temp file of a snapshot write that was killed') == 2


# ----------------------------------------------------------------------------- --fresh keeps earlier snapshots
def test_fresh_moves_earlier_snapshots_aside_and_deletes_nothing(tmp_path):
    c = tiny_cfg()
    train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 6, resume=False)
    before = {n: (tmp_path / n).read_bytes() for n in ('t_iter_3.pth', 't_iter_6.pth')}
    train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 3, resume=False)
    assert [i for i, _ in find_snapshots(str(tmp_path), tiny_solver(), c)] == [3]
    (aside,) = os.listdir(str(tmp_path / 'old'))
    for n, data in before.items():
        assert (tmp_path / 'old' / aside / n).read_bytes() == data


# ----------------------------------------------------------------------------- the output folder's lock
def test_a_second_run_is_refused_with_the_first_runs_pid_host_and_command(tmp_path):
    code = ('import sys; sys.path.insert(0, {lib!r}); from utils.lock import OutputLock, LockedError\n'
            'try:\n    OutputLock({d!r}, command="second").acquire()\n'
            'except LockedError as e:\n    print(e); sys.exit(3)\n').format(lib=osp.join(ROOT, 'lib'),
                                                                          d=str(tmp_path))
    with OutputLock(str(tmp_path), command='train_net.py --solver first.yml'):
        r = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, universal_newlines=True)
        assert r.returncode == 3
        assert 'in use by another run (pid {} on {}'.format(os.getpid(), socket.gethostname()) in r.stdout
        assert 'train_net.py --solver first.yml' in r.stdout
    assert not (tmp_path / '.lock').exists()  # released


def _write_lock(folder, **info):
    import json
    (folder / '.lock').write_text(json.dumps(info))


def test_a_stale_lock_of_this_host_is_taken_over(tmp_path):
    _write_lock(tmp_path, host=socket.gethostname(), pid=_dead_pid(), command='killed run')
    with OutputLock(str(tmp_path)) as lock:
        assert lock.took_over['command'] == 'killed run'
    # a live pid that is another process (pid reused): told apart by its start time
    _write_lock(tmp_path, host=socket.gethostname(), pid=os.getppid(), start_time='1', command='old')
    with OutputLock(str(tmp_path)) as lock:
        assert lock.took_over['command'] == 'old'


def test_another_hosts_lock_needs_force_unlock(tmp_path):
    _write_lock(tmp_path, host='other-host', pid=1, command='run elsewhere')
    with pytest.raises(LockedError, match=r'pid 1 on other-host.*run elsewhere.*pass --force-unlock'):
        OutputLock(str(tmp_path)).acquire()
    with OutputLock(str(tmp_path), force=True) as lock:
        assert lock.took_over['host'] == 'other-host'
