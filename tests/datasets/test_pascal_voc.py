"""pascal_voc: gt roidb, flipped boxes, caches that follow the data, results files and evaluation (hand cases)."""
import os
import os.path as osp

import numpy as np
import pytest

from datasets.pascal_voc import VOC_CLASSES, pascal_voc
from voc_testutils import write_annotation, write_image, write_image_set

DOG, CAT, PERSON = VOC_CLASSES.index('dog'), VOC_CLASSES.index('cat'), VOC_CLASSES.index('person')


def make_devkit(tmp_path, year='2007'):
    devkit = str(tmp_path / 'VOCdevkit{}'.format(year))
    root = osp.join(devkit, 'VOC' + year)
    write_annotation(root, '000001', [
        {'name': 'dog', 'bbox': (10, 20, 50, 60), 'difficult': 0},
        {'name': 'cat', 'bbox': (1, 1, 5, 8), 'difficult': 1},
        {'name': ' Person ', 'bbox': (1.5, 2.5, 30.5, 40.5), 'difficult': 0}], size=(100, 80))
    write_annotation(root, '000002', [{'name': 'dog', 'bbox': (0, 5, 20, 30), 'difficult': 0}], size=(60, 40))
    write_image(osp.join(root, 'JPEGImages', '000001.jpg'), 100, 80)
    write_image(osp.join(root, 'JPEGImages', '000002.jpg'), 60, 40)
    write_image_set(root, 'trainval', ['000001', '000002'])
    return devkit, root


def test_gt_roidb_hand(tmp_path):
    devkit, _ = make_devkit(tmp_path)
    d = pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    assert d.name == 'voc_2007_trainval' and d.num_classes == 21 and d.image_index == ['000001', '000002']
    r = d.gt_roidb()
    e = r[0]
    assert e['boxes'].dtype == np.float32
    # difficult cat dropped; VOC 1-based -> 0-based (minus 1); floats kept; name lower-cased and stripped
    np.testing.assert_array_equal(e['boxes'], np.array([[9, 19, 49, 59], [0.5, 1.5, 29.5, 39.5]], np.float32))
    np.testing.assert_array_equal(e['gt_classes'], [DOG, PERSON])
    assert e['gt_classes'].dtype == np.int32
    expected = np.zeros((2, 21), np.float32)
    expected[0, DOG] = expected[1, PERSON] = 1
    np.testing.assert_array_equal(e['gt_overlaps'], expected)
    np.testing.assert_allclose(e['seg_areas'], [41 * 41, 30 * 39])
    assert e['flipped'] is False
    # xmin = 0 (1-based) would be -1: clipped to 0, never a uint16 wrap to 65535
    np.testing.assert_array_equal(r[1]['boxes'], [[0, 4, 19, 29]])


def test_use_diff_read_when_loaded(tmp_path):
    devkit, _ = make_devkit(tmp_path)
    d = pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    d.config['use_diff'] = True  # after construction: still applies
    e = d.gt_roidb()[0]
    np.testing.assert_array_equal(e['gt_classes'], [DOG, CAT, PERSON])
    np.testing.assert_array_equal(e['boxes'][1], [0, 0, 4, 7])


def test_flipped_boxes(tmp_path):
    devkit, _ = make_devkit(tmp_path)
    d = pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    d.set_proposal_method('gt')
    d.append_flipped_images()  # widths from the images: 100 and 60
    assert d.num_images == 4 and d.image_index == ['000001', '000002'] * 2
    f = d.roidb[2]
    assert f['flipped'] is True
    # x1' = W - x2 - 1, x2' = W - x1 - 1
    np.testing.assert_array_equal(f['boxes'], np.array([[100 - 49 - 1, 19, 100 - 9 - 1, 59],
                                                        [100 - 29.5 - 1, 1.5, 100 - 0.5 - 1, 39.5]], np.float32))
    np.testing.assert_array_equal(d.roidb[3]['boxes'], [[60 - 19 - 1, 4, 60 - 0 - 1, 29]])
    np.testing.assert_array_equal(f['gt_classes'], d.roidb[0]['gt_classes'])
    assert d.image_path_at(2) == d.image_path_at(0)


def test_flipped_uses_get_widths(tmp_path, monkeypatch):
    devkit, _ = make_devkit(tmp_path)
    d = pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    d.set_proposal_method('gt')
    monkeypatch.setattr(d, '_get_widths', lambda: [200, 70])
    d.append_flipped_images()
    np.testing.assert_array_equal(d.roidb[2]['boxes'][0], [200 - 49 - 1, 19, 200 - 9 - 1, 59])


def test_caches_follow_the_data(tmp_path):
    """Edit an annotation, change the image set, change use_diff: every load sees the current data."""
    devkit, root = make_devkit(tmp_path)
    cache = str(tmp_path / 'cache')
    load = lambda: pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=cache)
    r = load().gt_roidb()
    assert len(r) == 2 and len(os.listdir(cache)) == 1
    # the same data loads from the cache
    assert np.array_equal(load().gt_roidb()[1]['boxes'], r[1]['boxes'])
    # 1. edit an annotation (same length of text: only the content differs)
    write_annotation(root, '000002', [{'name': 'cat', 'bbox': (9, 5, 20, 30), 'difficult': 0}], size=(60, 40))
    r = load().gt_roidb()
    np.testing.assert_array_equal(r[1]['boxes'], [[8, 4, 19, 29]])
    np.testing.assert_array_equal(r[1]['gt_classes'], [CAT])
    # 2. change the image set
    write_image_set(root, 'trainval', ['000002'])
    d = load()
    r = d.gt_roidb()
    assert d.image_index == ['000002'] and len(r) == 1
    np.testing.assert_array_equal(r[0]['gt_classes'], [CAT])
    # 3. change use_diff
    write_image_set(root, 'trainval', ['000001'])
    d = load()
    assert len(d.gt_roidb()[0]['gt_classes']) == 2
    d = load()
    d.config['use_diff'] = True
    assert len(d.gt_roidb()[0]['gt_classes']) == 3
    d = load()
    assert len(d.gt_roidb()[0]['gt_classes']) == 2


def test_cache_is_not_pickle(tmp_path):
    devkit, _ = make_devkit(tmp_path)
    cache = str(tmp_path / 'cache')
    pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=cache).gt_roidb()
    (f,) = os.listdir(cache)
    assert f.endswith('.npz')
    with np.load(osp.join(cache, f), allow_pickle=False) as z:
        assert 'boxes' in z.files
    # a corrupt cache is rebuilt, not trusted
    with open(osp.join(cache, f), 'wb') as fh:
        fh.write(b'garbage')
    assert len(pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=cache).gt_roidb()) == 2


def _all_boxes(num_images, dets):
    """dets: {class index: {image index: [[x1, y1, x2, y2, score], ...]}} (0-based boxes)."""
    all_boxes = [[[] for _ in range(num_images)] for _ in range(21)]
    for c, per_im in dets.items():
        for i, rows in per_im.items():
            all_boxes[c][i] = np.array(rows, np.float32)
    return all_boxes


@pytest.mark.parametrize('year,expected', [('2007', (8.5 / 11 + 0.5) / 20), ('2012', (0.75 + 0.5) / 20)])
def test_evaluate_detections_hand(tmp_path, capsys, year, expected):
    # the hand case of test_voc_eval, written 0-based through all_boxes
    devkit = str(tmp_path / 'VOCdevkit{}'.format(year))
    root = osp.join(devkit, 'VOC' + year)
    write_annotation(root, 'im1', [
        {'name': 'dog', 'bbox': (1, 1, 10, 10), 'difficult': 0},
        {'name': 'dog', 'bbox': (21, 21, 30, 30), 'difficult': 1},
        {'name': 'cat', 'bbox': (1, 1, 10, 10), 'difficult': 0}])
    write_annotation(root, 'im2', [{'name': 'dog', 'bbox': (1, 1, 20, 20), 'difficult': 0}])
    write_image_set(root, 'test', ['im1', 'im2'])
    d = pascal_voc('test', year, devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    d.competition_mode(True)  # no salt, keep the files
    all_boxes = _all_boxes(2, {
        DOG: {0: [[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.8], [20, 20, 29, 29, 0.7]],
              1: [[0, 0, 9, 9, 0.6], [0, 0, 19, 18, 0.5]]},
        CAT: {0: [[0, 0, 9, 19, 0.9], [0, 0, 9, 9, 0.3]]}})
    out = str(tmp_path / 'out')
    m = d.evaluate_detections(all_boxes, out)
    assert isinstance(m, float) and m == pytest.approx(expected)
    text = capsys.readouterr().out
    assert 'Mean AP = {:.4f}'.format(expected) in text
    assert 'AP for dog = {:.4f}'.format(8.5 / 11 if year == '2007' else 0.75) in text
    res = osp.join(devkit, 'results', 'VOC' + year, 'Main', 'comp4_det_test_dog.txt')
    with open(res) as f:
        lines = f.read().splitlines()
    assert lines[0] == 'im1 0.900 1.0 1.0 10.0 10.0'  # 1-based: + 1
    assert lines[-1] == 'im2 0.500 1.0 1.0 20.0 19.0'
    assert osp.exists(osp.join(out, 'dog_pr.npz'))


def test_results_files_salted_and_cleaned(tmp_path):
    devkit, root = make_devkit(tmp_path)
    d = pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    m = d.evaluate_detections(_all_boxes(2, {}), str(tmp_path / 'out'))
    assert m == 0.0
    assert os.listdir(osp.join(devkit, 'results', 'VOC2007', 'Main')) == []  # cleanup removed them


def test_selective_search_roidb_and_its_cache(tmp_path, cfg_copy):
    import scipy.io as sio
    import time
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    devkit, _ = make_devkit(tmp_path)
    os.makedirs(osp.join(cfg_copy.DATA_DIR, 'selective_search_data'))
    mat = osp.join(cfg_copy.DATA_DIR, 'selective_search_data', 'voc_2007_trainval.mat')

    def write_mat(first):
        # (y1, x1, y2, x2), 1-based; a duplicate and a box too thin for min_size 2 (w = x2 - x1 = 1)
        boxes = np.empty(2, dtype=object)
        boxes[0] = np.array([first, first, [5, 5, 30, 6], [1, 1, 40, 40]], np.float64)
        boxes[1] = np.array([[2, 3, 12, 13]], np.float64)
        sio.savemat(mat, {'boxes': boxes})

    write_mat([20, 10, 60, 50])
    load = lambda: pascal_voc('trainval', '2007', devkit_path=devkit, cache_dir=str(tmp_path / 'cache'))
    r = load().roidb  # the default handler: selective search merged with gt
    # gt first (2 boxes), then unique, large-enough proposals reordered to x1y1x2y2 minus 1
    np.testing.assert_array_equal(r[0]['boxes'][2:], [[9, 19, 49, 59], [0, 0, 39, 39]])
    np.testing.assert_array_equal(r[0]['gt_classes'], [12, 15, 0, 0])
    assert r[0]['gt_overlaps'][2, 12] == pytest.approx(1.0)  # the first proposal is the dog box
    np.testing.assert_array_equal(r[1]['boxes'][1:], [[2, 1, 12, 11]])
    time.sleep(0.01)
    write_mat([20, 10, 40, 30])  # new proposals: the cache must not serve the old ones
    np.testing.assert_array_equal(load().roidb[0]['boxes'][2], [9, 19, 29, 39])
