"""A tiny in-memory training setup shared by the training tests: a deterministic data layer over synthetic
images, the end2end cfg shrunk to seconds, TINY's solver and network."""
import os
import os.path as osp

import cv2
import numpy as np
import torch

from fast_rcnn.train import load_solver

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


class TinyData:
    """A deterministic in-memory data layer over a few synthetic images (test double of RoIDataLayer)."""

    def __init__(self, n=3, seed=0):
        rng = np.random.RandomState(seed)
        self.items = []
        for _ in range(n):
            im = rng.randn(1, 3, 96, 128).astype(np.float32) * 10
            boxes = []
            for k in range(2):
                x1, y1 = rng.randint(0, 60), rng.randint(0, 40)
                w, h = rng.randint(24, 60), rng.randint(24, 50)
                cls = 1 + (k % 2)
                im[0, :, y1:y1 + h, x1:x1 + w] += (60.0 if cls == 1 else -60.0)
                boxes.append([x1, y1, x1 + w - 1, y1 + h - 1, cls])
            self.items.append((im, np.array(boxes, np.float32)))
        self.rng = np.random.RandomState(seed + 1)
        self.perm = self.rng.permutation(n)
        self.cur = 0

    def forward(self):
        if self.cur >= len(self.perm):
            self.perm = self.rng.permutation(len(self.items))
            self.cur = 0
        im, gt = self.items[self.perm[self.cur]]
        self.cur += 1
        return {'data': im, 'im_info': np.array([[96, 128, 1.0]], np.float32), 'gt_boxes': gt}

    def state_dict(self):
        st = self.rng.get_state()
        return {'perm': self.perm.copy(), 'cur': self.cur, 'keys': st[1].copy(), 'pos': st[2]}

    def load_state_dict(self, s):
        self.perm = np.asarray(s['perm'])
        self.cur = int(s['cur'])
        self.rng.set_state(('MT19937', np.asarray(s['keys'], np.uint32), int(s['pos']), 0, 0.0))


def tiny_cfg():
    from fast_rcnn.config import cfg, cfg_copy, cfg_from_file
    c = cfg_copy(cfg)
    cfg_from_file(osp.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'), c)
    c.TRAIN.RPN_PRE_NMS_TOP_N = 300
    c.TRAIN.RPN_POST_NMS_TOP_N = 60
    c.TRAIN.BATCH_SIZE = 32
    c.TRAIN.RPN_BATCHSIZE = 64
    c.TRAIN.RPN_MIN_SIZE = 4
    c.TEST.RPN_PRE_NMS_TOP_N = 300
    c.TEST.RPN_POST_NMS_TOP_N = 30
    c.TEST.RPN_MIN_SIZE = 4
    c.ANCHOR_SCALES = (2, 4)
    c.TRAIN.SNAPSHOT_ITERS = 3
    return c


def tiny_solver(**kw):
    s = load_solver(osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_end2end', 'solver.yml'))
    s.update(base_lr=0.01, warmup_iters=5, warmup_factor=0.1, display=0, snapshot_prefix='t')
    s.update(kw)
    return s


def tiny_model(c, seed=0):
    from nets.faster_rcnn import FasterRCNN
    np.random.seed(seed)
    torch.manual_seed(seed)
    c.FEAT_STRIDE = 8
    m = FasterRCNN('TINY', 3, c)
    m.rng = np.random.RandomState(seed)
    return m


CLASSES = ['__background__', 'bright', 'dark']


class SignalingData(TinyData):
    """TinyData that sends this process ``signum`` (``times`` times in a row) during its ``at``-th forward() (1-based):
    a Ctrl-C or a kill in the middle of an iteration, for the tests of stopping on a signal."""

    def __init__(self, at, signum=None, times=1, **kw):
        import signal
        super().__init__(**kw)
        self.at, self.signum, self.times = int(at), signal.SIGINT if signum is None else signum, int(times)
        self.calls = 0

    def forward(self):
        import os
        self.calls += 1
        if self.calls == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)
        return super().forward()


def make_voc_folder(path, classes, n_train=3, n_test=2, seed=0):
    """A VOC-layout folder of n_train + n_test 120 x 90 images (alternately .jpg and .png), two filled boxes each
    (classes in turn), ids im000, im001, ...; ImageSets/Main/trainval.txt (the first n_train) and test.txt."""
    rng = np.random.RandomState(seed)
    for d in ('Annotations', 'JPEGImages', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(path, d), exist_ok=True)
    names = []
    for i in range(n_train + n_test):
        h, w = 90, 120
        im = (rng.rand(h, w, 3) * 60).astype(np.uint8)
        objs = []
        for k in range(2):
            cls = classes[(i + k) % len(classes)]
            x1, y1 = rng.randint(0, 60), rng.randint(0, 40)
            bw, bh = rng.randint(20, 50), rng.randint(20, 40)
            cv2.rectangle(im, (x1, y1), (x1 + bw - 1, y1 + bh - 1), (200, 100 * k, 50), -1)
            objs.append((cls, x1 + 1, y1 + 1, x1 + bw, y1 + bh))
        ext = '.png' if i % 2 else '.jpg'
        name = 'im{:03d}'.format(i)
        cv2.imwrite(osp.join(path, 'JPEGImages', name + ext), im)
        xml = ['<annotation>', '<folder>JPEGImages</folder>', '<filename>{}</filename>'.format(name + ext),
               '<size><width>{}</width><height>{}</height><depth>3</depth></size>'.format(w, h)]
        for cls, a, b, c, d in objs:
            xml.append('<object><name>{}</name><pose>Unspecified</pose><truncated>0</truncated>'
                       '<difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>'
                       '<ymax>{}</ymax></bndbox></object>'.format(cls, a, b, c, d))
        xml.append('</annotation>')
        with open(osp.join(path, 'Annotations', name + '.xml'), 'w') as f:
            f.write('\n'.join(xml))
        names.append(name)
    with open(osp.join(path, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('\n'.join(names[:n_train]) + '\n')
    with open(osp.join(path, 'ImageSets', 'Main', 'test.txt'), 'w') as f:
        f.write('\n'.join(names[n_train:]) + '\n')
