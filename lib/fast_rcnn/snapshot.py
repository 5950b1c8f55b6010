"""Snapshots: names, atomic writes, checksums, RNG states, and whether a snapshot may resume this run.

A snapshot is a ``torch.load(..., weights_only=True)`` dict (format SNAPSHOT_FORMAT): model, optimizer history,
iteration, RNG states, data-layer position, cfg, solver, classes, and a SHA-256 of its tensors checked on load.
"""
from __future__ import annotations

import glob
import hashlib
import os
import os.path as osp
import random
import re
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from fast_rcnn.config import cfg_to_dict
from fast_rcnn.solver import SOLVER_DEFAULTS
from utils.atomic import atomic_write, clean_stale_temps, pid_alive


SNAPSHOT_FORMAT = 'py-faster-rcnn-torch-snapshot/2'   # /2: with a checksum of its tensors


SNAPSHOT_FORMATS = ('py-faster-rcnn-torch-snapshot/1', SNAPSHOT_FORMAT)


# ----------------------------------------------------------------------------- RNG state (weights_only-safe)
def get_rng_state() -> Dict[str, Any]:
    def np_state(st):
        return {'keys': torch.from_numpy(st[1].astype(np.int64)), 'pos': int(st[2]), 'has_gauss': int(st[3]),
                'cached_gaussian': float(st[4])}
    out = {'numpy': np_state(np.random.get_state()), 'torch': torch.get_rng_state(),
           'python': [list(x) if isinstance(x, tuple) else x for x in random.getstate()]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out['cuda'] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Dict[str, Any]) -> None:
    def np_state(d):
        return ('MT19937', d['keys'].numpy().astype(np.uint32), int(d['pos']), int(d['has_gauss']),
                float(d['cached_gaussian']))
    np.random.set_state(np_state(state['numpy']))
    torch.set_rng_state(state['torch'])
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _plain(v: Any) -> Any:
    """Numpy values inside a (nested) dict/list -> tensors, Python numbers and lists (weights_only-safe)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    if isinstance(v, np.generic):
        return v.item()
    return v


def _unplain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _unplain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unplain(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.numpy()
    return v


# ----------------------------------------------------------------------------- snapshots
def snapshot_name(solver: Dict[str, Any], cfg, it: int) -> str:
    infix = ('_' + cfg.TRAIN.SNAPSHOT_INFIX) if cfg.TRAIN.SNAPSHOT_INFIX != '' else ''
    return '{}{}_iter_{:d}.pth'.format(solver['snapshot_prefix'], infix, it)


def find_snapshots(output_dir: str, solver: Dict[str, Any], cfg) -> List[Tuple[int, str]]:
    """(iteration, path) of this solver's snapshots in ``output_dir``, oldest first."""
    infix = ('_' + cfg.TRAIN.SNAPSHOT_INFIX) if cfg.TRAIN.SNAPSHOT_INFIX != '' else ''
    pat = re.compile('^' + re.escape(solver['snapshot_prefix'] + infix) + r'_iter_(\d+)\.pth$')
    found = []
    for p in glob.glob(osp.join(output_dir, '*.pth')):
        m = pat.match(osp.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def atomic_torch_save(obj: Any, path: str) -> None:
    """torch.save to ``path`` atomically (utils.atomic.atomic_write: no temp file left on failure, a full disk
    reported as such, the previous file intact)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def clean_stale_snapshot_temps(output_dir: str) -> List[str]:
    """Remove temp files of snapshot writers on this host that were killed; returns their paths (also the
    ``NAME.pth.tmp.PID`` files of earlier versions)."""
    removed = clean_stale_temps(output_dir)
    for p in glob.glob(osp.join(output_dir, '*.pth.tmp.*')):
        pid = p.rsplit('.', 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                os.remove(p)
                removed.append(p)
            except OSError:
                pass
    return removed


def tensors_checksum(obj: Any) -> str:
    """SHA-256 over every tensor of a (nested) snapshot dict, with its place, dtype and shape, in key order; other
    values by their repr. The ``checksum`` entry itself is left out."""
    h = hashlib.sha256()

    def walk(v: Any, where: str) -> None:
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                if where == '' and k == 'checksum':
                    continue
                walk(v[k], '{}/{}'.format(where, k))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, '{}[{}]'.format(where, i))
        elif isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update('{}:{}:{}\0'.format(where, t.dtype, tuple(t.shape)).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
        else:
            h.update('{}={!r}\0'.format(where, v).encode('utf-8', 'backslashreplace'))
    walk(obj, '')
    return h.hexdigest()


def nonfinite_tensors(state: Dict[str, torch.Tensor]) -> List[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an Inf."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_snapshot(path: str, map_location: str = 'cpu') -> Dict[str, Any]:
    """Load a snapshot written by SolverWrapper (weights_only), with a clear error for other files, and verify
    its checksum (snapshots of format /1 have none and load with a note)."""
    if not osp.isfile(path):
        raise FileNotFoundError('snapshot not found: {}'.format(path))
    try:
        snap = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise ValueError('{}: not a loadable snapshot ({})'.format(path, str(e).strip().splitlines()[0]
                                                                   if str(e).strip() else type(e).__name__)) from None
    if not isinstance(snap, dict) or snap.get('format') not in SNAPSHOT_FORMATS:
        raise ValueError('{}: not a py-faster-rcnn-torch snapshot (no "format": {!r} entry)'.format(
            path, SNAPSHOT_FORMAT))
    if snap['format'] == SNAPSHOT_FORMAT:
        stored = snap.get('checksum')
        if not isinstance(stored, str) or tensors_checksum(snap) != stored:
            raise ValueError('{}: the checksum of its tensors does not match: the file is damaged (a copy cut '
                             'short or bytes changed on disk); use an earlier snapshot'.format(path))
    else:
        print('Note: {} is a snapshot of format {} (no checksum to verify)'.format(path, snap['format']))
    return snap


# Keys that do not change what training computes (where files are, the device, names, logging, when to stop or
# snapshot): a snapshot that differs from the run only in these can be resumed. TEST.* is not used by training.
_IGNORED_CFG = ('DEVICE', 'GPU_ID', 'MATLAB', 'USE_GPU_NMS', 'TRAIN.SNAPSHOT_ITERS', 'TRAIN.SNAPSHOT_INFIX',
                'TRAIN.USE_PREFETCH', 'TRAIN.PREFETCH_WORKERS', 'CUDNN_BENCHMARK')


_IGNORED_SOLVER = ('display', 'average_loss', 'max_iter', 'snapshot', 'snapshot_prefix', 'path', 'cfg')


def _flat(d: Any, prefix: str = '') -> Dict[str, Any]:
    """{'A.B': value} of a nested dict, values made comparable (tuples/arrays/tensors -> lists)."""
    out: Dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = '{}{}'.format(prefix, k)
            if isinstance(v, dict):
                out.update(_flat(v, key + '.'))
            else:
                out[key] = _unplain_value(v)
    return out


def _unplain_value(v: Any) -> Any:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_unplain_value(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _cfg_key_ignored(key: str) -> bool:
    return key in _IGNORED_CFG or key.endswith('_DIR') or key.startswith('TEST.') or 'THREADS' in key


def snapshot_differences(snap: Dict[str, Any], cfg, solver: Dict[str, Any]) -> List[str]:
    """``KEY old -> new`` for each cfg key and solver key (``solver.KEY``) in which snapshot ``snap`` (a dict,
    load_snapshot's) differs from this run's ``cfg`` and ``solver``, leaving out the keys that do not change the
    training (_IGNORED_CFG, *_DIR, TEST.*, display, max_iter except under lr_policy poly, snapshot interval...).
    A snapshot without a stored cfg or solver is not compared in it; a cfg key on one side only (another version of
    the code) is not compared, a solver key missing on one side counts as its SOLVER_DEFAULTS value."""
    diffs = []
    if isinstance(snap.get('cfg'), dict):
        old, new = _flat(snap['cfg']), _flat(cfg_to_dict(cfg))
        for k in sorted(set(old) & set(new)):
            if not _cfg_key_ignored(k) and old.get(k) != new.get(k):
                diffs.append('{} {} -> {}'.format(k, old.get(k), new.get(k)))
    if isinstance(snap.get('solver'), dict):
        old, new = _flat(snap['solver']), _flat(_plain(dict(solver)))
        ignored = set(_IGNORED_SOLVER)
        if new.get('lr_policy') == 'poly' or old.get('lr_policy') == 'poly':
            ignored.discard('max_iter')  # poly's learning rate depends on max_iter
        for k in sorted(set(old) | set(new)):
            if k.split('.')[0] in ignored:
                continue
            a, b = old.get(k, SOLVER_DEFAULTS.get(k)), new.get(k, SOLVER_DEFAULTS.get(k))
            if a != b:
                diffs.append('solver.{} {} -> {}'.format(k, a, b))
    return diffs


def _move_aside(output_dir: str, paths: Sequence[str]) -> str:
    """Move ``paths`` to a new ``output_dir/old/<time>/`` (a -2, -3... suffix when taken); returns that folder."""
    aside = osp.join(output_dir, 'old', time.strftime('%Y%m%d-%H%M%S'))
    k = 1
    while osp.exists(aside + ('' if k == 1 else '-{}'.format(k))):
        k += 1
    aside += '' if k == 1 else '-{}'.format(k)
    os.makedirs(aside)
    for path in paths:
        if osp.exists(path):
            os.replace(path, osp.join(aside, osp.basename(path)))
    return aside
