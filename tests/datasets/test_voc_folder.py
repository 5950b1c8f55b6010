"""Any VOC-layout (labelImg) folder as a dataset: normal input that must load, broken input that must fail clearly."""
import os
import os.path as osp

import numpy as np
import pytest

from datasets.factory import get_imdb
from datasets.voc_xml import AnnotationError
from voc_testutils import write_annotation, write_image, write_image_set


@pytest.fixture
def folder(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')  # caches go to tmp
    root = str(tmp_path / 'mylabels')
    # a.jpg via <filename>; b.png found by extension; c.bmp with a stale <filename>; d has no objects
    write_annotation(root, 'a', [{'name': 'Car', 'bbox': (10.5, 20, 50.7, 60), 'difficult': None,
                                  'extra': '<pose>Left</pose><truncated>1</truncated><occluded>0</occluded>'},
                                 {'name': 'person', 'bbox': (0, 0, 120, 90), 'difficult': 0}],
                     filename='a.jpg', size=(100, 80), extra='<path>/home/someone/a.jpg</path>')
    write_annotation(root, 'b', [{'name': 'person', 'bbox': (5, 5, 20, 30), 'difficult': 1}], size=(0, 0))
    write_annotation(root, 'c', [{'name': 'bike', 'bbox': (1, 1, 40, 30)}], filename='renamed.jpg')
    write_annotation(root, 'd', [], filename='d.jpeg')
    write_image(osp.join(root, 'JPEGImages', 'a.jpg'), 100, 80)
    write_image(osp.join(root, 'JPEGImages', 'b.png'), 64, 48)
    write_image(osp.join(root, 'JPEGImages', 'c.bmp'), 40, 30)
    write_image(osp.join(root, 'JPEGImages', 'd.jpeg'), 50, 50)
    write_image_set(root, 'train', ['a', 'b', 'c', 'd'])
    write_image_set(root, 'val', ['b'])
    return root


def test_normal_input(folder):
    d = get_imdb(folder + ':train')
    assert d.name == 'mylabels_train'
    # no classes.txt: sorted names from all annotations, lower-cased
    assert d.classes == ('__background__', 'bike', 'car', 'person')
    assert get_imdb(folder + ':val').classes == d.classes  # the same for every split
    assert [osp.basename(d.image_path_at(i)) for i in range(4)] == ['a.jpg', 'b.png', 'c.bmp', 'd.jpeg']
    r = d.roidb  # folders default to the gt roidb
    # floats kept; <difficult> missing = 0; the person box crossing the border is clipped to 100x80
    np.testing.assert_allclose(r[0]['boxes'], [[9.5, 19, 49.7, 59], [0, 0, 99, 79]], rtol=1e-6)
    np.testing.assert_array_equal(r[0]['gt_classes'], [2, 3])
    assert (r[0]['width'], r[0]['height']) == (100, 80)
    assert len(r[1]['gt_classes']) == 0  # only a difficult object
    assert (r[1]['width'], r[1]['height']) == (64, 48)  # <size> 0x0 in the XML: the image is the truth
    np.testing.assert_array_equal(r[2]['boxes'], [[0, 0, 39, 29]])
    assert r[3]['boxes'].shape == (0, 4) and r[3]['gt_overlaps'].shape == (0, 4)


def test_classes_txt(folder):
    with open(osp.join(folder, 'classes.txt'), 'w') as f:
        f.write('person\ncar\n\nbike\ntruck\n')
    d = get_imdb(folder + ':train')
    assert d.classes == ('__background__', 'person', 'car', 'bike', 'truck')
    np.testing.assert_array_equal(d.roidb[0]['gt_classes'], [2, 1])


def test_flipped_and_cache_follow_edits(folder):
    d = get_imdb(folder + ':train')
    d.append_flipped_images()
    np.testing.assert_allclose(d.roidb[4]['boxes'][0], [100 - 49.7 - 1, 19, 100 - 9.5 - 1, 59], rtol=1e-6)
    write_annotation(folder, 'c', [{'name': 'bike', 'bbox': (2, 2, 20, 20)}], filename='renamed.jpg')
    np.testing.assert_array_equal(get_imdb(folder + ':train').roidb[2]['boxes'], [[1, 1, 19, 19]])
    # replacing an image with one of another size is seen too (clipping follows the image)
    write_image(osp.join(folder, 'JPEGImages', 'c.bmp'), 15, 15)
    np.testing.assert_array_equal(get_imdb(folder + ':train').roidb[2]['boxes'], [[1, 1, 14, 14]])


def _expect_error(folder, *fragments):
    with pytest.raises(AnnotationError) as ei:
        get_imdb(folder + ':train').roidb
    for frag in fragments:
        assert frag in str(ei.value), (frag, str(ei.value))


def test_broken_unparsable_xml(folder):
    with open(osp.join(folder, 'Annotations', 'b.xml'), 'w') as f:
        f.write('<annotation><object><name>car</name>')
    with open(osp.join(folder, 'classes.txt'), 'w') as f:
        f.write('car\nperson\nbike\n')
    _expect_error(folder, osp.join(folder, 'Annotations', 'b.xml'), 'cannot parse the XML')


def test_broken_xml_without_classes_txt_fails_at_construction(folder):
    with open(osp.join(folder, 'Annotations', 'b.xml'), 'w') as f:
        f.write('not xml')
    with pytest.raises(AnnotationError, match='b.xml: cannot parse the XML'):
        get_imdb(folder + ':train')


def test_broken_missing_image(folder):
    os.remove(osp.join(folder, 'JPEGImages', 'b.png'))
    _expect_error(folder, osp.join(folder, 'Annotations', 'b.xml'), "missing image for 'b'", 'b.jpg')


def test_broken_degenerate_box(folder):
    write_annotation(folder, 'c', [{'name': 'bike', 'bbox': (1, 1, 40, 30)},
                                   {'name': 'car', 'bbox': (30, 1, 20, 30)}], filename='renamed.jpg')
    _expect_error(folder, osp.join(folder, 'Annotations', 'c.xml'), "object #1 ('car')", 'degenerate box',
                  'xmax < xmin')


def test_broken_class_not_in_classes_txt(folder):
    with open(osp.join(folder, 'classes.txt'), 'w') as f:
        f.write('car\nperson\n')
    _expect_error(folder, osp.join(folder, 'Annotations', 'c.xml'), "object #0 ('bike')",
                  "class 'bike' is not one of", 'classes.txt')


@pytest.mark.parametrize('fname', ['../../secret.jpg', '/etc/passwd'])
def test_broken_filename_outside_folder(folder, fname):
    write_annotation(folder, 'a', [{'name': 'car', 'bbox': (1, 1, 5, 5)}], filename=fname)
    _expect_error(folder, osp.join(folder, 'Annotations', 'a.xml'), 'points outside the dataset folder', fname)


def test_broken_box_outside_image(folder):
    write_annotation(folder, 'd', [{'name': 'car', 'bbox': (70, 70, 90, 90)}], filename='d.jpeg')
    _expect_error(folder, osp.join(folder, 'Annotations', 'd.xml'), "object #0 ('car')", 'outside the 50x50 image')


def test_skip_bad_annotations_warns_and_skips(folder, cfg_copy):
    cfg_copy.SKIP_BAD_ANNOTATIONS = True
    with open(osp.join(folder, 'classes.txt'), 'w') as f:
        f.write('car\nperson\n')  # 'bike' in c.xml is unknown: that object is skipped
    os.remove(osp.join(folder, 'JPEGImages', 'b.png'))  # b: the image is skipped
    with pytest.warns(UserWarning) as rec:
        d = get_imdb(folder + ':train')
        r = d.roidb
    msgs = ' | '.join(str(w.message) for w in rec)
    assert "class 'bike'" in msgs and "missing image for 'b'" in msgs
    assert d.image_index == ['a', 'c', 'd'] and len(r) == 3
    assert len(r[1]['gt_classes']) == 0
    # the cached load warns again and gives the same roidb
    with pytest.warns(UserWarning):
        d2 = get_imdb(folder + ':train')
        assert len(d2.roidb) == 3 and d2.image_index == ['a', 'c', 'd']


def test_not_a_voc_folder(tmp_path):
    os.makedirs(str(tmp_path / 'x' / 'Annotations'))
    with pytest.raises(FileNotFoundError, match='not a VOC-layout folder'):
        get_imdb(str(tmp_path / 'x') + ':train')


def test_evaluate_folder_uses_voc07_metric(folder, tmp_path, capsys):
    d = get_imdb(folder + ':train')
    nb = [[[] for _ in range(d.num_images)] for _ in range(d.num_classes)]
    # car in a: perfect; person: the clipped border box found (its XML box is 0..120: IoU with 1..100 > 0.5)
    nb[2][0] = np.array([[9.5, 19, 49.7, 59, 0.9]], np.float32)
    nb[3][0] = np.array([[0, 0, 99, 79, 0.8]], np.float32)
    m = d.evaluate_detections(nb, str(tmp_path / 'out'))
    out = capsys.readouterr().out
    assert 'VOC07 metric? Yes' in out
    # bike: npos 1, no detection -> 0; car 1; person 1 (b's person is difficult)
    assert m == pytest.approx(2 / 3.)
    assert 'Mean AP = 0.6667' in out
