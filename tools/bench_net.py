#!/usr/bin/env python
"""Time one training iteration and one test image of a network, split into stages.

    tools/bench_net.py                       # TINY with models/shapes/TINY's settings, and VGG16 at 600x1000
    tools/bench_net.py --nets TINY --repeat 5 --device cpu
    tools/bench_net.py --nets TINY --set AMP off      # float32 convolutions, for a machine's AMX speed-up
    tools/bench_net.py --nets VGG16 --vs-torchvision  # and torchvision's FasterRCNN on the same VGG16 body

Stages: data (minibatch: read, resize, blob), backbone, rpn (head + softmax), proposal (proposal layer),
targets (anchor target + proposal target layers), head (RoI pooling + fc + heads), loss, backward (+ SGD step).
A training iteration here is one minibatch (a solver with iter_size n runs n of them an iteration) at the middle
of TRAIN.SCALES (a solver with several draws one per image); a test image is one pass at TEST.SCALES[0]
(test-time augmentation runs one per scale, and per flip).
The random weights make no difference to the time of any stage except the proposal layer's NMS (which sees
random scores, a fair worst case). Not a test: it prints a table.

--vs-torchvision (VGG16) also times torchvision's FasterRCNN built on the same VGG16 conv body (conv1_1-conv5_3,
stride 16, conv1-conv2 frozen as the original), with the original's anchors, proposal counts (12000/2000 training,
6000/300 testing), sampling (256 anchors, 128 RoIs at 25% foreground), 7x7 RoI max pooling and a 4096-d head, on
the same blob sizes, in float32 with the same threads, and prints our time over its (data loading left out of both).
"""
import _init_paths  # noqa: F401

import argparse
import os.path as osp
import tempfile
import time

import cv2
import numpy as np
import torch

STAGES = ['data', 'backbone', 'rpn', 'proposal', 'targets', 'head', 'backward']  # targets: with the RPN losses, head: with its losses
DEFAULT_SOLVERS = {
    'TINY': 'models/shapes/TINY/faster_rcnn_end2end/solver.yml',
    'VGG16': 'models/pascal_voc/VGG16/faster_rcnn_end2end/solver.yml',
    'ZF': 'models/pascal_voc/ZF/faster_rcnn_end2end/solver.yml',
    'VGG_CNN_M_1024': 'models/pascal_voc/VGG_CNN_M_1024/faster_rcnn_end2end/solver.yml',
}
DEFAULT_SIZES = {'TINY': (375, 500), 'VGG16': (600, 1000), 'ZF': (600, 1000), 'VGG_CNN_M_1024': (600, 1000)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Benchmark a Faster R-CNN network on this machine')
    p.add_argument('--nets', nargs='+', default=['TINY', 'VGG16'])
    p.add_argument('--repeat', type=int, default=3, help='timed iterations after one warm-up (default 3)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--num-classes', type=int, default=21)
    p.add_argument('--size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help='image size before scaling (default: TINY 375x500, others 600x1000)')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--vs-torchvision', dest='vs_torchvision', action='store_true',
                   help="VGG16: also time torchvision's FasterRCNN on the same conv body (float32)")
    p.add_argument('--set', dest='set_cfgs', nargs=argparse.REMAINDER, default=None,
                   help='cfg overrides after the solver\'s, e.g. --set AMP off SIZE_DIVISIBILITY 1')
    return p.parse_args(argv)


def make_cfg(solver_path, set_cfgs=None):
    from fast_rcnn.config import cfg, cfg_copy, cfg_from_dict, cfg_from_file, cfg_from_list
    from fast_rcnn.train import load_solver
    c = cfg_copy(cfg)
    cfg_from_file(osp.join(c.ROOT_DIR, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'), c)
    solver = load_solver(osp.join(c.ROOT_DIR, solver_path))
    if solver['cfg']:
        cfg_from_dict(solver['cfg'], c)
    if set_cfgs:
        cfg_from_list(set_cfgs, c)
    # one training scale, so that repeats (and runs) time the same input: the middle of TRAIN.SCALES
    c.TRAIN.SCALES = (c.TRAIN.SCALES[len(c.TRAIN.SCALES) // 2],)
    return c, solver


def fake_image(h, w, rng):
    im = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
    boxes = []
    for _ in range(4):
        bw, bh = rng.randint(w // 10, w // 3), rng.randint(h // 10, h // 3)
        x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
        cv2.rectangle(im, (int(x1), int(y1)), (int(x1 + bw - 1), int(y1 + bh - 1)),
                      tuple(int(v) for v in rng.randint(0, 255, 3)), -1)
        boxes.append([x1, y1, x1 + bw - 1, y1 + bh - 1])
    return im, np.array(boxes, np.float32)


def minibatch(path, boxes, num_classes, cfg, rng):
    """The training data pipeline's minibatch for one image (the datasets helper's get_minibatch)."""
    from roi_data_layer.minibatch import get_minibatch
    h, w = cv2.imread(path).shape[:2]
    classes = (np.arange(len(boxes)) % (num_classes - 1) + 1).astype(np.int32)
    ov = np.zeros((len(boxes), num_classes), np.float32)
    ov[np.arange(len(boxes)), classes] = 1
    entry = {'image': path, 'width': w, 'height': h, 'boxes': boxes, 'gt_classes': classes, 'gt_overlaps': ov,
             'flipped': False, 'seg_areas': np.ones(len(boxes), np.float32),
             'max_classes': classes, 'max_overlaps': np.ones(len(boxes), np.float32)}
    return get_minibatch([entry], num_classes, cfg=cfg, rng=rng)


def our_steps(net_name, args, tmpdir):
    """Our network's (train_step, test_step, c): each step runs one iteration / test image and returns its stage
    times (a dict, seconds); train_step also returns the blob shape, test_step the test blob's."""
    from fast_rcnn.train import make_optimizer
    from nets.backbones import build_net
    from nets.faster_rcnn import FasterRCNN
    from utils.blob import im_list_to_blob, prep_im_for_blob
    c, solver = make_cfg(DEFAULT_SOLVERS[net_name], args.set_cfgs)
    device = torch.device(args.device)
    rng = np.random.RandomState(0)
    torch.manual_seed(0)
    h, w = args.size or DEFAULT_SIZES[net_name]
    im, boxes = fake_image(h, w, rng)
    path = osp.join(tmpdir, 'bench_{}.png'.format(net_name))
    cv2.imwrite(path, im)
    model = FasterRCNN(net_name, args.num_classes, c).to(device)
    model.frozen_parameters(build_net(net_name).frozen)
    opt = make_optimizer(model, solver)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    def train_step():
        t = {}
        model.train()
        t0 = time.perf_counter()
        blobs = minibatch(path, boxes, args.num_classes, c, rng)
        data = torch.from_numpy(blobs['data']).to(device)
        sync()
        t['data'] = time.perf_counter() - t0
        losses = model(data, blobs['im_info'], blobs['gt_boxes'], timers=t)
        t1 = time.perf_counter()
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step(1e-4)
        sync()
        t['backward'] = time.perf_counter() - t1
        return t, tuple(blobs['data'].shape[2:])

    def test_step():
        t = {}
        model.eval()
        t0 = time.perf_counter()
        img = cv2.imread(path)
        blob_im, scale = prep_im_for_blob(img, c.PIXEL_MEANS, c.TEST.SCALES[0], c.TEST.MAX_SIZE)
        blob = im_list_to_blob([blob_im], int(c.SIZE_DIVISIBILITY))
        data = torch.from_numpy(blob).to(device)
        sync()
        t['data'] = time.perf_counter() - t0
        with torch.no_grad():
            model(data, np.array([[blob_im.shape[0], blob_im.shape[1], scale]], np.float32), timers=t)
        return t, tuple(blob.shape[2:])
    return train_step, test_step, c


class _RoIMaxPool(torch.nn.Module):
    """torchvision's box_roi_pool interface around torchvision.ops.roi_pool (the original's RoI max pooling)."""

    def __init__(self, size, scale):
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, features, proposals, image_shapes):
        from torchvision.ops import roi_pool
        return roi_pool(features['0'], proposals, (self.size, self.size), self.scale)


def torchvision_vgg16(num_classes):
    """torchvision's FasterRCNN on VGG16's conv body with the original's VGG16 settings (see the module doc)."""
    import torchvision
    from torchvision.models.detection import FasterRCNN as TVFasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.rpn import AnchorGenerator
    body = torchvision.models.vgg16(weights=None).features[:30]  # conv5_3 + ReLU, without pool5: stride 16
    for layer in list(body)[:10]:  # conv1_1 .. conv2_2 frozen, as the original's VGG16
        for prm in layer.parameters():
            prm.requires_grad_(False)
    body.out_channels = 512
    model = TVFasterRCNN(
        body, num_classes=None, min_size=600, max_size=1000,
        rpn_anchor_generator=AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)),
        rpn_pre_nms_top_n_train=12000, rpn_post_nms_top_n_train=2000, rpn_pre_nms_top_n_test=6000,
        rpn_post_nms_top_n_test=300, rpn_nms_thresh=0.7, rpn_batch_size_per_image=256,
        box_head=TwoMLPHead(512 * 7 * 7, 4096),
        box_predictor=FastRCNNPredictor(4096, num_classes), box_batch_size_per_image=128,
        box_positive_fraction=0.25, box_score_thresh=0.05, box_nms_thresh=0.3, box_detections_per_img=100)
    model.roi_heads.box_roi_pool = _RoIMaxPool(7, 1.0 / 16)  # its constructor accepts RoIAlign only
    return model


def torchvision_steps(args, train_shape, test_shape, boxes):
    """torchvision's (train_step, test_step) at our blobs' sizes (its transform then leaves them as they are): a
    training iteration (forward, backward, SGD step) and a test image; each returns its seconds."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = torchvision_vgg16(args.num_classes).to(device)
    opt = torch.optim.SGD([prm for prm in model.parameters() if prm.requires_grad], lr=1e-4, momentum=0.9)
    rng = np.random.RandomState(0)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    im = torch.from_numpy(rng.rand(3, *train_shape).astype(np.float32)).to(device)
    scale = float(train_shape[0]) / DEFAULT_SIZES['VGG16'][0]
    target = {'boxes': torch.from_numpy(boxes[:, :4] * scale).float().to(device),
              'labels': torch.arange(len(boxes), device=device) % (args.num_classes - 1) + 1}
    im_test = torch.from_numpy(rng.rand(3, *test_shape).astype(np.float32)).to(device)

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    def train_step():
        model.train()
        losses = model([im], [target])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()

    def test_step():
        model.eval()
        with torch.no_grad():
            model([im_test])
    return (lambda: timed(train_step)), (lambda: timed(test_step))


def report(name, shape, rows, kind):
    mean = {s: float(np.mean([r.get(s, 0.0) for r in rows])) for s in STAGES}
    total = sum(mean.values())
    print('{} {} (input {}x{}), mean of {}: {:.3f} s'.format(name, kind, shape[0], shape[1], len(rows), total))
    for s in STAGES:
        if kind == 'test' and s in ('targets', 'backward'):
            continue
        print('  {:<9s} {:8.4f} s  {:5.1f}%'.format(s, mean[s], 100.0 * mean[s] / max(total, 1e-12)))
    frac = (mean['proposal'] + mean['targets']) / max(total, 1e-12)
    print('  proposal + target layers: {:.1f}% of the {}'.format(100 * frac, 'iteration' if kind == 'train'
                                                                        else 'image'))


def main(argv=None):
    args = parse_args(argv)
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    if args.threads:
        torch.set_num_threads(args.threads)
    print('torch {} on {} ({} threads)'.format(torch.__version__, args.device, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets:
            name = name.upper()
            train_step, test_step, c = our_steps(name, args, tmp)
            vs = args.vs_torchvision and name == 'VGG16'
            # ours and torchvision's alternate, iteration by iteration, so that a change in the machine's speed
            # during the run weighs on both; the first of each is a warm-up
            train_rows, test_rows, tv_train, tv_test = [], [], [], []
            tv_steps = None
            for it in range(args.repeat + 1):
                row, train_shape = train_step()
                if vs and tv_steps is None:
                    _, test_shape = test_step()
                    _, boxes = fake_image(*DEFAULT_SIZES['VGG16'], np.random.RandomState(0))
                    tv_steps = torchvision_steps(args, train_shape, test_shape, boxes)
                t_tv = tv_steps[0]() if vs else None
                if it > 0:
                    train_rows.append(row)
                    tv_train.append(t_tv)
            for it in range(args.repeat + 1):
                row, test_shape = test_step()
                t_tv = tv_steps[1]() if vs else None
                if it > 0:
                    test_rows.append(row)
                    tv_test.append(t_tv)
            print('=' * 70)
            from nets.faster_rcnn import amp_dtype
            print('{}: TRAIN pre/post NMS {}/{}, BATCH_SIZE {}; TEST pre/post {}/{}; AMP {} ({}); SIZE_DIVISIBILITY {}'
                  .format(name, c.TRAIN.RPN_PRE_NMS_TOP_N, c.TRAIN.RPN_POST_NMS_TOP_N, c.TRAIN.BATCH_SIZE,
                          c.TEST.RPN_PRE_NMS_TOP_N, c.TEST.RPN_POST_NMS_TOP_N, c.AMP,
                          amp_dtype(c.AMP, torch.device(args.device)) or 'float32', c.SIZE_DIVISIBILITY))
            report(name, train_shape, train_rows, 'train')
            report(name, test_shape, test_rows, 'test')
            if vs:
                ours_train = float(np.mean([sum(v for k, v in r.items() if k != 'data') for r in train_rows]))
                ours_test = float(np.mean([sum(v for k, v in r.items() if k != 'data') for r in test_rows]))
                print("torchvision's FasterRCNN on the same VGG16 body (float32, data loading left out of both, "
                      'the two alternating):')
                print('  training iteration: ours {:.3f} s, torchvision {:.3f} s: ours/torchvision {:.2f}x'.format(
                    ours_train, np.mean(tv_train), ours_train / np.mean(tv_train)))
                print('  test image:         ours {:.3f} s, torchvision {:.3f} s: ours/torchvision {:.2f}x'.format(
                    ours_test, np.mean(tv_test), ours_test / np.mean(tv_test)))

if __name__ == '__main__':
    main()
