"""Testing: per-image post-processing by hand, im_detect shapes and clipping, test_net's files and evaluation,
the class-mismatch error, cfg order when loading a snapshot."""
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch

from fast_rcnn import test as frt
from fast_rcnn.test import build_cfg, check_classes, detections_for_image, im_detect

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_detections_for_image_threshold_nms_and_cap():
    # 4 proposals, K = 3. Class 1: boxes 0 and 1 overlap (IoU = 0.8181... > 0.3) -> only the best survives.
    scores = np.array([[0.1, 0.9, 0.0],
                       [0.2, 0.7, 0.1],
                       [0.5, 0.04, 0.46],
                       [0.3, 0.06, 0.64]], np.float32)
    boxes = np.zeros((4, 12), np.float32)
    boxes[:, 4:8] = [[0, 0, 9, 9], [1, 0, 10, 9], [50, 50, 59, 59], [80, 80, 99, 99]]
    boxes[:, 8:12] = [[0, 0, 9, 9], [20, 20, 29, 29], [50, 50, 59, 59], [80, 80, 99, 99]]
    dets = detections_for_image(scores, boxes, 3, thresh=0.05, nms_thresh=0.3, max_per_image=100)
    assert dets[0].shape == (0, 5)
    # class 1: scores 0.9 (box0), 0.7 (box1, suppressed), 0.04 (below thresh), 0.06 (box3)
    np.testing.assert_allclose(dets[1], [[0, 0, 9, 9, 0.9], [80, 80, 99, 99, 0.06]], rtol=1e-6)
    # class 2: 0.1, 0.46, 0.64 (0.0 below), no overlaps
    np.testing.assert_allclose(dets[2][:, 4], [0.64, 0.46, 0.1], rtol=1e-6)
    capped = detections_for_image(scores, boxes, 3, 0.05, 0.3, max_per_image=2)
    assert sorted(np.hstack([capped[1][:, 4], capped[2][:, 4]]).tolist()) == pytest.approx([0.64, 0.9])


def test_check_classes_mismatch_is_a_clear_error():
    class Imdb:
        name = 'other_test'
        classes = ('__background__', 'cat', 'dog')
    check_classes(['__background__', 'cat', 'dog'], Imdb())
    with pytest.raises(ValueError, match='other_test'):
        check_classes(['__background__', 'circle', 'square'], Imdb())
    with pytest.raises(ValueError, match='same classes'):
        check_classes(['__background__', 'dog', 'cat'], Imdb())


def test_build_cfg_order_snapshot_then_file_then_set(tmp_path):
    from fast_rcnn.config import cfg
    f = tmp_path / 'c.yml'
    f.write_text('TEST:\n  NMS: 0.4\n  MAX_SIZE: 700\n')
    snap_cfg = {'TEST': {'NMS': 0.2, 'SCALES': [300], 'MAX_SIZE': 500}, 'ROOT_DIR': '/elsewhere', 'EXP_DIR': 'x'}
    c = build_cfg(snap_cfg, [str(f)], ['TEST.MAX_SIZE', '800'])
    assert c.TEST.SCALES == (300,) and c.TEST.NMS == 0.4 and c.TEST.MAX_SIZE == 800
    assert c.ROOT_DIR == cfg.ROOT_DIR          # machine paths are not carried by a snapshot
    assert c.EXP_DIR == 'default'              # nor where it wrote: a snapshot never decides where a run writes
    assert cfg.TEST.MAX_SIZE == 1000           # the global cfg is untouched


def _tiny_model(num_classes=3):
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
    m = FasterRCNN('TINY', num_classes, c).eval()
    # large deltas so that decoded boxes leave the image unless they are clipped
    torch.nn.init.normal_(m.bbox_pred.weight, 0, 0.5)
    m.name = 'tiny_test'
    return m, c


def test_im_detect_scales_back_and_clips():
    m, c = _tiny_model()
    im = (np.random.RandomState(0).rand(40, 60, 3) * 255).astype(np.uint8)
    scores, boxes = im_detect(m, im, None, c)
    R = scores.shape[0]
    assert 0 < R <= 10 and boxes.shape == (R, 12)
    np.testing.assert_allclose(scores.sum(1), 1, rtol=1e-5)
    assert boxes[:, 0::4].min() >= 0 and boxes[:, 2::4].max() <= 59
    assert boxes[:, 1::4].min() >= 0 and boxes[:, 3::4].max() <= 39
    c.TEST.BBOX_REG = False
    _, plain = im_detect(m, im, None, c)
    np.testing.assert_array_equal(plain[:, 0:4], plain[:, 4:8])   # proposals tiled per class


def test_im_detect_with_size_divisibility_keeps_boxes_in_the_image():
    m, c = _tiny_model()
    c.SIZE_DIVISIBILITY = 48          # the 64 x 96 scaled image runs as a 96 x 96 blob
    im = (np.random.RandomState(0).rand(40, 60, 3) * 255).astype(np.uint8)
    seen = []
    forward = m.forward
    m.forward = lambda data, im_info, *a, **k: seen.append((tuple(data.shape), im_info.tolist())) or \
        forward(data, im_info, *a, **k)
    scores, boxes = im_detect(m, im, None, c)
    assert len(seen) == 1 and seen[0][0] == (1, 3, 96, 96)
    np.testing.assert_allclose(seen[0][1], [[64, 96, 1.6]], rtol=1e-6)    # im_info: the image, not the blob
    assert scores.shape[0] > 0
    assert boxes[:, 0::4].min() >= 0 and boxes[:, 2::4].max() <= 59
    assert boxes[:, 1::4].min() >= 0 and boxes[:, 3::4].max() <= 39


def _fake_imdb(tmp_path, n=3):
    paths = []
    for i in range(n):
        p = str(tmp_path / 'im{}.png'.format(i))
        cv2.imwrite(p, (np.random.RandomState(i).rand(40, 60, 3) * 255).astype(np.uint8))
        paths.append(p)

    class Imdb:
        name = 'fake_test'
        classes = ('__background__', 'a', 'b')
        num_classes = 3
        image_index = ['im{}'.format(i) for i in range(n)]

        def image_path_at(self, i):
            return paths[i]

        def evaluate_detections(self, all_boxes, output_dir):
            self.seen = (all_boxes, output_dir)
            return 0.5
    return Imdb()


def test_test_net_writes_detections_and_evaluates(tmp_path):
    m, c = _tiny_model()
    imdb = _fake_imdb(tmp_path)
    Imdb = type(imdb)
    out = str(tmp_path / 'out')
    res = frt.test_net(m, imdb, max_per_image=5, thresh=0.0, cfg=c, output_dir=out, classes=list(Imdb.classes))
    assert res == 0.5 and imdb.seen[1] == out
    with open(osp.join(out, 'detections.pkl'), 'rb') as f:
        all_boxes = pickle.load(f)
    assert len(all_boxes) == 3 and all(len(a) == 3 for a in all_boxes)
    for i in range(3):
        assert sum(len(all_boxes[j][i]) for j in (1, 2)) <= 5
        assert all_boxes[1][i].shape[1] == 5
    with pytest.raises(ValueError, match='same classes'):
        frt.test_net(m, imdb, cfg=c, output_dir=out, classes=['__background__', 'x', 'y'])


def test_apply_nms_hand_worked():
    from fast_rcnn.test import apply_nms
    # class 1, image 0: two boxes with IoU 100/120 > 0.3 and a far one; image 1: nothing
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 11, 0.8], [50, 50, 60, 60, 0.7]], dtype=np.float32)
    out = apply_nms([[[], []], [dets, np.zeros((0, 5), np.float32)]], 0.3)
    assert out[0] == [[], []] and out[1][1] == []
    np.testing.assert_array_equal(out[1][0], dets[[0, 2]])


def test_flip_and_scales_passes_map_back_onto_the_image():
    """TEST.FLIP: the mirrored pass of the mirrored image is the plain pass (boxes mirrored back, x -> W - 1 - x);
    several TEST.SCALES: one pass each, concatenated."""
    m, c = _tiny_model()
    im = (np.random.RandomState(3).rand(40, 60, 3) * 255).astype(np.uint8)
    mirrored = np.ascontiguousarray(im[:, ::-1])
    plain_scores, plain_boxes = im_detect(m, im, None, c)
    c.TEST.FLIP = True
    scores, boxes = im_detect(m, mirrored, None, c)
    R = plain_scores.shape[0]
    assert scores.shape[0] == boxes.shape[0] == R + R  # this image's pass, then the mirrored one
    # the second pass saw `im` itself: the same scores, and boxes mirrored onto `mirrored`
    np.testing.assert_array_equal(scores[R:], plain_scores)
    np.testing.assert_allclose(boxes[R:, 0::4], 59 - plain_boxes[:, 2::4], atol=1e-4)
    np.testing.assert_allclose(boxes[R:, 2::4], 59 - plain_boxes[:, 0::4], atol=1e-4)
    np.testing.assert_allclose(boxes[R:, 1::4], plain_boxes[:, 1::4], atol=1e-4)
    c.TEST.FLIP = False
    c.TEST.SCALES = (64, 80)
    scores2, boxes2 = im_detect(m, im, None, c)
    c.TEST.SCALES = (80,)
    s80, b80 = im_detect(m, im, None, c)
    np.testing.assert_array_equal(scores2[:R], plain_scores)
    np.testing.assert_array_equal(scores2[R:], s80)
    np.testing.assert_array_equal(boxes2[R:], b80)


def test_test_net_in_two_processes_finds_what_one_process_does(tmp_path):
    m, c = _tiny_model()
    imdb = _fake_imdb(tmp_path, n=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        frt.test_net(m, imdb, max_per_image=5, thresh=0.0, cfg=c, output_dir=str(tmp_path / 'one'))
        one = imdb.seen[0]
        torch.set_num_threads(2)   # shared out: one thread for each of the two workers
        frt.test_net(m, imdb, max_per_image=5, thresh=0.0, cfg=c, output_dir=str(tmp_path / 'two'), nproc=2)
        two = imdb.seen[0]
    finally:
        torch.set_num_threads(threads)
    assert sum(len(one[j][i]) for j in (1, 2) for i in range(5)) > 0
    for j in (1, 2):
        for i in range(5):
            np.testing.assert_array_equal(one[j][i], two[j][i])
    with pytest.raises(ValueError, match='nproc'):
        frt.test_net(m, imdb, cfg=c, output_dir=str(tmp_path / 'x'), nproc=0)


def test_progress_in_a_log_is_a_line_per_tenth(capsys):
    from fast_rcnn.test import _progress_bar
    with _progress_bar(200) as bar:
        for _ in range(200):
            bar.update(1)
    lines = capsys.readouterr().out.splitlines()
    assert '\r' not in ''.join(lines)
    assert 10 <= len(lines) <= 12, lines
    assert lines[-1].startswith('im_detect: 100%') and '200/200' in lines[-1]
