#!/usr/bin/env python3
"""Benchmark our native ops against torchvision, in one process on the same inputs; prints ratios.

NMS: RPN-like proposals (jittered anchors of a 38x50 map, stride 16, clipped to 600x800, random scores, the top-N
scored) at 2000/6000/12000 boxes, IoU 0.7. torchvision gets x2+1, y2+1 so that its IoU equals ours (+1 areas).
RoI pooling and RoIAlign (2x2 points a bin; CPU): forward+backward, 7x7, features 1x512x38x50, spatial scale
1/16, 128/300/2000 proposal RoIs. The three RPN layers (no peer: times only) at VGG16's sizes: a 38x50 map, 9
anchors, 5 gt boxes, the proposal layer with the TRAIN (12000 -> 2000) and TEST (6000 -> 300) settings.
CPU always; CUDA too when a GPU and our CUDA build are there. Not a test: timings depend on the machine.

    .venv/bin/python tools/bench_ops.py [--threads N] [--repeat R] [--no-cuda]
"""
import argparse
import os.path as osp
import sys
import time
from typing import Callable, List

import numpy as np
import torch
import torchvision

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', 'lib'))

import roi_pooling  # noqa: E402
from nms import gpu_nms as gpu  # noqa: E402
from nms.cpu_nms import cpu_nms  # noqa: E402
from fast_rcnn.config import default_cfg  # noqa: E402
from rpn.anchor_target_layer import anchor_target_layer  # noqa: E402
from rpn.proposal_layer import proposal_layer  # noqa: E402
from rpn.proposal_target_layer import proposal_target_layer  # noqa: E402


def anchors_9() -> np.ndarray:
    """The 9 default anchors (base 16, ratios 0.5/1/2, scales 8/16/32), built here so the script stands alone."""
    out = []
    for r in (0.5, 1.0, 2.0):
        w = np.round(np.sqrt(256.0 / r))
        h = np.round(w * r)
        for s in (8, 16, 32):
            ws, hs = w * s, h * s
            out.append([7.5 - 0.5 * (ws - 1), 7.5 - 0.5 * (hs - 1), 7.5 + 0.5 * (ws - 1), 7.5 + 0.5 * (hs - 1)])
    return np.array(out)


def rpn_proposals(n: int, seed: int = 0, H: int = 38, W: int = 50, im=(600, 800)) -> np.ndarray:
    """(n, 5) float32 [x1, y1, x2, y2, score], highest scores first."""
    rng = np.random.RandomState(seed)
    sx, sy = np.meshgrid(np.arange(W) * 16.0, np.arange(H) * 16.0)
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], 1)
    a = (anchors_9()[None] + shifts[:, None]).reshape(-1, 4)
    w = a[:, 2] - a[:, 0] + 1
    h = a[:, 3] - a[:, 1] + 1
    d = rng.randn(len(a), 4) * 0.1
    cx = a[:, 0] + 0.5 * w + d[:, 0] * w
    cy = a[:, 1] + 0.5 * h + d[:, 1] * h
    w = w * np.exp(d[:, 2])
    h = h * np.exp(d[:, 3])
    b = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], 1)
    b[:, 0::2] = b[:, 0::2].clip(0, im[1] - 1)
    b[:, 1::2] = b[:, 1::2].clip(0, im[0] - 1)
    b = b[((b[:, 2] - b[:, 0] + 1) >= 16) & ((b[:, 3] - b[:, 1] + 1) >= 16)]
    s = rng.rand(len(b))
    o = np.argsort(-s)[:n]
    return np.hstack([b[o], s[o, None]]).astype(np.float32)


def timeit(fn: Callable[[], object], repeat: int, sync: bool = False) -> float:
    """Median seconds of `repeat` calls after one warm-up."""
    fn()
    times: List[float] = []
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def row(name: str, ours: float, tv: float, note: str = '') -> None:
    print('%-34s ours %9.2f ms   torchvision %9.2f ms   speed-up x%.2f %s'
          % (name, ours * 1e3, tv * 1e3, tv / ours, note), flush=True)


def bench_nms(device: str, repeat: int) -> None:
    for n in (2000, 6000, 12000):
        dets = rpn_proposals(n)
        boxes = torch.from_numpy(dets[:, :4].copy())
        boxes[:, 2:] += 1
        scores = torch.from_numpy(dets[:, 4].copy())
        if device == 'cpu':
            ours = lambda: cpu_nms(dets, 0.7)  # noqa: E731
            keep = cpu_nms(dets, 0.7)
            sync = False
        else:
            t = torch.from_numpy(dets).cuda()
            boxes, scores = boxes.cuda(), scores.cuda()
            ours = lambda: gpu.gpu_nms(t, 0.7)  # noqa: E731
            keep = gpu.gpu_nms(t, 0.7).cpu().numpy()
            sync = True
        tv = lambda: torchvision.ops.nms(boxes, scores, 0.7)  # noqa: E731
        same = np.array_equal(tv().cpu().numpy(), keep)
        row('NMS %s %5d boxes IoU 0.7' % (device, n), timeit(ours, repeat, sync), timeit(tv, repeat, sync),
            '(kept %d, same as torchvision: %s)' % (len(keep), same))


def bench_roi(device: str, repeat: int, label: str, ours_op: Callable, tv_op: Callable) -> None:
    """ours_op / tv_op: (features (1, 512, 38, 50), rois (R, 5)) -> pooled; forward + backward, VGG16's sizes."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 512, 38, 50, generator=g)
    props = rpn_proposals(2000, seed=1)
    sync = device != 'cpu'
    for r in (128, 300, 2000):
        rois = torch.cat([torch.zeros(r, 1), torch.from_numpy(props[:r, :4])], 1).to(device)
        grad = torch.randn(r, 512, 7, 7, generator=g).to(device)
        f1 = feats.to(device).requires_grad_()
        f2 = feats.to(device).requires_grad_()

        def ours():
            f1.grad = None
            ours_op(f1, rois).backward(grad)

        def tv():
            f2.grad = None
            tv_op(f2, rois).backward(grad)

        ours()
        tv()
        same = torch.equal(ours_op(f1, rois), tv_op(f2, rois))
        if torch.equal(f1.grad, f2.grad):
            grad_note = 'same grad: True'
        else:  # on the GPU both scatter with atomicAdd, in no fixed order
            grad_note = 'grad max |diff| %.1e' % (f1.grad - f2.grad).abs().max().item()
        row('%s %s %4d RoIs fwd+bwd' % (label, device, r), timeit(ours, repeat, sync), timeit(tv, repeat, sync),
            '(same output: %s, %s)' % (same, grad_note))


def bench_roi_pool(device: str, repeat: int) -> None:
    bench_roi(device, repeat, 'RoIPool', roi_pooling.RoIPool(7, 7, 1.0 / 16),
              lambda f, r: torchvision.ops.roi_pool(f, r, (7, 7), 1.0 / 16))


def bench_roi_align(repeat: int) -> None:
    """CPU only: on a GPU roi_pooling.roi_align is torchvision's."""
    bench_roi('cpu', repeat, 'RoIAlign', roi_pooling.RoIAlign(7, 7, 1.0 / 16, 2, False),
              lambda f, r: torchvision.ops.roi_align(f, r, (7, 7), 1.0 / 16, 2, False))


def bench_rpn_layers(device: str, repeat: int) -> None:
    rng = np.random.RandomState(0)
    cfg = default_cfg()
    H, W = 38, 50
    info = np.array([[600, 800, 1.6]], np.float32)
    prob = torch.from_numpy(rng.uniform(size=(1, 18, H, W)).astype(np.float32)).to(device)
    pred = torch.from_numpy((rng.randn(1, 36, H, W) * 0.2).astype(np.float32)).to(device)
    xy = rng.uniform(0, 500, size=(5, 2))
    gt = torch.from_numpy(np.hstack([xy, xy + rng.uniform(30, 250, size=(5, 2)), rng.randint(1, 21, (5, 1))])
                          .astype(np.float32)).to(device)
    sync = device != 'cpu'
    for key in ('TRAIN', 'TEST'):
        t = timeit(lambda: proposal_layer(prob, pred, info, key, cfg=cfg), repeat, sync)
        print('%-34s %9.2f ms' % ('proposal_layer %s %s' % (device, key), t * 1e3), flush=True)
    rois = proposal_layer(prob, pred, info, 'TRAIN', cfg=cfg)[0]
    t = timeit(lambda: anchor_target_layer(prob, gt, info, cfg=cfg), repeat, sync)
    print('%-34s %9.2f ms' % ('anchor_target_layer %s' % device, t * 1e3), flush=True)
    t = timeit(lambda: proposal_target_layer(rois, gt, 21, cfg=cfg), repeat, sync)
    print('%-34s %9.2f ms' % ('proposal_target_layer %s %d RoIs' % (device, rois.shape[0]), t * 1e3), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=0, help='torch intra-op threads (0: torch default)')
    p.add_argument('--repeat', type=int, default=7)
    p.add_argument('--no-cuda', action='store_true')
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print('torch %s, torchvision %s, %d threads, RoI pooling backend: cpu=%s%s'
          % (torch.__version__, torchvision.__version__, torch.get_num_threads(), roi_pooling.backend('cpu'),
             (', cuda=%s' % roi_pooling.backend('cuda')) if torch.cuda.is_available() else ''), flush=True)
    bench_nms('cpu', args.repeat)
    bench_roi_pool('cpu', args.repeat)
    bench_roi_align(args.repeat)
    bench_rpn_layers('cpu', args.repeat)
    if args.no_cuda or not torch.cuda.is_available():
        print('CUDA: skipped (%s)' % ('--no-cuda' if args.no_cuda else 'no GPU visible'))
        return
    print('GPU: %s' % torch.cuda.get_device_name(0), flush=True)
    if gpu.available():
        bench_nms('cuda', args.repeat * 3)
    else:
        print('CUDA NMS: skipped (%s)' % gpu.unavailable_reason())
    bench_roi_pool('cuda', args.repeat * 3)
    bench_rpn_layers('cuda', args.repeat * 3)


if __name__ == '__main__':
    main()
