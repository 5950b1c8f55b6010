"""The dead ends of issue 26: reval.py finds the dataset of a results folder, eval_recall.py needs proposals to
score (or a snapshot whose RPN makes them), --threads on reval/eval_recall, one-line errors."""
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest

import eval_recall  # tools/ is on sys.path (tests/conftest.py)
import reval

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'datasets'))
from voc_testutils import write_mini_set  # noqa: E402

AP_A = (6 + 5 * 2 / 3.) / 11   # see tests/datasets/test_tools_eval.py: 0.95 TP, 0.9 FP, 0.8 TP; 11-point
MEAN = (AP_A + 1) / 2


@pytest.fixture
def ds(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    root = str(tmp_path / 'mini')
    write_mini_set(root)
    return root


def _results(tmp_path, parent='mini_test'):
    """output/<EXP_DIR>/<imdb name>/<snapshot name>/detections.pkl, as test_net lays it out."""
    out = str(tmp_path / 'output' / 'default' / parent / 'tiny_iter_10')
    os.makedirs(out)
    e = []
    all_boxes = [[e, e], [np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9.5, 0.95]], np.float32),
                          np.array([[10, 10, 29, 29, 0.8]], np.float32)],
                 [np.array([[20, 20, 39, 39, 0.7]], np.float32), e]]
    with open(osp.join(out, 'detections.pkl'), 'wb') as f:
        pickle.dump(all_boxes, f)
    return out


def _factory_knows(monkeypatch, name, spec):
    """get_imdb(name) opens the folder dataset ``spec`` (as if ``name`` were a built-in dataset's name)."""
    import datasets.factory as factory
    real = factory.get_imdb
    monkeypatch.setattr(factory, 'get_imdb', lambda n, cfg=None: real(spec if n == name else n, cfg))


def test_reval_takes_the_dataset_from_the_folder_name(ds, tmp_path, monkeypatch, capsys):
    out = _results(tmp_path, 'mini_test')
    _factory_knows(monkeypatch, 'mini_test', ds + ':test')
    assert reval.main([out]) == pytest.approx(MEAN)
    text = capsys.readouterr().out
    assert 'Dataset: mini_test' in text and 'Mean AP = {:.4f}'.format(MEAN) in text
    assert 'MATLAB' not in text and '--matlab' not in text   # no recommendation of an evaluation we lack
    with open(osp.join(out, 'metrics.json')) as f:
        m = json.load(f)
    assert m['dataset'] == 'mini_test' and m['imdb'] == 'mini_test' and m['mean_ap'] == pytest.approx(MEAN)
    assert osp.isfile(osp.join(out, 'pr_curves.png'))


def test_reval_takes_the_dataset_from_metrics_json(ds, tmp_path, capsys):
    out = _results(tmp_path, 'not_a_dataset')
    # what test_net records: the name it was given (the folder made absolute) and the snapshot
    from fast_rcnn.test import portable_imdb_name
    spec = portable_imdb_name(osp.relpath(ds) + ':test')
    assert spec == ds + ':test'
    with open(osp.join(out, 'metrics.json'), 'w') as f:
        json.dump({'dataset': 'mini_test', 'imdb': spec, 'snapshot': '/snaps/tiny_iter_10.pth'}, f)
    assert reval.main([out]) == pytest.approx(MEAN)
    with open(osp.join(out, 'metrics.json')) as f:
        m = json.load(f)
    # rewritten with the new numbers, the snapshot kept
    assert m['snapshot'] == '/snaps/tiny_iter_10.pth' and m['imdb'] == spec
    assert m['ap'] == {'a': pytest.approx(AP_A), 'b': pytest.approx(1.0)}
    # --imdb still wins
    assert reval.main([out, '--imdb', ds + ':test', '--nms']) == pytest.approx(1.0)


def test_reval_unknown_dataset_is_one_line(ds, tmp_path, capsys):
    out = _results(tmp_path, 'nothing_known')
    assert reval.cli([out]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('reval.py: cannot tell which dataset {} holds'.format(out))
    assert err == ('reval.py: cannot tell which dataset {} holds the detections of (tried nothing_known (from the '
                   'name of the folder above {})); pass --imdb NAME\n'.format(out, out))
    assert reval.cli([str(tmp_path / 'nowhere')]) == 2
    assert capsys.readouterr().err == 'reval.py: no such folder: {}\n'.format(tmp_path / 'nowhere')
    assert reval.cli([out, '--imdb', 'voc_2099_nope']) == 2
    assert capsys.readouterr().err.startswith('reval.py: --imdb voc_2099_nope: Unknown dataset')
    with pytest.raises(SystemExit) as e:
        reval.parse_args([out, '--threads', '0'])
    assert e.value.code == 2
    assert capsys.readouterr().err == 'reval.py: --threads must be at least 1, got 0\n'


def test_reval_bad_pickle_is_one_line(ds, tmp_path, capsys):
    out = _results(tmp_path, 'x')
    with open(osp.join(out, 'detections.pkl'), 'wb') as f:
        f.write(b'not a pickle')
    assert reval.cli([out, '--imdb', ds + ':test']) == 1
    err = capsys.readouterr().err
    assert err.startswith('reval.py: ') and err.count('\n') == 1


def test_reval_threads(ds, tmp_path, monkeypatch):
    import torch
    seen = []
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: seen.append(n))
    out = _results(tmp_path, 'x')
    assert reval.main([out, '--imdb', ds + ':test', '--threads', '1']) == pytest.approx(MEAN)
    assert seen == [1]


def test_eval_recall_needs_proposals(capsys):
    with pytest.raises(SystemExit) as e:
        eval_recall.parse_args(['--imdb', 'shapes_test'])
    assert e.value.code == 2
    assert capsys.readouterr().err == ("eval_recall.py: no proposals to score: give --rpn-file FILE (from "
                                       "rpn_generate, or the original's .pkl) or --net SNAPSHOT\n")
    with pytest.raises(SystemExit) as e:
        eval_recall.parse_args(['--net', 'x.pth', '--rpn-file', 'p.npz'])
    assert e.value.code == 2
    # a method that reads its own files is still accepted
    assert eval_recall.parse_args(['--method', 'selective_search']).method == 'selective_search'


def test_eval_recall_unknown_dataset_is_one_line(capsys):
    assert eval_recall.cli(['--imdb', 'voc_2099_nope', '--rpn-file', 'p.npz']) == 2
    err = capsys.readouterr().err
    assert err.startswith('eval_recall.py: --imdb voc_2099_nope: Unknown dataset') and err.count('\n') == 1


def test_eval_recall_scores_a_snapshots_rpn(ds, tmp_path, monkeypatch, capsys):
    import torch
    import fast_rcnn.test
    from fast_rcnn.test import build_cfg
    cfg = build_cfg(None)
    # the RPN's proposals, in each image's pixels (the blob is the 50x50 image scaled to 600: x 12)
    props = [np.array([[0, 0, 9, 9], [20, 20, 39, 29]], np.float32), np.array([[10, 10, 27, 27]], np.float32)]

    class FakeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.calls = []

        def proposals(self, data, im_info):  # FasterRCNN.proposals: (rois (R, 5), scores (R, 1)) in blob pixels
            i = len(self.calls)
            self.calls.append((tuple(data.shape), [float(v) for v in im_info[0]]))
            boxes = props[i] * float(im_info[0][2])
            return np.hstack([np.zeros((len(boxes), 1), np.float32), boxes]), np.ones((len(boxes), 1), np.float32)

    net = FakeNet()
    monkeypatch.setattr(fast_rcnn.test, 'load_detector',
                        lambda path, files, sets, device: (net, cfg, ['__background__', 'a', 'b']))
    snap = tmp_path / 'tiny_iter_10.pth'
    snap.write_bytes(b'stands for a snapshot')
    res = eval_recall.main(['--imdb', ds + ':test', '--net', str(snap), '--threads', '1'])
    assert [c[1] for c in net.calls] == [[600, 600, 12], [600, 600, 12]]
    # as test_eval_recall's file: IoUs 0.5 (b), 0.81 (i1's a), 1 (i0's a); AR (1 + 6 * 2/3 + 3 * 1/3) / 10
    np.testing.assert_allclose(res['gt_overlaps'], [0.5, 0.81, 1.0], rtol=1e-6)
    assert res['ar'] == pytest.approx(0.6)
    out = capsys.readouterr().out
    assert 'Method: rpn of tiny_iter_10.pth' in out and 'Recall@0.9: 0.333' in out
    # a snapshot of other classes is one line
    monkeypatch.setattr(fast_rcnn.test, 'load_detector',
                        lambda path, files, sets, device: (net, cfg, ['__background__', 'x']))
    assert eval_recall.cli(['--imdb', ds + ':test', '--net', str(snap)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('eval_recall.py: {}: the model was trained on classes'.format(snap))
    assert eval_recall.cli(['--imdb', ds + ':test', '--net', str(tmp_path / 'none.pth')]) == 2
    assert capsys.readouterr().err == 'eval_recall.py: --net {}: no such file\n'.format(tmp_path / 'none.pth')
