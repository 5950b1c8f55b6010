"""test_net's evaluation report: metrics.json, the per-class AP table and pr_curves.png, from a hand-worked
evaluation of a two-class folder dataset; and test_net itself leaving them beside detections.pkl."""
import json
import os
import os.path as osp
import struct
import sys

import cv2
import numpy as np
import pytest

from fast_rcnn import test as frt

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'datasets'))
from voc_testutils import write_mini_set  # noqa: E402

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# class a (11-point metric): dets by score 0.95 TP, 0.9 FP (a duplicate), 0.8 TP -> rec [.5 .5 1],
# prec [1 .5 2/3]; max precision at recall >= t: 1 for t = 0 .. 0.5 (6 points), 2/3 for t = 0.6 .. 1 (5 points)
AP_A = (6 + 5 * 2 / 3.) / 11            # 0.848484...
AP_B = 1.0                              # its one object found by its one detection


@pytest.fixture
def ds(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    root = str(tmp_path / 'mini')
    write_mini_set(root)
    from datasets.factory import get_imdb
    return get_imdb(root + ':test')


def _boxes():
    e = np.zeros((0, 5), np.float32)
    return [[e, e], [np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9.5, 0.95]], np.float32),
                     np.array([[10, 10, 29, 29, 0.8]], np.float32)],
            [np.array([[20, 20, 39, 39, 0.7]], np.float32), e]]


def _png_size(data):
    assert data[:8] == PNG_MAGIC and data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


def test_evaluate_and_report_writes_metrics_table_and_curves(ds, tmp_path, capsys):
    out = str(tmp_path / 'out')
    snap = str(tmp_path / 'snaps' / 'tiny_iter_10.pth')
    m = frt.evaluate_and_report(ds, _boxes(), out, snap)
    assert m == pytest.approx((AP_A + AP_B) / 2)
    with open(osp.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    assert metrics == {'dataset': ds.name, 'imdb': None, 'metric': 'voc07_11point', 'snapshot': snap,
                       'mean_ap': pytest.approx((AP_A + AP_B) / 2),
                       'ap': {'a': pytest.approx(AP_A), 'b': pytest.approx(AP_B)}}
    assert list(metrics['ap']) == ['a', 'b']  # the dataset's class order
    text = capsys.readouterr().out
    # the line other tools parse keeps its form; the aligned table follows
    assert 'Mean AP = {:.4f}\n'.format((AP_A + AP_B) / 2) in text
    assert ('class      AP\n'
            '-------------\n'
            'a      0.8485\n'
            'b      1.0000\n'
            '-------------\n'
            'mean   0.9242\n') in text
    assert 'MATLAB' not in text and '--matlab' not in text
    with open(osp.join(out, 'pr_curves.png'), 'rb') as f:
        w, h = _png_size(f.read())
    assert w > 200 and h > 200
    im = cv2.imread(osp.join(out, 'pr_curves.png'))
    assert im is not None and im.shape[:2] == (h, w)
    # nothing else left in the folder but the evaluation's own files (no temp files)
    assert sorted(os.listdir(out)) == ['a_pr.npz', 'b_pr.npz', 'metrics.json', 'pr_curves.png', 'results']


def test_last_eval_holds_the_curves(ds, tmp_path):
    ds.evaluate_detections(_boxes(), str(tmp_path / 'o'))
    last = ds.last_eval
    assert last['metric'] == 'voc07_11point' and last['classes'] == ['a', 'b']
    rec, prec = last['curves']['a']
    np.testing.assert_allclose(rec, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 2 / 3.])
    with np.load(osp.join(str(tmp_path / 'o'), 'a_pr.npz')) as z:  # the same numbers as the npz
        np.testing.assert_allclose(z['rec'], rec)
        assert float(z['ap']) == pytest.approx(last['ap']['a'])


def test_area_metric_is_named(ds, tmp_path, monkeypatch):
    monkeypatch.setattr(type(ds), '_use_07_metric', lambda self: False)
    frt.evaluate_and_report(ds, _boxes(), str(tmp_path / 'o'))
    with open(osp.join(str(tmp_path / 'o'), 'metrics.json')) as f:
        metrics = json.load(f)
    # class a, area under the envelope: recall 0 -> .5 at precision 1, .5 -> 1 at 2/3
    assert metrics['metric'] == 'area' and metrics['snapshot'] is None
    assert metrics['ap']['a'] == pytest.approx(0.5 + 0.5 * 2 / 3.)


def test_no_last_eval_writes_nothing(tmp_path):
    class Imdb:
        name = 'x'

        def evaluate_detections(self, all_boxes, output_dir):
            return 0.25
    out = str(tmp_path / 'o')
    assert frt.evaluate_and_report(Imdb(), [], out) == 0.25
    assert not osp.exists(out)


def test_coco_style_metrics():
    last = {'metric': 'coco', 'dataset': 'coco_2014_minival', 'mean_ap': 0.5,
            'coco': {'AP': 0.5, 'AP50': 0.75, 'AR_100': float('nan')}}
    m = frt.eval_metrics(last, None)
    assert m == {'dataset': 'coco_2014_minival', 'imdb': None, 'metric': 'coco', 'mean_ap': 0.5, 'snapshot': None,
                 'coco': {'AP': 0.5, 'AP50': 0.75, 'AR_100': None}}


def test_ap_table_aligns_long_names():
    t = frt.ap_table([('x', 0.5), ('a_long_name', 0.25)], 0.375).splitlines()
    assert t == ['class            AP', '-' * 19, 'x            0.5000', 'a_long_name  0.2500', '-' * 19,
                 'mean         0.3750']


def test_test_net_leaves_metrics_beside_detections(tmp_path):
    import torch
    from fast_rcnn.config import cfg, cfg_copy
    from nets.faster_rcnn import FasterRCNN
    c = cfg_copy(cfg)
    c.TEST.SCALES = (64,)
    c.TEST.MAX_SIZE = 200
    c.TEST.RPN_PRE_NMS_TOP_N = 100
    c.TEST.RPN_POST_NMS_TOP_N = 10
    c.TEST.RPN_MIN_SIZE = 2
    c.ANCHOR_SCALES = (2, 4)
    c.FEAT_STRIDE = 8
    torch.manual_seed(0)
    net = FasterRCNN('TINY', 3, c).eval()
    path = str(tmp_path / 'im0.png')
    cv2.imwrite(path, np.full((40, 60, 3), 90, np.uint8))

    class Imdb:
        name = 'fake_test'
        classes = ('__background__', 'a', 'b')
        num_classes = 3
        image_index = ['im0']

        def image_path_at(self, i):
            return path

        def evaluate_detections(self, all_boxes, output_dir):
            self.last_eval = {'metric': 'area', 'mean_ap': 0.5, 'ap': {'a': 0.25, 'b': 0.75},
                              'curves': {'a': (np.array([0.5]), np.array([0.5])),
                                         'b': (np.array([]), np.array([]))}}
            return 0.5
    out = str(tmp_path / 'out')
    assert frt.test_net(net, Imdb(), thresh=0.0, cfg=c, output_dir=out, snapshot='snap.pth',
                        imdb_spec='fake_test') == 0.5
    with open(osp.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    assert metrics == {'dataset': 'fake_test', 'imdb': 'fake_test', 'metric': 'area', 'mean_ap': 0.5,
                       'ap': {'a': 0.25, 'b': 0.75}, 'snapshot': osp.abspath('snap.pth')}
    assert sorted(os.listdir(out)) == ['detections.pkl', 'metrics.json', 'pr_curves.png']
    with open(osp.join(out, 'pr_curves.png'), 'rb') as f:
        assert f.read(8) == PNG_MAGIC
