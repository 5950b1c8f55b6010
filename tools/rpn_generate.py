#!/usr/bin/env python
"""Generate RPN proposals for every image of a dataset (the original's tools/rpn_generate.py).

    tools/rpn_generate.py --net SNAPSHOT --imdb NAME [--device cpu|cuda[:N] | --gpu N] [--cfg FILE]
        [--out PATH] [--threads N] [--set KEY VALUE ...]

SNAPSHOT is any snapshot with an RPN (a full detector's or an RPN-only stage's). As the original, the RPN runs with
TEST.RPN_PRE_NMS_TOP_N -1 and TEST.RPN_POST_NMS_TOP_N 2000 (no cut before NMS, 2000 after), which --set may
change. Writes output/<EXP_DIR>/<imdb name>/<snapshot name>_rpn_proposals.npz atomically: 'image_ids' (N,),
'boxes' (sum R_i, 4) float32 in image pixels, 'scores' (sum R_i,) and 'counts' (N,) (no pickle; eval_recall.py
--rpn-file and the roidb read it). The last line is `Wrote RPN proposals to: PATH`.
Errors are one line, `rpn_generate.py: message`: exit status 2 for a wrong command line, 1 for bad data.
"""
import argparse
import os.path as osp
import sys

import _init_paths  # noqa: F401

from utils.cli import OneLineParser, ToolError, run_tool

PROG = 'rpn_generate.py'
#: The original's RPN settings for proposals to train and test Fast R-CNN on.
RPN_SETTINGS = ['TEST.RPN_PRE_NMS_TOP_N', '-1', 'TEST.RPN_POST_NMS_TOP_N', '2000']


def parse_args(argv=None):
    parser = OneLineParser(prog=PROG, description='Generate RPN proposals for a dataset')
    parser.add_argument('--net', dest='caffemodel', required=True, help='snapshot (.pth) with an RPN')
    parser.add_argument('--imdb', dest='imdb_name', required=True, help='dataset to generate proposals for')
    parser.add_argument('--def', dest='prototxt', default=None, help="the original's prototxt (not needed; ignored)")
    parser.add_argument('--gpu', dest='gpu_id', default=None, type=int, help='GPU id (same as --device cuda:N)')
    parser.add_argument('--device', default=None, help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='optional config file')
    parser.add_argument('--out', default=None, help='output .npz (default: see above)')
    parser.add_argument('--threads', type=int, default=None, help="torch's CPU threads")
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='set config keys (last on the command line)')
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1, got {}'.format(args.threads))
    return args


def run(args):
    import torch
    from datasets.factory import get_imdb
    from datasets.imdb import DatasetNotFound
    from fast_rcnn.config import ConfigError, get_output_dir
    from fast_rcnn.test import load_detector, resolve_device
    from rpn.generate import imdb_proposals, proposals_path, save_imdb_proposals
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not osp.isfile(args.caffemodel):
        raise ToolError('--net {}: no such file'.format(args.caffemodel), 2)
    try:
        device = resolve_device(args.device, args.gpu_id)
        net, cfg, classes = load_detector(args.caffemodel, [args.cfg_file] if args.cfg_file else [],
                                          RPN_SETTINGS + (args.set_cfgs or []), device)
    except ConfigError as e:
        raise ToolError(str(e), 2) from None
    try:
        imdb = get_imdb(args.imdb_name, cfg)
    except DatasetNotFound as e:
        raise ToolError('--imdb {}: {}'.format(args.imdb_name, e), 2) from None
    print('Loaded dataset `{:s}` for proposal generation'.format(imdb.name))
    boxes, scores = imdb_proposals(net, imdb, cfg)
    out = args.out or proposals_path(get_output_dir(imdb, None, cfg=cfg), net.name)
    save_imdb_proposals(out, imdb, boxes, scores)
    print('Wrote RPN proposals to: {}'.format(out), flush=True)
    return out


def main(argv=None):
    """Errors a user can cause end in one line and an exit status (a damaged snapshot, broken data: 1)."""
    return run_tool(PROG, lambda a: run(parse_args(a)), argv, (ValueError, OSError, RuntimeError))


if __name__ == '__main__':
    sys.exit(main())
