"""imdb base: proposal roidbs, merging, evaluate_recall (hand cases); the factory's names and joins."""
import numpy as np
import pytest

from datasets.factory import get_imdb, list_imdbs
from datasets.imdb import imdb


class Tiny(imdb):
    def __init__(self):
        imdb.__init__(self, 'tiny', ('__background__', 'a', 'b'))
        self._image_index = ['0']
        ov = np.zeros((2, 3), np.float32)
        ov[0, 1] = ov[1, 2] = 1
        self._gt = [{'boxes': np.array([[0, 0, 9, 9], [20, 20, 39, 39]], np.float32),
                     'gt_classes': np.array([1, 2], np.int32), 'gt_overlaps': ov, 'flipped': False,
                     'seg_areas': np.array([100, 400], np.float32)}]
        self._roidb_handler = lambda: self._gt


CANDS = np.array([[0, 0, 9, 9], [20, 20, 39, 29], [0, 0, 4, 9], [50, 50, 60, 60]], np.float32)


def test_create_and_merge():
    d = Tiny()
    r = d.create_roidb_from_box_list([CANDS], d.roidb)
    # IoUs: c0-g0 1, c1-g1 200/400, c2-g0 50/100, c3 none; put in the column of the best gt's class
    np.testing.assert_allclose(r[0]['gt_overlaps'], [[0, 1, 0], [0, 0, 0.5], [0, 0.5, 0], [0, 0, 0]])
    np.testing.assert_array_equal(r[0]['gt_classes'], 0)
    m = imdb.merge_roidbs(d.roidb, r)
    assert m[0]['boxes'].shape == (6, 4)
    np.testing.assert_array_equal(m[0]['gt_classes'], [1, 2, 0, 0, 0, 0])
    np.testing.assert_array_equal(m[0]['boxes'][2:], CANDS)
    assert m[0]['gt_overlaps'].shape == (6, 3) and m[0]['seg_areas'].shape == (6,)


def test_evaluate_recall_hand():
    d = Tiny()
    res = d.evaluate_recall(candidate_boxes=[CANDS])
    # greedy: g0 <- c0 (1.0), then g1 <- c1 (0.5); recall 1 at t = 0.5, 0.5 at t = 0.55 .. 0.95
    np.testing.assert_allclose(res['gt_overlaps'], [0.5, 1.0])
    np.testing.assert_allclose(res['recalls'], [1.0] + [0.5] * 9)
    assert res['ar'] == pytest.approx(0.55)
    assert len(res['thresholds']) == 10
    # limit to the first candidate: only g0 is found
    assert d.evaluate_recall(candidate_boxes=[CANDS], limit=1)['ar'] == pytest.approx(0.5)
    # 'large' (area >= 96^2): no gt -> nan, as the original
    assert np.isnan(d.evaluate_recall(candidate_boxes=[CANDS], area='large')['ar'])
    with pytest.raises(ValueError):
        d.evaluate_recall(area='huge')


def test_factory_names():
    names = list_imdbs()
    for n in ['voc_2007_trainval', 'voc_2007_test', 'voc_2012_train', 'voc_2012_val', 'coco_2014_train',
              'coco_2014_val', 'coco_2014_minival', 'coco_2014_valminusminival', 'coco_2015_test',
              'coco_2015_test-dev', 'shapes_trainval', 'shapes_test']:
        assert n in names
    with pytest.raises(KeyError, match='Unknown dataset'):
        get_imdb('nonsense_2007')


def test_join(tmp_path, cfg_copy):
    from voc_testutils import write_annotation, write_image, write_image_set
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    for name, n in (('one', 2), ('two', 1)):
        root = str(tmp_path / name)
        ids = ['{}{}'.format(name, i) for i in range(n)]
        for i in ids:
            write_annotation(root, i, [{'name': 'x', 'bbox': (1, 1, 5, 5)}])
            write_image(root + '/JPEGImages/' + i + '.jpg', 20 + n, 10)
        write_image_set(root, 'train', ids)
    d = get_imdb('{}:train+{}:train'.format(tmp_path / 'one', tmp_path / 'two'))
    assert d.name == 'one_train+two_train' and d.num_images == 3
    d.append_flipped_images()
    assert d.num_images == 6 and len(d.roidb) == 6
    assert [e['flipped'] for e in d.roidb] == [False, False, True, True, False, True]
    assert d.image_path_at(5).endswith('two0.jpg') and d.image_path_at(2).endswith('one0.jpg')


def test_gt_overlaps_dense_with_toarray():
    import scipy.sparse
    d = Tiny()
    r = d.create_roidb_from_box_list([CANDS], d.roidb)
    ov = r[0]['gt_overlaps']
    assert isinstance(ov, np.ndarray) and ov.dtype == np.float32
    np.testing.assert_array_equal(ov.toarray(), ov)  # as the original's csr matrix
    # sparse input (a roidb built the original's way) merges too
    b = [dict(r[0], gt_overlaps=scipy.sparse.csr_matrix(np.asarray(ov)))]
    m = imdb.merge_roidbs(d.roidb, b)
    assert m[0]['gt_overlaps'].shape == (6, 3) and isinstance(m[0]['gt_overlaps'], np.ndarray)
