import json
import os.path as osp

import numpy as np
import pytest

from utils.blob import im_list_to_blob, prep_im_for_blob
from utils.timer import Timer

MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])


def test_scaling_matches_original(oracle_dir):
    with open(osp.join(oracle_dir, 'blob_scaling.json')) as f:
        d = json.load(f)
    for case in d['cases']:
        h, w = case['orig_hw']
        im, scale = prep_im_for_blob(np.zeros((h, w, 3), np.uint8), MEANS, d['TEST_SCALES'][0], d['TEST_MAX_SIZE'])
        blob = im_list_to_blob([im])
        assert list(blob.shape) == case['blob_shape'], case
        assert scale == pytest.approx(case['im_scale'], rel=1e-12), case


def test_means_subtracted_before_resize():
    im = np.full((4, 6, 3), 200, np.uint8)
    out, scale = prep_im_for_blob(im, MEANS, 8, 1000)
    assert scale == 2.0 and out.shape == (8, 12, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], 200 - MEANS[0, 0], rtol=1e-6)


def test_max_size_caps_long_side():
    # 100x1000: 600/100 = 6 -> 6000 > 1000, so scale = 1000/1000 = 1
    _, scale = prep_im_for_blob(np.zeros((100, 1000, 3), np.uint8), MEANS, 600, 1000)
    assert scale == 1.0


def test_blob_pads_with_zeros_top_left():
    a = np.ones((2, 3, 3), np.float32)
    b = np.full((4, 2, 3), 2, np.float32)
    blob = im_list_to_blob([a, b])
    assert blob.shape == (2, 3, 4, 3) and blob.dtype == np.float32
    assert (blob[0, :, :2, :3] == 1).all() and (blob[0, :, 2:, :] == 0).all() and (blob[0, :, :, 3:] == 0).all()
    assert (blob[1, :, :4, :2] == 2).all() and (blob[1, :, :, 2:] == 0).all()
    with pytest.raises(ValueError):
        im_list_to_blob([])


def test_bad_image_is_an_error():
    with pytest.raises(ValueError, match='BGR image'):
        prep_im_for_blob(np.zeros((5, 5), np.uint8), MEANS, 600, 1000)


def test_timer_averages(monkeypatch):
    t = Timer()
    clock = iter([1.0, 3.0, 10.0, 14.0])
    monkeypatch.setattr('utils.timer.time.perf_counter', lambda: next(clock))
    t.tic()
    assert t.toc() == 2.0
    t.tic()
    assert t.toc(average=False) == 4.0 and t.average_time == 3.0 and t.calls == 2


def test_blob_padded_to_size_divisibility():
    a = np.ones((5, 9, 3), np.float32)
    blob = im_list_to_blob([a], size_divisibility=4)
    assert blob.shape == (1, 3, 8, 12)            # 5 -> 8, 9 -> 12
    assert (blob[0, :, :5, :9] == 1).all() and blob[0, :, 5:].sum() == 0 and blob[0, :, :, 9:].sum() == 0
    assert im_list_to_blob([a], size_divisibility=1).shape == (1, 3, 5, 9)   # the original: no rounding
    assert im_list_to_blob([np.ones((8, 12, 3), np.float32)], size_divisibility=4).shape == (1, 3, 8, 12)
    with pytest.raises(ValueError, match='size_divisibility must be >= 1'):
        im_list_to_blob([a], size_divisibility=0)


def test_median_seconds_is_the_median_of_the_timed_calls(monkeypatch):
    from utils.timer import median_seconds
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # calls of 5, 1 and 3 s after the untimed warm-up
    monkeypatch.setattr('utils.timer.time.perf_counter', lambda: next(clock))
    calls = []
    assert median_seconds(lambda: calls.append(1), repeat=3, cuda=False) == 3.0
    assert len(calls) == 4
