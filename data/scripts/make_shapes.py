#!/usr/bin/env python
"""Generate the built-in 'shapes' detection dataset (VOC layout), deterministically and offline.

    python data/scripts/make_shapes.py [--out DIR] [--seed S] [--num-trainval N] [--num-test N] [--workers W]

Default: data/shapes with 500 trainval + 200 test images. The folder is generated beside its final place and
renamed into it, so an interrupted run leaves nothing that loads. get_imdb('shapes_trainval') does the same
with the defaults on first use.

What is at --out decides what happens:
  * nothing, or an empty folder: the dataset is generated there;
  * a complete dataset of this generator with the same seed and sizes: kept as it is (--force regenerates it);
  * a dataset this generator wrote with other parameters (or of an older version): replaced, but only when
    everything in it is the generator's own (meta.json, classes.txt, ImageSets/Main/*.txt and the
    Annotations/JPEGImages files of the ids listed there);
  * anything else -- a file, a folder holding anything the generator did not write: refused, nothing touched
    (exit status 2, one line naming the folder and what is in it).
Errors are one line, `make_shapes.py: message`: exit status 2 for a wrong command line, 1 when a write fails.
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, osp.join(ROOT, 'lib'))

from datasets import shapes  # noqa: E402


PROG = 'make_shapes.py'


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[2:]))
    p.add_argument('--out', default=osp.join(ROOT, 'data', 'shapes'), help='output folder (default data/shapes)')
    p.add_argument('--seed', type=int, default=shapes.DEFAULT_SEED)
    p.add_argument('--num-trainval', type=int, default=shapes.DEFAULT_NUM_TRAINVAL)
    p.add_argument('--num-test', type=int, default=shapes.DEFAULT_NUM_TEST)
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='processes (default 2)')
    p.add_argument('--force', action='store_true', help='regenerate even if a complete dataset is there')
    args = p.parse_args(argv)
    if args.num_trainval < 2 or args.num_test < 1:
        p.error('need at least 2 trainval and 1 test image')
    if args.seed < 0:
        p.error('--seed must be >= 0')
    try:
        out = shapes.generate_atomic(args.out, seed=args.seed, num_trainval=args.num_trainval,
                                     num_test=args.num_test, workers=args.workers, force=args.force)
    except shapes.FolderNotOursError as e:
        print('{}: {}'.format(PROG, e), file=sys.stderr)
        return 2
    except OSError as e:
        print('{}: {}'.format(PROG, e if not e.filename else '{}: {}'.format(
            shapes.shown(os.fsdecode(e.filename)), e.strerror or e)), file=sys.stderr)
        return 1
    print('Shapes dataset ready at {}'.format(shapes.shown(out)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
