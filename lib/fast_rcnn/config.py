"""Faster R-CNN configuration: every key of py-faster-rcnn's config.py, with its default.

Use ``from fast_rcnn.config import cfg`` for the process-wide configuration that the command-line tools fill in
(defaults, then ``--cfg`` YAML files, then a solver's ``cfg:`` block, then ``--set`` pairs). Layers and losses
never read it on their own: they take a ``cfg`` argument, where ``None`` means this module's ``cfg``.

Departures from the original, all on the side of refusing silent mistakes:
- a key that does not exist is an error naming the key;
- a value of the wrong type is an error naming the key and the expected type;
- a list is accepted where the default is a tuple (``--set TRAIN.SCALES "[400,500]"`` failed in the original), an
  int where the default is a float, and a nested list where the default is an ndarray (PIXEL_MEANS).

Keys added beyond the original (each keeps the original's behaviour by default):
- ``ANCHOR_SCALES``, ``ANCHOR_RATIOS``, ``FEAT_STRIDE``: the anchor set, which the original kept in prototxt
  ``param_str`` strings (COCO nets use scales (4, 8, 16, 32)).
- ``FC_DROPOUT``: dropout after fc6/fc7, as the original's pascal_voc prototxts; its COCO ones have none (False).
- ``FC_SVD_RANKS``: () or (rank of fc6, rank of fc7): the head of a snapshot that tools/compress_net.py factored.
- ``POOLING_MODE``: ``'pool'`` (Caffe RoI max pooling, the original) or ``'align'`` (RoIAlign, opt-in).
- ``TRAIN.OHEM``: online hard example mining for the Fast R-CNN head (opt-in).
- ``TRAIN.RPN_GUARD_ZERO_OVERLAP``: when True, a ground-truth box that overlaps no inside anchor no longer makes
  every zero-overlap anchor foreground (the original's quirk, kept by default).
- ``DEVICE``: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``; the original's ``GPU_ID``/``USE_GPU_NMS`` still exist.
- ``AMP``: bfloat16 or float16 autocast for the convolutions and fc layers (opt-in; ``'auto'``: the hardware's).
- ``SIZE_DIVISIBILITY``: image blobs padded to a multiple of this size (opt-in; 1 = the original).
- ``SKIP_BAD_ANNOTATIONS``: warn and skip a broken annotation or image instead of stopping with an error.
"""
from __future__ import annotations

import ast
import copy
import os
import os.path as osp
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import yaml
from easydict import EasyDict as edict

__C = edict()
cfg = __C

# ----------------------------------------------------------------------------- Training options
__C.TRAIN = edict()
# Shortest-side target(s); one is chosen at random per image.
__C.TRAIN.SCALES = (600,)
# Added, opt-in: consecutive minibatches in groups of this many share one draw from TRAIN.SCALES (the draw of the
# group's first minibatch). At the solver's iter_size, the processes of `train_net.py --nproc` then run
# minibatches of about one size and wait less for each other; 1 is the original's draw per image.
__C.TRAIN.MINIBATCHES_PER_SCALE = 1
# Cap on the longest side.
__C.TRAIN.MAX_SIZE = 1000
# Images per minibatch (RPN / end2end training needs 1).
__C.TRAIN.IMS_PER_BATCH = 2
# RoIs per minibatch, split over the images.
__C.TRAIN.BATCH_SIZE = 128
# Fraction of the minibatch that is foreground (round(0.25 * 128) = 32).
__C.TRAIN.FG_FRACTION = 0.25
# Online hard example mining (opt-in, not in the original): instead of sampling BATCH_SIZE RoIs at FG_FRACTION,
# score every candidate RoI with a read-only pass of the head and train on the BATCH_SIZE of highest loss.
__C.TRAIN.OHEM = False
# IoU >= FG_THRESH makes a RoI foreground.
__C.TRAIN.FG_THRESH = 0.5
# A RoI is background when its IoU lies in [LO, HI).
__C.TRAIN.BG_THRESH_HI = 0.5
__C.TRAIN.BG_THRESH_LO = 0.1
# Add horizontally flipped copies of every training image.
__C.TRAIN.USE_FLIPPED = True
# Train the Fast R-CNN box regressor.
__C.TRAIN.BBOX_REG = True
# Minimum IoU with a ground-truth box for a RoI to get regression targets.
__C.TRAIN.BBOX_THRESH = 0.5
# Snapshot period, in iterations.
__C.TRAIN.SNAPSHOT_ITERS = 10000
# Snapshot files are <prefix>[_<infix>]_iter_<N>.pth.
__C.TRAIN.SNAPSHOT_INFIX = ''
# Prefetch minibatches in another process, as the original's BlobFetcher (here: DataLoader workers; the same
# minibatches in the same order). Opt-in: the GPU is not left waiting for image decoding and resizing.
__C.TRAIN.USE_PREFETCH = False
# Added: how many worker processes prefetch (the original had one); with a CUDA device 'data' comes in pinned memory.
__C.TRAIN.PREFETCH_WORKERS = 1
# Normalise regression targets as (t - mean) / std.
__C.TRAIN.BBOX_NORMALIZE_TARGETS = True
# Deprecated per-coordinate inside weights.
__C.TRAIN.BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# Use the fixed MEANS/STDS below instead of per-class statistics (RPN-based training sets it).
__C.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = False
__C.TRAIN.BBOX_NORMALIZE_MEANS = (0.0, 0.0, 0.0, 0.0)
__C.TRAIN.BBOX_NORMALIZE_STDS = (0.1, 0.1, 0.2, 0.2)
# roidb handler: <method>_roidb (gt, rpn, selective_search, ...).
__C.TRAIN.PROPOSAL_METHOD = 'selective_search'
# Pair images of the same orientation in a minibatch.
__C.TRAIN.ASPECT_GROUPING = True
# The data layer emits im_info + gt_boxes instead of rois.
__C.TRAIN.HAS_RPN = False
# Anchor IoU >= this makes it foreground; < NEGATIVE makes it background.
__C.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
__C.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
# If True, a background assignment overrides a foreground one.
__C.TRAIN.RPN_CLOBBER_POSITIVES = False
# Maximum foreground fraction of the RPN batch, and the RPN batch size (anchors per image).
__C.TRAIN.RPN_FG_FRACTION = 0.5
__C.TRAIN.RPN_BATCHSIZE = 256
# Proposal NMS threshold and top-N before / after NMS.
__C.TRAIN.RPN_NMS_THRESH = 0.7
__C.TRAIN.RPN_PRE_NMS_TOP_N = 12000
__C.TRAIN.RPN_POST_NMS_TOP_N = 2000
# Minimum proposal width and height at the original image scale.
__C.TRAIN.RPN_MIN_SIZE = 16
# Inside weights for foreground anchors.
__C.TRAIN.RPN_BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# < 0: uniform weights 1/num_sampled; p in (0, 1): fg weighted p/#fg, bg (1-p)/#bg.
__C.TRAIN.RPN_POSITIVE_WEIGHT = -1.0
# Added: opt-in guard against the zero-overlap quirk of the anchor target layer.
__C.TRAIN.RPN_GUARD_ZERO_OVERLAP = False

# ----------------------------------------------------------------------------- Testing options
__C.TEST = edict()
__C.TEST.SCALES = (600,)
__C.TEST.MAX_SIZE = 1000
# Added, opt-in test-time augmentation: also detect on the mirrored image (im_detect; several TEST.SCALES too).
__C.TEST.FLIP = False
# Per-class detection NMS.
__C.TEST.NMS = 0.3
# Use raw cls_score instead of softmax probabilities.
__C.TEST.SVM = False
# Apply the bbox_pred deltas.
__C.TEST.BBOX_REG = True
# The network makes its own proposals (needs im_info).
__C.TEST.HAS_RPN = False
__C.TEST.PROPOSAL_METHOD = 'selective_search'
__C.TEST.RPN_NMS_THRESH = 0.7
__C.TEST.RPN_PRE_NMS_TOP_N = 6000
__C.TEST.RPN_POST_NMS_TOP_N = 300
__C.TEST.RPN_MIN_SIZE = 16

# ----------------------------------------------------------------------------- Miscellaneous
# Hash-dedup of projected RoIs at this spatial scale (non-RPN testing only).
__C.DEDUP_BOXES = 1. / 16.
# BGR means subtracted from 0-255 BGR images, as the Caffe ImageNet models expect.
__C.PIXEL_MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])
# Seed for numpy and torch, unless --rand.
__C.RNG_SEED = 3
# Guards class counts when computing means and stds.
__C.EPS = 1e-14
__C.ROOT_DIR = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
__C.DATA_DIR = osp.abspath(osp.join(__C.ROOT_DIR, 'data'))
__C.MODELS_DIR = osp.abspath(osp.join(__C.ROOT_DIR, 'models', 'pascal_voc'))
# MATLAB binary for the official VOC evaluation.
__C.MATLAB = 'matlab'
# Outputs go to output/<EXP_DIR>/<imdb name>/[<net name>].
__C.EXP_DIR = 'default'
__C.USE_GPU_NMS = True
__C.GPU_ID = 0
# Added: anchors (the original's prototxt param_str), feature stride, RoI pooling mode, device.
__C.ANCHOR_SCALES = (8, 16, 32)
__C.ANCHOR_RATIOS = (0.5, 1.0, 2.0)
__C.FEAT_STRIDE = 16
__C.POOLING_MODE = 'pool'
# Added: dropout after fc6 and fc7 (the original's pascal_voc prototxts); its COCO prototxts have none
__C.FC_DROPOUT = True
# Added: () or the (fc6, fc7) ranks of a head factored by truncated SVD (tools/compress_net.py writes it; 0 = not)
__C.FC_SVD_RANKS = ()
__C.DEVICE = 'cpu'
# Added: mixed precision for the convolutions and fc layers (torch.autocast): 'off' (float32, the original), 'bf16',
# 'fp16' (float16, the loss scaled dynamically in training), or 'auto' (bf16 where the hardware runs it fast: a CPU
# with AMX or a CUDA GPU with bfloat16; fp16 on an older CUDA GPU; float32 elsewhere). Normalisation layers, the RPN
# and target layers, RoI pooling and the losses stay float32.
__C.AMP = 'off'
# Added: torch.backends.cudnn.benchmark on a CUDA device (opt-in): cuDNN times its convolution algorithms for each
# new input shape and keeps the fastest; it pays when the shapes repeat (few TRAIN.SCALES, SIZE_DIVISIBILITY 32).
__C.CUDNN_BENCHMARK = False
# Added: pad each image blob (bottom and right, with the mean colour) to a multiple of this many pixels; im_info
# keeps the image's own size. 1 = the original (no padding). On the CPU, oneDNN builds (JIT-compiles) its
# convolutions for every new input size, and a training run's images come in hundreds of sizes; a few dozen padded
# sizes let it reuse them.
__C.SIZE_DIVISIBILITY = 1
# Added: broken input is an error naming the file (and the line or object): an annotation that does not parse, an
# object of an unknown class or with a box outside its image, a missing, unreadable or truncated image. True makes
# each a warning naming it and skips the object or image, in every split alike (evaluation leaves it out too).
# A broken image set or classes.txt is always an error.
__C.SKIP_BAD_ANNOTATIONS = False


# The defaults as this file sets them, before any tool changes the global cfg.
_DEFAULTS = copy.deepcopy(__C)


def default_cfg() -> edict:
    """A fresh copy of this file's defaults: what lib's functions use when they are given no cfg (never the global
    cfg, which the tools change)."""
    return copy.deepcopy(_DEFAULTS)


def given_or_default(cfg: Optional[edict]) -> edict:
    """``cfg`` itself, or a fresh copy of the defaults when it is None."""
    return default_cfg() if cfg is None else cfg


class ConfigError(ValueError):
    """A configuration key or value that does not fit the defaults."""


def get_output_dir(imdb: Any, net: Any = None, cfg: Optional[edict] = None) -> str:
    """Return (and create) the directory for experimental artifacts.

    ``output/<EXP_DIR>/<imdb.name>`` under ROOT_DIR, or ``.../<net name>`` when ``net`` is given (a string or an
    object with a ``name``), as the original.
    """
    cfg = __C if cfg is None else cfg
    outdir = osp.abspath(osp.join(cfg.ROOT_DIR, 'output', cfg.EXP_DIR, imdb.name))
    if net is not None:
        outdir = osp.join(outdir, net if isinstance(net, str) else net.name)
    os.makedirs(outdir, exist_ok=True)
    return outdir


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return 'array of shape {}'.format(value.shape)
    return type(value).__name__


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Return ``value`` converted to the type of ``default``, or raise ConfigError naming ``key``."""
    if isinstance(default, np.ndarray):
        try:
            arr = np.array(value, dtype=default.dtype)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != default.shape:
            raise ConfigError('config key {}: expected an {} of numbers, got {!r}'.format(
                key, _type_name(default), value))
        return arr
    if isinstance(default, bool) or isinstance(value, bool):
        if type(value) is not type(default):
            raise ConfigError('config key {}: expected {}, got {} {!r}'.format(
                key, _type_name(default), _type_name(value), value))
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        if default and value:
            elem = default[0]
            return tuple(_coerce('{}[{}]'.format(key, i), v, elem) for i, v in enumerate(value))
        return tuple(value)
    if default is None or value is None:
        return value
    if type(value) is not type(default):
        raise ConfigError('config key {}: expected {}, got {} {!r}'.format(
            key, _type_name(default), _type_name(value), value))
    return value


# Allowed ranges of numeric keys, checked whenever a value is set: (low, high), inclusive; None is unbounded.
# ``SPECIAL`` values are allowed besides the range (-1: "all" for the RPN's top-N, "uniform" for its weight).
_RANGES = {
    'TRAIN.SCALES': (1, None), 'TRAIN.MINIBATCHES_PER_SCALE': (1, None), 'TRAIN.MAX_SIZE': (1, None),
    'TRAIN.IMS_PER_BATCH': (1, None), 'TRAIN.BATCH_SIZE': (1, None), 'TRAIN.FG_FRACTION': (0, 1),
    'TRAIN.PREFETCH_WORKERS': (1, None),
    'TRAIN.FG_THRESH': (0, 1), 'TRAIN.BG_THRESH_HI': (0, 1), 'TRAIN.BG_THRESH_LO': (0, 1),
    'TRAIN.BBOX_THRESH': (0, 1), 'TRAIN.SNAPSHOT_ITERS': (0, None), 'TRAIN.BBOX_INSIDE_WEIGHTS': (0, None),
    'TRAIN.BBOX_NORMALIZE_STDS': (1e-12, None), 'TRAIN.RPN_POSITIVE_OVERLAP': (0, 1),
    'TRAIN.RPN_NEGATIVE_OVERLAP': (0, 1), 'TRAIN.RPN_FG_FRACTION': (0, 1), 'TRAIN.RPN_BATCHSIZE': (1, None),
    'TRAIN.RPN_NMS_THRESH': (0, 1), 'TRAIN.RPN_PRE_NMS_TOP_N': (1, None), 'TRAIN.RPN_POST_NMS_TOP_N': (1, None),
    'TRAIN.RPN_MIN_SIZE': (0, None), 'TRAIN.RPN_BBOX_INSIDE_WEIGHTS': (0, None),
    'TRAIN.RPN_POSITIVE_WEIGHT': (0, 1),
    'TEST.SCALES': (1, None), 'TEST.MAX_SIZE': (1, None), 'TEST.NMS': (0, 1), 'TEST.RPN_NMS_THRESH': (0, 1),
    'TEST.RPN_PRE_NMS_TOP_N': (1, None), 'TEST.RPN_POST_NMS_TOP_N': (1, None), 'TEST.RPN_MIN_SIZE': (0, None),
    'DEDUP_BOXES': (1e-12, None), 'RNG_SEED': (0, 2 ** 32 - 1), 'EPS': (1e-300, 1), 'GPU_ID': (0, None),
    'ANCHOR_SCALES': (1e-12, None), 'ANCHOR_RATIOS': (1e-12, None), 'FEAT_STRIDE': (1, None),
    'FC_SVD_RANKS': (0, None),
    'SIZE_DIVISIBILITY': (1, None),
}
_SPECIAL = {'TRAIN.RPN_PRE_NMS_TOP_N': (-1,), 'TRAIN.RPN_POST_NMS_TOP_N': (-1,), 'TEST.RPN_PRE_NMS_TOP_N': (-1,),
            'TEST.RPN_POST_NMS_TOP_N': (-1,), 'TRAIN.RPN_POSITIVE_WEIGHT': (-1.0,)}
# Keys whose tuple must not be empty.
_NON_EMPTY = ('TRAIN.SCALES', 'TEST.SCALES', 'ANCHOR_SCALES', 'ANCHOR_RATIOS')


def _numbers(value: Any):
    if isinstance(value, np.ndarray):
        return [float(x) for x in value.ravel()]
    if isinstance(value, (list, tuple)):
        return [x for x in value if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


#: Keys of the original kept so that its yml files load, whose other values this project does not implement.
_ONLY_DEFAULT = {
    'TEST.SVM': (False, "the original's SVM scoring of R-CNN-style models is not part of this project"),
}


def check_value(key: str, value: Any) -> Any:
    """``value`` if it is finite and in ``key``'s allowed range, else a ConfigError naming the key and the range."""
    if key in _ONLY_DEFAULT and value != _ONLY_DEFAULT[key][0]:
        raise ConfigError('config key {}: only {!r} is supported ({})'.format(key, _ONLY_DEFAULT[key][0],
                                                                           _ONLY_DEFAULT[key][1]))
    if key in _NON_EMPTY and isinstance(value, tuple) and not value:
        raise ConfigError('config key {}: must not be empty'.format(key))
    lo, hi = _RANGES.get(key, (None, None))
    for x in _numbers(value):
        if not np.isfinite(x):
            raise ConfigError('config key {}: must be a finite number, got {!r}'.format(key, value))
        if x in _SPECIAL.get(key, ()):
            continue
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            allowed = '[{}, {}]'.format(lo if lo is not None else '-inf', hi if hi is not None else 'inf')
            if key in _SPECIAL:
                allowed += ' or {}'.format(' or '.join(str(v) for v in _SPECIAL[key]))
            raise ConfigError('config key {}: {!r} is out of range (allowed: {})'.format(key, value, allowed))
    return value


def check_cfg(cfg: Optional[edict] = None) -> None:
    """The checks that involve several keys (each key alone is checked when it is set)."""
    cfg = __C if cfg is None else cfg
    if cfg.TRAIN.BG_THRESH_LO > cfg.TRAIN.BG_THRESH_HI:
        raise ConfigError('config keys TRAIN.BG_THRESH_LO ({}) > TRAIN.BG_THRESH_HI ({}): no RoI can be '
                          'background'.format(cfg.TRAIN.BG_THRESH_LO, cfg.TRAIN.BG_THRESH_HI))


def _merge_a_into_b(a: Mapping, b: edict, prefix: str = '') -> None:
    """Merge dict ``a`` into ``b`` in place, checking every key and type against ``b``."""
    for k, v in a.items():
        if not isinstance(k, str):
            raise ConfigError('config keys are names; got {!r} under {}'.format(k, prefix.rstrip('.') or 'the top level'))
        key = prefix + k
        if k not in b:
            raise ConfigError('unknown config key: {}'.format(key))
        if isinstance(b[k], dict):
            if not isinstance(v, Mapping):
                raise ConfigError('config key {}: expected a mapping of sub-keys, got {!r}'.format(key, v))
            _merge_a_into_b(v, b[k], key + '.')
        else:
            b[k] = check_value(key, _coerce(key, v, b[k]))


def cfg_from_dict(d: Mapping, cfg: Optional[edict] = None) -> None:
    """Merge a (nested) dict of settings into ``cfg`` (default: the global cfg), in place."""
    _merge_a_into_b(d, __C if cfg is None else cfg)


def cfg_from_file(filename: str, cfg: Optional[edict] = None) -> None:
    """Merge a YAML config file into ``cfg`` (default: the global cfg), in place."""
    if not osp.isfile(filename):
        raise ConfigError('config file not found: {}'.format(filename))
    with open(filename) as f:
        try:
            yaml_cfg = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError('{}: not valid YAML: {}'.format(filename, e)) from None
    if yaml_cfg is None:
        return
    if not isinstance(yaml_cfg, Mapping):
        raise ConfigError('{}: expected a mapping of config keys at the top level'.format(filename))
    try:
        cfg_from_dict(yaml_cfg, cfg)
    except ConfigError as e:
        raise ConfigError('{}: {}'.format(filename, e)) from None


def _parse_value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cfg_from_list(cfg_list: Iterable[Any], cfg: Optional[edict] = None) -> None:
    """Apply ``--set`` pairs: ``['TRAIN.SCALES', '(500,)', 'EXP_DIR', 'x', ...]``, in place; all or none of them
    (errors start with ``--set``)."""
    cfg = __C if cfg is None else cfg
    cfg_list = list(cfg_list)
    if len(cfg_list) % 2 != 0:
        raise ConfigError('--set needs KEY VALUE pairs; got an odd number of items: {}'.format(cfg_list))
    _apply_pairs(cfg_list, copy.deepcopy(cfg))  # raises before anything is changed
    _apply_pairs(cfg_list, cfg)


def _apply_pairs(cfg_list, cfg: edict) -> None:
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        d = cfg
        subkeys = str(key).split('.')
        for sub in subkeys[:-1]:
            if sub not in d or not isinstance(d[sub], dict):
                raise ConfigError('--set unknown config key: {}'.format(key))
            d = d[sub]
        last = subkeys[-1]
        if last not in d or isinstance(d[last], dict):
            hint = ' (an option after --set? --set takes the rest of the command line: put it last)' \
                if str(key).startswith('-') else ''
            raise ConfigError('--set unknown config key: {}{}'.format(key, hint))
        try:
            d[last] = check_value(key, _coerce(key, _parse_value(text), d[last]))
        except ConfigError as e:
            raise ConfigError('--set {}'.format(e)) from None


def cfg_to_dict(cfg: Optional[edict] = None) -> dict:
    """A plain-Python copy of ``cfg`` (tuples and arrays become lists), safe for YAML, JSON and snapshots."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v
    return plain(__C if cfg is None else cfg)


def cfg_copy(cfg: Optional[edict] = None) -> edict:
    """A deep copy of ``cfg`` (default: the global cfg), to change without touching the original."""
    return copy.deepcopy(__C if cfg is None else cfg)
