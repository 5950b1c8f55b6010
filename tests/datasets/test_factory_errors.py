"""get_imdb's one-line errors: close matches, the splits that exist, where to download VOC / COCO."""
import os.path as osp

import pytest

from datasets.factory import get_imdb
from datasets.imdb import DatasetNotFound
from voc_testutils import write_annotation, write_image, write_image_set


def _err(name):
    with pytest.raises(DatasetNotFound) as ei:
        get_imdb(name)
    msg = str(ei.value)
    assert '\n' not in msg and name.split(':')[0] in msg
    return msg


def test_unknown_name_suggests_close_matches():
    msg = _err('shapes_trainvall')
    assert 'did you mean shapes_trainval or shapes_train or shapes_val?' in msg  # best first
    # still a KeyError for callers that caught the old exception
    with pytest.raises(KeyError):
        get_imdb('shapes_trainvall')


def test_unknown_name_without_close_match_lists_names():
    msg = _err('qqqqqq')
    assert 'did you mean' not in msg and 'known: voc_2007_train' in msg


def test_missing_split_lists_existing(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    root = str(tmp_path / 'mine')
    write_annotation(root, 'a', [{'name': 'x', 'bbox': (1, 1, 5, 5)}])
    write_image(osp.join(root, 'JPEGImages', 'a.jpg'), 10, 10)
    write_image_set(root, 'train', ['a'])
    write_image_set(root, 'test', ['a'])
    msg = _err(root + ':tarin')
    assert "no split 'tarin'" in msg and '(splits: test, train, all;' in msg
    assert get_imdb(root + ':train').num_images == 1  # an existing split still loads


def test_voc_not_downloaded(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    msg = _err('voc_2007_trainval')
    assert osp.join(str(tmp_path / 'data'), 'VOCdevkit2007', 'VOC2007') in msg
    assert 'host.robots.ox.ac.uk/pascal/VOC/voc2007/' in msg


def test_coco_not_downloaded(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    msg = _err('coco_2014_minival')
    assert osp.join(str(tmp_path / 'data'), 'coco', 'annotations', 'instances_minival2014.json') in msg
    assert 'cocodataset.org' in msg
