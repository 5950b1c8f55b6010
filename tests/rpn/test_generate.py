"""rpn.generate and tools/rpn_generate.py: the RPN's proposals alone, the .npz they are written to (round trip,
image ids checked, the original's .pkl read arrays-only) and eval_recall on that file."""
import pickle

import numpy as np
import pytest
import torch

import eval_recall
import rpn_generate
from datasets.ds_utils import load_proposals, save_proposals
from fast_rcnn.train import train_net
from tiny_training import CLASSES, TinyData, make_voc_folder, tiny_cfg, tiny_model, tiny_solver


def test_proposals_are_the_rois_the_detector_classifies():
    m = tiny_model(tiny_cfg()).eval()
    data = torch.from_numpy(TinyData().items[0][0])
    info = np.array([[96, 128, 1.0]], np.float32)
    with torch.no_grad():
        rois, _, _ = m(data, info)
        props, scores = m.proposals(data, info)
    np.testing.assert_array_equal(props, rois.numpy())
    assert scores.shape == (len(props), 1) and np.all(np.diff(scores[:, 0]) <= 0)  # best first


def test_proposal_file_round_trip_and_checks(tmp_path):
    f = str(tmp_path / 'p.npz')
    save_proposals(f, [np.array([[0, 0, 9, 9, 0.9]]), np.zeros((0, 5))], image_ids=['a', 'b/c'])
    with np.load(f, allow_pickle=False) as z:
        assert list(z['image_ids']) == ['a', 'b/c'] and list(z['counts']) == [1, 0]
        np.testing.assert_array_equal(z['scores'], np.float32([0.9]))
    boxes = load_proposals(f, ['a', 'b/c'])
    np.testing.assert_array_equal(boxes[0], [[0, 0, 9, 9]]) and boxes[1].shape == (0, 4)
    with pytest.raises(ValueError, match=r'p\.npz: proposals of other images \(2 images; the dataset has 2; '
                                         r'first difference at image 1\)'):
        load_proposals(f, ['a', 'x'])
    with pytest.raises(ValueError, match='3 image ids for 2 images'):
        save_proposals(f, [np.zeros((0, 4)), np.zeros((0, 4))], image_ids=['a', 'b', 'c'])


class _Boom:
    def __reduce__(self):
        return (print, ('ran code',))


def test_the_originals_pkl_is_read_arrays_only(tmp_path, capsys):
    good = str(tmp_path / 'rpn.pkl')
    with open(good, 'wb') as f:
        pickle.dump([np.array([[1, 2, 3, 4]], np.float32), np.zeros((0, 4), np.float32)], f)
    assert [b.shape for b in load_proposals(good)] == [(1, 4), (0, 4)]
    bad = str(tmp_path / 'evil.pkl')
    with open(bad, 'wb') as f:
        pickle.dump([_Boom()], f)
    with pytest.raises(pickle.UnpicklingError):
        load_proposals(bad)
    assert 'ran code' not in capsys.readouterr().out


def test_rpn_generate_writes_proposals_eval_recall_reads(tmp_path, capsys):
    folder = str(tmp_path / 'toyset')
    make_voc_folder(folder, CLASSES[1:])
    c = tiny_cfg()
    snap = train_net(tiny_model(c), TinyData(), str(tmp_path / 'snap'), tiny_solver(), c, CLASSES, 2, resume=False)
    out = str(tmp_path / 'props.npz')
    assert rpn_generate.main(['--net', snap, '--imdb', folder + ':test', '--out', out, '--threads', '1']) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == 'Wrote RPN proposals to: {}'.format(out)
    with np.load(out, allow_pickle=False) as z:
        assert list(z['image_ids']) == ['im003', 'im004']  # make_voc_folder's test split
        counts, boxes = z['counts'], z['boxes']
    assert counts.sum() == len(boxes) and 0 < counts.max() <= 2000
    # in the image's pixels: clipped to the blob (scale s), then divided by s, so x2 <= (120 s - 1) / s < 120
    assert boxes[:, :2].min() >= 0 and boxes[:, 2].max() < 120 and boxes[:, 3].max() < 90 and boxes[:, 2].max() > 100
    res = eval_recall.main(['--imdb', folder + ':test', '--rpn-file', out])
    assert 0 <= res['ar'] <= 1 and len(res['gt_overlaps']) == 4  # 2 images of 2 boxes
    assert rpn_generate.main(['--net', str(tmp_path / 'none.pth'), '--imdb', folder + ':test']) == 2
    assert capsys.readouterr().err.strip() == 'rpn_generate.py: --net {}: no such file'.format(tmp_path / 'none.pth')
