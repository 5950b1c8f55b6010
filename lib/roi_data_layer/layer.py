"""The training data pipeline (the original's RoIDataLayer), resumable and usable with DataLoader workers.

Order of images: as the original. Each pass over the roidb is a permutation; with TRAIN.ASPECT_GROUPING the
landscape (w >= h) and portrait images are permuted separately, concatenated, cut into pairs and the pairs
permuted, so a minibatch holds images of one orientation (even with IMS_PER_BATCH = 1). A new pass starts when
``cur + IMS_PER_BATCH >= len(roidb)`` (the original's quirk: the last image of a pass is skipped). Departure: an
odd number of images (where the original's pairing crashed) leaves the unpaired image at the end of the pass.

Determinism: permutations come from one RandomState(seed) in sequence, so the state after N minibatches is
(seed, N) and is restored by replaying the shuffles (``skip_to`` / ``load_state_dict``). The random choices
inside a minibatch (scales, Fast R-CNN RoI sampling) use ``minibatch_rng(seed, iteration)``, so the minibatch
of iteration i is the same in a resumed run, a single process, or a DataLoader worker.

Single process::

    layer = RoIDataLayer(roidb, num_classes, cfg, seed=cfg.RNG_SEED)
    blobs = layer.forward()              # the next minibatch (dict of numpy arrays, see get_minibatch)
    state = layer.state_dict(); ...; layer.load_state_dict(state)   # or layer.skip_to(iteration)

With workers (the same sequence)::

    loader = make_data_loader(roidb, num_classes, cfg, seed=cfg.RNG_SEED, start_iter=0, num_iters=N,
                              num_workers=2)
    for blobs in loader: ...             # blobs['iteration'] tells which minibatch it is
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data

from fast_rcnn.config import given_or_default
from roi_data_layer.minibatch import get_minibatch


def minibatch_rng(seed: int, iteration: int) -> np.random.RandomState:
    """The RandomState for the minibatch of ``iteration`` in a run seeded with ``seed``."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(iteration)])
    return np.random.RandomState(ss.generate_state(4))


class MinibatchSchedule(object):
    """Which roidb indices each minibatch uses: the original's shuffling, from a seed, restorable.

    widths, heights: (N,) image sizes (for ASPECT_GROUPING). ims_per_batch: images per minibatch.
    """

    def __init__(self, widths: Sequence[int], heights: Sequence[int], ims_per_batch: int,
                 aspect_grouping: bool, seed: int):
        self._widths = np.asarray(widths)
        self._heights = np.asarray(heights)
        self._n = len(self._widths)
        if self._n == 0:
            raise ValueError('the roidb is empty: nothing to train on')
        self._ims = int(ims_per_batch)
        self._aspect_grouping = bool(aspect_grouping)
        self._seed = int(seed)
        self.reset()

    def reset(self) -> None:
        """Back to the state before the first minibatch (one shuffle done, as the original's set_roidb)."""
        self._rng = np.random.RandomState(self._seed)
        self._num_shuffles = 0
        self._iteration = 0
        self._shuffle()

    @property
    def iteration(self) -> int:
        """Number of minibatches drawn so far."""
        return self._iteration

    def _shuffle(self) -> None:
        """Randomly permute the training roidb."""
        rng = self._rng
        if self._aspect_grouping:
            horz = self._widths >= self._heights
            vert = np.logical_not(horz)
            horz_inds = np.where(horz)[0]
            vert_inds = np.where(vert)[0]
            inds = np.hstack((rng.permutation(horz_inds), rng.permutation(vert_inds)))
            n_pairs = inds.size // 2
            pairs = np.reshape(inds[:2 * n_pairs], (-1, 2))
            row_perm = rng.permutation(np.arange(pairs.shape[0]))
            perm = np.reshape(pairs[row_perm, :], (-1,))
            if inds.size % 2:
                perm = np.append(perm, inds[-1])
            self._perm = perm
        else:
            self._perm = rng.permutation(np.arange(self._n))
        self._cur = 0
        self._num_shuffles += 1

    def next_inds(self) -> np.ndarray:
        """The roidb indices (IMS_PER_BATCH,) of the next minibatch."""
        if self._cur + self._ims >= self._n:
            self._shuffle()
        db_inds = self._perm[self._cur:self._cur + self._ims]
        self._cur += self._ims
        self._iteration += 1
        return db_inds

    def skip_to(self, iteration: int) -> None:
        """Put the schedule where it is after ``iteration`` minibatches of an uninterrupted run."""
        if iteration < self._iteration:
            self.reset()
        while self._iteration < iteration:
            self.next_inds()

    def state_dict(self) -> Dict[str, int]:
        return {'seed': self._seed, 'iteration': self._iteration, 'num_images': self._n,
                'ims_per_batch': self._ims, 'aspect_grouping': int(self._aspect_grouping)}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if int(state['num_images']) != self._n:
            raise ValueError('cannot restore the data layer: the saved state is for {} roidb entries, this roidb '
                             'has {}'.format(state['num_images'], self._n))
        self._seed = int(state['seed'])
        self.reset()
        self.skip_to(int(state['iteration']))


def _schedule_for(roidb: Sequence[Dict[str, Any]], cfg, seed: int) -> MinibatchSchedule:
    return MinibatchSchedule([r['width'] for r in roidb], [r['height'] for r in roidb],
                             cfg.TRAIN.IMS_PER_BATCH, cfg.TRAIN.ASPECT_GROUPING, seed)


class RoIDataLayer(object):
    """The training data layer: ``forward()`` returns the next minibatch's blobs (see get_minibatch).

    roidb: prepared entries (prepare_roidb; add_bbox_regression_targets for the Fast R-CNN path).
    seed: default cfg.RNG_SEED.
    """

    def __init__(self, roidb: List[Dict[str, Any]], num_classes: int, cfg=None, seed: Optional[int] = None):
        self._cfg = given_or_default(cfg)
        self._roidb = roidb
        self._num_classes = num_classes
        self._seed = int(self._cfg.RNG_SEED if seed is None else seed)
        self._schedule = _schedule_for(roidb, self._cfg, self._seed)
        self._prefetch: Optional[Dict[str, Any]] = None   # start_prefetch's settings
        self._loader: Optional[Iterator[Dict[str, Any]]] = None

    @property
    def iteration(self) -> int:
        return self._schedule.iteration

    def next_minibatch_inds(self) -> Tuple[int, np.ndarray]:
        """(iteration, roidb indices) of the next minibatch."""
        it = self._schedule.iteration
        return it, self._schedule.next_inds()

    def forward(self) -> Dict[str, Any]:
        """The blobs of the next minibatch (made here, or taken from the prefetching workers)."""
        it, db_inds = self.next_minibatch_inds()
        if self._prefetch is None:
            return minibatch_for(self._roidb, db_inds, it, self._num_classes, self._cfg, self._seed)
        if self._loader is None:
            self._loader = iter(make_data_loader(self._roidb, self._num_classes, self._cfg, self._seed, start_iter=it,
                                                 **self._prefetch))
        blobs = next(self._loader)
        if blobs['iteration'] != it:  # only if a caller skipped a minibatch that the takes predicate said it takes
            raise RuntimeError('RoIDataLayer: the prefetched minibatch is number {}, the schedule is at {}: skip() '
                               'only the minibatches that start_prefetch\'s `takes` leaves out'.format(
                                   blobs['iteration'], it))
        return blobs

    def start_prefetch(self, num_workers: int = 1, takes: Optional[Callable[[int], bool]] = None,
                       pin_memory: bool = False) -> None:
        """Make the minibatches ahead of time in ``num_workers`` DataLoader worker processes (the original's
        TRAIN.USE_PREFETCH): the same blobs, in the same order. ``takes(m)``: whether this process takes minibatch
        m (the others are skip()ped: another process takes them); None: all. ``pin_memory``: 'data' comes as a
        tensor in pinned memory, for a non-blocking copy to a GPU."""
        if num_workers < 1:
            raise ValueError('RoIDataLayer.start_prefetch: num_workers must be at least 1, got {}'.format(num_workers))
        self.stop_prefetch()
        self._prefetch = {'num_workers': int(num_workers), 'takes': takes, 'pin_memory': bool(pin_memory)}

    def stop_prefetch(self) -> None:
        """Back to making each minibatch in forward(); the workers exit."""
        self._loader = None
        self._prefetch = None

    def skip_to(self, iteration: int) -> None:
        self._schedule.skip_to(iteration)
        self._loader = None  # the workers restart from the new position

    def skip(self, n: int = 1) -> None:
        """Pass over the next n minibatches without loading them (another training process takes them)."""
        self._schedule.skip_to(self._schedule.iteration + int(n))

    def state_dict(self) -> Dict[str, int]:
        return self._schedule.state_dict()

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self._schedule.load_state_dict(state)
        self._seed = int(state['seed'])
        self._loader = None


def minibatch_for(roidb: Sequence[Dict[str, Any]], db_inds: Sequence[int], iteration: int, num_classes: int,
                  cfg, seed: int) -> Dict[str, np.ndarray]:
    """get_minibatch for the entries ``db_inds`` with the RandomState of (seed, iteration); with
    TRAIN.MINIBATCHES_PER_SCALE g > 1, the scales that the RandomState of the group's first minibatch
    (g * (iteration // g)) draws."""
    minibatch_db = [roidb[int(i)] for i in db_inds]
    group = int(cfg.TRAIN.MINIBATCHES_PER_SCALE)
    if group < 1:
        raise ValueError('TRAIN.MINIBATCHES_PER_SCALE must be at least 1 (got {})'.format(group))
    scale_inds = None
    if group > 1:
        first = iteration - iteration % group
        scale_inds = minibatch_rng(seed, first).randint(0, high=len(cfg.TRAIN.SCALES), size=len(minibatch_db))
    return get_minibatch(minibatch_db, num_classes, cfg, rng=minibatch_rng(seed, iteration), scale_inds=scale_inds)


# --------------------------------------------------------------------------------------------- torch Dataset/Sampler


class MinibatchSampler(torch.utils.data.Sampler):
    """Yields (iteration, roidb indices tuple) for iterations start_iter, start_iter + 1, ... (num_iters of them,
    or forever when num_iters is None), in the RoIDataLayer's order; with ``takes``, only the iterations it
    accepts."""

    def __init__(self, roidb: Sequence[Dict[str, Any]], cfg=None, seed: Optional[int] = None,
                 start_iter: int = 0, num_iters: Optional[int] = None,
                 takes: Optional[Callable[[int], bool]] = None):
        self._cfg = given_or_default(cfg)
        self._seed = int(self._cfg.RNG_SEED if seed is None else seed)
        self._widths = [r['width'] for r in roidb]
        self._heights = [r['height'] for r in roidb]
        self.start_iter = int(start_iter)
        self.num_iters = num_iters
        self.takes = takes

    def __iter__(self) -> Iterator[Tuple[int, Tuple[int, ...]]]:
        sched = MinibatchSchedule(self._widths, self._heights, self._cfg.TRAIN.IMS_PER_BATCH,
                                  self._cfg.TRAIN.ASPECT_GROUPING, self._seed)
        sched.skip_to(self.start_iter)
        k = 0
        while self.num_iters is None or k < self.num_iters:
            it = sched.iteration
            inds = tuple(int(i) for i in sched.next_inds())
            if self.takes is None or self.takes(it):
                yield it, inds
            k += 1

    def __len__(self) -> int:
        if self.num_iters is None:
            raise TypeError('an endless MinibatchSampler has no length')
        return int(self.num_iters)


class MinibatchDataset(torch.utils.data.Dataset):
    """dataset[(iteration, roidb indices)] -> the blobs of that minibatch, plus 'iteration' (int)."""

    def __init__(self, roidb: Sequence[Dict[str, Any]], num_classes: int, cfg=None, seed: Optional[int] = None):
        self._roidb = roidb
        self._num_classes = num_classes
        self._cfg = given_or_default(cfg)
        self._seed = int(self._cfg.RNG_SEED if seed is None else seed)

    def __getitem__(self, key: Tuple[int, Sequence[int]]) -> Dict[str, Any]:
        iteration, db_inds = key
        blobs = minibatch_for(self._roidb, db_inds, iteration, self._num_classes, self._cfg, self._seed)
        blobs['iteration'] = int(iteration)
        return blobs


def keep_numpy(batch: Any) -> Any:
    """collate_fn that returns the minibatch as it is (numpy arrays)."""
    return batch


def data_as_tensor(batch: Dict[str, Any]) -> Dict[str, Any]:
    """collate_fn that makes 'data' a tensor (which the DataLoader can pin) and leaves the rest numpy."""
    batch['data'] = torch.from_numpy(np.ascontiguousarray(batch['data'], dtype=np.float32))
    return batch


def make_data_loader(roidb: Sequence[Dict[str, Any]], num_classes: int, cfg=None, seed: Optional[int] = None,
                     start_iter: int = 0, num_iters: Optional[int] = None, num_workers: int = 0,
                     prefetch_factor: int = 2, takes: Optional[Callable[[int], bool]] = None,
                     pin_memory: bool = False):
    """A torch DataLoader over minibatches start_iter, start_iter + 1, ... (those ``takes`` accepts): the same
    blobs (numpy; 'data' a pinned tensor with ``pin_memory``) as RoIDataLayer.forward() gives for those
    iterations, in order, with any number of workers."""
    cfg = given_or_default(cfg)
    seed = int(cfg.RNG_SEED if seed is None else seed)
    kwargs = {}
    if num_workers > 0:
        kwargs['prefetch_factor'] = prefetch_factor
        kwargs['persistent_workers'] = False
    pin_memory = pin_memory and torch.cuda.is_available()
    return torch.utils.data.DataLoader(MinibatchDataset(roidb, num_classes, cfg, seed),
                           sampler=MinibatchSampler(roidb, cfg, seed, start_iter, num_iters, takes),
                           batch_size=None, collate_fn=data_as_tensor if pin_memory else keep_numpy,
                           num_workers=num_workers, pin_memory=pin_memory, **kwargs)
