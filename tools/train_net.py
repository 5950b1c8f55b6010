#!/usr/bin/env python
"""Train a Faster R-CNN network end to end on an image database, or Fast R-CNN on given proposals.

    tools/train_net.py --solver models/shapes/TINY/faster_rcnn_end2end/solver.yml --imdb shapes_trainval \\
        --cfg experiments/cfgs/faster_rcnn_end2end.yml
    tools/train_net.py --solver models/shapes/TINY/fast_rcnn/solver.yml --imdb shapes_trainval \\
        --proposals output/.../shapes_trainval/<net>_rpn_proposals.npz

With TRAIN.HAS_RPN False (the default cfg, as the original's fast_rcnn.sh) the network trains Fast R-CNN on the
proposals of --proposals (rpn_generate.py's .npz, the original's .pkl, or a selective-search .mat), or on
TRAIN.PROPOSAL_METHOD's default file; its regression targets are normalised by their empirical per-class
statistics, folded into the snapshots.

Config order (later wins): defaults, --cfg, the solver.yml's cfg: block and snapshot:, --set. Without --iters,
the solver's max_iter. Snapshots go to output/<EXP_DIR>/<imdb name>/, which the run locks; rerunning the same
command resumes from the newest one, --fresh moves the earlier ones to old/<time>/ there.
--nproc N trains data-parallel in N processes (torch.distributed: gloo on CPU, NCCL on GPUs) that share out each
iteration's iter_size minibatches: the same training as one process, faster (a run may resume with another N).
Under torchrun (`torchrun --nproc_per_node N [--nnodes M --rdzv-...] tools/train_net.py ...`) the N x M processes
do the same through torch's env:// rendezvous, one GPU each (LOCAL_RANK); rank 0 logs, locks the output folder and
writes the snapshots (on several machines, to a folder every rank reads).

Beside the snapshots the run keeps its record: config.yml, train_log.jsonl (one JSON object per display line),
loss.png (redrawn at each snapshot), log.txt (a copy of what it printed), TensorBoard events when the tensorboard
package is installed. A snapshot whose cfg or solver differs from the run's (in keys that change the training) is
not resumed: it is moved to old/<time>/ with a one-line note of the differences, and the run starts fresh.

Ctrl-C (SIGINT) or SIGTERM: the run finishes the current iteration, writes a snapshot (a second signal is ignored
meanwhile), prints `Wrote snapshot to: PATH` last and exits with 130 (SIGINT) or 143 (SIGTERM); rerunning the
command resumes from that snapshot exactly. Exit status 0: done; 1: bad data or files, or a diverged run; 2: a
mistake in the command line.
"""
import _init_paths  # noqa: F401

import argparse
import os
import os.path as osp
import pprint
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch


@dataclass
class TrainingJob:
    """What each training process needs (pickled to the --nproc processes): the parsed command line, the cfg as a
    plain dict, the solver, the filtered roidb and the run's facts."""
    args: argparse.Namespace
    cfg: Dict[str, Any]
    solver: Dict[str, Any]
    roidb: List[Dict[str, Any]]
    classes: List[str]
    imdb_name: str
    output_dir: str
    seed: int
    max_iters: int
    frozen: List[str]
    threads: int
    bbox_stats: Optional[Tuple[Any, Any]]
    mode: str                       # 'end2end' or 'fast_rcnn'
    rendezvous: Optional[str] = None  # torch.distributed's init_method with --nproc > 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a Faster R-CNN network')
    parser.add_argument('--gpu', dest='gpu_id', help='GPU id to use (same as --device cuda:N)', default=None, type=int)
    parser.add_argument('--device', dest='device', help='cpu, cuda or cuda:N (default cpu)', default=None, type=str)
    parser.add_argument('--solver', dest='solver', help='solver.yml', required=True, type=str)
    parser.add_argument('--iters', dest='max_iters', help='number of iterations to train (default: the solver\'s '
                        'max_iter)', default=None, type=int)
    parser.add_argument('--weights', dest='pretrained_model', help='initialize with pretrained model weights',
                        default=None, type=str)
    parser.add_argument('--cfg', dest='cfg_file', help='optional config file', default=None, type=str)
    parser.add_argument('--imdb', dest='imdb_name', help='dataset to train on (a+b joins datasets)',
                        default='voc_2007_trainval', type=str)
    parser.add_argument('--proposals', dest='proposals', default=None, type=str,
                        help='Fast R-CNN training (TRAIN.HAS_RPN False): the proposal file (.npz of rpn_generate.py, '
                        'the original\'s .pkl, or a selective-search .mat); one per dataset of --imdb, joined with +')
    parser.add_argument('--rand', dest='randomize', help='randomize (do not use a fixed seed)', action='store_true')
    parser.add_argument('--from-scratch', dest='from_scratch', action='store_true',
                        help='allow training a network meant for ImageNet initialisation without --weights')
    parser.add_argument('--fresh', dest='fresh', action='store_true',
                        help='start over instead of resuming from the newest snapshot')
    parser.add_argument('--threads', dest='threads', type=int, default=None,
                        help='CPU threads for torch, over all processes (default: all cores)')
    parser.add_argument('--nproc', dest='nproc', type=int, default=1,
                        help='data-parallel training processes (default 1, at most the solver\'s iter_size): the '
                        'iter_size minibatches of an iteration are shared out and their gradients summed, so the '
                        'result is that of one process; with --device cuda one GPU each (cuda:0 .. cuda:nproc-1)')
    parser.add_argument('--force-unlock', dest='force_unlock', action='store_true',
                        help='take the output folder\'s lock even if another host\'s run holds it (a run of this '
                        'host that is gone is noticed without it)')
    parser.add_argument('--display', dest='display', type=int, default=None,
                        help='print (and log) the loss every N iterations (default: the solver\'s display)')
    parser.add_argument('--val-imdb', dest='val_imdb', default=None, type=str,
                        help='evaluate on this dataset during training (with --eval-every): mean AP logged to '
                        'train_log.jsonl, the best snapshot kept as <prefix>_best.pth')
    parser.add_argument('--eval-every', dest='eval_every', default=None, type=int,
                        help='iterations between evaluations on --val-imdb')
    parser.add_argument('--set', dest='set_cfgs', help='set config keys (last: it takes the rest of the line)',
                        default=None, nargs=argparse.REMAINDER)
    if argv is None and len(sys.argv) == 1:
        parser.print_help()
        sys.exit(1)
    args = parser.parse_args(argv)
    if args.max_iters is not None and args.max_iters < 1:
        parser.error('--iters must be at least 1, got {}'.format(args.max_iters))
    if args.display is not None and args.display < 1:
        parser.error('--display must be at least 1, got {}'.format(args.display))
    if (args.val_imdb is None) != (args.eval_every is None):
        parser.error('--val-imdb and --eval-every go together')
    if args.eval_every is not None and args.eval_every < 1:
        parser.error('--eval-every must be at least 1, got {}'.format(args.eval_every))
    return args


def build_train_cfg(args, solver, cfg):
    """Fill ``cfg`` in place, later wins: --cfg, the solver's cfg: block, its snapshot: (Caffe's key), --set."""
    from fast_rcnn.config import ConfigError, cfg_from_dict, cfg_from_file, cfg_from_list, check_cfg
    if args.cfg_file is not None:
        cfg_from_file(args.cfg_file, cfg)
    if solver['cfg']:
        try:
            cfg_from_dict(solver['cfg'], cfg)
        except ConfigError as e:
            raise ConfigError('{}: cfg: {}'.format(args.solver, e)) from None
    if solver['snapshot'] is not None:
        cfg.TRAIN.SNAPSHOT_ITERS = int(solver['snapshot'])
    if args.set_cfgs is not None:
        cfg_from_list(args.set_cfgs, cfg)
    check_cfg(cfg)
    return cfg


def main(argv=None):
    """Run; a mistake in the command line (exit status 2), in the data or files (1), or a diverged run (1) ends in
    one line `train_net.py: message`, not a traceback."""
    from datasets.ds_utils import ImageFileError
    from datasets.imdb import DatasetNotFound
    from datasets.voc_xml import AnnotationError
    from fast_rcnn.config import ConfigError
    from fast_rcnn.train import CommandLineError, SolverError, TrainingDiverged, TrainingInterrupted
    from utils.atomic import DiskFullError
    from utils.lock import LockedError
    try:
        run(argv)
    except TrainingInterrupted as e:  # the snapshot is written and `Wrote snapshot to:` was the last line
        sys.exit(128 + e.signum if e.signum > 0 else 1)
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save
        print('train_net.py: interrupted before training started; nothing was written', file=sys.stderr,
              flush=True)
        sys.exit(130)
    except (CommandLineError, DatasetNotFound) as e:  # a dataset name is part of the command line
        _fail(e, 2)
    except (AnnotationError, ImageFileError) as e:  # broken data: the message names the file
        _fail(e, 1)
    except ConfigError as e:
        _fail(e, 2 if str(e).startswith('--set') else 1)
    except (SolverError, LockedError, DiskFullError, TrainingDiverged) as e:
        _fail(e, 1)
    except Exception as e:  # noqa: BLE001 - a spawned process reported its own error already
        import torch.multiprocessing as mp
        if isinstance(e, mp.ProcessExitedException):
            sys.exit(1)
        raise


def _fail(e, status):
    print('train_net.py: {}'.format(e), file=sys.stderr, flush=True)
    sys.exit(status)


class TorchrunProcess(NamedTuple):
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int  # processes on this machine


def torchrun_env() -> Optional[TorchrunProcess]:
    """This process's place in torchrun's group (its environment variables), or None without torchrun."""
    env = os.environ
    if not all(k in env for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')):
        return None
    world = int(env['WORLD_SIZE'])
    return TorchrunProcess(int(env['RANK']), world, int(env['LOCAL_RANK']), int(env.get('LOCAL_WORLD_SIZE', world)))


def run(argv=None):
    args = parse_args(argv)
    launched = torchrun_env()
    if launched is not None:
        if args.nproc != 1:
            sys.exit('train_net.py: --nproc and torchrun both start processes: use one of them')
        args.nproc = launched.world_size
        if launched.rank > 0:  # rank 0 prints for all
            sys.stdout = open(os.devnull, 'w')
    from fast_rcnn.train import check_device, check_weights_file
    device = check_device(args.device, args.gpu_id)  # before anything heavy: the command line's own mistakes
    if launched is not None and device.type == 'cuda':
        device = torch.device('cuda', launched.local_rank)  # torchrun: one GPU per process on each machine
    if args.pretrained_model is not None:
        check_weights_file(args.pretrained_model)
    from utils.train_record import install_tee
    tee = install_tee()  # log.txt gets these lines too, once the output folder is known
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    from fast_rcnn.config import cfg, cfg_to_dict, get_output_dir
    from fast_rcnn.train import filter_roidb, load_solver
    from fast_rcnn.training_data import bbox_target_stats, combined_roidb
    from nets.backbones import build_net

    print('Called with args:')
    print(args)
    solver = load_solver(args.solver)
    if args.display is not None:
        solver['display'] = args.display
    build_train_cfg(args, solver, cfg)
    cfg.DEVICE = str(device)
    if device.type == 'cuda':
        cfg.GPU_ID = device.index or 0
    if not 1 <= args.nproc <= int(solver['iter_size']):
        sys.exit('train_net.py: {} must be between 1 and the solver\'s iter_size ({}), got {}: the processes '
                 'share out the iter_size minibatches of an iteration (a larger batch is a larger iter_size)'.format(
                     '--nproc' if launched is None else "torchrun's world size", solver['iter_size'], args.nproc))
    local_procs = args.nproc if launched is None else launched.local_world_size
    if device.type == 'cuda' and local_procs > 1 and torch.cuda.device_count() < local_procs:
        sys.exit('train_net.py: {} processes on this machine need {} GPUs, it has {}'.format(
            local_procs, local_procs, torch.cuda.device_count()))
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(max(1, threads // local_procs))
    if cfg.TRAIN.HAS_RPN and args.proposals is not None:
        sys.exit('train_net.py: --proposals is for Fast R-CNN training (TRAIN.HAS_RPN False); this cfg trains end '
                 'to end with an RPN')
    if not cfg.TRAIN.HAS_RPN and args.proposals is None and cfg.TRAIN.PROPOSAL_METHOD == 'gt':
        sys.exit('train_net.py: Fast R-CNN training (TRAIN.HAS_RPN False) needs proposals: pass --proposals FILE '
                 '(or, for end-to-end training, --cfg experiments/cfgs/faster_rcnn_end2end.yml)')

    with torch.device('meta'):  # only its facts here; the weights are made after seeding
        netdef = build_net(solver['net'])
    from_scratch_net = netdef.from_scratch if solver['from_scratch'] is None else bool(solver['from_scratch'])
    if args.pretrained_model is None and not from_scratch_net and not args.from_scratch:
        sys.exit('train_net.py: {} is meant to start from ImageNet weights; without --weights it trains from random '
                 'initialisation, which for these networks takes weeks to learn little (a frequent mistake with the '
                 'original). Fetch them with data/scripts/fetch_imagenet_models.sh and pass --weights '
                 'data/imagenet_models/{}.v2.caffemodel (or a torchvision .pth), or pass --from-scratch if you '
                 'really mean it.'.format(netdef.name, netdef.name))

    print('Using config:')
    pprint.pprint(cfg)
    seed = int(cfg.RNG_SEED)
    if args.randomize:
        seed = int.from_bytes(os.urandom(4), 'little')
    np.random.seed(seed)
    torch.manual_seed(seed)

    imdb, roidb = combined_roidb(args.imdb_name, cfg, args.proposals)
    print('{:d} roidb entries'.format(len(roidb)))
    output_dir = get_output_dir(imdb)
    print('Output will be saved to `{:s}`'.format(output_dir))
    roidb = filter_roidb(roidb, cfg)
    bbox_stats = bbox_target_stats(roidb, cfg)

    max_iters = args.max_iters if args.max_iters is not None else int(solver['max_iter'])
    if solver['lr_policy'] == 'poly' and max_iters > int(solver['max_iter']):
        # Caffe's poly decays to 0 at the solver's max_iter, whatever --iters says
        print('Warning: --iters {} is past the solver\'s max_iter {}: with lr_policy poly the learning rate is 0 '
              'from iteration {} on; raise max_iter in {} instead'.format(max_iters, solver['max_iter'],
                                                                        solver['max_iter'], args.solver))
    job = TrainingJob(args=args, cfg=cfg_to_dict(cfg), solver=solver, roidb=roidb, classes=list(imdb.classes),
                      imdb_name=imdb.name, output_dir=output_dir, seed=seed, max_iters=max_iters,
                      frozen=netdef.frozen if solver['frozen_layers'] is None else list(solver['frozen_layers']),
                      threads=torch.get_num_threads(), bbox_stats=bbox_stats,
                      mode='end2end' if cfg.TRAIN.HAS_RPN else 'fast_rcnn')
    if launched is not None:
        job.rendezvous = 'env://'
        if launched.rank > 0:  # rank 0 holds the lock and keeps the record
            train_process(launched.rank, job)
            return
    from utils.lock import OutputLock
    with OutputLock(output_dir, force=args.force_unlock) as lock:  # this process runs the run: it holds the lock
        from utils.train_record import TEXT_LOG_NAME
        tee.attach(osp.join(output_dir, TEXT_LOG_NAME))  # under the lock: another run's log.txt is not ours
        if lock.took_over:
            print('Took over the lock of {} from pid {} (on {}), which is gone'.format(
                output_dir, lock.took_over.get('pid'), lock.took_over.get('host')))
        if args.nproc == 1 or launched is not None:
            train_process(0, job)
            return
        import tempfile
        import torch.multiprocessing as mp
        print('Training in {:d} processes of {:d} thread(s) each'.format(args.nproc, torch.get_num_threads()),
              flush=True)
        from fast_rcnn.train import TrainingInterrupted
        with tempfile.TemporaryDirectory(prefix='train_net_') as tmp:
            job.rendezvous = 'file://' + osp.join(tmp, 'rendezvous')
            ctx = mp.spawn(train_process, args=(job,), nprocs=args.nproc, join=False)
            with ForwardSignals(ctx.processes) as fwd:  # every process stops after the same iteration
                while not ctx.join():
                    pass
        if fwd.signum is not None:  # the processes stopped with a snapshot; process 0 printed its path last
            raise TrainingInterrupted(fwd.signum, '', -1)


class ForwardSignals:
    """While active, SIGINT and SIGTERM to this (parent) process are passed on to the training processes (which
    stop after the same iteration, with a snapshot) instead of stopping it; ``signum`` is the first one."""

    def __init__(self, processes):
        self.processes = processes
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        for p in self.processes:
            if p.is_alive():
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    def __enter__(self):
        import signal
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)


def make_validator(imdb_name, job, device, cfg):
    """validate(snapshot path, iteration) -> mean AP of that snapshot on dataset ``imdb_name``, as test_net.py
    computes it (its detections and report under <output dir>/val/<imdb>/iter_<N>/)."""
    from datasets.factory import get_imdb
    from fast_rcnn.test import check_classes, load_detector, test_net
    imdb = get_imdb(imdb_name, cfg)
    check_classes(job.classes, imdb)  # before training: a wrong dataset is found at once
    if hasattr(imdb, 'set_proposal_method'):
        try:
            imdb.set_proposal_method('gt')
        except Exception:  # noqa: BLE001 - proposals are not needed (the RPN makes them)
            pass

    def validate(path, iteration):
        net, net_cfg, classes = load_detector(path, device=device)
        out = osp.join(job.output_dir, 'val', imdb.name, 'iter_{}'.format(iteration))
        return float(test_net(net, imdb, cfg=net_cfg, output_dir=out, classes=classes, snapshot=path))
    return validate


def train_process(rank, job):
    """Build the model and the data layer and train: the whole run (rank 0 of 1), or one of --nproc processes."""
    from fast_rcnn.config import cfg, cfg_from_dict
    from fast_rcnn.train import TrainingDiverged, TrainingInterrupted, train_net
    from nets.faster_rcnn import FasterRCNN
    from utils.atomic import DiskFullError
    from nets.weights import load_pretrained
    from utils.runtime import tune_cuda_runtime

    args = job.args
    nproc = args.nproc
    device = torch.device(job.cfg['DEVICE'])
    if nproc > 1:
        import torch.distributed as dist
        if rank > 0:  # process 0 prints for all
            sys.stdout = open(os.devnull, 'w')
        cfg_from_dict(job.cfg)  # a spawned process starts from the defaults
        from utils.runtime import tune_cpu_runtime
        tune_cpu_runtime()  # the denormal mode is not inherited through spawn
        torch.set_num_threads(job.threads)
        spawned = job.rendezvous.startswith('file://')
        if device.type == 'cuda':
            local = rank if spawned else int(os.environ['LOCAL_RANK'])
            device = torch.device('cuda', local)
            torch.cuda.set_device(device)
            cfg.DEVICE, cfg.GPU_ID = str(device), local
        elif spawned and sys.platform.startswith('linux'):
            os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')  # one machine: loopback, whatever the host name
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', init_method=job.rendezvous,
                                rank=rank, world_size=nproc)
    seed = job.seed
    # seeded here: loading a dataset may or may not draw random numbers (e.g. when its cache is built), and the
    # initial weights must not depend on that
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = FasterRCNN(job.solver['net'], len(job.classes), cfg)
    if args.pretrained_model is not None:
        info = load_pretrained(model, args.pretrained_model)
        print('Loaded pretrained weights from {:s} ({}: {}; input convention {})'.format(
            args.pretrained_model, info['source'], ', '.join(info['loaded']), info['input_mode']))
    model.set_mode(job.mode)
    model.frozen_parameters(job.frozen)
    tune_cuda_runtime(device, cfg.CUDNN_BENCHMARK)
    model.to(device)
    if nproc > 1:  # the same start everywhere, whatever each process's initialisation did
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, 0)
    from fast_rcnn.training_data import make_data_layer
    data_layer = make_data_layer(job.roidb, len(job.classes), cfg, seed)
    validate = None
    if args.val_imdb and rank == 0:
        from fast_rcnn.train import get_rng_state, set_rng_state
        state = get_rng_state()  # loading a dataset may draw random numbers: the training's must not move
        validate = make_validator(args.val_imdb, job, device, cfg)
        set_rng_state(state)
    try:
        train_net(model, data_layer, job.output_dir, job.solver, cfg, job.classes, job.max_iters,
                  imdb_name=job.imdb_name, resume=not args.fresh, seed=seed, record=True,
                  validate=validate, eval_every=args.eval_every or 0, bbox_stats=job.bbox_stats)
    except TrainingInterrupted:
        if nproc == 1:
            raise
        # a spawned process exits 0 (a non-zero status would make the parent kill the others at once); the parent
        # exits with the signal's status
    except (TrainingDiverged, DiskFullError) as e:
        if nproc == 1:
            raise
        if rank == 0:  # the parent exits 1 on the spawned process's exit status
            print('train_net.py: {}'.format(e), file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        if nproc > 1:
            dist.destroy_process_group()


if __name__ == '__main__':
    main()
