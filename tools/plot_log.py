#!/usr/bin/env python
"""Draw the loss curves of one or more training logs into a PNG.

    tools/plot_log.py LOG [LOG ...] [--out PNG] [--window N] [--title TEXT] [--only NAME ...]

A LOG is train_net's output (its "Iteration N, loss = ... (rpn_loss_cls = ..., ...), lr = ..." lines, with or
without a "[date time] " prefix), its train_log.jsonl, or a log of the original Caffe py-faster-rcnn (its
"solver.cpp] Iteration N, loss = ..." and "Train net output #k: NAME = ..." lines), so old and new runs can be
compared on one picture. Each loss is drawn against the iteration, faintly as logged and smoothed (the mean of
the last --window points; default about a twentieth of the points). With several logs each curve's name is
prefixed by its log's name. Validation mean APs found in a jsonl log are drawn on a second axis.

--out: the PNG (default: the first LOG's path without its extension, plus "_loss.png"). Written atomically.
Errors are one line, `plot_log.py: message`: exit status 2 for a wrong command line (a LOG that does not
exist), 1 for a log with no iterations in it or a failed write.
"""
import _init_paths  # noqa: F401

import argparse
import os.path as osp
import sys

from utils.cli import OneLineParser

PROG = 'plot_log.py'


def parse_args(argv=None):
    parser = OneLineParser(prog=PROG, description=__doc__.split('\n\n')[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog='\n\n'.join(__doc__.split('\n\n')[2:]))
    parser.add_argument('logs', nargs='+', metavar='LOG', help='training logs (text, jsonl or Caffe)')
    parser.add_argument('--out', default=None, help='the PNG to write (default: LOG_loss.png beside the first LOG)')
    parser.add_argument('--window', type=int, default=None, help='smoothing window in points (1: none)')
    parser.add_argument('--title', default=None, help='the picture\'s title (default: the logs\' names)')
    parser.add_argument('--only', nargs='+', default=None, metavar='NAME',
                        help='draw only these losses (e.g. loss rpn_loss_cls)')
    args = parser.parse_args(argv)
    if args.window is not None and args.window < 1:
        parser.error('--window must be at least 1, got {}'.format(args.window))
    return args


def default_out(log):
    return osp.splitext(log)[0] + '_loss.png'


def label_for(logs):
    """A short distinct name for each log: its file name, or more of its path where two file names are equal."""
    names = [osp.basename(p) for p in logs]
    if len(set(names)) == len(names):
        return names
    return [osp.relpath(osp.abspath(p)) for p in logs]


def collect(logs, only=None):
    """(series, val_map) for draw_losses from the logs (labels prefixed by the log's name when several)."""
    from utils.plots import parse_log
    series, val_map = {}, {}
    labels = label_for(logs)
    for path, name in zip(logs, labels):
        parsed = parse_log(path)
        prefix = '{}: '.format(name) if len(logs) > 1 else ''
        for loss, points in parsed['losses'].items():
            if only and loss not in only:
                continue
            series[prefix + loss] = points
        if parsed['val_map']:
            val_map[prefix + 'validation mean AP'] = parsed['val_map']
    return series, val_map


def main(argv=None):
    args = parse_args(argv)
    for p in args.logs:
        if not osp.isfile(p):
            print('{}: no such log file: {}'.format(PROG, p), file=sys.stderr)
            return 2
    from utils.atomic import atomic_write
    from utils.plots import draw_losses
    try:
        series, val_map = collect(args.logs, args.only)
    except (OSError, ValueError) as e:
        print('{}: {}'.format(PROG, e), file=sys.stderr)
        return 1
    if not series and not val_map:
        print('{}: none of the losses {} is in {}'.format(PROG, ', '.join(args.only or []), ', '.join(args.logs)),
              file=sys.stderr)
        return 1
    title = args.title if args.title is not None else ', '.join(label_for(args.logs))
    png = draw_losses(series, title, args.window, val_map)
    out = args.out or default_out(args.logs[0])
    try:
        atomic_write(out, lambda f: f.write(png))
    except OSError as e:
        print('{}: cannot write {}: {}'.format(PROG, out, e.strerror or e), file=sys.stderr)
        return 1
    print('Wrote {} ({} curves)'.format(out, len(series)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
