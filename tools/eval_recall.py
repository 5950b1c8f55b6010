#!/usr/bin/env python
"""Proposal recall of an imdb's proposals: average recall over IoU 0.5:0.05:0.95 and recall at 0.5 ... 0.9.

    tools/eval_recall.py [--imdb voc_2007_test] [--method selective_search] [--rpn-file FILE] [--limit N]
                         [--area all|small|medium|large|...]

--rpn-file: proposals from rpn_generate (.npz, or the original's .pkl list of arrays) with --method rpn.
"""
import argparse
import sys

import _init_paths  # noqa: F401
import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate proposal recall')
    parser.add_argument('--imdb', dest='imdb_name', help='dataset to evaluate', default='voc_2007_test', type=str)
    parser.add_argument('--method', dest='method', help='proposal method', default='selective_search', type=str)
    parser.add_argument('--rpn-file', dest='rpn_file', default=None, type=str)
    parser.add_argument('--limit', default=None, type=int, help='use at most N proposals per image')
    parser.add_argument('--area', default='all', help='gt area range (all, small, medium, large, ...)')
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    from datasets.factory import get_imdb
    imdb = get_imdb(args.imdb_name)
    if args.rpn_file is not None:
        imdb.config['rpn_file'] = args.rpn_file
    imdb.set_proposal_method(args.method)
    res = imdb.evaluate_recall(candidate_boxes=None, area=args.area, limit=args.limit)
    ar, recalls, thresholds = res['ar'], res['recalls'], res['thresholds']
    print('Method: {}'.format(args.method))
    print('AverageRec: {:.3f}'.format(ar))

    def recall_at(t):
        ind = np.where(thresholds > t - 1e-5)[0][0]
        assert np.isclose(thresholds[ind], t)
        return recalls[ind]

    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        print('Recall@{:.1f}: {:.3f}'.format(t, recall_at(t)))
    return res


if __name__ == '__main__':
    main()
