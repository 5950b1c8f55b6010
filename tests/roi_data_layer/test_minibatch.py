"""get_minibatch: blob, im_info, gt_boxes (RPN path) and sampled RoIs (Fast R-CNN path), by hand."""
import cv2
import numpy as np

from roi_data_layer.minibatch import get_minibatch


def _image(tmp_path, h=40, w=60):
    im = np.zeros((h, w, 3), np.uint8)
    im[:, : w // 2] = (200, 100, 50)   # left half
    im[:, w // 2:] = (10, 20, 30)      # right half
    p = str(tmp_path / 'im.png')
    cv2.imwrite(p, im)
    return p


def _entry(path, flipped=False):
    ov = np.zeros((4, 3), np.float32)
    ov[0, 1] = 1
    ov[1, 2] = 1
    ov[2, :] = -1  # a crowd region
    return {'image': path, 'flipped': flipped, 'width': 60, 'height': 40,
            'boxes': np.array([[1, 2, 10, 20], [30, 5, 59, 39], [0, 0, 5, 5], [3, 3, 8, 8]], np.float32),
            'gt_classes': np.array([1, 2, 1, 0], np.int32), 'gt_overlaps': ov}


def test_rpn_minibatch(tmp_path, cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = True
    cfg_copy.TRAIN.SCALES = (80,)
    cfg_copy.TRAIN.MAX_SIZE = 1000
    p = _image(tmp_path)
    b = get_minibatch([_entry(p)], 3, cfg_copy, rng=np.random.RandomState(0))
    assert b['data'].shape == (1, 3, 80, 120) and b['data'].dtype == np.float32
    np.testing.assert_array_equal(b['im_info'], np.array([[80, 120, 2]], np.float32))
    assert b['image_paths'] == [p]  # what a divergence error names
    # crowd (overlaps -1) and gt_classes 0 rows left out; boxes scaled by 2
    np.testing.assert_array_equal(b['gt_boxes'], [[2, 4, 20, 40, 1], [60, 10, 118, 78, 2]])
    means = cfg_copy.PIXEL_MEANS.ravel()
    np.testing.assert_allclose(b['data'][0, :, 10, 5], np.array([200, 100, 50]) - means, rtol=1e-5)
    # flipped entry: the image is mirrored (the right half now on the left)
    b = get_minibatch([_entry(p, flipped=True)], 3, cfg_copy, rng=np.random.RandomState(0))
    np.testing.assert_allclose(b['data'][0, :, 10, 5], np.array([10, 20, 30]) - means, rtol=1e-5)


def test_size_divisibility_pads_the_blob_but_not_im_info(tmp_path, cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = True
    cfg_copy.TRAIN.SCALES = (80,)
    cfg_copy.TRAIN.MAX_SIZE = 1000
    cfg_copy.SIZE_DIVISIBILITY = 32
    b = get_minibatch([_entry(_image(tmp_path))], 3, cfg_copy, rng=np.random.RandomState(0))
    assert b['data'].shape == (1, 3, 96, 128)      # the 80 x 120 image, padded to multiples of 32
    np.testing.assert_array_equal(b['im_info'], np.array([[80, 120, 2]], np.float32))   # the image's own size
    assert not b['data'][0, :, 80:, :].any() and not b['data'][0, :, :, 120:].any()
    np.testing.assert_array_equal(b['gt_boxes'], [[2, 4, 20, 40, 1], [60, 10, 118, 78, 2]])


def test_scale_choice_uses_rng(tmp_path, cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = True
    cfg_copy.TRAIN.SCALES = (40, 80, 120)
    p = _image(tmp_path)
    for seed in range(5):
        k = np.random.RandomState(seed).randint(0, 3, size=1)[0]
        b = get_minibatch([_entry(p)], 3, cfg_copy, rng=np.random.RandomState(seed))
        assert b['data'].shape[2] == (40, 80, 120)[k]


def test_fast_rcnn_minibatch(tmp_path, cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = False
    cfg_copy.TRAIN.SCALES = (40,)
    cfg_copy.TRAIN.BATCH_SIZE = 8
    cfg_copy.TRAIN.FG_FRACTION = 0.25
    p = _image(tmp_path)
    # 2 gt-like fg rows (overlap 1 and 0.6), 3 bg rows (overlaps .2, .3, .45), one below BG_THRESH_LO
    e = {'image': p, 'flipped': False, 'width': 60, 'height': 40,
         'boxes': np.array([[0, 0, 9, 9], [0, 0, 9, 12], [20, 0, 29, 9], [0, 20, 9, 29], [5, 5, 14, 14],
                            [40, 30, 49, 39]], np.float32),
         'max_overlaps': np.array([1, 0.6, 0.2, 0.3, 0.45, 0.05], np.float32),
         'max_classes': np.array([2, 2, 2, 2, 2, 0]),
         'bbox_targets': np.array([[2, 0, 0, 0, 0], [2, .1, .2, .3, .4], [0] * 5, [0] * 5, [0] * 5, [0] * 5],
                                  np.float32)}
    b = get_minibatch([e, dict(e)], 3, cfg_copy, rng=np.random.RandomState(1))
    # per image: 4 RoIs, fg = round(0.25 * 4) = 1, bg = 3 (all three of [0.1, 0.5))
    assert b['rois'].shape == (8, 5) and b['labels'].shape == (8,)
    np.testing.assert_array_equal(b['rois'][:, 0], [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(b['labels'], [2, 0, 0, 0, 2, 0, 0, 0])
    # image 60x40 at scale 40 / 40 = 1: rois unchanged; bg rows are the three candidates
    assert sorted(b['rois'][1:4, 1].tolist()) == [0, 5, 20]
    assert b['bbox_targets'].shape == (8, 12)
    assert (b['bbox_targets'][:, :8] == 0).all() and (b['bbox_targets'][[1, 2, 3, 5, 6, 7]] == 0).all()
    np.testing.assert_array_equal(b['bbox_inside_weights'][0], [0] * 8 + [1] * 4)
    np.testing.assert_array_equal(b['bbox_outside_weights'], (b['bbox_inside_weights'] > 0).astype(np.float32))
