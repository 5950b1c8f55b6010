#!/usr/bin/env python
"""Re-evaluate saved detections (output_dir/detections.pkl, as test_net.py writes it).

    tools/reval.py OUTPUT_DIR [--imdb NAME] [--comp] [--nms] [--threads N]

The dataset: --imdb when given; else the one test_net recorded in OUTPUT_DIR/metrics.json; else the name of
OUTPUT_DIR's parent folder (test_net writes into output/<EXP_DIR>/<imdb name>/<snapshot name>/).
--nms applies TEST.NMS per class and image (CPU NMS) before evaluating. Prints each class's AP, the AP table and
'Mean AP = 0.xxxx' for VOC-style datasets (any <folder>:<split> too), COCOeval's tables for COCO, and rewrites
OUTPUT_DIR/metrics.json and pr_curves.png (the snapshot test_net recorded is kept).
The pickle is read with an unpickler that only builds lists, tuples, dicts and numpy arrays, so a
detections file from someone else cannot run code.
Errors are one line, `reval.py: message`: exit status 2 for a wrong command line, 1 for bad data.
"""
import json
import os.path as osp
import pickle
import sys

import _init_paths  # noqa: F401

from datasets.ds_utils import load_detections
from fast_rcnn.test import apply_nms
from utils.cli import OneLineParser, ToolError, run_tool

PROG = 'reval.py'


def parse_args(argv=None):
    parser = OneLineParser(prog=PROG, description='Re-evaluate results')
    parser.add_argument('output_dir', nargs=1, help='results directory (holding detections.pkl)', type=str)
    parser.add_argument('--imdb', dest='imdb_name', default=None, type=str,
                        help='dataset to re-evaluate (default: the one of OUTPUT_DIR, see above)')
    parser.add_argument('--matlab', dest='matlab_eval', action='store_true',
                        help='ignored (kept for the original\'s command lines): this project has no MATLAB '
                             'evaluation; the Python evaluation is the result')
    parser.add_argument('--comp', dest='comp_mode', help='competition mode', action='store_true')
    parser.add_argument('--nms', dest='apply_nms', help='apply nms', action='store_true')
    parser.add_argument('--dets', default=None,
                        help='detections file (default OUTPUT_DIR/detections.pkl, else detections.npz)')
    parser.add_argument('--threads', dest='threads', type=int, default=None,
                        help='CPU threads for torch (default: all cores)')
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1, got {}'.format(args.threads))
    return args


def read_metrics(output_dir):
    """OUTPUT_DIR/metrics.json as a dict, or {} when there is none or it cannot be read."""
    try:
        with open(osp.join(output_dir, 'metrics.json'), encoding='utf-8') as f:
            m = json.load(f)
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def dataset_of(output_dir, metrics=None):
    """[(name, where it came from)] to try for OUTPUT_DIR, best first: metrics.json's 'imdb' (the name test_net
    was given) and 'dataset' (the imdb's name), then the parent folder's name."""
    metrics = read_metrics(output_dir) if metrics is None else metrics
    out = []
    for key in ('imdb', 'dataset'):
        if isinstance(metrics.get(key), str) and metrics[key] and metrics[key] not in [n for n, _ in out]:
            out.append((metrics[key], '{}\'s "{}"'.format(osp.join(output_dir, 'metrics.json'), key)))
    parent = osp.basename(osp.dirname(osp.abspath(output_dir)))
    if parent and parent not in [n for n, _ in out]:
        out.append((parent, 'the name of the folder above {}'.format(output_dir)))
    return out


def open_imdb(args, output_dir, metrics):
    from datasets.factory import get_imdb
    from datasets.imdb import DatasetNotFound
    from fast_rcnn.config import cfg  # this tool's cfg: the defaults (no --cfg / --set here)
    if args.imdb_name:
        try:
            return get_imdb(args.imdb_name, cfg), args.imdb_name
        except DatasetNotFound as e:
            raise ToolError('--imdb {}: {}'.format(args.imdb_name, e), 2) from None
    tried = []
    for name, source in dataset_of(output_dir, metrics):
        try:
            return get_imdb(name, cfg), name
        except DatasetNotFound as e:  # a name from metrics.json says why; a folder's name is only a guess
            tried.append('{} (from {}){}'.format(name, source, ': {}'.format(e) if 'metrics.json' in source else ''))
    raise ToolError('cannot tell which dataset {} holds the detections of{}; pass --imdb NAME'.format(
        output_dir, ' (tried ' + '; '.join(tried) + ')' if tried else ''), 2)


def from_dets(imdb_name, output_dir, args):
    """Evaluate the detections of ``output_dir`` on ``imdb_name`` (None: the folder's dataset, see above)."""
    from fast_rcnn.config import cfg
    from fast_rcnn.test import evaluate_and_report
    metrics = read_metrics(output_dir)
    det_file = args.dets
    if det_file is None:
        det_file = osp.join(output_dir, 'detections.pkl')
        if not osp.exists(det_file) and osp.exists(osp.join(output_dir, 'detections.npz')):
            det_file = osp.join(output_dir, 'detections.npz')
    if not osp.exists(det_file):
        raise ToolError('no detections file {}'.format(det_file))
    args.imdb_name = imdb_name
    imdb, spec = open_imdb(args, output_dir, metrics)
    print('Dataset: {}'.format(imdb.name))
    imdb.competition_mode(args.comp_mode)
    dets = load_detections(det_file)
    if len(dets) != imdb.num_classes or any(len(d) != imdb.num_images for d in dets):
        raise ToolError('{} holds {} classes x {} images; {} has {} classes x {} images'.format(
            det_file, len(dets), len(dets[0]) if dets else 0, imdb.name, imdb.num_classes, imdb.num_images))
    if args.apply_nms:
        print('Applying NMS to all detections')
        dets = apply_nms(dets, cfg.TEST.NMS)
    print('Evaluating detections')
    snapshot = metrics.get('snapshot') if isinstance(metrics.get('snapshot'), str) else None
    return evaluate_and_report(imdb, dets, output_dir, snapshot, imdb_spec=metrics.get('imdb') or spec)


def main(argv=None):
    """Returns the evaluation's result (the mean AP for VOC-style datasets); raises ToolError for a user's
    error, pickle.UnpicklingError for a detections file that is not plain data (``cli`` reports both)."""
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    output_dir = osp.abspath(args.output_dir[0])
    if not osp.isdir(output_dir):
        raise ToolError('no such folder: {}'.format(args.output_dir[0]), 2)
    return from_dets(args.imdb_name, output_dir, args)


def cli(argv=None):
    """main() for the command line: errors a user can cause end in one line and an exit status."""
    return run_tool(PROG, main, argv, (pickle.UnpicklingError, ValueError, OSError))


if __name__ == '__main__':
    sys.exit(cli())
