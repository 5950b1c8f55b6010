"""Train a Faster R-CNN network (end to end, or one part of it: an alt-opt stage, Fast R-CNN on proposals), as
the original's SolverWrapper did with Caffe's solver (lib/fast_rcnn/solver.py) and snapshots
(lib/fast_rcnn/snapshot.py).

- ``SolverWrapper``: the training loop with logging, snapshots (bbox_pred with the target normalisation folded
  in), and resuming that reproduces the uninterrupted run (model, optimizer history, iteration, RNG states and the
  data layer's position are all in the snapshot; the sampling of minibatch m is seeded from (seed, m)), alone or
  in a torch.distributed group that shares out each iteration's minibatches (``train_net.py --nproc``).
- ``get_training_roidb``, ``filter_roidb``, ``train_net``: as the original; ``train_net`` also resumes only from a
  snapshot whose cfg and solver match the run's (``snapshot_differences``), stops on SIGINT/SIGTERM at the end of
  an iteration with a snapshot (``TrainingInterrupted``), keeps the run's record (utils.train_record) and
  optionally evaluates during training.
- ``check_device``, ``check_weights_file``: the command-line checks train_net.py (and test_net.py) make first.
The solver and snapshot functions are importable from here too (``load_solver``, ``load_snapshot``...).
"""
from __future__ import annotations

import math
import os
import os.path as osp
import sys
import threading
import time
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from fast_rcnn.config import cfg_to_dict, given_or_default
from fast_rcnn.snapshot import (  # noqa: F401 - also re-exported: the tools and tests import them from here
    SNAPSHOT_FORMAT, SNAPSHOT_FORMATS, _move_aside, _plain, _unplain, atomic_torch_save, clean_stale_snapshot_temps,
    find_snapshots, get_rng_state, load_snapshot, nonfinite_tensors, set_rng_state, snapshot_differences,
    snapshot_name, tensors_checksum)
from fast_rcnn.solver import (  # noqa: F401 - also re-exported
    SOLVER_DEFAULTS, SOLVER_TYPES, CaffeAdam, CaffeSGD, LossScale, SolverError, learning_rate, load_solver,
    make_optimizer, param_groups)
from roi_data_layer import roidb as rdl_roidb
from utils.train_record import CONFIG_NAME, LOG_NAME, PLOT_NAME, TEXT_LOG_NAME, StdoutTee, TrainRecord


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or Inf; the message names the iteration and its images."""


class CommandLineError(ValueError):
    """A mistake in a tool's command line (train_net.py and test_net.py exit with status 2 on it)."""


def check_device(device: Optional[str], gpu: Optional[int] = None) -> torch.device:
    """``--device`` ('cpu', 'cuda', 'cuda:N'; None: cpu) or ``--gpu N`` as a torch.device; CommandLineError (one
    line) when it is not a device name, CUDA is not available, or the GPU index is past the machine's GPUs."""
    if device is None:
        device = 'cuda:{}'.format(gpu) if gpu is not None else 'cpu'
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise CommandLineError('--device {}: not a device (cpu, cuda or cuda:N)'.format(device)) from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise CommandLineError('CUDA is not available on this machine (--device {}; torch {}{}): use --device '
                                   'cpu'.format(device, torch.__version__,
                                                '' if torch.version.cuda else ', built without CUDA'))
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CommandLineError('--device {}: this machine has {} GPU(s) (cuda:0 .. cuda:{})'.format(
                device, torch.cuda.device_count(), torch.cuda.device_count() - 1))
    elif dev.type != 'cpu':
        raise CommandLineError('--device {}: only cpu and cuda are supported'.format(device))
    return dev


def check_weights_file(path: str) -> None:
    """SolverError (one line, exit status 1) when the ``--weights`` file ``path`` does not exist."""
    if not osp.isfile(path):
        raise SolverError('--weights {}: file not found. data/scripts/fetch_imagenet_models.sh downloads '
                          'torchvision\'s VGG16 (data/imagenet_models/vgg16-397923af.pth); with the argument caffe, '
                          'the original\'s VGG16.v2.caffemodel, ZF.v2.caffemodel and VGG_CNN_M_1024.v2.caffemodel '
                          'into data/imagenet_models/'.format(path))


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run at the end of an iteration, after a snapshot of it was written.

    Attributes: ``signum`` (int, the signal), ``path`` (str, the snapshot), ``iteration`` (int). train_net.py
    exits with 128 + signum (130 for SIGINT, 143 for SIGTERM), the shells' convention for a killed command."""

    def __init__(self, signum: int, path: str, iteration: int) -> None:
        super().__init__('stopped by signal {} at iteration {}; snapshot {}'.format(signum, iteration, path))
        self.signum, self.path, self.iteration = int(signum), path, int(iteration)


class StopOnSignal:
    """Context manager: while active, SIGINT and SIGTERM only set ``signum`` (the first one; later ones are
    ignored, so a second Ctrl-C cannot cut a snapshot short); the training loop stops at the end of the current
    iteration. Outside the main thread (where Python cannot set handlers) it does nothing."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: Dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        # no print here: the main code may be inside a print to the same stream (a reentrant-call error)
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> 'StopOnSignal':
        import signal
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _names(images: Sequence[str]) -> str:
    return ', '.join(images) if images else 'unknown'


def process_group() -> Tuple[int, int]:
    """(rank, number of processes) of the torch.distributed group this process trains in; (0, 1) outside one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ----------------------------------------------------------------------------- roidb
def get_training_roidb(imdb, cfg=None):
    """Returns a roidb (list of dicts) for training: flipped images appended when TRAIN.USE_FLIPPED, then
    prepared (image paths, sizes, max_overlaps, max_classes)."""
    cfg = given_or_default(cfg)
    if cfg.TRAIN.USE_FLIPPED:
        print('Appending horizontally-flipped training examples...')
        imdb.append_flipped_images()
        print('done')
    print('Preparing training data...')
    rdl_roidb.prepare_roidb(imdb)
    print('done')
    return imdb.roidb


def filter_roidb(roidb, cfg=None):
    """Drop images with no usable RoI (the datasets helper's roi_data_layer.roidb.filter_roidb)."""
    return rdl_roidb.filter_roidb(roidb, cfg=cfg)


# ----------------------------------------------------------------------------- the solver
class SolverWrapper:
    """Runs Caffe-style SGD on a FasterRCNN model and takes snapshots.

    Args:
        model: nets.faster_rcnn.FasterRCNN, already on its device, weights loaded.
        data_layer: object with ``forward() -> {'data', 'im_info', 'gt_boxes'}``, ``state_dict()`` and
            ``load_state_dict(state)``.
        output_dir: where snapshots go.
        solver: load_solver's dict.
        cfg: the run's configuration (stored in every snapshot).
        classes: the dataset's class names (stored in every snapshot).
        imdb_name: stored in snapshots.
        seed: the run's seed (default cfg.RNG_SEED); the sampling in the target layers of minibatch m and torch's
            RNG (dropout) are seeded from (seed, m), so they do not depend on how the minibatches were shared out.
        bbox_stats: (means, stds), each (4K,), of the roidb's regression targets when they are normalised by
            empirical statistics (Fast R-CNN, TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED False: what
            roi_data_layer.roidb.add_bbox_regression_targets returns); folded into the snapshots' bbox_pred.

    The model trains in its mode (FasterRCNN.set_mode): end2end, the RPN alone, or Fast R-CNN on the data layer's
    RoIs (TRAIN.HAS_RPN False).

    In a process group (``--nproc N``, torch.distributed), the iter_size minibatches of an iteration are shared
    out (minibatch j to process j % N) and the gradients summed over the processes (one all_reduce: gloo on the
    CPU, NCCL on GPUs): the same update as one process running them all (bit for bit with two processes; with
    more, up to the order of the float sums). Process 0 prints and writes the snapshots.
    """

    def __init__(self, model, data_layer, output_dir: str, solver: Dict[str, Any], cfg, classes: Sequence[str],
                 imdb_name: str = '', seed: Optional[int] = None,
                 bbox_stats: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> None:
        self.model = model
        self.seed = int(cfg.RNG_SEED if seed is None else seed)
        self.rank, self.nproc = process_group()
        self.data_layer = data_layer
        self.output_dir = output_dir
        self.solver = solver
        self.cfg = cfg
        self.classes = list(classes)
        self.imdb_name = imdb_name
        self.device = next(model.parameters()).device
        self.optimizer = make_optimizer(model, solver)
        amp = model.amp_dtype(self.device) if hasattr(model, 'amp_dtype') else None
        self.loss_scale = LossScale(amp == torch.float16)  # float16 autocast: the loss scaled, overflows skipped
        self.iter = 0
        self._bad: Optional[Tuple[int, float, List[str]]] = None  # a divergence seen on the CPU
        self._bad_iter: Optional[torch.Tensor] = None              # on a GPU: its first iteration, on the device
        self._watched: Dict[int, Tuple[float, List[str]]] = {}
        # a host check each iteration costs nothing on a CPU but a sync on a GPU (there a device flag is kept)
        self.check_every_iteration = self.device.type == 'cpu'
        self.stop: Optional[StopOnSignal] = None   # set by train_net: the signals that stop the run
        self.stopped_by: Optional[int] = None      # the signal the run stopped on (all processes agree)
        self.record = None                         # utils.train_record.TrainRecord (train_net sets it)
        self.validate: Optional[Any] = None        # validate(snapshot path, iteration) -> mean AP (process 0)
        self.eval_every = 0
        self.best_map: Optional[float] = None
        mode = getattr(model, 'mode', 'end2end')
        self.bbox_normalize = bool(cfg.TRAIN.BBOX_REG and cfg.TRAIN.BBOX_NORMALIZE_TARGETS and mode != 'rpn')
        self.bbox_stats = None
        if self.bbox_normalize:
            if cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
                self.bbox_stats = (cfg.TRAIN.BBOX_NORMALIZE_MEANS, cfg.TRAIN.BBOX_NORMALIZE_STDS)
            elif mode == 'end2end':
                raise ValueError('end-to-end training needs TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED: True '
                                 '(set it in the --cfg file, e.g. experiments/cfgs/faster_rcnn_end2end.yml)')
            elif bbox_stats is None:
                raise ValueError('Fast R-CNN training with empirical target normalisation needs the roidb\'s '
                                 'bbox_stats (roi_data_layer.roidb.add_bbox_regression_targets)')
            else:
                self.bbox_stats = bbox_stats

    # -------------------------------------------------------------- snapshots
    def snapshot(self) -> str:
        """Write output_dir/<prefix>[_<infix>]_iter_<N>.pth atomically (process 0 only); returns its path."""
        path = osp.join(self.output_dir, snapshot_name(self.solver, self.cfg, self.iter))
        if self.rank != 0:
            return path
        self.check_weights_finite()
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        raw = None
        if self.bbox_normalize:
            from nets.faster_rcnn import fold_bbox_normalization
            raw = {'weight': state['bbox_pred.weight'], 'bias': state['bbox_pred.bias']}
            state = fold_bbox_normalization(state, self.model.num_classes, *self.bbox_stats)
        solver = {k: v for k, v in self.solver.items()}
        snap = {
            'format': SNAPSHOT_FORMAT,
            'net': self.model.net_name,
            'classes': self.classes,
            'num_classes': self.model.num_classes,
            'imdb': self.imdb_name,
            'cfg': cfg_to_dict(self.cfg),
            'solver': _plain(solver),
            'iter': self.iter,
            'model': state,
            'mode': getattr(self.model, 'mode', 'end2end'),
            'bbox_pred_folded': raw is not None,
            'bbox_pred_raw': raw,
            'optimizer': self.optimizer.state_dict(),
            'loss_scale': self.loss_scale.state_dict(),
            'rng': get_rng_state(),
            'data_layer': _plain(self.data_layer.state_dict()),
        }
        snap['checksum'] = tensors_checksum(snap)
        os.makedirs(self.output_dir, exist_ok=True)
        atomic_torch_save(snap, path)
        print('Wrote snapshot to: {:s}'.format(path), flush=True)
        if self.record is not None:
            try:
                self.record.plot()
            except Exception as e:  # noqa: BLE001 - a plot is never a reason to stop training
                print('Note: could not draw loss.png ({})'.format(e), flush=True)
        return path

    def restore(self, path: str, snap: Optional[Dict[str, Any]] = None) -> None:
        """Continue from a snapshot written by ``snapshot``: weights (unfolded), optimizer, iteration, RNG, data.
        ``snap``: the file's contents when already loaded (load_snapshot(path))."""
        snap = load_snapshot(path) if snap is None else snap
        if snap['net'] != self.model.net_name:
            raise ValueError('{}: snapshot of network {} cannot resume training of {}'.format(
                path, snap['net'], self.model.net_name))
        if list(snap['classes']) != self.classes:
            raise ValueError('{}: snapshot classes {} differ from the dataset classes {}'.format(
                path, snap['classes'], self.classes))
        state = dict(snap['model'])
        bad = nonfinite_tensors(state)
        if bad:
            raise ValueError('{}: the snapshot holds NaN or Inf weights ({}): resume from an earlier one'.format(
                path, ', '.join(bad[:3])))
        if snap.get('bbox_pred_folded'):
            state['bbox_pred.weight'] = snap['bbox_pred_raw']['weight']
            state['bbox_pred.bias'] = snap['bbox_pred_raw']['bias']
        self.model.load_state_dict(state)
        self.optimizer.load_state_dict(snap['optimizer'])
        self.loss_scale.load_state_dict(snap.get('loss_scale'))
        self.iter = int(snap['iter'])
        set_rng_state(snap['rng'])
        self.data_layer.load_state_dict(_unplain(snap['data_layer']))

    # -------------------------------------------------------------- training
    def train_model(self, max_iters: int) -> str:
        """Train up to iteration ``max_iters``; returns the path of the last snapshot."""
        s = self.solver
        per_iter = int(s['iter_size'])
        if self.nproc > per_iter:
            raise ValueError('{} training processes but iter_size {}: each process needs at least one minibatch '
                             'of an iteration (raise iter_size in the solver or lower --nproc)'.format(
                                 self.nproc, per_iter))
        display = int(s['display'] or 0)
        smoothed: deque = deque(maxlen=max(1, int(s['average_loss'])))
        per_loss: Dict[str, deque] = {}
        snapshot_iters = int(self.cfg.TRAIN.SNAPSHOT_ITERS)
        last_snapshot_iter = -1
        last_path = None
        self.model.train()
        self._start_prefetch(per_iter)
        t_disp, it_disp = time.time(), self.iter
        while self.iter < max_iters:
            lr = learning_rate(s, self.iter)
            self.optimizer.zero_grad()
            sums: Dict[str, torch.Tensor] = {}
            images: List[str] = []
            for j in range(per_iter):
                if j % self.nproc != self.rank:  # another process's minibatch
                    self._skip_minibatch()
                    continue
                self._seed_minibatch(self.iter * per_iter + j)
                blobs = self.data_layer.forward()
                images.extend(str(p) for p in blobs.get('image_paths', ()))
                data = blobs['data']
                if isinstance(data, torch.Tensor):  # pinned by the prefetching workers' loader
                    data = data.to(self.device, non_blocking=True)
                else:
                    data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).to(self.device)
                losses = self.model.train_losses(data, blobs)
                if self.loss_scale.enabled:
                    (sum(losses.values()) * self.loss_scale.scale).backward()
                else:
                    sum(losses.values()).backward()
                for k, v in losses.items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach()
            stop_here = self.stop is not None and self.stop.signum is not None
            if self.nproc > 1:  # all processes stop after the same iteration: the flag is summed with the gradients
                stop_here = self._all_reduce(sums, stop_here)
            parts = {k: float(v) / per_iter for k, v in sums.items()}
            total = sum(parts.values())
            if not math.isfinite(total):
                self.check_weights_finite()  # an earlier update's broken weights are the cause to name
                raise TrainingDiverged('iteration {}: the loss is {} (lr {:g}; images: {}); lower base_lr, add '
                                       'warm-up or clip_gradients. No snapshot was written.'.format(
                                           self.iter + 1, total, lr, _names(images)))
            scale = self.loss_scale.scale
            if self.loss_scale.update(not self.loss_scale.enabled or self.optimizer.grads_finite()):
                self.optimizer.step(lr, per_iter, float(s['clip_gradients']), grad_scale=1.0 / scale)
            elif self.rank == 0:
                print('Iteration {:d}: float16 gradients overflowed at loss scale {:g}; the update is skipped and the '
                      'scale halved'.format(self.iter + 1, scale), flush=True)
            self._watch_weights(self.iter + 1, lr, images)
            smoothed.append(total)
            for k, v in parts.items():
                per_loss.setdefault(k, deque(maxlen=smoothed.maxlen)).append(v)
            self.iter += 1
            if display and self.rank == 0 and (self.iter % display == 0 or self.iter == 1):
                self.check_weights_finite()
                now = time.time()
                # seconds per iteration over the iterations since the last line (the first line: since start)
                spi = (now - t_disp) / max(self.iter - it_disp, 1)
                eta = spi * (max_iters - self.iter)
                loss_now = float(np.mean(smoothed))
                parts_now = {k: float(np.mean(v)) for k, v in per_loss.items()}
                print('{}Iteration {:d}, loss = {:.4f} ({}), lr = {:g}, {:.3f} s/iter, ETA {}'.format(
                    _timestamp(now), self.iter, loss_now,
                    ', '.join('{} = {:.4f}'.format(k, v) for k, v in parts_now.items()),
                    lr, spi, _fmt_eta(eta)), flush=True)
                if self.record is not None:
                    self.record.log({'iteration': self.iter, 'loss': loss_now, 'losses': parts_now, 'lr': lr,
                                     's_per_iter': spi, 'time': now})
                t_disp, it_disp = now, self.iter
            if snapshot_iters > 0 and self.iter % snapshot_iters == 0:
                last_snapshot_iter = self.iter
                last_path = self.snapshot()
            if self.validate is not None and self.eval_every > 0 and self.iter % self.eval_every == 0:
                if last_snapshot_iter != self.iter:  # the detector is evaluated from its snapshot (folded weights)
                    last_snapshot_iter = self.iter
                    last_path = self.snapshot()
                self._evaluate(last_path)
            if self.nproc == 1:  # one process: a signal that came during this iteration's update counts too
                stop_here = self.stop is not None and self.stop.signum is not None
            if stop_here and self.iter < max_iters:  # a signal during the last iteration: the run is complete
                self.stopped_by = self.stop.signum if self.stop is not None and self.stop.signum else -1
                if self.rank == 0:
                    print('Stopped by {} after iteration {:d}; writing its snapshot (further signals are ignored '
                          'until it is written)'.format(_signal_name(self.stopped_by), self.iter), flush=True)
                break
        if last_snapshot_iter != self.iter:
            last_path = self.snapshot()
        return last_path

    def _evaluate(self, path: str) -> None:
        """Process 0: the validation mean AP of snapshot ``path`` (str) through ``self.validate``, logged, and the
        snapshot copied to ``<prefix>_best.pth`` (atomically) when it is the best so far. The RNG states are put
        back afterwards, so the training that follows is the same as without it."""
        if self.rank != 0:
            return
        state = get_rng_state()
        try:
            mean_ap = float(self.validate(path, self.iter))
        finally:
            set_rng_state(state)
        print('{}Iteration {:d}, validation mean AP = {:.4f}'.format(_timestamp(time.time()), self.iter, mean_ap),
              flush=True)
        if self.record is not None:
            self.record.log({'iteration': self.iter, 'val_map': mean_ap})
        if math.isfinite(mean_ap) and (self.best_map is None or mean_ap > self.best_map):
            self.best_map = mean_ap
            best = osp.join(self.output_dir, '{}_best.pth'.format(self.solver['snapshot_prefix']))
            from utils.atomic import atomic_write
            with open(path, 'rb') as src:  # a byte copy: its checksum still verifies
                data = src.read()
            atomic_write(best, lambda f: f.write(data))
            print('Best validation mean AP so far ({:.4f}, iteration {:d}): copied to {}'.format(
                mean_ap, self.iter, best), flush=True)

    def _watch_weights(self, it: int, lr: float, images: List[str]) -> None:
        """After iteration ``it``'s update: on a CPU, stop at once if a weight is NaN or Inf; on a GPU, only note
        on the device the first such iteration (read by ``check_weights_finite``: no host sync per iteration)."""
        params = [p for _, p, _, _ in self.optimizer.groups]
        if not params:
            return
        # the max-abs of each tensor: NaN or Inf when any element is
        finite = torch.stack(torch._foreach_norm(params, float('inf'))).isfinite().all()
        if self.check_every_iteration:
            if not bool(finite):
                self._bad = (it, lr, images)
                self.check_weights_finite()
            return
        if self._bad_iter is None:
            self._bad_iter = torch.full((), -1, dtype=torch.int64, device=self.device)
            self._watched = {}
        self._bad_iter = torch.where((self._bad_iter < 0) & ~finite, torch.tensor(it, device=self.device),
                                     self._bad_iter)
        self._watched[it] = (lr, images)

    def check_weights_finite(self) -> None:
        """Raise TrainingDiverged (naming the iteration and its images) if an update made a weight NaN or Inf."""
        bad = self._bad
        if bad is None and self._bad_iter is not None:
            it = int(self._bad_iter)
            if it >= 0:
                lr, images = self._watched.get(it, (float('nan'), []))
                bad = (it, lr, images)
            self._watched = {}
        if bad is not None:
            it, lr, images = bad
            names = nonfinite_tensors({n: p.detach() for n, p, _, _ in self.optimizer.groups})
            raise TrainingDiverged(
                'iteration {}: the update made weights NaN or Inf ({}{}; lr {:g}; images: {}); lower base_lr, add '
                'warm-up or clip_gradients. No snapshot of these weights was written.'.format(
                    it, ', '.join(names[:3]), ' and {} more'.format(len(names) - 3) if len(names) > 3 else '',
                    lr, _names(images)))

    def _seed_minibatch(self, m: int) -> None:
        """The target layers' sampling and torch's RNG for minibatch m of the run."""
        key = [self.seed & 0xFFFFFFFF, int(m)]
        self.model.rng = np.random.RandomState(np.random.SeedSequence(key + [1]).generate_state(4))
        torch.manual_seed(int(np.random.SeedSequence(key + [2]).generate_state(1, np.uint64)[0]))

    def _start_prefetch(self, per_iter: int) -> None:
        """TRAIN.USE_PREFETCH: this process's minibatches (j % nproc == rank of each iteration's per_iter) made
        ahead of time by TRAIN.PREFETCH_WORKERS DataLoader workers, 'data' pinned for a GPU."""
        start = getattr(self.data_layer, 'start_prefetch', None)
        if not self.cfg.TRAIN.USE_PREFETCH or start is None:
            return
        rank, nproc = self.rank, self.nproc
        start(int(self.cfg.TRAIN.PREFETCH_WORKERS), takes=lambda m: (m % per_iter) % nproc == rank,
              pin_memory=self.device.type == 'cuda')

    def _skip_minibatch(self) -> None:
        skip = getattr(self.data_layer, 'skip', None)
        if skip is not None:
            skip(1)
        else:  # a data layer without skip(): draw and drop
            self.data_layer.forward()

    def _all_reduce(self, sums: Dict[str, torch.Tensor], stop: bool = False) -> bool:
        """Sum the gradients and the losses over the process group in one all_reduce. ``stop``: this process was
        signalled to stop; returns whether any process was (one more element summed with the losses: no extra
        round trip)."""
        import torch.distributed as dist
        params = [p for _, p, _, _ in self.optimizer.groups]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            elif not p.grad.is_contiguous():  # the parts below must be views of the gradients
                p.grad = p.grad.contiguous()
        keys = sorted(sums)
        losses = torch.stack([sums[k] for k in keys]).to(params[0].grad)
        flag = torch.full((1,), 1.0 if stop else 0.0, dtype=losses.dtype, device=losses.device)
        parts = [p.grad.reshape(-1) for p in params] + [losses, flag]
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        off = 0
        for t in parts:  # views of the gradients: written in place
            t.copy_(flat[off:off + t.numel()])
            off += t.numel()
        for i, k in enumerate(keys):
            sums[k] = losses[i]
        return bool(flag[0] > 0)


def _signal_name(signum: int) -> str:
    """'SIGINT' for 2 ...; a signal number <= 0 (another process of the group was signalled) as such."""
    import signal
    try:
        return signal.Signals(signum).name
    except ValueError:
        return 'a signal to another training process'


def _timestamp(t: float) -> str:
    """The ``[YYYY-mm-dd HH:MM:SS] `` prefix of display lines (local time)."""
    return time.strftime('[%Y-%m-%d %H:%M:%S] ', time.localtime(t))


def _fmt_eta(sec: float) -> str:
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return '{:d}:{:02d}:{:02d}'.format(h, m, s)


def _record_files(output_dir: str) -> List[str]:
    return [osp.join(output_dir, n) for n in (LOG_NAME, PLOT_NAME, CONFIG_NAME)]


def train_net(model, data_layer, output_dir: str, solver: Dict[str, Any], cfg, classes: Sequence[str],
              max_iters: int, imdb_name: str = '', resume: bool = True, seed: Optional[int] = None,
              record: bool = False, validate: Optional[Any] = None, eval_every: int = 0,
              bbox_stats: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> str:
    """Train ``model``; resume from the newest intact snapshot in ``output_dir`` whose cfg and solver match this
    run's (``snapshot_differences``) unless ``resume`` is False. Snapshots that cannot be resumed because they do
    not match, and with ``resume`` False all earlier snapshots of this solver, are moved to ``old/<time>/`` (with
    the run's record when it starts over), so they neither collide with this run's nor are picked up later.
    Returns the last snapshot's path; the last line printed is ``Wrote snapshot to: PATH``, the total time just
    before it. SIGINT/SIGTERM stop the run at the end of the iteration with a snapshot, then raise
    TrainingInterrupted. With ``record`` (bool; train_net.py sets it) process 0 also writes the run's record
    (utils.train_record: config.yml, train_log.jsonl, loss.png, log.txt). ``validate`` (callable (snapshot path,
    iteration) -> mean AP) and ``eval_every`` (int): every that many iterations process 0 writes a snapshot,
    evaluates it, logs ``{"iteration", "val_map"}`` and keeps the best as ``<prefix>_best.pth``. ``bbox_stats``:
    see SolverWrapper. In a process group every process calls it (see SolverWrapper); process 0 prints and
    writes."""
    if int(max_iters) < 1:
        raise ValueError('the number of iterations must be at least 1, got {}'.format(max_iters))
    t_start = time.time()
    sw = SolverWrapper(model, data_layer, output_dir, solver, cfg, classes, imdb_name, seed=seed,
                       bbox_stats=bbox_stats)
    say = print if sw.rank == 0 else (lambda *a, **k: None)
    own_tee = None
    if record and sw.rank == 0 and not (isinstance(sys.stdout, StdoutTee) and sys.stdout.file is not None):
        own_tee = sys.stdout = StdoutTee(sys.stdout)  # log.txt: also without train_net.py's own copy
        own_tee.attach(osp.join(output_dir, TEXT_LOG_NAME))
    keeper = TrainRecord(output_dir, enabled=record and sw.rank == 0)
    try:
        if sw.rank == 0:
            for p in clean_stale_snapshot_temps(output_dir):
                say('Removed {:s}, the temp file of a snapshot write that was killed'.format(p))
        snaps = find_snapshots(output_dir, solver, cfg)
        resumed = None
        if resume and snaps:
            mismatched: List[Tuple[str, List[str]]] = []
            for it, path in reversed(snaps):
                try:
                    snap = load_snapshot(path)
                except ValueError as e:
                    say('Skipping {}'.format(e), flush=True)
                    continue
                diffs = snapshot_differences(snap, cfg, solver)
                if diffs:
                    mismatched.append((path, diffs))
                    continue
                try:
                    sw.restore(path, snap)
                except ValueError as e:
                    say('Skipping {}'.format(e), flush=True)
                    continue
                resumed = path
                break
            if resumed is None and not mismatched:
                raise ValueError('{}: none of the {} snapshots there can be resumed (see above); move them aside '
                                 'or pass --fresh'.format(output_dir, len(snaps)))
            if mismatched:
                if sw.nproc > 1:  # every process has read the snapshots before process 0 moves them
                    import torch.distributed as dist
                    dist.barrier()
                # their names would collide with this run's snapshots: out of the way, kept
                moving = [p for p, _ in mismatched] if resumed is not None else [p for _, p in snaps]
                newest, diffs = mismatched[0]
                if sw.rank == 0:
                    aside = _move_aside(output_dir, moving + ([] if resumed is not None or not record
                                                              else _record_files(output_dir)))
                    say('Not resuming from {}: {}; moved {} to {}{}'.format(
                        newest, ', '.join(diffs),
                        'it' if len(moving) == 1 else 'it and {} other snapshot(s)'.format(len(moving) - 1), aside,
                        '' if resumed is not None else ' and starting fresh'), flush=True)
            if resumed is not None:
                say('Resuming from {:s}'.format(resumed), flush=True)
                if sw.iter >= max_iters:
                    say('Already trained to iteration {:d} (asked for {:d}); nothing to do'.format(sw.iter,
                                                                                              max_iters))
                    say('Wrote snapshot to: {:s}'.format(resumed), flush=True)
                    return resumed
        elif not resume and snaps and sw.rank == 0:
            aside = _move_aside(output_dir, [p for _, p in snaps] + (_record_files(output_dir) if record else []))
            say('Moved {:d} earlier snapshot(s) to {:s} (--fresh)'.format(len(snaps), aside))
        keeper.start(cfg_to_dict(cfg), _plain(dict(solver)), sw.iter)
        sw.record = keeper if keeper.enabled else None
        sw.validate, sw.eval_every = validate, int(eval_every or 0)
        if keeper.enabled:  # a resumed run's best so far, from the kept log
            from utils.train_record import read_log
            maps = [float(o['val_map']) for o in read_log(keeper.log_path) if 'val_map' in o]
            sw.best_map = max(maps) if maps else None
        say('Solving...', flush=True)
        start_iter = sw.iter
        with StopOnSignal() as stop:  # a second signal is ignored until the snapshot and the last line are out
            sw.stop = stop
            last = sw.train_model(max_iters)
            if sw.stopped_by is None:
                say('done solving', flush=True)
            say('Total training time: {} ({:d} iterations, {:.3f} s/iter)'.format(
                _fmt_eta(time.time() - t_start), sw.iter - start_iter,
                (time.time() - t_start) / max(1, sw.iter - start_iter)), flush=True)
            say('Wrote snapshot to: {:s}'.format(last), flush=True)
        if sw.stopped_by is not None:
            raise TrainingInterrupted(stop.signum if stop.signum is not None else sw.stopped_by, last, sw.iter)
        return last
    finally:
        keeper.close()
        if own_tee is not None:
            sys.stdout = own_tee.stream
            own_tee.close_file()
