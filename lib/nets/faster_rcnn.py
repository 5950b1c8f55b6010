"""The Faster R-CNN detector (approximate joint training, as the original's end2end prototxts).

``FasterRCNN(net, num_classes, cfg)`` wires a network from ``nets.backbones`` to the RPN head, the RPN and
proposal-target layers (torch ops on the model's device, no gradient: proposals are detached as in the original),
RoI pooling and the classification / regression heads.

Forward: ``model(data (N,3,H,W) float32, im_info (N,3) [[H, W, scale]], gt_boxes (G,5) [x1,y1,x2,y2,cls])``
(N > 1, TRAIN.IMS_PER_BATCH opt-in: gt_boxes is a list of N such arrays; every target and loss is computed image by
image and each loss is the mean over the images, so N images weigh as N one-image minibatches, padding aside)
- training mode: a dict of the four losses ``rpn_loss_cls`` (softmax, ignore label -1, normalised by the number
  of non-ignored anchors), ``rpn_loss_bbox`` (smooth L1, sigma 3, divided by 1: the outside weights hold
  1/#sampled), ``loss_cls`` (softmax over the sampled RoIs) and ``loss_bbox`` (smooth L1, sigma 1, divided by the
  number of RoIs); scalar tensors, each with loss_weight 1;
- eval mode: ``(rois (R,5) [0,x1,y1,x2,y2] in blob coordinates, cls_prob (R,K), bbox_pred (R,4K))``.

Mixed precision (``cfg.AMP``, opt-in): the body, the RPN's 3x3 conv and the fc head run under bfloat16 (or, 'fp16',
float16) autocast (on a CPU with AMX oneDNN's bf16 convolutions are ~2.5x as fast); their outputs are cast back, so
the RPN's 1x1 convs, the proposal and target layers, RoI pooling, cls_score, bbox_pred and the losses stay
float32, as do the weights and their gradients.

``data`` is always the Caffe-style blob (BGR, 0-255, cfg.PIXEL_MEANS subtracted). A model initialised from
torchvision ImageNet weights (``input_mode == 'torchvision'``) converts it to RGB/255 with ImageNet mean/std
inside ``forward``, so the data pipeline never changes.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fast_rcnn.config import given_or_default
from fast_rcnn.nms_wrapper import nms
from nets import ops
from nets.backbones import NetDef, build_net
from rpn.device_ops import as_tensor

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
# TRAIN.OHEM's NMS over the RoIs ranked by loss (the OHEM paper's value)
OHEM_NMS_THRESH = 0.7
# set_mode's training modes, and the layers (as the original's layer names) of the two parts
MODES = ('end2end', 'rpn', 'fast_rcnn')
RPN_LAYERS = ('rpn_conv', 'rpn_cls_score', 'rpn_bbox_pred')
HEAD_LAYERS = ('head', 'cls_score', 'bbox_pred')


class _Timers:
    """Accumulates wall seconds per named stage (for tools/bench_net.py); a no-op when ``store`` is None."""

    def __init__(self, store: Optional[Dict[str, float]], device: torch.device) -> None:
        self.store = store
        self.cuda = device.type == 'cuda'
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.store is None:
            return
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.store[name] = self.store.get(name, 0.0) + now - self.t
        self.t = now


def _gt_boxes_per_image(gt_boxes: Any, num_images: int, device: torch.device) -> List[torch.Tensor]:
    """gt_boxes of each image as a (G, 5) float32 tensor on ``device``: one (G, 5) array for one image, a list of
    them for several; training needs them."""
    if gt_boxes is None:
        raise ValueError('FasterRCNN: training the RPN needs gt_boxes (G, 5)')
    per_image = list(gt_boxes) if isinstance(gt_boxes, (list, tuple)) else [gt_boxes]
    if len(per_image) != num_images:
        raise ValueError('FasterRCNN: {} images in the blob need a list of {} gt_boxes arrays, got {}'.format(
            num_images, num_images, len(per_image) if isinstance(gt_boxes, (list, tuple)) else 'one array'))
    return [as_tensor(g, device, torch.float32).reshape(-1, 5) for g in per_image]


def _check_batch(data: torch.Tensor, im_info: np.ndarray) -> int:
    """N, the images of the blob, which im_info (N, 3) must describe one row each."""
    if data.dim() != 4 or im_info.shape[0] != data.shape[0]:
        raise ValueError('FasterRCNN: data must be (N, 3, H, W) with one im_info row per image, got data {} and '
                         'im_info {}'.format(tuple(data.shape), im_info.shape))
    return int(data.shape[0])


def _image_index(rois: torch.Tensor, n: int) -> torch.Tensor:
    """rois (R, 5) of one image (column 0 is 0) with column 0 set to its index n in the blob."""
    if n == 0:
        return rois
    return torch.cat((torch.full_like(rois[:, :1], n), rois[:, 1:]), dim=1)


def _mean_losses(per_image: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Each loss averaged over the images: a minibatch of N images weighs as N minibatches of one (iter_size N)."""
    if len(per_image) == 1:
        return per_image[0]
    return {k: torch.stack([losses[k] for losses in per_image]).mean() for k in per_image[0]}


def _im_info(im_info: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """im_info as a (N, 3) float32 numpy array."""
    info = im_info.detach().cpu().numpy() if torch.is_tensor(im_info) else np.asarray(im_info)
    return info.reshape(-1, 3).astype(np.float32)


class FasterRCNN(nn.Module):
    """Faster R-CNN on one of ``nets.backbones``' networks.

    Args:
        net: network name (VGG16, ZF, VGG_CNN_M_1024, TINY) or a NetDef.
        num_classes: K, including background; always from the dataset.
        cfg: the configuration (ANCHOR_SCALES, ANCHOR_RATIOS, FEAT_STRIDE, POOLING_MODE, PIXEL_MEANS, TRAIN.*,
            TEST.* proposal settings). Kept as ``self.cfg``; ``None`` means config.py's defaults.
    """

    def __init__(self, net: Union[str, NetDef], num_classes: int, cfg=None) -> None:
        super().__init__()
        cfg = given_or_default(cfg)
        if num_classes < 2:
            raise ValueError('FasterRCNN: num_classes must count background and at least one class, got {}'
                             .format(num_classes))
        netdef = build_net(net, bool(cfg.FC_DROPOUT)) if isinstance(net, str) else net
        self.netdef = netdef
        self.net_name = netdef.name
        self.num_classes = int(num_classes)
        self.cfg = cfg
        self.anchor_scales = tuple(cfg.ANCHOR_SCALES)
        self.anchor_ratios = tuple(cfg.ANCHOR_RATIOS)
        self.feat_stride = int(cfg.FEAT_STRIDE)
        if self.feat_stride != netdef.feat_stride:
            raise ValueError('cfg.FEAT_STRIDE is {} but {} has stride {}: set FEAT_STRIDE: {} in its solver\'s cfg: '
                             'block'.format(self.feat_stride, netdef.name, netdef.feat_stride, netdef.feat_stride))
        self.num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        A = self.num_anchors

        self.features = netdef.features
        self.rpn_conv = nn.Conv2d(netdef.feat_channels, netdef.rpn_channels, 3, 1, 1)
        self.rpn_cls_score = nn.Conv2d(netdef.rpn_channels, 2 * A, 1)
        self.rpn_bbox_pred = nn.Conv2d(netdef.rpn_channels, 4 * A, 1)
        self.roi_pool = ops.make_roi_pool(netdef.pooled_size, 1.0 / self.feat_stride,
                                          cfg.POOLING_MODE)
        self.head = netdef.head
        if cfg.FC_SVD_RANKS:  # a compress_net snapshot: fc6/fc7 as two factors each
            from nets.compress import shape_head
            shape_head(self.head, cfg.FC_SVD_RANKS)
        self.cls_score = nn.Linear(netdef.head_dim, self.num_classes)
        self.bbox_pred = nn.Linear(netdef.head_dim, 4 * self.num_classes)
        for layer, std in ((self.rpn_conv, 0.01), (self.rpn_cls_score, 0.01), (self.rpn_bbox_pred, 0.01),
                           (self.cls_score, 0.01), (self.bbox_pred, 0.001)):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
        # 0 = Caffe convention (BGR - PIXEL_MEANS), 1 = torchvision (RGB/255, ImageNet mean/std). A buffer, so it
        # travels with the state dict.
        # Source of the target layers' sampling (numpy RandomState-like); None = the global numpy.random.
        self.rng = None
        self.mode = 'end2end'
        self.register_buffer('input_mode', torch.zeros((), dtype=torch.int64))
        pm = np.asarray(cfg.PIXEL_MEANS, dtype=np.float32).reshape(3)
        self.register_buffer('pixel_means', torch.from_numpy(pm.copy()).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ helpers
    def set_input_mode(self, mode: str) -> None:
        """'caffe' (BGR 0-255 minus PIXEL_MEANS, the original's weights) or 'torchvision' (RGB/255, mean/std)."""
        if mode not in ('caffe', 'torchvision'):
            raise ValueError("input mode must be 'caffe' or 'torchvision', got {!r}".format(mode))
        self.input_mode.fill_(0 if mode == 'caffe' else 1)

    def get_input_mode(self) -> str:
        return 'caffe' if int(self.input_mode) == 0 else 'torchvision'

    def _convert_input(self, data: torch.Tensor) -> torch.Tensor:
        if int(self.input_mode) == 0:
            return data
        bgr = data + self.pixel_means.to(data.dtype)
        rgb = bgr.flip(1) / 255.0
        mean = torch.tensor(TORCHVISION_MEAN, dtype=data.dtype, device=data.device).view(1, 3, 1, 1)
        std = torch.tensor(TORCHVISION_STD, dtype=data.dtype, device=data.device).view(1, 3, 1, 1)
        return (rgb - mean) / std

    def frozen_parameters(self, prefixes: Sequence[str]) -> None:
        """Set requires_grad=False on the feature layers named in ``prefixes`` (e.g. 'conv1_1')."""
        names = {n.split('.')[0] for n, _ in self.features.named_parameters()}
        for p in prefixes:
            if p not in names:
                raise ValueError('cannot freeze {!r}: {} has no such layer (layers: {})'.format(
                    p, self.net_name, ', '.join(sorted(names))))
        for n, param in self.features.named_parameters():
            if n.split('.')[0] in prefixes:
                param.requires_grad_(False)

    def freeze_features(self) -> None:
        """Every conv layer of the backbone fixed (alt-opt's stage 2: the shared convolutional layers)."""
        for param in self.features.parameters():
            param.requires_grad_(False)

    def amp_dtype(self, device: torch.device) -> Optional[torch.dtype]:
        """The autocast dtype that cfg.AMP asks for on ``device`` (None: float32 throughout)."""
        return amp_dtype(self.cfg.AMP, device)

    def _autocast(self, device: torch.device):
        dtype = self.amp_dtype(device)
        return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    # ------------------------------------------------------------------ the parts
    def set_mode(self, mode: str) -> None:
        """Which parts train: 'end2end' (all, approximate joint training), 'rpn' (backbone and RPN: alt-opt's RPN
        stages) or 'fast_rcnn' (backbone and RoI head on given RoIs: alt-opt's Fast R-CNN stages, Fast R-CNN on
        external proposals). The unused part's parameters get requires_grad False, as the original's lr_mult 0
        layers: they are carried in the snapshots unchanged."""
        if mode not in MODES:
            raise ValueError('mode must be one of {}, got {!r}'.format(', '.join(MODES), mode))
        self.mode = mode
        unused = {'end2end': (), 'rpn': HEAD_LAYERS, 'fast_rcnn': RPN_LAYERS}[mode]
        for name in unused:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)

    def train_losses(self, data: torch.Tensor, blobs: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """The training losses of one minibatch in the model's mode. data: blobs['data'] as a tensor on the
        model's device; blobs: roi_data_layer.minibatch.get_minibatch's dict ('im_info', 'gt_boxes' for 'end2end'
        and 'rpn'; 'rois', 'labels' and the bbox blobs for 'fast_rcnn')."""
        if self.mode == 'end2end':
            return self(data, blobs['im_info'], blobs['gt_boxes'])
        if self.mode == 'rpn':
            return self.rpn_losses(data, blobs['im_info'], blobs['gt_boxes'])
        bbox = None
        if 'bbox_targets' in blobs:
            bbox = tuple(blobs[k] for k in ('bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights'))
        return self.fast_rcnn_losses(data, blobs['rois'], blobs['labels'], bbox)

    # ------------------------------------------------------------------ forward
    def forward(self, data: torch.Tensor, im_info: Union[torch.Tensor, np.ndarray],
                gt_boxes: Optional[Union[torch.Tensor, np.ndarray]] = None,
                timers: Optional[Dict[str, float]] = None):
        cfg = self.cfg
        device = data.device
        tm = _Timers(timers, device)
        im_info_np = _im_info(im_info)
        N = _check_batch(data, im_info_np)
        feat, rpn_cls_score, rpn_cls_score_reshape, rpn_cls_prob_reshape, rpn_bbox_pred = self._rpn(data, tm)

        key = 'TRAIN' if self.training else 'TEST'
        rois = [self._proposals(rpn_cls_prob_reshape[n:n + 1], rpn_bbox_pred[n:n + 1], im_info_np[n:n + 1], key)[0]
                for n in range(N)]
        tm.lap('proposal')

        if not self.training:
            rois = torch.cat([_image_index(r, n) for n, r in enumerate(rois)])
            cls_score, bbox_pred = self._head(feat, rois)
            tm.lap('head')
            return rois, F.softmax(cls_score, dim=1), bbox_pred

        # image by image, in the order of N one-image minibatches (so the seeded draws are theirs too)
        gts = _gt_boxes_per_image(gt_boxes, N, device)
        kw = {} if self.rng is None else {'rng': self.rng}
        ohem = bool(cfg.TRAIN.OHEM)
        per_image = []
        for n in range(N):
            losses = self._rpn_losses(rpn_cls_score[n:n + 1], rpn_cls_score_reshape[n:n + 1], rpn_bbox_pred[n:n + 1],
                                      gts[n], im_info_np[n:n + 1])
            sampled, roi_labels, roi_targets, roi_inside_w, roi_outside_w = ops.proposal_target_layer(
                rois[n], gts[n], self.num_classes, cfg, sample=not ohem, **kw)
            tm.lap('targets')
            losses.update(self._head_losses(feat, _image_index(sampled, n), roi_labels,
                                            (roi_targets, roi_inside_w, roi_outside_w)))
            tm.lap('head')
            per_image.append(losses)
        return _mean_losses(per_image)

    def rpn_losses(self, data: torch.Tensor, im_info: Union[torch.Tensor, np.ndarray],
                   gt_boxes: Union[torch.Tensor, np.ndarray]) -> Dict[str, torch.Tensor]:
        """The RPN alone (alt-opt's RPN stages): {'rpn_loss_cls', 'rpn_loss_bbox'} of an image blob, as in
        ``forward``. data (N, 3, H, W), im_info (N, 3), gt_boxes (G, 5) for one image or N such arrays."""
        im_info_np = _im_info(im_info)
        N = _check_batch(data, im_info_np)
        _, rpn_cls_score, rpn_cls_score_reshape, _, rpn_bbox_pred = self._rpn(data, _Timers(None, data.device))
        gts = _gt_boxes_per_image(gt_boxes, N, data.device)
        return _mean_losses([self._rpn_losses(rpn_cls_score[n:n + 1], rpn_cls_score_reshape[n:n + 1],
                                              rpn_bbox_pred[n:n + 1], gts[n], im_info_np[n:n + 1]) for n in range(N)])

    def fast_rcnn_losses(self, data: torch.Tensor, rois: Union[torch.Tensor, np.ndarray],
                         labels: Union[torch.Tensor, np.ndarray],
                         bbox: Optional[Sequence[Union[torch.Tensor, np.ndarray]]] = None) -> Dict[str, torch.Tensor]:
        """Fast R-CNN on given RoIs (no RPN): {'loss_cls'[, 'loss_bbox']}.

        data (N, 3, H, W); rois (R, 5) [image index, x1, y1, x2, y2] in blob pixels; labels (R,); bbox: None
        (TRAIN.BBOX_REG off) or (bbox_targets, bbox_inside_weights, bbox_outside_weights), each (R, 4K)."""
        return self._head_losses(self._features(data), rois, labels, bbox)

    @torch.no_grad()
    def detect(self, data: torch.Tensor, rois: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The RoI head on given RoIs (Fast R-CNN testing, TEST.HAS_RPN off): data (N, 3, H, W), rois (R, 5)
        [image index, x1, y1, x2, y2] in blob pixels -> (cls_prob (R, K), bbox_pred (R, 4K))."""
        cls_score, bbox_pred = self._head(self._features(data), rois.float())
        return F.softmax(cls_score, dim=1), bbox_pred

    def _rpn_losses(self, rpn_cls_score: torch.Tensor, rpn_cls_score_reshape: torch.Tensor,
                    rpn_bbox_pred: torch.Tensor, gt: torch.Tensor, im_info_np: np.ndarray) -> Dict[str, torch.Tensor]:
        """Anchor targets and the RPN's two losses (see the module doc). gt: (G, 5) on the model's device."""
        A = self.num_anchors
        _, _, H, W = rpn_cls_score.shape
        kw = {} if self.rng is None else {'rng': self.rng}
        labels, targets, inside_w, outside_w = ops.anchor_target_layer(
            rpn_cls_score, gt, im_info_np, self.feat_stride, self.anchor_scales, self.cfg,
            anchor_ratios=self.anchor_ratios, **kw)
        losses = {'rpn_loss_cls': ops.softmax_loss_ignore(rpn_cls_score_reshape, labels.long().view(1, A * H, W))}
        # only the foreground anchors' deltas have both weights non-zero: every other term is 0 exactly (its
        # inside weight makes the difference 0), so the loss and its gradient are those of the whole map
        terms = torch.nonzero((inside_w.reshape(-1) != 0) & (outside_w.reshape(-1) != 0)).squeeze(1)
        losses['rpn_loss_bbox'] = ops.smooth_l1_loss(
            rpn_bbox_pred.reshape(1, -1).index_select(1, terms),
            *(x.reshape(1, -1).index_select(1, terms) for x in (targets, inside_w, outside_w)),
            sigma=3.0)
        return losses

    def _head_losses(self, feat: torch.Tensor, rois: Any, labels: Any,
                     bbox: Optional[Sequence[Any]]) -> Dict[str, torch.Tensor]:
        """The RoI head's losses on sampled RoIs: 'loss_cls' (softmax) and, with bbox targets, 'loss_bbox' (smooth
        L1, sigma 1, divided by the number of RoIs). With TRAIN.OHEM the hardest TRAIN.BATCH_SIZE are kept.
        rois (R, 5), labels (R,), bbox: three (R, 4K) blobs or None; tensors (on any device) or numpy."""
        device = feat.device
        rois = as_tensor(rois, device, torch.float32)
        labels = as_tensor(labels, device, torch.long).view(-1)
        targets = None if bbox is None else [as_tensor(x, device, torch.float32) for x in bbox]
        if bool(self.cfg.TRAIN.OHEM):
            zeros = torch.zeros((rois.shape[0], 4 * self.num_classes), device=device)
            keep = self._hardest_rois(feat, rois, labels, *(targets or (zeros, zeros, zeros)),
                                      int(self.cfg.TRAIN.BATCH_SIZE))
            rois, labels = rois[keep], labels[keep]
            targets = None if targets is None else [t[keep] for t in targets]
        cls_score, bbox_pred = self._head(feat, rois)
        losses = {'loss_cls': F.cross_entropy(cls_score, labels)}
        if targets is not None:
            losses['loss_bbox'] = ops.smooth_l1_loss(bbox_pred, *targets, sigma=1.0)
        return losses

    def _features(self, data: torch.Tensor) -> torch.Tensor:
        """The backbone's conv features (N, C, H/stride, W/stride), float32."""
        x = self._convert_input(data)
        if x.device.type == 'cpu':
            # oneDNN's CPU convolutions run channels last without reordering their input and output at each
            # layer (tools/bench_net.py: a TINY training minibatch ~12% shorter, a VGG16 test image ~25%); the
            # maps below stay channels last
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(data.device):
            feat = self.features(x)
        return feat.float()

    def _rpn(self, data: torch.Tensor, tm: '_Timers') -> Tuple[torch.Tensor, ...]:
        """Backbone and RPN head: (feat, rpn_cls_score (1, 2A, H, W), its reshape and softmax (1, 2, A*H, W),
        rpn_bbox_pred (1, 4A, H, W)), float32."""
        feat = self._features(data)
        tm.lap('backbone')
        amp = self._autocast(data.device)
        with amp:
            rpn = F.relu(self.rpn_conv(feat), inplace=True)
        rpn = rpn.float()
        rpn_cls_score = self.rpn_cls_score(rpn).contiguous()          # (1, 2A, H, W), for rpn_softmax's views
        rpn_bbox_pred = self.rpn_bbox_pred(rpn).contiguous()          # (1, 4A, H, W)
        rpn_cls_score_reshape, rpn_cls_prob_reshape = rpn_softmax(rpn_cls_score)
        tm.lap('rpn')
        return feat, rpn_cls_score, rpn_cls_score_reshape, rpn_cls_prob_reshape, rpn_bbox_pred

    def _proposals(self, rpn_cls_prob_reshape: torch.Tensor, rpn_bbox_pred: torch.Tensor, im_info_np: np.ndarray,
                   key: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """The proposal layer on the model's device: (rois (R, 5), scores (R, 1)) there."""
        return ops.proposal_layer(rpn_cls_prob_reshape, rpn_bbox_pred, im_info_np, key, self.feat_stride,
                                  self.anchor_scales, self.cfg, anchor_ratios=self.anchor_ratios)

    def proposals(self, data: torch.Tensor, im_info: Union[torch.Tensor, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """The RPN's proposals for one image blob, with cfg.TEST's RPN settings (the Fast R-CNN head is not run).

        data: (1, 3, H, W) blob. im_info: (1, 3) [[height, width, scale]]. Returns (rois (R, 5) float32
        [0, x1, y1, x2, y2] in blob pixels, scores (R, 1) float32), best first."""
        _, _, _, rpn_cls_prob_reshape, rpn_bbox_pred = self._rpn(data, _Timers(None, data.device))
        rois, scores = self._proposals(rpn_cls_prob_reshape, rpn_bbox_pred, _im_info(im_info), 'TEST')
        return rois.cpu().numpy(), scores.cpu().numpy()

    def _head(self, feat: torch.Tensor, rois: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """RoI pooling, the fc head, cls_score and bbox_pred: rois (R, 5) -> ((R, K), (R, 4K))."""
        with self._autocast(feat.device):
            fc7 = self.head(self.roi_pool(feat, rois).flatten(1))
        fc7 = fc7.float()
        return self.cls_score(fc7), self.bbox_pred(fc7)

    @torch.no_grad()
    def _hardest_rois(self, feat: torch.Tensor, rois: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                      inside_weights: torch.Tensor, outside_weights: torch.Tensor, n: int) -> torch.Tensor:
        """Online hard example mining (Shrivastava, Gupta, Girshick, CVPR 2016), TRAIN.OHEM: the indices of up to
        ``n`` RoIs of highest loss (softmax loss + smooth L1, sigma 1) under a read-only pass of the head (eval
        mode: no dropout), hardest first. As in the paper, NMS at IoU 0.7 over the RoIs ranked by loss drops a RoI
        that mostly repeats a harder one, so the batch is not a few objects' many near-copies."""
        was_training = self.head.training
        self.head.eval()
        try:
            cls_score, bbox_pred = self._head(feat.detach(), rois)
        finally:
            self.head.train(was_training)
        loss = F.cross_entropy(cls_score, labels, reduction='none') + ops.smooth_l1_loss(
            bbox_pred, targets, inside_weights, outside_weights, sigma=1.0, per_row=True)
        order = torch.argsort(loss, descending=True, stable=True)
        kept = nms(torch.cat((rois[order, 1:5], loss[order, None]), 1).float(), OHEM_NMS_THRESH)
        return order[kept[:n].to(order.device)]


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """cfg.AMP on ``device``: 'off' -> None (float32), 'bf16' -> torch.bfloat16, 'fp16' -> torch.float16 (training
    scales the loss: solver.LossScale), 'auto' -> bfloat16 where it is fast (a CPU with AMX tiles, whose oneDNN
    convolutions then run ~2.5x as fast as float32; a CUDA device with bfloat16 support), float16 on a CUDA device
    without bfloat16 (before Ampere), else None."""
    if mode == 'off':
        return None
    if mode == 'bf16':
        return torch.bfloat16
    if mode == 'fp16':
        return torch.float16
    if mode != 'auto':
        raise ValueError("cfg.AMP must be 'off', 'bf16', 'fp16' or 'auto', got {!r}".format(mode))
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == 'cpu':
        return torch.bfloat16 if _cpu_has_amx() else None
    return None


def _cpu_has_amx() -> bool:
    probe = getattr(torch.cpu, '_is_amx_tile_supported', None)
    return bool(probe()) if probe is not None else False


def rpn_softmax(rpn_cls_score: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The original's RPN score reshapes: (1, 2A, H, W) -> rpn_cls_score_reshape (1, 2, A*H, W) (Caffe Reshape
    with dim [0, 2, -1, 0]: the first A channels, background, become class 0), softmax over dim 1, and back to
    rpn_cls_prob_reshape (1, 2A, H, W): channel a is anchor a's background probability, A + a its foreground."""
    n, c, h, w = rpn_cls_score.shape
    score_reshape = rpn_cls_score.view(n, 2, (c // 2) * h, w)
    prob_reshape = F.softmax(score_reshape, dim=1).view(n, c, h, w)
    return score_reshape, prob_reshape


def fold_bbox_normalization(state: Dict[str, torch.Tensor], num_classes: int, means: Sequence[float],
                            stds: Sequence[float]) -> Dict[str, torch.Tensor]:
    """Return a copy of ``state`` whose ``bbox_pred`` emits unnormalised deltas, as the original's snapshot:
    W * stds[:, None], b * stds + means. means/stds: (4,) for every class (TRAIN.BBOX_NORMALIZE_MEANS/STDS), tiled
    over the K classes, or (4K,) per class (the empirical statistics of a Fast R-CNN roidb)."""
    out = dict(state)

    def per_output(v: Sequence[float]) -> torch.Tensor:
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size == 4:
            v = np.tile(v, num_classes)
        if v.size != 4 * num_classes:
            raise ValueError('bbox normalisation: {} values for {} classes (need 4 or {})'.format(
                v.size, num_classes, 4 * num_classes))
        return torch.from_numpy(v)

    s, m = per_output(stds), per_output(means)
    w, b = state['bbox_pred.weight'], state['bbox_pred.bias']
    out['bbox_pred.weight'] = (w.double() * s.to(w.device)[:, None]).to(w.dtype)
    out['bbox_pred.bias'] = (b.double() * s.to(b.device) + m.to(b.device)).to(b.dtype)
    return out
