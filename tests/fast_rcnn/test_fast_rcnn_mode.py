"""Fast R-CNN on given RoIs and the RPN alone (the parts alt-opt assembles), per-class bbox folding, the original's
multi-scale RoI projection and DEDUP_BOXES."""
import numpy as np
import torch

from fast_rcnn.test import im_detect, project_im_rois
from nets.faster_rcnn import fold_bbox_normalization
from tiny_training import TinyData, tiny_cfg, tiny_model


def test_fold_per_class_stats_hand_worked():
    # K = 2: bbox_pred has 8 outputs; class 1's stds (1, 2, 3, 4) and means (0.5, 0, 0, -1)
    w = torch.ones(8, 3)
    b = torch.ones(8)
    means = [0, 0, 0, 0, 0.5, 0, 0, -1]
    stds = [1, 1, 1, 1, 1, 2, 3, 4]
    out = fold_bbox_normalization({'bbox_pred.weight': w, 'bbox_pred.bias': b}, 2, means, stds)
    assert out['bbox_pred.weight'][:, 0].tolist() == [1, 1, 1, 1, 1, 2, 3, 4]
    assert out['bbox_pred.bias'].tolist() == [1, 1, 1, 1, 1.5, 2, 3, 3]


def test_project_im_rois_picks_the_scale_nearest_224():
    # a 100x100 box: at scale 1 its area is 10000, at 2 40000, at 3 90000; |. - 50176| is least at 2 (level 1)
    rois = project_im_rois(np.array([[0, 0, 99, 99]], np.float32), [1.0, 2.0, 3.0])
    assert rois.tolist() == [[1, 0, 0, 198, 198]]
    # one scale: level 0, scaled
    assert project_im_rois(np.array([[10, 20, 30, 40]], np.float32), [0.5]).tolist() == [[0, 5, 10, 15, 20]]


def test_set_mode_fixes_the_other_part():
    c = tiny_cfg()
    m = tiny_model(c)
    m.set_mode('rpn')
    assert not any(p.requires_grad for n, p in m.named_parameters() if n.startswith(('head.', 'cls_score.',
                                                                                     'bbox_pred.')))
    assert all(p.requires_grad for n, p in m.named_parameters() if n.startswith('rpn_'))
    m = tiny_model(c)
    m.set_mode('fast_rcnn')
    assert not any(p.requires_grad for n, p in m.named_parameters() if n.startswith('rpn_'))


def test_rpn_losses_are_end2ends_rpn_losses():
    c = tiny_cfg()
    im, gt = TinyData().items[0]
    info = np.array([[96, 128, 1.0]], np.float32)
    a = tiny_model(c, seed=4)
    a.train()
    full = a(torch.from_numpy(im), info, gt)
    b = tiny_model(c, seed=4)
    b.train()
    rpn = b.rpn_losses(torch.from_numpy(im), info, gt)
    assert set(rpn) == {'rpn_loss_cls', 'rpn_loss_bbox'}
    for k in rpn:
        assert rpn[k].item() == full[k].item()


def test_fast_rcnn_losses_on_given_rois_hand_checked():
    c = tiny_cfg()
    m = tiny_model(c)
    m.set_mode('fast_rcnn')
    m.train()
    im, gt = TinyData().items[0]
    data = torch.from_numpy(np.concatenate([im, im], 0))     # two images, as IMS_PER_BATCH 2
    rois = np.array([[0, 0, 0, 40, 40], [1, 10, 10, 60, 50]], np.float32)
    labels = np.array([1, 0], np.float32)
    targets = np.zeros((2, 12), np.float32)
    targets[0, 4:8] = [0.1, -0.2, 0.3, 0.0]
    inside = np.zeros((2, 12), np.float32)
    inside[0, 4:8] = 1
    losses = m.train_losses(data, {'rois': rois, 'labels': labels, 'bbox_targets': targets,
                                   'bbox_inside_weights': inside, 'bbox_outside_weights': inside})
    m.eval()
    prob, pred = m.detect(data, torch.from_numpy(rois))
    with torch.no_grad():
        cls_score, bbox_pred = m._head(m._features(data), torch.from_numpy(rois))
    # loss_cls: the mean of -log p(label); loss_bbox: smooth L1 (sigma 1) over class 1's four deltas / 2 RoIs
    want_cls = -(torch.log_softmax(cls_score, 1)[0, 1] + torch.log_softmax(cls_score, 1)[1, 0]) / 2
    d = (bbox_pred[0, 4:8] - torch.tensor([0.1, -0.2, 0.3, 0.0])).abs()
    want_bbox = torch.where(d < 1, 0.5 * d ** 2, d - 0.5).sum() / 2
    assert abs(float(losses['loss_cls']) - float(want_cls)) < 1e-5   # no dropout in TINY's head
    assert abs(float(losses['loss_bbox']) - float(want_bbox)) < 1e-6
    assert torch.allclose(prob, torch.softmax(cls_score, 1))


def test_im_detect_with_boxes_dedups_to_the_same_scores():
    c = tiny_cfg()
    c.TEST.HAS_RPN = False
    c.TEST.SCALES = (96,)
    c.TEST.MAX_SIZE = 1000
    m = tiny_model(c)
    m.eval()
    im = (np.random.RandomState(0).rand(96, 128, 3) * 255).astype(np.uint8)
    boxes = np.array([[0, 0, 40, 40], [10, 10, 60, 50], [0, 0, 40, 40], [0.01, 0, 40, 40]], np.float32)
    scores, pred = im_detect(m, im, boxes, c)
    assert scores.shape == (4, 3) and pred.shape == (4, 12)
    # rows 0, 2 and 3 round to one RoI (1/16 px): one score row for all three
    assert np.array_equal(scores[0], scores[2]) and np.array_equal(scores[0], scores[3])
    c.DEDUP_BOXES = 0
    undup, _ = im_detect(m, im, boxes[:2], c)
    np.testing.assert_allclose(undup, scores[:2], atol=1e-6)
