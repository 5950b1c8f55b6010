"""The record a run leaves beside its snapshots: config.yml, train_log.jsonl (cut back on resume), loss.png,
log.txt, and the timestamped display lines."""
import json
import os
import os.path as osp
import re

import pytest
import yaml

from fast_rcnn.train import train_net
from tiny_training import CLASSES, TinyData, tiny_cfg, tiny_model, tiny_solver
from utils.train_record import TrainRecord, read_log


def _lr(i):
    # the tiny solver: poly (power 1, max_iter 4000) times the warm-up (5 iterations from 0.1), base_lr 0.01
    return 0.01 * (1 - i / 4000.0) * (0.1 + 0.9 * i / 5.0)


def test_a_run_writes_its_record_and_a_resume_cuts_the_log_back(tmp_path, capsys):
    c = tiny_cfg()
    out_dir = str(tmp_path)
    train_net(tiny_model(c), TinyData(), out_dir, tiny_solver(display=1), c, CLASSES, 4, resume=False, record=True)
    out = capsys.readouterr().out.strip().splitlines()
    conf = yaml.safe_load(open(osp.join(out_dir, 'config.yml')))
    assert conf['cfg']['TRAIN']['BATCH_SIZE'] == 32 and conf['cfg']['ANCHOR_SCALES'] == [2, 4]
    assert conf['solver']['base_lr'] == 0.01 and conf['solver']['type'] == 'Adam'
    log = read_log(osp.join(out_dir, 'train_log.jsonl'))
    assert [o['iteration'] for o in log] == [1, 2, 3, 4]
    # lr of the iteration's update: iteration 1 used lr(0) = 0.001, iteration 2 lr(1) = 0.01 * 0.99975 * 0.28
    assert log[0]['lr'] == pytest.approx(0.001, rel=1e-12) and log[1]['lr'] == pytest.approx(0.0027993, rel=1e-12)
    assert [o['lr'] for o in log] == pytest.approx([_lr(i) for i in range(4)], rel=1e-12)
    for o in log:
        assert set(o) == {'iteration', 'loss', 'losses', 'lr', 's_per_iter', 'time'}
        assert set(o['losses']) == {'rpn_loss_cls', 'rpn_loss_bbox', 'loss_cls', 'loss_bbox'}
        # the mean of the sums is the sum of the means (each over the same window)
        assert o['loss'] == pytest.approx(sum(o['losses'].values()), rel=1e-9)
    # the display lines carry a timestamp and the numbers of the log
    lines = [line for line in out if 'Iteration ' in line]
    assert len(lines) == 4
    assert re.match(r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Iteration 1, loss = %.4f \(' % log[0]['loss'], lines[0])
    png = open(osp.join(out_dir, 'loss.png'), 'rb').read()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    text = open(osp.join(out_dir, 'log.txt')).read().strip().splitlines()
    assert text == out  # a copy of what was printed, up to the last `Wrote snapshot to:`
    assert out[-1] == 'Wrote snapshot to: {}'.format(osp.join(out_dir, 't_iter_4.pth'))
    assert out[-2].startswith('Total training time: 0:00:') and '(4 iterations, ' in out[-2]

    # killed after iteration 4's log line, before its snapshot: the resumed run redoes 4 from snapshot 3
    os.remove(osp.join(out_dir, 't_iter_4.pth'))
    train_net(tiny_model(c), TinyData(), out_dir, tiny_solver(display=2), c, CLASSES, 6, resume=True, record=True)
    log2 = read_log(osp.join(out_dir, 'train_log.jsonl'))
    # 1-3 kept, then --display 2's lines at 4 and 6 (iteration 1's line is always printed, not a resumed 4)
    assert [o['iteration'] for o in log2] == [1, 2, 3, 4, 6]
    assert log2[:3] == log[:3]
    assert log2[3]['lr'] == pytest.approx(_lr(3), rel=1e-12)
    text2 = open(osp.join(out_dir, 'log.txt')).read()
    assert text2.count('Solving...') == 2 and 'Resuming from {}'.format(osp.join(out_dir, 't_iter_3.pth')) in text2


def test_train_record_start_keeps_lines_up_to_the_resumed_iteration(tmp_path):
    path = tmp_path / 'train_log.jsonl'
    path.write_text('{"iteration": 1, "loss": 2.0}\n{"iteration": 2, "val_map": 0.5}\n{"iteration": 3, "loss": 1.0}\n'
                    '{"iteration": 4, "lo')  # the last line cut short by a kill
    rec = TrainRecord(str(tmp_path))
    rec.start({'A': (1, 2)}, {'base_lr': 0.1}, 2)
    rec.log({'iteration': 3, 'loss': 0.5, 'losses': {'x': 0.5}})
    rec.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {'iteration': 1, 'loss': 2.0}, {'iteration': 2, 'val_map': 0.5},
        {'iteration': 3, 'loss': 0.5, 'losses': {'x': 0.5}}]
    assert yaml.safe_load((tmp_path / 'config.yml').read_text()) == {'cfg': {'A': [1, 2]},
                                                                    'solver': {'base_lr': 0.1}}
    assert rec.plot() == str(tmp_path / 'loss.png')  # two points with a loss
    assert (tmp_path / 'loss.png').read_bytes()[:4] == b'\x89PNG'


def test_a_record_of_another_process_writes_nothing(tmp_path):
    rec = TrainRecord(str(tmp_path / 'x'), enabled=False)
    rec.start({}, {}, 0)
    rec.log({'iteration': 1, 'loss': 1.0})
    assert rec.plot() is None and not osp.exists(str(tmp_path / 'x'))
