"""tools/reval.py and tools/eval_recall.py on a small folder dataset (hand-worked expectations)."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest

from datasets.ds_utils import load_proposals, save_proposals
from voc_testutils import write_mini_set


@pytest.fixture
def ds(tmp_path, cfg_copy):
    cfg_copy.DATA_DIR = str(tmp_path / 'data')
    root = str(tmp_path / 'mini')
    write_mini_set(root)
    return root


def _write_pkl(path, all_boxes):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(all_boxes, f)


def test_reval(ds, tmp_path, capsys):
    import reval
    out = str(tmp_path / 'out')
    e = []
    all_boxes = [[e, e], [np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9.5, 0.95]], np.float32),
                          np.array([[10, 10, 29, 29, 0.8]], np.float32)],
                 [np.array([[20, 20, 39, 39, 0.7]], np.float32), e]]
    _write_pkl(osp.join(out, 'detections.pkl'), all_boxes)
    # class a: dets by score 0.95 TP, 0.9 FP (duplicate), 0.8 TP: rec [.5 .5 1] prec [1 .5 2/3]
    # -> 11-point: 6 * 1 + 5 * 2/3 over 11; class b: 1
    ap_a = (6 + 5 * 2 / 3.) / 11
    m = reval.main([out, '--imdb', ds + ':test'])
    assert m == pytest.approx((ap_a + 1) / 2)
    assert 'Mean AP = {:.4f}'.format((ap_a + 1) / 2) in capsys.readouterr().out
    # with NMS (TEST.NMS 0.3) the duplicate goes: both classes perfect
    assert reval.main([out, '--imdb', ds + ':test', '--nms']) == pytest.approx(1.0)


def test_reval_refuses_code_in_pickle(ds, tmp_path):
    import reval

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned > {}'.format(tmp_path / 'pwned'),))
    out = str(tmp_path / 'out')
    _write_pkl(osp.join(out, 'detections.pkl'), [[Evil()]])
    with pytest.raises(pickle.UnpicklingError):
        reval.main([out, '--imdb', ds + ':test'])
    assert not osp.exists(str(tmp_path / 'pwned'))


def test_eval_recall(ds, tmp_path, capsys):
    import eval_recall
    f = str(tmp_path / 'props.npz')
    # i0: a exact (IoU 1), b covered by a box of IoU 0.5 ([20..39] x [20..29] vs [20..39]^2: 200 / 400)
    # i1: a found at IoU 0.81 ([10..27]^2 vs [10..29]^2 = 324 / 400)
    save_proposals(f, [np.array([[0, 0, 9, 9, 0.9], [20, 20, 39, 29, 0.8]]), np.array([[10, 10, 27, 27]])])
    assert [b.shape for b in load_proposals(f)] == [(2, 4), (1, 4)]
    res = eval_recall.main(['--imdb', ds + ':test', '--method', 'rpn', '--rpn-file', f])
    np.testing.assert_allclose(res['gt_overlaps'], [0.5, 0.81, 1.0])
    # recall at t: 3/3 at .5; 2/3 for .55 .. .8; 1/3 for .85 .. .95 -> AR = (1 + 6 * 2/3 + 3 * 1/3) / 10
    assert res['ar'] == pytest.approx((1 + 6 * 2 / 3. + 3 / 3.) / 10)
    out = capsys.readouterr().out
    assert 'AverageRec: 0.600' in out and 'Recall@0.5: 1.000' in out and 'Recall@0.9: 0.333' in out


def test_detections_npz_roundtrip(ds, tmp_path):
    import reval
    from datasets.ds_utils import load_detections, save_detections
    e = []
    all_boxes = [[e, e], [np.array([[0, 0, 9, 9, 0.9]], np.float32), np.array([[10, 10, 29, 29, 0.8]], np.float32)],
                 [np.array([[20, 20, 39, 39, 0.7]], np.float32), np.zeros((0, 5), np.float32)]]
    out = str(tmp_path / 'o2')
    save_detections(osp.join(out, 'detections.npz'), all_boxes)
    back = load_detections(osp.join(out, 'detections.npz'))
    assert back[0] == [[], []] and back[2][1] == []
    np.testing.assert_array_equal(back[1][1], all_boxes[1][1])
    assert reval.main([out, '--imdb', ds + ':test']) == pytest.approx(1.0)
