#!/usr/bin/env python
"""Re-evaluate saved detections (output_dir/detections.pkl, as test_net.py writes it).

    tools/reval.py OUTPUT_DIR [--imdb voc_2007_test] [--matlab] [--comp] [--nms]

--nms applies TEST.NMS per class and image (CPU NMS) before evaluating. Prints each class's AP and
'Mean AP = 0.xxxx' for VOC-style datasets (any <folder>:<split> too), COCOeval's tables for COCO.
The pickle is read with an unpickler that only builds lists, tuples, dicts and numpy arrays, so a
detections file from someone else cannot run code.
"""
import argparse
import os.path as osp
import sys

import _init_paths  # noqa: F401
import numpy as np

from datasets.ds_utils import load_detections
from fast_rcnn.test import apply_nms


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Re-evaluate results')
    parser.add_argument('output_dir', nargs=1, help='results directory (holding detections.pkl)', type=str)
    parser.add_argument('--imdb', dest='imdb_name', help='dataset to re-evaluate', default='voc_2007_test',
                        type=str)
    parser.add_argument('--matlab', dest='matlab_eval', help='use matlab for evaluation', action='store_true')
    parser.add_argument('--comp', dest='comp_mode', help='competition mode', action='store_true')
    parser.add_argument('--nms', dest='apply_nms', help='apply nms', action='store_true')
    parser.add_argument('--dets', default=None,
                        help='detections file (default OUTPUT_DIR/detections.pkl, else detections.npz)')
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    return parser.parse_args(argv)


def from_dets(imdb_name, output_dir, args):
    from datasets.factory import get_imdb
    from fast_rcnn.config import cfg
    imdb = get_imdb(imdb_name)
    imdb.competition_mode(args.comp_mode)
    imdb.config['matlab_eval'] = args.matlab_eval
    det_file = args.dets
    if det_file is None:
        det_file = osp.join(output_dir, 'detections.pkl')
        if not osp.exists(det_file) and osp.exists(osp.join(output_dir, 'detections.npz')):
            det_file = osp.join(output_dir, 'detections.npz')
    if not osp.exists(det_file):
        sys.exit('reval.py: no detections file {}'.format(det_file))
    dets = load_detections(det_file)
    if len(dets) != imdb.num_classes or any(len(d) != imdb.num_images for d in dets):
        sys.exit('reval.py: {} holds {} classes x {} images; {} has {} classes x {} images'.format(
            det_file, len(dets), len(dets[0]) if dets else 0, imdb.name, imdb.num_classes, imdb.num_images))
    if args.apply_nms:
        print('Applying NMS to all detections')
        dets = apply_nms(dets, cfg.TEST.NMS)
    print('Evaluating detections')
    return imdb.evaluate_detections(dets, output_dir)


def main(argv=None):
    args = parse_args(argv)
    output_dir = osp.abspath(args.output_dir[0])
    return from_dets(args.imdb_name, output_dir, args)


if __name__ == '__main__':
    main()
