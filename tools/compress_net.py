#!/usr/bin/env python
"""Compress a detector's fc6/fc7 with truncated SVD (the original's tools/compress_net.py).

    tools/compress_net.py --net SNAPSHOT [--fc6 1024] [--fc7 256] [--out PATH]
    tools/compress_net.py --bench VGG16 [--fc6 1024] [--fc7 256] [--rois 300] [--threads N]

The first form writes <SNAPSHOT without .pth>_svd_fc6_<r6>_fc7_<r7>.pth beside the snapshot (the original's
naming), which test_net.py and demo.py take like any snapshot (its cfg carries FC_SVD_RANKS). The second times the
head (fc6, fc7) of a network with random weights on ``--rois`` RoIs, before and after, on this machine.
The last line of the first form is ``Wrote compressed snapshot to: PATH``.
"""
import argparse
import os.path as osp
import sys
import time

import _init_paths  # noqa: F401
import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Compress a Faster R-CNN snapshot with truncated SVD')
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--net', help='snapshot to compress (.pth)')
    what.add_argument('--bench', metavar='NET', help='time the head of NET (random weights) before and after')
    parser.add_argument('--fc6', type=int, default=1024, help='rank kept of fc6 (0: left as it is)')
    parser.add_argument('--fc7', type=int, default=256, help='rank kept of fc7 (0: left as it is)')
    parser.add_argument('--out', help='output snapshot (default: beside --net, named as the original)')
    parser.add_argument('--rois', type=int, default=300, help='--bench: RoIs per forward pass (TEST: 300)')
    parser.add_argument('--threads', type=int, default=None, help="torch's CPU threads")
    args = parser.parse_args(argv)
    if args.fc6 < 0 or args.fc7 < 0 or args.fc6 + args.fc7 == 0:
        parser.error('--fc6 and --fc7 are ranks >= 0, not both 0')
    return args


def output_path(net: str, r6: int, r7: int) -> str:
    """The original's name: <snapshot>_svd_fc6_<r6>_fc7_<r7> (with .pth)."""
    return '{}_svd_fc6_{}_fc7_{}.pth'.format(osp.splitext(net)[0], r6, r7)


def compress(net: str, r6: int, r7: int, out: str) -> str:
    from fast_rcnn.train import atomic_torch_save, load_snapshot, tensors_checksum
    from nets.compress import factor_state
    snap = load_snapshot(net)
    cfg = dict(snap.get('cfg') or {})
    if cfg.get('FC_SVD_RANKS'):
        raise ValueError('{}: already compressed (FC_SVD_RANKS {})'.format(net, list(cfg['FC_SVD_RANKS'])))
    state, energy = factor_state(snap['model'], (r6, r7))
    for name, rank in (('fc6', r6), ('fc7', r7)):
        if rank:
            w = snap['model']['head.{}.weight'.format(name)]
            print('{}: {} x {} -> rank {}: {:.1%} of its squared singular values kept, {} -> {} weights'.format(
                name, w.shape[0], w.shape[1], rank, energy[name], w.numel(), rank * (w.shape[0] + w.shape[1])))
    cfg['FC_SVD_RANKS'] = [r6, r7]
    out_snap = {k: v for k, v in snap.items() if k not in ('optimizer', 'checksum')}  # for testing, not training
    out_snap.update(model=state, cfg=cfg, compressed_from=osp.basename(net))
    out_snap['checksum'] = tensors_checksum(out_snap)
    atomic_torch_save(out_snap, out)
    return out


def bench(net_name: str, r6: int, r7: int, rois: int, repeats: int = 10) -> None:
    from nets.backbones import build_net
    from nets.compress import factor_linear
    torch.manual_seed(0)
    head = build_net(net_name).head.eval()
    x = torch.randn(rois, head.fc6.in_features)

    def timed(h):
        with torch.no_grad():
            h(x)  # warm-up
            t = time.perf_counter()
            for _ in range(repeats):
                y = h(x)
            return (time.perf_counter() - t) / repeats, y
    t0, y0 = timed(head)
    for name, rank in (('fc6', r6), ('fc7', r7)):
        if rank:
            setattr(head, name, factor_linear(getattr(head, name), rank))
    t1, y1 = timed(head)
    rel = float((y1 - y0).norm() / y0.norm())
    print('{} head, {} RoIs, {} threads: {:.2f} ms -> {:.2f} ms ({:.2f}x) with fc6 rank {}, fc7 rank {} '
          '(random weights: output changed by {:.1%} of its norm)'.format(
              net_name, rois, torch.get_num_threads(), 1e3 * t0, 1e3 * t1, t0 / t1, r6, r7, rel))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.bench:
            bench(args.bench, args.fc6, args.fc7, args.rois)
            return 0
        out = args.out or output_path(args.net, args.fc6, args.fc7)
        compress(args.net, args.fc6, args.fc7, out)
    except (OSError, ValueError) as e:
        print('compress_net.py: {}'.format(e), file=sys.stderr)
        return 1
    print('Wrote compressed snapshot to: {}'.format(out), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
