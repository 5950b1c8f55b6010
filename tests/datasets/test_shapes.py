"""The built-in shapes dataset: deterministic, VOC layout, atomic generation, loadable as shapes_<split>."""
import hashlib
import os
import os.path as osp

import numpy as np
import pytest

from datasets import shapes
from datasets.voc_eval import parse_rec


def _digest(folder):
    h = hashlib.sha1()
    for sub in ('Annotations', 'JPEGImages', osp.join('ImageSets', 'Main')):
        for f in sorted(os.listdir(osp.join(folder, sub))):
            h.update(f.encode())
            with open(osp.join(folder, sub, f), 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_deterministic_and_seeded(tmp_path):
    a = shapes.generate_atomic(str(tmp_path / 'a'), seed=1, num_trainval=4, num_test=2, verbose=False)
    b = shapes.generate_atomic(str(tmp_path / 'b'), seed=1, num_trainval=4, num_test=2, workers=2, verbose=False)
    c = shapes.generate_atomic(str(tmp_path / 'c'), seed=2, num_trainval=4, num_test=2, verbose=False)
    assert _digest(a) == _digest(b) != _digest(c)


def test_layout_and_content(tmp_path):
    out = shapes.generate_atomic(str(tmp_path / 's'), seed=0, num_trainval=12, num_test=4, verbose=False)
    with open(osp.join(out, 'classes.txt')) as f:
        classes = f.read().split()
    assert len(classes) >= 6 and len(set(classes)) == len(classes)
    with open(osp.join(out, 'ImageSets', 'Main', 'trainval.txt')) as f:
        trainval = f.read().split()
    with open(osp.join(out, 'ImageSets', 'Main', 'test.txt')) as f:
        test = f.read().split()
    assert len(trainval) == 12 and len(test) == 4 and not set(trainval) & set(test)
    import PIL.Image
    for i in trainval + test:
        objs = parse_rec(osp.join(out, 'Annotations', i + '.xml'))
        assert 1 <= len(objs) <= 8
        w, h = PIL.Image.open(osp.join(out, 'JPEGImages', i + '.jpg')).size
        assert 300 <= w <= 500 and 300 <= h <= 500
        for o in objs:
            assert o['name'] in classes
            x1, y1, x2, y2 = o['bbox']
            assert 1 <= x1 <= x2 <= w and 1 <= y1 <= y2 <= h


def test_default_counts():
    assert shapes.DEFAULT_NUM_TRAINVAL >= 500 and shapes.DEFAULT_NUM_TEST >= 200


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real = shapes._gen_one
    calls = []

    def dying(args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed halfway
        return real(args)

    monkeypatch.setattr(shapes, '_gen_one', dying)
    out = str(tmp_path / 'shapes')
    with pytest.raises(KeyboardInterrupt):
        shapes.generate_atomic(out, seed=0, num_trainval=4, num_test=2, verbose=False)
    assert not osp.exists(out)
    assert [f for f in os.listdir(str(tmp_path)) if not f.endswith('.lock')] == []
    monkeypatch.setattr(shapes, '_gen_one', real)
    shapes.generate_atomic(out, seed=0, num_trainval=4, num_test=2, verbose=False)
    assert shapes.is_complete(out)


def test_shapes_imdb(tmp_path, cfg_copy, capsys):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    shapes.generate_atomic(osp.join(cfg_copy.DATA_DIR, 'shapes'), seed=0, num_trainval=6, num_test=3,
                           verbose=False)
    from datasets.factory import get_imdb
    d = get_imdb('shapes_test')
    assert d.name == 'shapes_test' and d.num_images == 3
    assert d.classes == ('__background__',) + shapes.CLASSES
    r = d.roidb
    # perfect detections give mAP 1 with the VOC07 metric (difficult objects are ignored)
    all_boxes = [[[] for _ in range(3)] for _ in d.classes]
    for i, e in enumerate(r):
        for b, c in zip(e['boxes'], e['gt_classes']):
            row = np.append(b, 0.9)[None].astype(np.float32)
            all_boxes[c][i] = row if len(all_boxes[c][i]) == 0 else np.vstack([all_boxes[c][i], row])
    m = d.evaluate_detections(all_boxes, str(tmp_path / 'out'))
    out = capsys.readouterr().out
    assert 'VOC07 metric? Yes' in out
    present = {c for e in r for c in e['gt_classes']}
    # classes absent from 3 images score 0 (nothing to find, nothing found)
    assert m == pytest.approx(len(present) / (d.num_classes - 1))


def _gen_in_child(out):
    shapes.generate_atomic(out, seed=3, num_trainval=4, num_test=2, verbose=False)


def test_two_processes_do_not_collide(tmp_path):
    import multiprocessing as mp
    out = str(tmp_path / 'shapes')
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_gen_in_child, args=(out,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert shapes.is_complete(out)
    assert sorted(os.listdir(str(tmp_path))) == ['.shapes.lock', 'shapes']  # no temp folders left


def test_colour_does_not_tell_the_class(tmp_path):
    """A nearest-class-mean classifier on each object's mean colour stays near chance (1/6)."""
    import cv2
    out = shapes.generate_atomic(str(tmp_path / 's'), seed=5, num_trainval=40, num_test=1, verbose=False)
    feats, labels = [], []
    for i in range(1, 41):
        iid = '{:06d}'.format(i)
        im = cv2.imread(osp.join(out, 'JPEGImages', iid + '.jpg')).astype(np.float64)
        for o in parse_rec(osp.join(out, 'Annotations', iid + '.xml')):
            x1, y1, x2, y2 = [int(v) - 1 for v in o['bbox']]
            cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 6 + 1, (y2 - y1) // 6 + 1
            feats.append(im[cy - h:cy + h + 1, cx - w:cx + w + 1].reshape(-1, 3).mean(0))
            labels.append(shapes.CLASSES.index(o['name']))
    feats, labels = np.array(feats), np.array(labels)
    assert len(labels) > 120
    means = np.stack([feats[labels == c].mean(0) for c in range(len(shapes.CLASSES))])
    pred = np.argmin(((feats[:, None, :] - means[None]) ** 2).sum(-1), 1)
    acc = (pred == labels).mean()
    assert acc < 0.3, acc
