#!/usr/bin/env python3
"""Write ImageSets/Main/{trainval,test}.txt for a labelImg (or VOC-layout) folder: a seeded split of its ids.

    tools/make_splits.py FOLDER [--test 0.2] [--seed 0] [--force]

The ids are the annotations' file names (Annotations/*.xml, else the XML files beside the images or in the one
subfolder holding them), sorted, shuffled with random.Random(seed), and round(n * test) of them (at least 1 and
at most n - 1 when n >= 2) go to test.txt; each file lists its ids sorted. Images are neither moved nor copied.
Files are written atomically; existing split files that differ are kept unless --force. Errors are one line,
'make_splits.py: message': exit 2 for a wrong command line, 1 for bad data (no folder, no annotations, files that
would be overwritten).
"""
import os
import os.path as osp
import random
import sys

import _init_paths  # noqa: F401

from utils.cli import OneLineParser

PROG = 'make_splits.py'


def split_ids(ids, test_fraction, seed):
    """(trainval ids sorted, test ids sorted) of ``ids``: a deterministic seeded shuffle of the sorted ids."""
    ids = sorted(ids)
    order = list(ids)
    random.Random(seed).shuffle(order)
    n_test = int(round(len(ids) * test_fraction))
    if len(ids) >= 2:
        n_test = min(max(n_test, 1), len(ids) - 1)  # both splits non-empty
    return sorted(order[n_test:]), sorted(order[:n_test])


def main(argv=None):
    p = OneLineParser(prog=PROG, description='write ImageSets/Main/{trainval,test}.txt for a labelImg folder')
    p.add_argument('folder')
    p.add_argument('--test', type=float, default=0.2, help='fraction of the ids in test.txt (0 < f < 1)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--force', action='store_true', help='overwrite split files that differ')
    args = p.parse_args(argv)
    if not 0 < args.test < 1:
        p.error('--test must be between 0 and 1 (got {:g})'.format(args.test))
    from datasets.voc_folder import annotated_ids, annotation_dir
    from utils.atomic import atomic_write

    def fail(msg):
        print('{}: {}'.format(PROG, msg), file=sys.stderr)
        sys.exit(1)

    if not osp.isdir(args.folder):
        fail('{}: not a folder'.format(args.folder))
    try:
        ann_dir = annotation_dir(args.folder)
    except ValueError as e:
        fail(str(e))
    ids = annotated_ids(ann_dir) if ann_dir else []
    if not ids:
        fail('{}: no XML annotations (Annotations/*.xml, *.xml beside the images or in one subfolder)'.format(
            args.folder))
    trainval, test = split_ids(ids, args.test, args.seed)
    main_dir = osp.join(args.folder, 'ImageSets', 'Main')
    out = {osp.join(main_dir, 'trainval.txt'): ''.join(i + '\n' for i in trainval),
           osp.join(main_dir, 'test.txt'): ''.join(i + '\n' for i in test)}
    for path, text in out.items():
        if osp.exists(path) and not args.force:
            with open(path, 'rb') as f:
                if f.read() != text.encode('utf-8'):
                    fail('{} exists and differs: pass --force to overwrite it'.format(path))
    for path, text in out.items():
        data = text.encode('utf-8')
        atomic_write(path, lambda f, data=data: f.write(data))
    print('{}: {} trainval, {} test ids in {}'.format(PROG, len(trainval), len(test), main_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
