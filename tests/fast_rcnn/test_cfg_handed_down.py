"""No function of lib reads the mutable global cfg (config.py aside): a model built with its own cfg proposes,
samples its targets and runs NMS by that cfg, whatever the global one says; a function given no cfg uses
config.py's defaults."""
import ast
import glob
import os.path as osp

import numpy as np
import torch

import fast_rcnn.config as config
from fast_rcnn.config import cfg_copy, default_cfg
from fast_rcnn.test import detections_for_image
from nets.faster_rcnn import FasterRCNN
from rpn.proposal_layer import proposal_layer
from tiny_training import ROOT


def test_no_module_of_lib_imports_the_global_cfg():
    offenders = []
    for path in glob.glob(osp.join(ROOT, 'lib', '**', '*.py'), recursive=True):
        if path.endswith(osp.join('fast_rcnn', 'config.py')):
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module == 'fast_rcnn.config':
                offenders += ['{}: from fast_rcnn.config import cfg'.format(path)
                              for a in node.names if a.name == 'cfg']
            if isinstance(node, ast.Attribute) and node.attr == 'cfg' and isinstance(node.value, ast.Name) \
                    and node.value.id == 'config':
                offenders.append('{}: config.cfg'.format(path))
    assert not offenders, offenders


def _global_says_otherwise(monkeypatch):
    """The global cfg set to values no run would use: a read of it would show in the counts below."""
    g = cfg_copy(config.cfg)
    g.TRAIN.RPN_POST_NMS_TOP_N = 3
    g.TEST.RPN_POST_NMS_TOP_N = 3
    g.TRAIN.BATCH_SIZE = 2
    g.TEST.RPN_NMS_THRESH = 0.01
    g.TRAIN.RPN_NMS_THRESH = 0.01
    g.USE_GPU_NMS = True
    g.GPU_ID = 7  # no such GPU: an NMS that read it would fail on a machine with one
    monkeypatch.setattr(config, 'cfg', g)


def _model_cfg():
    c = default_cfg()
    c.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    c.TRAIN.RPN_PRE_NMS_TOP_N = 400
    c.TRAIN.RPN_POST_NMS_TOP_N = 60
    c.TRAIN.BATCH_SIZE = 32
    c.TRAIN.FG_FRACTION = 0.5
    c.TEST.RPN_PRE_NMS_TOP_N = 400
    c.TEST.RPN_POST_NMS_TOP_N = 40
    c.USE_GPU_NMS = False
    c.ANCHOR_SCALES = (2, 4, 8)
    c.FEAT_STRIDE = 8
    return c


def test_a_model_proposes_and_samples_by_its_own_cfg(monkeypatch):
    _global_says_otherwise(monkeypatch)
    torch.manual_seed(0)
    m = FasterRCNN('TINY', 4, _model_cfg())
    data = torch.randn(1, 3, 96, 128) * 50
    info = np.array([[96, 128, 1.0]], np.float32)
    gt = np.array([[10, 10, 50, 60, 1], [60, 20, 120, 90, 3]], np.float32)
    seen = []
    head = m._head
    m._head = lambda feat, rois: (seen.append(rois.shape[0]), head(feat, rois))[1]
    m.train()
    m(data, info, gt)
    assert seen == [32]  # TRAIN.BATCH_SIZE 32 RoIs (the global says 2), sampled from 60 proposals + 2 gt
    m.eval()
    with torch.no_grad():
        rois, _, _ = m(data, info)
    assert rois.shape[0] == 40  # TEST.RPN_POST_NMS_TOP_N of the model (the global says 3)


def test_nms_and_layers_follow_the_cfg_they_are_given(monkeypatch):
    _global_says_otherwise(monkeypatch)
    rng = np.random.RandomState(0)
    scores = rng.rand(50, 3).astype(np.float32)
    boxes = np.tile(rng.rand(50, 4).astype(np.float32) * 10 + [0, 0, 40, 40], (1, 3))
    # the model's cfg: CPU NMS (the global's GPU 7 would be an error wherever a GPU exists)
    dets = detections_for_image(scores, boxes, 3, 0.05, 0.3, 100, cfg=_model_cfg())
    assert len(dets) == 3 and 0 < len(dets[1]) < 50
    # no cfg: config.py's defaults (TEST: 6000 before NMS, 300 after), not the global's 3
    prob = np.tile(np.linspace(0.01, 0.99, 12 * 16, dtype=np.float32).reshape(1, 1, 12, 16), (1, 18, 1, 1))
    pred = np.zeros((1, 36, 12, 16), np.float32)
    rois, _ = proposal_layer(prob, pred, np.array([[192, 256, 1.0]], np.float32), 'TEST', 16, (8, 16, 32))
    assert len(rois) > 3
