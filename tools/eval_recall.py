#!/usr/bin/env python
"""Proposal recall of an imdb's proposals: average recall over IoU 0.5:0.05:0.95 and recall at 0.5 ... 0.9.

    tools/eval_recall.py --imdb NAME --rpn-file FILE [--limit N] [--area all|small|medium|large|...]
    tools/eval_recall.py --imdb NAME --net SNAPSHOT [--limit N] [--device cpu] [--threads N] [--cfg F] [--set K V]

The proposals to score are required, one of:
--rpn-file: proposals from rpn_generate (.npz, or the original's .pkl list of arrays), one array per image;
--net: a snapshot whose RPN is run on each image of --imdb (one pass at TEST.SCALES[0]; its TEST.RPN_* settings,
  --cfg and --set apply), its proposals scored in the order of their RPN scores;
--method METHOD: the imdb's own METHOD_roidb (e.g. selective_search, for a VOC dataset whose
  data/selective_search_data/<name>.mat is there).
Errors are one line, `eval_recall.py: message`: exit status 2 for a wrong command line, 1 for bad data.
"""
import argparse
import sys

import _init_paths  # noqa: F401
import numpy as np

from utils.cli import OneLineParser, ToolError, run_tool

PROG = 'eval_recall.py'


def parse_args(argv=None):
    parser = OneLineParser(prog=PROG, description='Evaluate proposal recall')
    parser.add_argument('--imdb', dest='imdb_name', help='dataset to evaluate', default='voc_2007_test', type=str)
    parser.add_argument('--method', dest='method', default=None, type=str,
                        help='proposal method (default rpn: the proposals of --rpn-file)')
    parser.add_argument('--rpn-file', dest='rpn_file', default=None, type=str,
                        help='proposals file (.npz from rpn_generate, or the original\'s .pkl)')
    parser.add_argument('--net', dest='net', default=None, type=str,
                        help='a snapshot (.pth): score the proposals its RPN makes on each image')
    parser.add_argument('--device', dest='device', default=None, type=str, help='cpu, cuda or cuda:N (--net)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, type=str, help='optional config file (--net)')
    parser.add_argument('--limit', default=None, type=int, help='use at most N proposals per image')
    parser.add_argument('--area', default='all', help='gt area range (all, small, medium, large, ...)')
    parser.add_argument('--threads', dest='threads', type=int, default=None,
                        help='CPU threads for torch (default: all cores)')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='set config keys (--net)')
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1, got {}'.format(args.threads))
    if args.limit is not None and args.limit < 1:
        parser.error('--limit must be at least 1, got {}'.format(args.limit))
    if args.net and (args.rpn_file or args.method):
        parser.error('--net scores its own proposals: give it without --rpn-file and --method')
    if not args.net and not args.rpn_file and args.method in (None, 'rpn'):
        parser.error('no proposals to score: give --rpn-file FILE (from rpn_generate, or the original\'s .pkl) '
                     'or --net SNAPSHOT')
    return args


def net_proposals(net, cfg, imdb):
    """The proposals (R_i, 4) of ``net``'s RPN on each image of ``imdb``, in the image's pixels, best first."""
    from rpn.generate import imdb_proposals
    return imdb_proposals(net, imdb, cfg)[0]


def run(args):
    import torch
    from datasets.factory import get_imdb
    from datasets.imdb import DatasetNotFound
    from fast_rcnn.config import ConfigError
    from fast_rcnn.test import build_cfg
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = build_cfg(None, [args.cfg_file] if args.cfg_file else [], args.set_cfgs or [])
    except ConfigError as e:
        raise ToolError(str(e), 2) from None
    try:
        imdb = get_imdb(args.imdb_name, cfg)
    except DatasetNotFound as e:
        raise ToolError('--imdb {}: {}'.format(args.imdb_name, e), 2) from None
    candidates = None
    if args.net:
        import os.path as osp
        from fast_rcnn.test import check_classes, load_detector, resolve_device
        if not osp.isfile(args.net):
            raise ToolError('--net {}: no such file'.format(args.net), 2)
        try:
            device = resolve_device(args.device)
            net, cfg, classes = load_detector(args.net, [args.cfg_file] if args.cfg_file else [],
                                              args.set_cfgs or [], device)
            check_classes(classes, imdb)
        except ConfigError as e:
            raise ToolError(str(e), 2) from None
        except (ValueError, RuntimeError, KeyError) as e:
            raise ToolError('{}: {}'.format(args.net, e)) from None
        imdb.set_proposal_method('gt')
        candidates = net_proposals(net, cfg, imdb)
        method = 'rpn of {}'.format(osp.basename(args.net))
    else:
        method = args.method or 'rpn'
        if args.rpn_file is not None:
            imdb.config['rpn_file'] = args.rpn_file
        try:
            imdb.set_proposal_method(method)
        except ValueError as e:
            raise ToolError(str(e), 2) from None
    res = imdb.evaluate_recall(candidate_boxes=candidates, area=args.area, limit=args.limit)
    ar, recalls, thresholds = res['ar'], res['recalls'], res['thresholds']
    print('Method: {}'.format(method))
    print('AverageRec: {:.3f}'.format(ar))

    def recall_at(t):
        ind = np.where(thresholds > t - 1e-5)[0][0]
        assert np.isclose(thresholds[ind], t)
        return recalls[ind]

    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        print('Recall@{:.1f}: {:.3f}'.format(t, recall_at(t)))
    return res


def main(argv=None):
    """The recall (evaluate_recall's dict); raises ToolError for a user's error (``cli`` reports it)."""
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    return run(args)


def cli(argv=None):
    """main() for the command line: errors a user can cause end in one line and an exit status."""
    return run_tool(PROG, main, argv)


if __name__ == '__main__':
    sys.exit(cli())
