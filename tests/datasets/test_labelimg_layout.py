"""labelImg folders as labelImg writes them (no ImageSets): XML beside the images, or in a folder of their own;
'<path>:all' and tools/make_splits.py."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from datasets.factory import get_imdb
from datasets.imdb import DatasetNotFound
from voc_testutils import write_image, xml_for

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _write(folder, image_dir, ids):
    """ids a, b, c: a has 'disc' at (1,1)-(10,10) on 20x20, b has 'ring' (5,5)-(30,30) clipped to 20x20, c none."""
    objs = {'a': [{'name': 'disc', 'bbox': (1, 1, 10, 10)}], 'b': [{'name': 'ring', 'bbox': (5, 5, 30, 30)}],
            'c': []}
    os.makedirs(folder, exist_ok=True)
    for i in ids:
        write_image(osp.join(image_dir, i + '.jpg'), 20, 20)
        with open(osp.join(folder, i + '.xml'), 'w') as f:
            f.write(xml_for(objs[i], filename=i + '.jpg', size=(20, 20)))


@pytest.fixture
def data_dir(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    return tmp_path


def test_flat_folder_all(data_dir):
    root = str(data_dir / 'flat')
    _write(root, root, ['b', 'a', 'c'])
    d = get_imdb(root + ':all')
    assert d.name == 'flat_all' and d.image_index == ['a', 'b', 'c']
    assert d.classes == ('__background__', 'disc', 'ring')
    assert d.image_path_at(1) == osp.join(root, 'b.jpg')
    np.testing.assert_array_equal(d.roidb[0]['boxes'], [[0, 0, 9, 9]])
    np.testing.assert_array_equal(d.roidb[1]['boxes'], [[4, 4, 19, 19]])  # clipped at the border
    assert d.roidb[2]['boxes'].shape == (0, 4)
    with pytest.raises(DatasetNotFound, match=r"no split 'train'.*splits: all;"):
        get_imdb(root + ':train')


def test_xml_in_own_folder(data_dir):
    root = str(data_dir / 'sep')
    _write(osp.join(root, 'labels'), osp.join(root, 'images'), ['a', 'b'])
    d = get_imdb(root + ':all')
    assert d.image_index == ['a', 'b'] and d.image_path_at(0) == osp.join(root, 'images', 'a.jpg')
    np.testing.assert_array_equal(d.roidb[0]['gt_classes'], [1])


def _make_splits(*args):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'make_splits.py')] + list(args),
                          capture_output=True, text=True)


def test_make_splits(data_dir):
    root = str(data_dir / 'flat')
    ids = ['a', 'b', 'c']
    _write(root, root, ids)
    for k in range(7):  # 10 ids: a, b, c and a0..a6 (copies of a)
        write_image(osp.join(root, 'a{}.jpg'.format(k)), 20, 20)
        with open(osp.join(root, 'a{}.xml'.format(k)), 'w') as f:
            f.write(xml_for([{'name': 'disc', 'bbox': (1, 1, 10, 10)}], filename='a{}.jpg'.format(k)))
    r = _make_splits(root, '--test', '0.3', '--seed', '1')
    assert r.returncode == 0, r.stderr
    main = osp.join(root, 'ImageSets', 'Main')
    test = open(osp.join(main, 'test.txt')).read().split()
    trainval = open(osp.join(main, 'trainval.txt')).read().split()
    assert len(test) == 3 and len(trainval) == 7 and sorted(test + trainval) == sorted(
        ['a', 'b', 'c'] + ['a{}'.format(k) for k in range(7)])
    assert test == sorted(test)
    # deterministic: the same call again is a no-op; another seed differs and is refused without --force
    assert _make_splits(root, '--test', '0.3', '--seed', '1').returncode == 0
    r = _make_splits(root, '--test', '0.3', '--seed', '2')
    assert r.returncode == 1 and r.stderr.startswith('make_splits.py: ') and '--force' in r.stderr
    assert open(osp.join(main, 'test.txt')).read().split() == test
    assert _make_splits(root, '--test', '0.3', '--seed', '2', '--force').returncode == 0
    d = get_imdb(root + ':test')
    assert d.num_images == 3 and get_imdb(root + ':trainval').num_images == 7


def test_make_splits_errors(data_dir):
    r = _make_splits(str(data_dir), '--test', '1.5')
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0 and r.stderr.startswith('make_splits.py: ')
    r = _make_splits('--bogus')
    assert r.returncode == 2 and r.stderr.startswith('make_splits.py: ')
    os.makedirs(str(data_dir / 'empty'))
    r = _make_splits(str(data_dir / 'empty'))
    assert r.returncode == 1 and 'no XML annotations' in r.stderr


def test_xml_in_two_subfolders_is_an_error(data_dir):
    root = str(data_dir / 'two')
    _write(osp.join(root, 'labels'), osp.join(root, 'images'), ['a'])
    _write(osp.join(root, 'more'), osp.join(root, 'images'), ['b'])
    with pytest.raises(ValueError, match=r'several subfolders \(labels, more\)'):
        get_imdb(root + ':all')
