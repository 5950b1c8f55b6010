"""Stopping on SIGINT/SIGTERM with a snapshot that resumes exactly, and resuming only from snapshots whose cfg and
solver match the run's (the others moved aside with a one-line note)."""
import os
import os.path as osp
import signal

import pytest
import torch

from fast_rcnn.train import (TrainingInterrupted, find_snapshots, load_snapshot, snapshot_differences, train_net)
from tiny_training import CLASSES, SignalingData, TinyData, tiny_cfg, tiny_model, tiny_solver


def _same_weights(a, b):
    sa, sb = load_snapshot(a), load_snapshot(b)
    assert sa['iter'] == sb['iter']
    for k in sa['model']:
        assert torch.equal(sa['model'][k], sb['model'][k]), k
    for key in ('history', 'history2'):
        for ha, hb in zip(sa['optimizer'][key], sb['optimizer'][key]):
            assert torch.equal(ha, hb)


def test_sigint_stops_with_a_snapshot_that_resumes_bit_identically(tmp_path, capsys):
    c = tiny_cfg()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job of a shell
    straight = train_net(tiny_model(c), TinyData(), str(tmp_path / 'a'), tiny_solver(), c, CLASSES, 6,
                         resume=False)
    b_dir = str(tmp_path / 'b')
    # iter_size 2: forward() 7 is the first minibatch of iteration 4; two signals in a row, the second ignored
    with pytest.raises(TrainingInterrupted) as info:
        train_net(tiny_model(c), SignalingData(at=7, times=2), b_dir, tiny_solver(), c, CLASSES, 6, resume=False)
    assert info.value.signum == signal.SIGINT and info.value.iteration == 4
    assert osp.basename(info.value.path) == 't_iter_4.pth'
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == 'Wrote snapshot to: {}'.format(info.value.path)
    assert out[-2].startswith('Total training time: ')
    assert out.count('Stopped by SIGINT after iteration 4; writing its snapshot (further signals are ignored until '
                     'it is written)') == 1
    # SNAPSHOT_ITERS 3: the periodic one at 3 and the one of the stop at 4
    assert [i for i, _ in find_snapshots(b_dir, tiny_solver(), c)] == [3, 4]
    assert load_snapshot(info.value.path)['iter'] == 4
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
    resumed = train_net(tiny_model(c, seed=5), TinyData(), b_dir, tiny_solver(), c, CLASSES, 6, resume=True)
    assert 'Resuming from {}'.format(info.value.path) in capsys.readouterr().out
    _same_weights(straight, resumed)


def test_sigterm_during_a_snapshot_write_still_writes_it_intact(tmp_path, monkeypatch):
    import fast_rcnn.train as train
    c = tiny_cfg()
    c.TRAIN.SNAPSHOT_ITERS = 2
    real_save = train.atomic_torch_save
    sent = []

    def save_under_fire(obj, path):  # a SIGTERM while the periodic snapshot of iteration 2 is written
        if not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGTERM)
        real_save(obj, path)
    monkeypatch.setattr(train, 'atomic_torch_save', save_under_fire)
    with pytest.raises(TrainingInterrupted) as info:
        train_net(tiny_model(c), TinyData(), str(tmp_path), tiny_solver(), c, CLASSES, 6, resume=False)
    # the signal came during iteration 2's snapshot: the run stops there, without writing it a second time
    assert info.value.signum == signal.SIGTERM and info.value.iteration == 2
    assert osp.basename(sent[0]) == 't_iter_2.pth' == osp.basename(info.value.path)
    assert load_snapshot(info.value.path)['iter'] == 2  # the checksum verifies
    assert [i for i, _ in find_snapshots(str(tmp_path), tiny_solver(), c)] == [2]


def test_snapshot_differences_ignore_what_does_not_change_training():
    c = tiny_cfg()
    s = tiny_solver(lr_policy='step', stepsize=1000)
    from fast_rcnn.config import cfg_copy, cfg_to_dict
    snap = {'cfg': cfg_to_dict(c), 'solver': dict(s)}
    other = cfg_copy(c)
    other.DEVICE, other.GPU_ID, other.DATA_DIR, other.EXP_DIR = 'cuda:1', 1, '/elsewhere', 'x'
    other.TRAIN.SNAPSHOT_ITERS = 77
    other.TEST.NMS = 0.5
    s2 = dict(s, display=5, max_iter=123, snapshot=9, average_loss=3, path='/x/solver.yml')
    assert snapshot_differences(snap, other, s2) == []
    other.TRAIN.FG_FRACTION = 0.5
    s2['base_lr'] = 0.5
    assert snapshot_differences(snap, other, s2) == ['TRAIN.FG_FRACTION 0.25 -> 0.5', 'solver.base_lr 0.01 -> 0.5']
    # a solver key that an older snapshot lacks counts as its default; a cfg key of another version is not compared
    old_snap = {'cfg': dict(cfg_to_dict(c), OLD_KEY=1), 'solver': {k: v for k, v in s.items() if k != 'power'}}
    assert snapshot_differences(old_snap, c, s) == []
    assert snapshot_differences(old_snap, c, dict(s, power=2.0)) == ['solver.power 1.0 -> 2.0']
    # under lr_policy poly max_iter sets the learning rate: it counts
    s3 = dict(s, lr_policy='poly')
    snap3 = {'cfg': cfg_to_dict(c), 'solver': dict(s3)}
    assert snapshot_differences(snap3, c, dict(s3, max_iter=123)) == ['solver.max_iter {} -> 123'.format(
        s3['max_iter'])]


def test_a_snapshot_of_another_cfg_is_moved_aside_and_the_run_starts_fresh(tmp_path, capsys):
    c = tiny_cfg()
    out_dir = str(tmp_path)
    train_net(tiny_model(c), TinyData(), out_dir, tiny_solver(display=1), c, CLASSES, 3, resume=False, record=True)
    assert osp.isfile(osp.join(out_dir, 'loss.png'))
    capsys.readouterr()
    c2 = tiny_cfg()
    c2.TRAIN.FG_FRACTION = 0.5
    last = train_net(tiny_model(c2), TinyData(), out_dir, tiny_solver(), c2, CLASSES, 3, resume=True, record=True)
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if line.startswith('Not resuming from ')]
    old = os.listdir(osp.join(out_dir, 'old'))
    assert len(note) == 1 and len(old) == 1
    aside = osp.join(out_dir, 'old', old[0])
    assert note[0] == 'Not resuming from {}: TRAIN.FG_FRACTION 0.25 -> 0.5; moved it to {} and starting ' \
                      'fresh'.format(osp.join(out_dir, 't_iter_3.pth'), aside)
    assert 'Resuming from' not in out
    # the old run's snapshot and record are kept aside; the new run trained from iteration 0 to 3
    assert sorted(os.listdir(aside)) == ['config.yml', 'loss.png', 't_iter_3.pth', 'train_log.jsonl']
    assert load_snapshot(osp.join(aside, 't_iter_3.pth'))['cfg']['TRAIN']['FG_FRACTION'] == 0.25
    assert load_snapshot(last)['cfg']['TRAIN']['FG_FRACTION'] == 0.5 and load_snapshot(last)['iter'] == 3


def test_the_newest_matching_snapshot_is_resumed_and_newer_other_ones_moved(tmp_path, capsys):
    c = tiny_cfg()
    out_dir = str(tmp_path)
    train_net(tiny_model(c), TinyData(), out_dir, tiny_solver(), c, CLASSES, 3, resume=False)
    # a snapshot at 6 of another solver (base_lr) in the same folder, under the same name pattern
    snap6 = osp.join(out_dir, 't_iter_6.pth')
    other = str(tmp_path / 'other')
    train_net(tiny_model(c), TinyData(), other, tiny_solver(base_lr=0.005), c, CLASSES, 6, resume=False)
    os.replace(osp.join(other, 't_iter_6.pth'), snap6)
    capsys.readouterr()
    last = train_net(tiny_model(c), TinyData(), out_dir, tiny_solver(), c, CLASSES, 6, resume=True)
    out = capsys.readouterr().out
    assert 'Not resuming from {}: solver.base_lr 0.005 -> 0.01; moved it to '.format(snap6) in out
    assert 'Resuming from {}'.format(osp.join(out_dir, 't_iter_3.pth')) in out
    assert load_snapshot(last)['solver']['base_lr'] == 0.01 and load_snapshot(last)['iter'] == 6
