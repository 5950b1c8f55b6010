import os.path as osp

import numpy as np

from rpn.generate_anchors import generate_anchors, shift_anchors

# Hand-worked: base (0,0,15,15), area 256; ratio 0.5 -> w = round(sqrt(512)) = 23, h = round(11.5) = 12 (half to
# even); scale 8 -> 184 x 96 around the centre 7.5 -> x1 = 7.5 - 0.5*183 = -84, y1 = 7.5 - 0.5*95 = -40.
CANONICAL = np.array([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                      [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                      [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]], dtype=float)


def test_default_anchors_hand_worked():
    np.testing.assert_array_equal(generate_anchors(), CANONICAL)


def test_oracle_variants(oracle_dir):
    d = np.load(osp.join(oracle_dir, 'anchors.npz'))
    np.testing.assert_array_equal(generate_anchors(), d['anchors_default'])
    np.testing.assert_array_equal(generate_anchors(scales=[4, 8, 16, 32]), d['anchors_scales_4_8_16_32'])
    np.testing.assert_array_equal(generate_anchors(base_size=8), d['anchors_base8_scales_8_16_32'])


def test_shifted_anchors_order_h_w_a(oracle_dir):
    d = np.load(osp.join(oracle_dir, 'anchors.npz'))
    got = shift_anchors(generate_anchors(), int(d['shifted_H']), int(d['shifted_W']), int(d['shifted_feat_stride']))
    np.testing.assert_array_equal(got, d['shifted_all_anchors'])


def test_shift_hand_worked():
    a = np.array([[0, 0, 15, 15], [-8, -8, 23, 23]], dtype=float)
    got = shift_anchors(a, 2, 3, 16)
    assert got.shape == (12, 4)
    # row index = (h * W + w) * A + a: cell (h=1, w=2), anchor 1 -> (1*3 + 2)*2 + 1 = 11
    np.testing.assert_array_equal(got[11], [-8 + 32, -8 + 16, 23 + 32, 23 + 16])
    np.testing.assert_array_equal(got[2], [16, 0, 31, 15])
