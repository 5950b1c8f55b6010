#!/usr/bin/env python
"""Generate the built-in 'shapes' detection dataset (VOC layout), deterministically and offline.

    python data/scripts/make_shapes.py [--out DIR] [--seed S] [--num-trainval N] [--num-test N] [--workers W]

Default: data/shapes with 500 trainval + 200 test images. The folder is generated beside its final place and
renamed into it, so an interrupted run leaves nothing that loads. get_imdb('shapes_trainval') does the same
with the defaults on first use.
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, osp.join(ROOT, 'lib'))

from datasets import shapes  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=osp.join(ROOT, 'data', 'shapes'), help='output folder (default data/shapes)')
    p.add_argument('--seed', type=int, default=shapes.DEFAULT_SEED)
    p.add_argument('--num-trainval', type=int, default=shapes.DEFAULT_NUM_TRAINVAL)
    p.add_argument('--num-test', type=int, default=shapes.DEFAULT_NUM_TEST)
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='processes (default 2)')
    p.add_argument('--force', action='store_true', help='regenerate even if a complete dataset is there')
    args = p.parse_args(argv)
    if args.num_trainval < 2 or args.num_test < 1:
        p.error('need at least 2 trainval and 1 test image')
    out = shapes.generate_atomic(args.out, seed=args.seed, num_trainval=args.num_trainval,
                                 num_test=args.num_test, workers=args.workers, force=args.force)
    print('Shapes dataset ready at {}'.format(out))


if __name__ == '__main__':
    main()
