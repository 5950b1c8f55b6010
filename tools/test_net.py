#!/usr/bin/env python
"""Test a Faster R-CNN snapshot on an image database and print each class's AP and `Mean AP = 0.xxxx`.

Beside detections.pkl it leaves metrics.json (per-class AP, mean AP, the metric, the snapshot, the dataset; COCO's
summary numbers for COCO) and pr_curves.png (each class's precision/recall curve), and prints an AP table.

    tools/test_net.py --net output/faster_rcnn_end2end/shapes_trainval/tiny_faster_rcnn_iter_4000.pth \\
        --imdb shapes_test

The cfg starts from the one the snapshot was trained with (less its paths and EXP_DIR), then --cfg, then --set.
Results go to output/<EXP_DIR>/<imdb name>/<snapshot name>/, EXP_DIR from --cfg or --set (default: default).
"""
import _init_paths  # noqa: F401

import argparse
import os.path as osp
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a Faster R-CNN network')
    parser.add_argument('--gpu', dest='gpu_id', help='GPU id to use (same as --device cuda:N)', default=None, type=int)
    parser.add_argument('--device', dest='device', help='cpu, cuda or cuda:N (default cpu)', default=None, type=str)
    parser.add_argument('--def', dest='prototxt', help='ignored (kept for the original\'s command lines): the '
                        'snapshot carries its network', default=None, type=str)
    parser.add_argument('--net', dest='caffemodel', required=True, type=str,
                        help="snapshot (.pth) to test, or the original's trained .caffemodel")
    parser.add_argument('--cfg', dest='cfg_file', help='optional config file', default=None, type=str)
    parser.add_argument('--wait', dest='wait', help='ignored (kept for the original\'s command lines)',
                        default=True)
    parser.add_argument('--imdb', dest='imdb_name', help='dataset to test', default='voc_2007_test', type=str)
    parser.add_argument('--comp', dest='comp_mode', help='competition mode', action='store_true')
    parser.add_argument('--vis', dest='vis', help='save pictures of the detections', action='store_true')
    parser.add_argument('--num_dets', dest='max_per_image', help='max number of detections per image',
                        default=100, type=int)
    parser.add_argument('--threads', dest='threads', type=int, default=None,
                        help='CPU threads for torch (default: all cores)')
    parser.add_argument('--nproc', dest='nproc', type=int, default=1,
                        help='test in N processes on a CPU (forked; they share the images and --threads out)')
    parser.add_argument('--proposals', dest='proposals', default=None, type=str,
                        help='test Fast R-CNN on these proposals (TEST.HAS_RPN off): rpn_generate.py\'s .npz, the '
                        'original\'s .pkl, or a selective-search .mat of this dataset')
    parser.add_argument('--set', dest='set_cfgs', help='set config keys', default=None, nargs=argparse.REMAINDER)
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    from datasets.factory import get_imdb
    from fast_rcnn.config import ConfigError, get_output_dir
    from fast_rcnn.test import (build_cfg, check_classes, load_detector, read_proposals, portable_imdb_name,
                                resolve_device, test_net)

    print('Called with args:')
    print(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device, args.gpu_id)
    except ValueError as e:
        print('test_net.py: {}'.format(e), file=sys.stderr)
        sys.exit(2)
    if args.nproc < 1 or (args.nproc > 1 and device.type != 'cpu'):
        sys.exit('test_net.py: --nproc shares a CPU out over processes: 1 or more with --device cpu, 1 on a GPU '
                 '(got {} on {})'.format(args.nproc, device))
    if not osp.isfile(args.caffemodel):
        sys.exit('test_net.py: snapshot not found: {}'.format(args.caffemodel))
    cfg_files = [args.cfg_file] if args.cfg_file else []
    from datasets.imdb import DatasetNotFound
    imdb_classes = None
    if args.caffemodel.lower().endswith('.caffemodel'):  # the original's detector: its classes are the dataset's
        try:
            imdb_classes = get_imdb(args.imdb_name, build_cfg(None, cfg_files, args.set_cfgs or [])).classes
        except DatasetNotFound as e:
            print('test_net.py: --imdb {}: {}'.format(args.imdb_name, e), file=sys.stderr)
            sys.exit(2)
    try:
        net, cfg, classes = load_detector(args.caffemodel, cfg_files, args.set_cfgs or [], device, imdb_classes)
    except ConfigError as e:
        print('test_net.py: {}'.format(e), file=sys.stderr)
        sys.exit(2 if str(e).startswith('--set') else 1)
    except (ValueError, RuntimeError) as e:  # a damaged, diverged or foreign snapshot: the message names it
        print('test_net.py: {}'.format(e), file=sys.stderr)
        sys.exit(1)
    try:
        imdb = get_imdb(args.imdb_name, cfg)  # the run's DATA_DIR, SKIP_BAD_ANNOTATIONS...
    except DatasetNotFound as e:
        print('test_net.py: --imdb {}: {}'.format(args.imdb_name, e), file=sys.stderr)
        sys.exit(2)
    except (ValueError, OSError) as e:  # broken data: the message names the file (SKIP_BAD_ANNOTATIONS skips it)
        print('test_net.py: --imdb {}: {}'.format(args.imdb_name, e), file=sys.stderr)
        sys.exit(1)
    imdb.competition_mode(args.comp_mode)
    if not imdb.name.startswith('coco_2015_'):  # test-dev/test publish no annotations to count
        from datasets.summary import summarize
        lines, warnings = summarize(imdb)
        print('\n'.join(lines + ['warning: ' + w for w in warnings]))
    try:
        check_classes(classes, imdb)
    except ValueError as e:
        sys.exit('test_net.py: {}: {}'.format(args.caffemodel, e))
    proposals = None
    if args.proposals is not None or (net.mode == 'fast_rcnn' and not cfg.TEST.HAS_RPN):
        if args.proposals is None and cfg.TEST.PROPOSAL_METHOD == 'gt':
            sys.exit('test_net.py: {}: TEST.HAS_RPN is off (a Fast R-CNN network): pass --proposals FILE'.format(
                args.caffemodel))
        try:  # without --proposals, TEST.PROPOSAL_METHOD's file of the dataset (selective search), as the original
            proposals = read_proposals(imdb, args.proposals, cfg.TEST.PROPOSAL_METHOD)
        except (OSError, ValueError, NotImplementedError) as e:
            sys.exit('test_net.py: {}: {}'.format(
                '--proposals ' + args.proposals if args.proposals else 'TEST.PROPOSAL_METHOD ' +
                cfg.TEST.PROPOSAL_METHOD + ' (or pass --proposals FILE)', e))
    elif hasattr(imdb, 'set_proposal_method'):
        try:
            imdb.set_proposal_method('gt')
        except Exception:  # noqa: BLE001 - proposals are not needed (the RPN makes them)
            pass
    output_dir = get_output_dir(imdb, net.name, cfg=cfg)
    print('Output will be saved to `{:s}`'.format(output_dir))
    test_net(net, imdb, max_per_image=args.max_per_image, vis=args.vis, cfg=cfg, output_dir=output_dir,
             classes=classes, nproc=args.nproc, snapshot=args.caffemodel,
             imdb_spec=portable_imdb_name(args.imdb_name), proposals=proposals)


if __name__ == '__main__':
    main()
