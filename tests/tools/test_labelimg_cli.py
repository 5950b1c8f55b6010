"""A folder as labelImg saves it (XML beside the images, no ImageSets) trained and tested through the tools, and
the dataset-name mistakes of train_net as one line."""
import glob
import os
import os.path as osp
import shutil

import pytest

from test_cli import SOLVER, _run
from tiny_training import make_voc_folder as _make_folder

pytestmark = pytest.mark.slow  # runs the tools end to end; `pytest -m "not slow"` skips it


def _flat_folder(path):
    _make_folder(path, ['box', 'plate'])
    for f in glob.glob(osp.join(path, 'JPEGImages', '*')) + glob.glob(osp.join(path, 'Annotations', '*.xml')):
        shutil.move(f, path)
    for d in ('JPEGImages', 'Annotations', 'ImageSets'):
        shutil.rmtree(osp.join(path, d))


def test_flat_labelimg_folder_trains_splits_and_tests(tmp_path):
    folder = str(tmp_path / 'flat')
    _flat_folder(folder)
    assert sorted(os.listdir(folder))[:2] == ['im000.jpg', 'im000.xml']
    solver = str(tmp_path / 'solver.yml')
    with open(solver, 'w') as f:
        f.write(SOLVER)
    sets = ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'), 'EXP_DIR', 'flat']
    rc, out = _run(['tools/train_net.py', '--solver', solver, '--imdb', folder + ':all', '--iters', '2',
                    '--threads', '1', '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml'] + sets)
    assert rc == 0, out
    assert 'flat_all: 5 images, 10 boxes' in out  # _make_folder: 5 images of 2 boxes each
    snap = out.strip().splitlines()[-1][len('Wrote snapshot to: '):]
    assert osp.isfile(snap)

    rc, out = _run(['tools/make_splits.py', folder, '--test', '0.4'])
    assert rc == 0, out
    with open(osp.join(folder, 'ImageSets', 'Main', 'test.txt')) as f:
        test_ids = f.read().split()
    assert len(test_ids) == 2 and not osp.exists(osp.join(folder, 'JPEGImages'))  # nothing moved

    rc, out = _run(['tools/test_net.py', '--net', snap, '--imdb', folder + ':test'] + sets)
    assert rc == 0, out
    assert 'Mean AP = ' in out
    metrics = glob.glob(osp.join(str(tmp_path), 'output', 'flat', 'flat_test', '*', 'metrics.json'))
    assert len(metrics) == 1


def test_dataset_name_mistakes_are_one_line(tmp_path):
    folder = str(tmp_path / 'flat')
    _flat_folder(folder)
    base = ['tools/train_net.py', '--solver', 'models/shapes/TINY/faster_rcnn_end2end/solver.yml', '--iters', '1',
            '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml']
    sets = ['--set', 'ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data')]
    rc, out = _run(base + ['--imdb', 'shapes_trainvall'] + sets)
    assert rc == 2 and 'Traceback' not in out, out
    assert out.strip().splitlines()[-1].startswith('train_net.py: ') and 'did you mean shapes_trainval' in out
    rc, out = _run(base + ['--imdb', folder + ':train'] + sets)
    assert rc == 2 and 'Traceback' not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith('train_net.py: ') and 'all' in last and 'make_splits' in last
