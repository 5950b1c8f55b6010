"""tools/plot_log.py and utils.plots: parsing train_net's text log (with and without time stamps), its jsonl log
and the original's Caffe log (hand-checked numbers), smoothing, and the PNG it writes."""
import os
import os.path as osp
import struct

import pytest

import plot_log  # tools/ is on sys.path (tests/conftest.py)
from utils.plots import draw_losses, parse_log, smooth

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

TEXT_LOG = """Called with args:
Namespace(solver='models/shapes/TINY/faster_rcnn_end2end/solver.yml')
[2026-12-05 19:30:01] Iteration 20, loss = 1.2345 (rpn_loss_cls = 0.1, rpn_loss_bbox = 0.2, loss_cls = 0.5, \
loss_bbox = 0.4345), lr = 0.001, 0.123 s/iter, ETA 0:01:00
Iteration 40, loss = 0.9 (rpn_loss_cls = 0.05, rpn_loss_bbox = 0.15, loss_cls = 0.4, loss_bbox = 0.3), \
lr = 0.0001, 0.120 s/iter, ETA 0:00:50
speed: 0.121s / iter
Wrote snapshot to output/x/tiny_iter_40.pth
"""

JSONL_LOG = """{"iteration": 20, "loss": 1.5, "losses": {"loss_cls": 1.0, "loss_bbox": 0.5}, "lr": 0.001, \
"s_per_iter": 0.1, "time": 1764962000.5}
{"iteration": 40, "loss": 1.25, "losses": {"loss_cls": 0.75, "loss_bbox": 0.5}, "lr": 0.001, \
"s_per_iter": 0.1, "time": 1764962002.5}
{"iteration": 40, "val_map": 0.625}
not json at all
{"iteration": 60, "loss": 1.0, "losses": {"loss_cls": 0.5, "loss_bbox": 0.5}, "lr": 0.0001, \
"s_per_iter": 0.1, "time": 1764962004.5}
"""

CAFFE_LOG = """I1205 12:00:00.000 12345 solver.cpp:228] Iteration 0, loss = 3.1
I1205 12:00:00.000 12345 solver.cpp:244]     Train net output #0: loss_bbox = 0.2 (* 1 = 0.2 loss)
I1205 12:00:00.000 12345 solver.cpp:244]     Train net output #1: loss_cls = 3 (* 1 = 3 loss)
I1205 12:00:00.000 12345 solver.cpp:244]     Train net output #2: rpn_cls_loss = 0.69 (* 1 = 0.69 loss)
I1205 12:00:00.000 12345 solver.cpp:244]     Train net output #3: rpn_loss_bbox = 0.05 (* 1 = 0.05 loss)
I1205 12:00:00.000 12345 sgd_solver.cpp:106] Iteration 0, lr = 0.001
I1205 12:00:10.000 12345 solver.cpp:228] Iteration 20, loss = 1.5
I1205 12:00:10.000 12345 solver.cpp:244]     Train net output #0: loss_bbox = 0.1 (* 1 = 0.1 loss)
I1205 12:00:10.000 12345 solver.cpp:244]     Train net output #1: loss_cls = 1.2 (* 1 = 1.2 loss)
I1205 12:00:10.000 12345 solver.cpp:244]     Train net output #2: rpn_cls_loss = 0.15 (* 1 = 0.15 loss)
I1205 12:00:10.000 12345 solver.cpp:244]     Train net output #3: rpn_loss_bbox = 0.05 (* 1 = 0.05 loss)
I1205 12:00:10.000 12345 sgd_solver.cpp:106] Iteration 20, lr = 0.0001
"""


def _write(tmp_path, name, text):
    p = str(tmp_path / name)
    with open(p, 'w') as f:
        f.write(text)
    return p


def test_parse_text_log_with_and_without_time_stamps(tmp_path):
    r = parse_log(_write(tmp_path, 'train.log', TEXT_LOG))
    assert r['losses'] == {'loss': [(20, 1.2345), (40, 0.9)], 'rpn_loss_cls': [(20, 0.1), (40, 0.05)],
                           'rpn_loss_bbox': [(20, 0.2), (40, 0.15)], 'loss_cls': [(20, 0.5), (40, 0.4)],
                           'loss_bbox': [(20, 0.4345), (40, 0.3)]}
    assert r['lr'] == [(20, 0.001), (40, 0.0001)] and r['val_map'] == []


def test_parse_jsonl_log(tmp_path):
    r = parse_log(_write(tmp_path, 'train_log.jsonl', JSONL_LOG))
    assert r['losses'] == {'loss': [(20, 1.5), (40, 1.25), (60, 1.0)],
                           'loss_bbox': [(20, 0.5), (40, 0.5), (60, 0.5)],
                           'loss_cls': [(20, 1.0), (40, 0.75), (60, 0.5)]}
    assert r['lr'] == [(20, 0.001), (40, 0.001), (60, 0.0001)]
    assert r['val_map'] == [(40, 0.625)]


def test_parse_caffe_log_names_its_losses_as_ours(tmp_path):
    r = parse_log(_write(tmp_path, 'caffe.log', CAFFE_LOG))
    assert r['losses'] == {'loss': [(0, 3.1), (20, 1.5)], 'loss_bbox': [(0, 0.2), (20, 0.1)],
                           'loss_cls': [(0, 3.0), (20, 1.2)], 'rpn_loss_cls': [(0, 0.69), (20, 0.15)],
                           'rpn_loss_bbox': [(0, 0.05), (20, 0.05)]}
    assert r['lr'] == [(0, 0.001), (20, 0.0001)]


def test_a_log_without_iterations_is_an_error_naming_it(tmp_path):
    p = _write(tmp_path, 'empty.log', 'Called with args:\nnothing here\n')
    with pytest.raises(ValueError, match='empty.log: no training iterations found'):
        parse_log(p)


def test_smooth_is_the_trailing_mean():
    assert smooth([1, 2, 3, 4], 2).tolist() == [1, 1.5, 2.5, 3.5]
    assert smooth([1, 2, 3, 4], 3).tolist() == [1, 1.5, 2, 3]
    assert smooth([1, 2, 3], 1).tolist() == [1, 2, 3]


def test_draw_losses_is_a_png():
    png = draw_losses({'loss': [(20, 1.5), (40, 1.0), (60, float('nan'))], 'loss_cls': [(20, 1.0)]}, 'run', 1)
    assert png[:8] == PNG_MAGIC and png[12:16] == b'IHDR'
    w, h = struct.unpack('>II', png[16:24])
    assert w > 300 and h > 200


def test_plot_log_compares_a_new_run_with_an_old_one(tmp_path, capsys):
    new = _write(tmp_path, 'train_log.jsonl', JSONL_LOG)
    old = _write(tmp_path, 'caffe.log', CAFFE_LOG)
    out = str(tmp_path / 'pics' / 'cmp.png')
    assert plot_log.main([new, old, '--out', out]) == 0
    with open(out, 'rb') as f:
        assert f.read(8) == PNG_MAGIC
    assert 'Wrote {} (8 curves)'.format(out) in capsys.readouterr().out  # 3 + 5 losses
    assert os.listdir(str(tmp_path / 'pics')) == ['cmp.png']
    series, val_map = plot_log.collect([new, old], only=['loss'])
    assert series == {'train_log.jsonl: loss': [(20, 1.5), (40, 1.25), (60, 1.0)],
                      'caffe.log: loss': [(0, 3.1), (20, 1.5)]}
    assert val_map == {'train_log.jsonl: validation mean AP': [(40, 0.625)]}


def test_plot_log_default_out_beside_the_log(tmp_path):
    log = _write(tmp_path, 'train.log', TEXT_LOG)
    assert plot_log.main([log]) == 0
    assert osp.isfile(str(tmp_path / 'train_loss.png'))


def test_plot_log_errors_are_one_line(tmp_path, capsys):
    assert plot_log.main([str(tmp_path / 'missing.log')]) == 2
    assert capsys.readouterr().err == 'plot_log.py: no such log file: {}\n'.format(tmp_path / 'missing.log')
    bad = _write(tmp_path, 'bad.log', 'hello\n')
    assert plot_log.main([bad]) == 1
    assert capsys.readouterr().err.startswith('plot_log.py: {}: no training iterations found'.format(bad))
    assert not osp.exists(str(tmp_path / 'bad_loss.png'))
    log = _write(tmp_path, 'train.log', TEXT_LOG)
    assert plot_log.main([log, '--only', 'nope']) == 1
    assert capsys.readouterr().err == 'plot_log.py: none of the losses nope is in {}\n'.format(log)
    with pytest.raises(SystemExit) as e:
        plot_log.main([log, '--window', '0'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == 'plot_log.py: --window must be at least 1, got 0\n'
