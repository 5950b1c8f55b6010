"""datasets.summary: per-class counts of a split, what was left out, and the typo / few-boxes warnings."""
import os.path as osp

from datasets.factory import get_imdb
from datasets.summary import class_warnings, edit_distance, summarize
from voc_testutils import write_annotation, write_image, write_image_set

# VOC 2007 trainval boxes per class (non-difficult, approximately)
VOC07 = {'aeroplane': 306, 'bicycle': 353, 'bird': 486, 'boat': 290, 'bottle': 505, 'bus': 229, 'car': 1250,
         'cat': 376, 'chair': 798, 'cow': 259, 'diningtable': 215, 'dog': 510, 'horse': 362, 'motorbike': 339,
         'person': 4690, 'pottedplant': 514, 'sheep': 257, 'sofa': 248, 'train': 297, 'tvmonitor': 324}


def test_edit_distance():
    assert edit_distance('dsic', 'disc') == 1  # a swap of neighbours
    assert edit_distance('cat', 'cow') == 2
    assert edit_distance('car', 'cat') == 1
    assert edit_distance('', 'abc') == 3


def test_voc_counts_never_warn():
    # bus, diningtable and sofa are under 2% of all boxes, cow ~2%: rare by fraction, yet no name has 10x theirs
    # within the distance (cow/car/cat are within 5x of each other)
    assert class_warnings(VOC07) == []
    # a small VOC-like split (1/60): few-box warnings only, no typo warning between cat, car and cow
    small = {k: v // 60 for k, v in VOC07.items()}
    w = class_warnings(small)
    assert w and all('has only' in x for x in w), w
    assert "class 'cow' has only 4 boxes" in w


def test_typo_warns():
    w = class_warnings({'disc': 400, 'dsic': 3, 'ring': 300})
    assert w == ["class 'dsic' has only 3 boxes",
                 "class 'dsic' (3 boxes) is close to 'disc' (400 boxes): a typo in the annotations?"]
    # rare by fraction (1% of all), not by count; longer names allow 2 edits
    w = class_warnings({'triangle': 1000, 'triangel': 11, 'square': 90})
    assert w == ["class 'triangel' (11 boxes) is close to 'triangle' (1000 boxes): a typo in the annotations?"]


def test_summarize_folder(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    root = str(tmp_path / 'mylabels')
    write_annotation(root, 'a', [{'name': 'car', 'bbox': (10, 20, 50, 60)},
                                 {'name': 'person', 'bbox': (0, 0, 120, 90)},
                                 {'name': 'person', 'bbox': (1, 1, 9, 9)}])
    write_annotation(root, 'b', [{'name': 'person', 'bbox': (5, 5, 20, 30), 'difficult': 1}])
    write_annotation(root, 'c', [{'name': 'bike', 'bbox': (1, 1, 40, 30)}])
    write_annotation(root, 'd', [])
    for i in 'abcd':
        write_image(osp.join(root, 'JPEGImages', i + '.jpg'), 100, 80)
    write_image_set(root, 'train', ['a', 'b', 'c', 'd'])
    d = get_imdb(root + ':train')
    lines, warns = summarize(d)
    assert lines == ['mylabels_train: 4 images, 4 boxes',
                     '  class    boxes  images',
                     '  bike         1       1',
                     '  car          1       1',
                     '  person       2       1',
                     '  left out or empty: 2 images with no boxes; 1 difficult boxes dropped (use_diff False); '
                     '1 annotations without objects; 0 objects/images skipped as broken']
    assert warns == ["mylabels_train: class 'bike' has only 1 box", "mylabels_train: class 'car' has only 1 box",
                     "mylabels_train: class 'person' has only 2 boxes"]
    # flipped entries are not counted twice
    d.append_flipped_images()
    assert summarize(d, d.roidb)[0][4] == '  person       2       1'
    d.config['use_diff'] = True
    d2 = get_imdb(root + ':train')
    d2.config['use_diff'] = True
    lines = summarize(d2)[0]
    assert lines[0] == 'mylabels_train: 4 images, 5 boxes' and lines[4] == '  person       3       2'
    assert '0 difficult boxes dropped' in lines[5] and '1 images with no boxes' in lines[5]
