#!/usr/bin/env python
"""Train a Faster R-CNN network with the paper's 4-stage alternating optimisation (see fast_rcnn.alt_opt).

    tools/train_faster_rcnn_alt_opt.py --net_name VGG16 --weights data/imagenet_models/VGG16.v2.caffemodel \\
        --imdb voc_2007_trainval --cfg experiments/cfgs/faster_rcnn_alt_opt.yml
    tools/train_faster_rcnn_alt_opt.py --net_name TINY --imdb shapes_trainval \\
        --cfg experiments/cfgs/faster_rcnn_alt_opt.yml --set MODELS_DIR models/shapes

The stage solvers are <MODELS_DIR>/<NET>/faster_rcnn_alt_opt/stage{1,2}_{rpn,fast_rcnn}_solver.yml (MODELS_DIR
default models/pascal_voc; a relative one is relative to the project). Everything goes to
output/<EXP_DIR>/<imdb name>/, which the run locks; the last line is `Final model: PATH`
(<NET>_faster_rcnn_final.pth), which test_net.py and demo.py take like any snapshot. Rerunning the same command
after an interruption skips the finished stages and resumes the one in progress.
Errors are one line, `train_faster_rcnn_alt_opt.py: message`: exit status 2 for a wrong command line, 1 for bad
data or files.
"""
import argparse
import sys

import _init_paths  # noqa: F401

from utils.cli import OneLineParser, ToolError, run_tool

PROG = 'train_faster_rcnn_alt_opt.py'


def parse_args(argv=None):
    parser = OneLineParser(prog=PROG, description='Train a Faster R-CNN network with alternating optimization')
    parser.add_argument('--gpu', dest='gpu_id', default=None, type=int, help='GPU id (same as --device cuda:N)')
    parser.add_argument('--device', default=None, help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--net_name', dest='net_name', required=True, help='network (ZF, VGG_CNN_M_1024, VGG16, TINY)')
    parser.add_argument('--weights', dest='pretrained_model', default=None,
                        help='ImageNet weights for stages 1 and 2 (a network meant for them needs them)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='optional config file')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_trainval', help='dataset to train on')
    parser.add_argument('--from-scratch', dest='from_scratch', action='store_true',
                        help='allow a network meant for ImageNet initialisation to start without --weights')
    parser.add_argument('--threads', type=int, default=None, help="torch's CPU threads")
    parser.add_argument('--force-unlock', dest='force_unlock', action='store_true',
                        help="take the output folder's lock even if another host's run holds it")
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='set config keys (last on the command line)')
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1, got {}'.format(args.threads))
    return args


def run(args):
    import pprint

    import torch
    from datasets.imdb import DatasetNotFound
    from fast_rcnn.alt_opt import AltOpt
    from fast_rcnn.config import ConfigError, cfg, cfg_from_file, cfg_from_list, check_cfg
    from fast_rcnn.train import check_device, check_weights_file
    from nets.backbones import build_net
    from utils.lock import OutputLock
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    if args.threads:
        torch.set_num_threads(args.threads)
    print('Called with args:')
    print(args)
    try:
        device = check_device(args.device, args.gpu_id)
        if args.cfg_file is not None:
            cfg_from_file(args.cfg_file, cfg)
        if args.set_cfgs:
            cfg_from_list(args.set_cfgs, cfg)
        check_cfg(cfg)
    except (ConfigError, ValueError) as e:
        raise ToolError(str(e), 2) from None
    cfg.DEVICE = str(device)
    if device.type == 'cuda':
        cfg.GPU_ID = device.index or 0
    if args.pretrained_model is not None:
        check_weights_file(args.pretrained_model)
    with torch.device('meta'):
        netdef = build_net(args.net_name)
    if args.pretrained_model is None and not netdef.from_scratch and not args.from_scratch:
        raise ToolError('{} is meant to start from ImageNet weights: pass --weights '
                        'data/imagenet_models/{}.v2.caffemodel (data/scripts/fetch_imagenet_models.sh), or '
                        '--from-scratch if you really mean it'.format(netdef.name, netdef.name), 2)
    print('Using config:')
    pprint.pprint(cfg)
    try:
        run_ = AltOpt(args.net_name, args.imdb_name, cfg, args.pretrained_model, device, int(cfg.RNG_SEED))
    except DatasetNotFound as e:
        raise ToolError('--imdb {}: {}'.format(args.imdb_name, e), 2) from None
    print('Output will be saved to `{:s}`'.format(run_.output_dir))
    with OutputLock(run_.output_dir, force=args.force_unlock):
        return run_.run()


def main(argv=None):
    from fast_rcnn.train import TrainingInterrupted
    try:
        return run_tool(PROG, lambda a: run(parse_args(a)), argv,
                        (ValueError, OSError, RuntimeError, FloatingPointError))
    except TrainingInterrupted as e:  # the stage's snapshot is written; rerunning resumes from it
        sys.exit(128 + e.signum if e.signum > 0 else 1)


if __name__ == '__main__':
    sys.exit(main())
