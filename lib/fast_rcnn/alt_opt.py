"""The paper's 4-stage alternating optimisation (the original's tools/train_faster_rcnn_alt_opt.py), as calls.

    stage 1  RPN, from ImageNet weights (or from scratch)                       -> stage1_rpn snapshot
             its proposals on the training images                               -> <snapshot>_rpn_proposals.npz
    stage 2  Fast R-CNN on them, from ImageNet weights (a network without: from stage 1's backbone and RPN)
    stage 3  RPN from stage 2's network, shared conv layers fixed              -> proposals again
    stage 4  Fast R-CNN from stage 3's network, conv layers and RPN fixed, cls_score/bbox_pred re-initialised
    final    stage 4's snapshot (its RPN is stage 3's): <NET>_faster_rcnn_final.pth, printed as `Final model: PATH`

Stage solvers are ``<MODELS_DIR>/<NET>/faster_rcnn_alt_opt/stage{1,2}_{rpn,fast_rcnn}_solver.yml``; their snapshots
carry the original's SNAPSHOT_INFIX (stage1, stage2) in output/<EXP_DIR>/<imdb name>/. Per-stage settings as the
original's code: RPN stages HAS_RPN, no BBOX_REG, gt roidb, one image; Fast R-CNN stages no RPN, the RPN's
proposals, two images, targets normalised by their empirical statistics; proposals with TEST.RPN_PRE_NMS_TOP_N -1
and RPN_POST_NMS_TOP_N 2000 on the unflipped images (flipped with the roidb).

Resumable as a whole, in one process (the original needed a process per stage to free GPU memory; here the
model and data are dropped and the CUDA cache emptied between stages): a stage whose final snapshot (or proposal
file) exists is skipped (``Skipping stage N: PATH exists``), the one in progress resumes from its newest snapshot
(train_net's ``Resuming from PATH``), and each stage seeds its RNGs from cfg.RNG_SEED as it starts, so the result
is that of an uninterrupted run.
"""
from __future__ import annotations

import gc
import os.path as osp
from typing import Callable, List, Optional

import numpy as np
import torch

from datasets.factory import get_imdb
from fast_rcnn.config import cfg_copy, cfg_from_dict, check_cfg, get_output_dir
from fast_rcnn.test import load_detector
from fast_rcnn.train import filter_roidb, load_snapshot, load_solver, snapshot_name, train_net
from fast_rcnn.training_data import bbox_target_stats, combined_roidb, make_data_layer, run_imdb
from nets.faster_rcnn import FasterRCNN
from nets.weights import load_pretrained
from rpn.generate import imdb_proposals, proposals_path, save_imdb_proposals
from utils.atomic import atomic_write
from utils.runtime import tune_cuda_runtime

METHOD = 'faster_rcnn_alt_opt'
# cfg keys that define the network: every stage must agree on them, or stage N+1 could not take stage N's weights
MODEL_KEYS = ('ANCHOR_SCALES', 'ANCHOR_RATIOS', 'FEAT_STRIDE', 'POOLING_MODE', 'PIXEL_MEANS', 'FC_DROPOUT',
              'SIZE_DIVISIBILITY')
# the original's per-stage overrides (train_faster_rcnn_alt_opt.py's get_solvers and train_rpn/train_fast_rcnn)
RPN_STAGE = {'TRAIN': {'HAS_RPN': True, 'BBOX_REG': False, 'PROPOSAL_METHOD': 'gt', 'IMS_PER_BATCH': 1}}
FAST_RCNN_STAGE = {'TRAIN': {'HAS_RPN': False, 'PROPOSAL_METHOD': 'rpn', 'IMS_PER_BATCH': 2}}
PROPOSAL_SETTINGS = ['TEST.RPN_PRE_NMS_TOP_N', '-1', 'TEST.RPN_POST_NMS_TOP_N', '2000']
RPN_PARTS = ('features.', 'rpn_conv.', 'rpn_cls_score.', 'rpn_bbox_pred.')


class Stage:
    """One training stage: its number (1-4), solver file, kind ('rpn' or 'fast_rcnn') and SNAPSHOT_INFIX."""

    def __init__(self, number: int, kind: str, generation: int) -> None:
        self.number = number
        self.kind = kind
        self.infix = 'stage{}'.format(generation)
        self.solver_name = 'stage{}_{}_solver.yml'.format(generation, kind)
        self.title = 'Stage {} {}'.format(generation, 'RPN' if kind == 'rpn' else 'Fast R-CNN')


STAGES = (Stage(1, 'rpn', 1), Stage(2, 'fast_rcnn', 1), Stage(3, 'rpn', 2), Stage(4, 'fast_rcnn', 2))


def solver_dir(cfg, net_name: str) -> str:
    """<MODELS_DIR>/<NET>/faster_rcnn_alt_opt (a relative MODELS_DIR is relative to ROOT_DIR)."""
    models = cfg.MODELS_DIR if osp.isabs(cfg.MODELS_DIR) else osp.join(cfg.ROOT_DIR, cfg.MODELS_DIR)
    return osp.join(models, net_name, METHOD)


def final_model_path(output_dir: str, net_name: str) -> str:
    return osp.join(output_dir, '{}_faster_rcnn_final.pth'.format(net_name))


def _banner(log: Callable[..., None], text: str) -> None:
    log('~' * 80)
    log(text)
    log('~' * 80, flush=True)


class AltOpt:
    """The four stages over one training set.

    Args:
        net_name: ZF, VGG_CNN_M_1024, VGG16, TINY...
        imdb_name: the training dataset(s), '+' joins.
        cfg: the run's cfg (defaults, --cfg, --set); each stage adds its solver's cfg: block and its overrides.
        weights: ImageNet weights for stages 1 and 2 (None: the network must train from scratch).
        device: torch.device.
        seed: the RNG seed of every stage (cfg.RNG_SEED).
    """

    def __init__(self, net_name: str, imdb_name: str, cfg, weights: Optional[str], device: torch.device,
                 seed: int, log: Callable[..., None] = print) -> None:
        self.net_name = net_name
        self.imdb_name = imdb_name
        self.cfg = cfg
        self.weights = weights
        self.device = device
        self.seed = int(seed)
        self.log = log
        self.solvers = {}
        for st in STAGES:
            path = osp.join(solver_dir(cfg, net_name), st.solver_name)
            if not osp.isfile(path):
                raise FileNotFoundError('no {} solver for {}: {} does not exist (MODELS_DIR is {}; --set MODELS_DIR '
                                        'models/<dataset> picks a dataset\'s solvers)'.format(
                                            st.title, net_name, path, cfg.MODELS_DIR))
            solver = load_solver(path)
            if solver['net'] != net_name:
                raise ValueError('{}: net: {} but this run trains {}'.format(path, solver['net'], net_name))
            self.solvers[st.number] = solver
        self.stage_cfgs = {st.number: self._stage_cfg(st) for st in STAGES}
        first = self.stage_cfgs[1]
        for st in STAGES[1:]:
            for key in MODEL_KEYS:
                a, b = np.asarray(first.get(key)).tolist(), np.asarray(self.stage_cfgs[st.number].get(key)).tolist()
                if a != b:
                    raise ValueError('{} sets {} = {} but {} has {}: every stage must build the same network'.format(
                        st.solver_name, key, b, STAGES[0].solver_name, a))
        self.parts = [get_imdb(n, cfg) for n in imdb_name.split('+')]
        self.output_dir = get_output_dir(run_imdb(self.parts, imdb_name), cfg=cfg)
        self.classes = list(self.parts[0].classes)

    def _stage_cfg(self, st: Stage):
        c = cfg_copy(self.cfg)
        solver = self.solvers[st.number]
        if solver['cfg']:
            cfg_from_dict(solver['cfg'], c)
        if solver['snapshot'] is not None:
            c.TRAIN.SNAPSHOT_ITERS = int(solver['snapshot'])
        cfg_from_dict(RPN_STAGE if st.kind == 'rpn' else FAST_RCNN_STAGE, c)
        c.TRAIN.SNAPSHOT_INFIX = st.infix
        c.TEST.HAS_RPN = True  # the final model is a Faster R-CNN detector
        check_cfg(c)
        return c

    # ------------------------------------------------------------------ outputs
    def stage_output(self, st: Stage) -> str:
        """The final snapshot of stage ``st``: <prefix>_<infix>_iter_<max_iter>.pth."""
        solver = self.solvers[st.number]
        return osp.join(self.output_dir, snapshot_name(solver, self.stage_cfgs[st.number], int(solver['max_iter'])))

    def proposal_files(self, rpn_snapshot: str) -> List[str]:
        """Per training dataset: output/<EXP_DIR>/<its name>/<RPN snapshot name>_rpn_proposals.npz."""
        name = osp.splitext(osp.basename(rpn_snapshot))[0]
        return [proposals_path(get_output_dir(p, cfg=self.cfg), name) for p in self.parts]

    def _complete(self, path: str) -> bool:
        if not osp.isfile(path):
            return False
        if path.endswith('.npz'):
            return True  # written atomically: there means whole
        try:
            load_snapshot(path)
        except ValueError as e:
            self.log('Not using {}: {}'.format(path, e))
            return False
        return True

    # ------------------------------------------------------------------ the run
    def run(self) -> str:
        """All stages (skipping the complete ones); returns the final model's path, printed last as
        ``Final model: PATH``."""
        rpn1 = self._train(STAGES[0], init=None)
        props1 = self._proposals(STAGES[0], rpn1)
        frcn1 = self._train(STAGES[1], init=None if self.weights else rpn1, proposals=props1)
        rpn2 = self._train(STAGES[2], init=frcn1)
        props2 = self._proposals(STAGES[2], rpn2)
        frcn2 = self._train(STAGES[3], init=rpn2, proposals=props2)
        final = final_model_path(self.output_dir, self.net_name)
        with open(frcn2, 'rb') as src:  # a byte copy: its checksum still verifies
            data = src.read()
        atomic_write(final, lambda f: f.write(data))
        self.log('Final model: {}'.format(final), flush=True)
        return final

    def _train(self, st: Stage, init: Optional[str], proposals: Optional[List[str]] = None) -> str:
        out = self.stage_output(st)
        if self._complete(out):
            self.log('Skipping stage {} ({}): {} exists'.format(st.number, st.title, out), flush=True)
            return out
        c = self.stage_cfgs[st.number]
        solver = self.solvers[st.number]
        source = {None: 'ImageNet model' if self.weights else 'random initialisation (from scratch)'}.get(init, init)
        if st.number == 2 and init is not None:
            source = "stage 1 RPN's backbone (no ImageNet weights): " + init
        _banner(self.log, '{} (stage {} of 4), init from {}'.format(st.title, st.number, source))
        imdb, roidb = combined_roidb(self.imdb_name, c, None if proposals is None else '+'.join(proposals),
                                     log=self.log)
        roidb = filter_roidb(roidb, c)
        bbox_stats = bbox_target_stats(roidb, c)
        np.random.seed(self.seed)  # as each of the original's stage processes: the same start on a rerun
        torch.manual_seed(self.seed)
        model = FasterRCNN(self.net_name, len(self.classes), c)
        self._initialise(model, st, init)
        model.set_mode(st.kind)
        if st.number <= 2:
            frozen = solver['frozen_layers']
            model.frozen_parameters(model.netdef.frozen if frozen is None else list(frozen))
        else:
            model.freeze_features()  # stage 2 of the paper: the shared conv layers stay as stage 1 left them
        tune_cuda_runtime(self.device, c.CUDNN_BENCHMARK)
        model.to(self.device)
        data_layer = make_data_layer(roidb, len(self.classes), c, self.seed)
        try:
            last = train_net(model, data_layer, self.output_dir, solver, c, self.classes, int(solver['max_iter']),
                             imdb_name=imdb.name, resume=True, seed=self.seed, bbox_stats=bbox_stats)
        finally:
            del model, data_layer, roidb
            _release_memory(self.device)
        return last

    def _initialise(self, model, st: Stage, init: Optional[str]) -> None:
        if init is None:
            if self.weights:
                info = load_pretrained(model, self.weights)
                self.log('Loaded pretrained weights from {} ({}: {})'.format(self.weights, info['source'],
                                                                            ', '.join(info['loaded'])))
            return
        snap = load_snapshot(init)
        state = dict(snap['model'])
        if st.number == 2:  # a from-scratch network: stage 1's backbone and RPN, the RoI head fresh
            state = {k: v for k, v in state.items() if k.startswith(RPN_PARTS) or k == 'input_mode'}
        elif st.number == 4:  # as the original: stage 3's snapshot has no cls_score/bbox_pred to give
            state = {k: v for k, v in state.items() if not k.startswith(('cls_score.', 'bbox_pred.'))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError('{}: weights that {} does not have: {}'.format(init, self.net_name, unexpected[:5]))
        self.log('Initialised from {} ({} tensors{})'.format(
            init, len(state), '; left as initialised: ' + ', '.join(sorted({m.rsplit('.', 1)[0] for m in missing}))
            if missing else ''))

    def _proposals(self, st: Stage, rpn_snapshot: str) -> List[str]:
        files = self.proposal_files(rpn_snapshot)
        if all(osp.isfile(f) for f in files):
            for f in files:
                self.log("Skipping stage {}'s proposals: {} exists".format(st.number, f), flush=True)
            return files
        _banner(self.log, '{}, generate proposals'.format(st.title))
        net, c, _ = load_detector(rpn_snapshot, set_cfgs=PROPOSAL_SETTINGS, device=self.device)
        try:
            for imdb, path in zip(self.parts, files):
                if osp.isfile(path):
                    self.log("Skipping stage {}'s proposals: {} exists".format(st.number, path))
                    continue
                boxes, scores = imdb_proposals(net, imdb, c, log=self.log)
                save_imdb_proposals(path, imdb, boxes, scores)
                self.log('Wrote RPN proposals to: {}'.format(path), flush=True)
        finally:
            del net
            _release_memory(self.device)
        return files


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
