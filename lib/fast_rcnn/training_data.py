"""The training data of a run: the roidb of one or several datasets (with their proposals for Fast R-CNN), its
regression-target statistics, and the resumable data layer. Shared by train_net.py and the alt-opt stages."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from datasets.factory import get_imdb
from datasets.imdb import imdb as imdb_base
from datasets.summary import summarize
from fast_rcnn.train import get_training_roidb
from roi_data_layer.layer import RoIDataLayer
from roi_data_layer.roidb import add_bbox_regression_targets


def proposal_method(path: Optional[str], default: str) -> str:
    """The roidb method for a proposal file: 'selective_search' for the original's .mat layout, 'rpn' for
    rpn_generate's .npz (or the original's .pkl); ``default`` (cfg.TRAIN.PROPOSAL_METHOD) without a file."""
    if path is None:
        return default
    return 'selective_search' if path.lower().endswith('.mat') else 'rpn'


def use_proposals(imdb, method: str, path: Optional[str] = None) -> None:
    """Make ``imdb``'s roidb the gt boxes merged with the proposals of ``path`` (method 'rpn' or
    'selective_search'; without a path, the dataset's default file), or the gt boxes alone (method 'gt')."""
    if path is not None:
        if not osp.isfile(path):
            raise FileNotFoundError('proposal file not found: {}'.format(path))
        imdb.config['selective_search_file' if method == 'selective_search' else 'rpn_file'] = path
    imdb.set_proposal_method(method)


def combined_roidb(imdb_names: str, cfg, proposals: Optional[str] = None, log=print) -> Tuple[Any, List[Dict]]:
    """The training roidb of one dataset or of several joined with '+', and the imdb that names the output.

    proposals: for Fast R-CNN training (TRAIN.HAS_RPN False), the proposal file of each dataset, joined with '+'
    in the same order (None: TRAIN.PROPOSAL_METHOD's default files)."""

    names = imdb_names.split('+')
    files: Sequence[Optional[str]] = [None] * len(names)
    if proposals is not None:
        files = proposals.split('+')
        if len(files) != len(names):
            raise ValueError('{} proposal file(s) for {} dataset(s): give one per dataset, joined with + in the '
                             'order of --imdb'.format(len(files), len(names)))

    def get_roidb(name: str, path: Optional[str]):
        imdb = get_imdb(name, cfg)
        log('Loaded dataset `{:s}` for training'.format(imdb.name))
        method = 'gt' if cfg.TRAIN.HAS_RPN else proposal_method(path, cfg.TRAIN.PROPOSAL_METHOD)
        use_proposals(imdb, method, path)
        log('Set proposal method: {:s}{}'.format(method, ' ({})'.format(path) if path else ''))
        roidb = get_training_roidb(imdb, cfg)
        lines, warnings = summarize(imdb, roidb)  # what it will learn from, and likely label typos
        log('\n'.join(lines + ['warning: ' + w for w in warnings]))
        return imdb, roidb

    parts = [get_roidb(n, f) for n, f in zip(names, files)]
    imdb, roidb = parts[0]
    if len(parts) > 1:
        for other, r in parts[1:]:
            if list(other.classes) != list(imdb.classes):
                raise ValueError('cannot join {} and {}: their classes differ ({} vs {})'.format(
                    imdb.name, other.name, list(imdb.classes), list(other.classes)))
            roidb = roidb + r
    return run_imdb([p for p, _ in parts], imdb_names), roidb


def run_imdb(parts: Sequence[Any], imdb_names: str):
    """The imdb that names a training run's output folder: the dataset itself, or for several joined with '+' an
    empty one named after all of them, with the first one's classes."""
    if len(parts) == 1:
        return parts[0]
    joined = imdb_base(imdb_names)
    joined._classes = tuple(parts[0].classes)
    return joined


def bbox_target_stats(roidb: List[Dict[str, Any]], cfg) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Fast R-CNN (TRAIN.HAS_RPN False) with TRAIN.BBOX_REG: add each entry's regression targets, normalised, and
    return their (means, stds), each (4K,), for the snapshots to fold into bbox_pred (the original's
    SolverWrapper did this on the filtered roidb); None when the RPN makes the RoIs or BBOX_REG is off."""
    if cfg.TRAIN.HAS_RPN or not cfg.TRAIN.BBOX_REG:
        return None
    print('Computing bounding-box regression targets...')
    means, stds = add_bbox_regression_targets(roidb, cfg)
    print('done')
    return means, stds


def make_data_layer(roidb: List[Dict[str, Any]], num_classes: int, cfg, seed: int):
    """The resumable RoIDataLayer over ``roidb``."""
    return RoIDataLayer(roidb, num_classes, cfg=cfg, seed=seed)
