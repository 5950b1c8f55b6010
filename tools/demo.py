#!/usr/bin/env python
"""Detect objects in images with a trained Faster R-CNN snapshot and save pictures of the detections.

    tools/demo.py                          # the model `make demo` trained, on built-in test images
    tools/demo.py --net SNAPSHOT a.jpg dir/ --conf-thresh 0.5 --out output/demo

One picture per input (same file name) directly in --out (default output/demo/). Headless: no window is opened.
"""
import _init_paths  # noqa: F401

import argparse
import glob
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np
import torch

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff')
DEFAULT_EXP = osp.join('faster_rcnn_end2end', 'shapes_trainval')
DEFAULT_PREFIX = 'tiny_faster_rcnn'
DEFAULT_IMDB = 'shapes_test'
DEFAULT_NUM_IMAGES = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Faster R-CNN demo')
    parser.add_argument('--net', dest='net', default=None, type=str,
                        help='snapshot (.pth); default: the newest {}_iter_*.pth in output/{}'.format(
                            DEFAULT_PREFIX, DEFAULT_EXP))
    parser.add_argument('--device', dest='device', default=None, type=str, help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--gpu', dest='gpu_id', default=None, type=int, help='GPU id (same as --device cuda:N)')
    parser.add_argument('--cpu', dest='cpu_mode', action='store_true', help='use the CPU (the default)')
    parser.add_argument('--conf-thresh', dest='conf_thresh', default=0.5, type=float,
                        help='draw detections with at least this score (default 0.5; the original used 0.8 '
                             'with its VGG16/ZF models)')
    parser.add_argument('--nms-thresh', dest='nms_thresh', default=0.3, type=float, help='per-class NMS (0.3)')
    parser.add_argument('--out', dest='out', default=None, type=str, help='output folder (default output/demo)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, type=str, help='optional config file')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER, help='set config keys')
    parser.add_argument('inputs', nargs='*', help='image files or folders (default: built-in test images)')
    return parser.parse_args(argv)


def default_snapshot(root):
    """The newest snapshot `make demo` wrote, or None."""
    pat = osp.join(root, 'output', DEFAULT_EXP, DEFAULT_PREFIX + '_iter_*.pth')
    found = []
    for p in glob.glob(pat):
        try:
            found.append((int(osp.basename(p)[len(DEFAULT_PREFIX) + 6:-4]), p))
        except ValueError:
            continue
    return max(found)[1] if found else None


def collect_images(inputs):
    """Image paths from files and (non-recursively) folders, in the order given (folders sorted)."""
    paths = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(p for p in glob.glob(osp.join(item, '*')) if p.lower().endswith(IMAGE_EXTS))
            if not found:
                print('demo.py: warning: no images in folder {}'.format(item))
            paths.extend(found)
        elif osp.isfile(item):
            paths.append(item)
        else:
            sys.exit('demo.py: no such image or folder: {}'.format(item))
    return paths


def detect_and_draw(net, cfg, classes, im, conf_thresh, nms_thresh):
    """Returns (picture with the boxes drawn, [(class, score, box)], seconds)."""
    from fast_rcnn.test import detections_for_image, draw_box, im_detect
    t0 = time.time()
    scores, boxes = im_detect(net, im, None, cfg)
    dt = time.time() - t0
    dets = detections_for_image(scores, boxes, len(classes), conf_thresh, nms_thresh, 0)
    vis = im.copy()
    found = []
    palette = [(0, 0, 255), (0, 160, 0), (255, 0, 0), (0, 140, 255), (200, 0, 200), (160, 160, 0)]
    for j in range(1, len(classes)):
        for d in dets[j]:
            if d[4] < conf_thresh:
                continue
            draw_box(vis, d[:4], '{:s} {:.3f}'.format(classes[j], float(d[4])), palette[(j - 1) % len(palette)])
            found.append((classes[j], float(d[4]), [float(x) for x in d[:4]]))
    return vis, found, dt, scores.shape[0]


def main(argv=None):
    args = parse_args(argv)
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    from fast_rcnn.config import cfg as global_cfg
    from fast_rcnn.test import load_detector, resolve_device

    root = global_cfg.ROOT_DIR
    net_path = args.net or default_snapshot(root)
    if net_path is None:
        sys.exit('demo.py: no trained model found in output/{} -- run `make demo` (or tools/train_net.py) first, '
                 'or pass --net SNAPSHOT'.format(DEFAULT_EXP))
    device = resolve_device('cpu' if args.cpu_mode else args.device, args.gpu_id)
    net, cfg, classes = load_detector(net_path, [args.cfg_file] if args.cfg_file else [], args.set_cfgs or [],
                                      device)
    print('Loaded network {:s} ({}, classes: {})'.format(net_path, net.net_name, ', '.join(classes[1:])))

    if args.inputs:
        images = collect_images(args.inputs)
    else:
        from datasets.factory import get_imdb
        imdb = get_imdb(DEFAULT_IMDB)
        images = [imdb.image_path_at(i) for i in range(min(DEFAULT_NUM_IMAGES, imdb.num_images))]
    if not images:
        sys.exit('demo.py: no images to process')
    out_dir = args.out or osp.join(root, 'output', 'demo')
    os.makedirs(out_dir, exist_ok=True)
    for path in images:
        im = cv2.imread(path)
        if im is None:
            print('demo.py: warning: cannot read image {}, skipped'.format(path))
            continue
        vis, found, dt, n = detect_and_draw(net, cfg, classes, im, args.conf_thresh, args.nms_thresh)
        name = osp.basename(path)
        if not name.lower().endswith(('.jpg', '.png')):
            name = osp.splitext(name)[0] + '.png'
        dst = osp.join(out_dir, name)
        cv2.imwrite(dst, vis)
        print('~' * 60)
        print('Demo for {:s}: detection took {:.3f}s for {:d} object proposals'.format(path, dt, n))
        for cls, score, box in found:
            print('  {:s} {:.3f} [{:.1f}, {:.1f}, {:.1f}, {:.1f}]'.format(cls, score, *box))
        print('  wrote {:s}'.format(dst))
    print('Pictures saved in {:s}'.format(out_dir))


if __name__ == '__main__':
    main()
