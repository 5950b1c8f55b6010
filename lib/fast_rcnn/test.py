"""Test a Faster R-CNN network on an image database, as the original's fast_rcnn/test.py.

- ``load_detector(path, cfg_files, set_cfgs, device)``: a snapshot -> (model in eval mode, cfg, classes). The cfg
  starts from the defaults, then the snapshot's training cfg, then ``cfg_files`` (--cfg), then ``set_cfgs`` (--set).
- ``im_detect(net, im, cfg)``: one BGR image -> scores (R, K) and boxes (R, 4K) in image pixels.
- ``test_net(net, imdb, ...)``: every image of ``imdb``: im_detect, score > thresh, per-class NMS, at most
  ``max_per_image`` detections per image, ``detections.pkl`` in the output folder, then ``imdb.evaluate_detections``
  and ``write_eval_report``.
- ``write_eval_report(imdb, output_dir, snapshot)``: after ``imdb.evaluate_detections``, from ``imdb.last_eval``:
  prints the per-class AP table and writes ``metrics.json`` and ``pr_curves.png`` into ``output_dir``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import pickle
import sys
import time
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.ds_utils import read_image
from datasets.pascal_voc import VOC_CLASSES
from fast_rcnn.bbox_transform import bbox_transform_inv, clip_boxes
from fast_rcnn.config import cfg_copy, cfg_from_dict, cfg_from_file, cfg_from_list, default_cfg
from fast_rcnn.nms_wrapper import nms
from fast_rcnn.train import check_device, load_snapshot, nonfinite_tensors
from fast_rcnn.training_data import proposal_method, use_proposals
from nets.faster_rcnn import FasterRCNN
from nets.weights import caffe_detector_spec, load_caffe_detector, read_caffemodel
from utils.atomic import atomic_write
from utils.runtime import tune_cuda_runtime
from utils.blob import im_list_to_blob, prep_im_for_blob

# Keys of a snapshot's cfg that describe the training machine or where it wrote, not the model: never carried
# over (nor any other *_DIR key), so a snapshot never decides where a later run reads or writes.
_MACHINE_KEYS = ('ROOT_DIR', 'DATA_DIR', 'MODELS_DIR', 'EXP_DIR', 'DEVICE', 'GPU_ID', 'USE_GPU_NMS', 'MATLAB')


def _model_keys(snapshot_cfg: dict) -> dict:
    """``snapshot_cfg`` less the machine keys and every ``*_DIR`` key, at any depth."""
    return {k: (_model_keys(v) if isinstance(v, dict) else v) for k, v in snapshot_cfg.items()
            if k not in _MACHINE_KEYS and not str(k).endswith('_DIR')}


def _nms(dets: np.ndarray, thresh: float, cfg) -> List[int]:
    return [int(i) for i in nms(dets, thresh, cfg=cfg)]


def build_cfg(snapshot_cfg: Optional[dict] = None, cfg_files: Sequence[str] = (), set_cfgs: Sequence[str] = (),
              base=None):
    """A fresh cfg: defaults (``base``; None: config.py's), then the snapshot's cfg (machine keys excluded), then
    the YAML files, then ``--set`` pairs."""
    c = default_cfg() if base is None else cfg_copy(base)
    if snapshot_cfg:
        cfg_from_dict(_model_keys(snapshot_cfg), c)
    for f in cfg_files or ():
        cfg_from_file(f, c)
    if set_cfgs:
        cfg_from_list(list(set_cfgs), c)
    return c


def resolve_device(device: Optional[str], gpu: Optional[int] = None) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' (or --gpu N) -> torch.device; fast_rcnn.train.CommandLineError (a ValueError, one
    line) when it is not a device or CUDA is missing."""
    return check_device(device, gpu)


def _set_device(c, device: torch.device) -> None:
    """The model's device, and with it where NMS on numpy detections runs: its GPU, or the CPU for a CPU model."""
    c.DEVICE = str(device)
    if device.type == 'cuda':
        c.GPU_ID = device.index or 0
        tune_cuda_runtime(device, c.CUDNN_BENCHMARK)
    else:
        c.USE_GPU_NMS = False


def load_detector(path: str, cfg_files: Sequence[str] = (), set_cfgs: Sequence[str] = (),
                  device: Any = 'cpu', classes: Optional[Sequence[str]] = None) -> Tuple[Any, Any, List[str]]:
    """Load a snapshot for inference. Returns (model (eval mode, on ``device``), cfg, class names).

    ``path`` is a snapshot of this project (.pth), or one of the original's trained detectors (.caffemodel, e.g.
    VGG16_faster_rcnn_final.caffemodel), whose class names are ``classes`` (default: PASCAL VOC's).
    The model's name (``model.name``) is the file name without its extension, as the original used the
    caffemodel's basename for the output folder."""
    if path.lower().endswith('.caffemodel'):
        return _load_caffe_detector(path, cfg_files, set_cfgs, torch.device(device), classes)
    snap = load_snapshot(path)
    bad = nonfinite_tensors(snap['model'])
    if bad:
        raise ValueError('{}: the snapshot holds NaN or Inf weights ({}{}): its training diverged; test an earlier '
                         'snapshot'.format(path, ', '.join(bad[:3]), ' and {} more'.format(len(bad) - 3)
                                           if len(bad) > 3 else ''))
    c = build_cfg(snap.get('cfg'), cfg_files, set_cfgs)
    device = torch.device(device)
    _set_device(c, device)
    model = FasterRCNN(snap['net'], int(snap['num_classes']), c)
    try:
        model.load_state_dict(snap['model'])
    except RuntimeError as e:  # e.g. a snapshot of an older version of the network's layers
        raise RuntimeError('{}: its weights do not fit the {} network of this version ({}); retrain it'.format(
            path, snap['net'], str(e).strip())) from None
    model.to(device).eval()
    model.mode = str(snap.get('mode', 'end2end'))  # 'fast_rcnn': trained on given proposals, its RPN untrained
    model.name = osp.splitext(osp.basename(path))[0]
    return model, c, list(snap['classes'])


def _load_caffe_detector(path: str, cfg_files: Sequence[str], set_cfgs: Sequence[str], device: torch.device,
                         classes: Optional[Sequence[str]]) -> Tuple[Any, Any, List[str]]:
    """The original's trained Faster R-CNN (.caffemodel) as a detector: network and class count from its layers,
    the original's test settings (config.py's defaults, then the cfg files and --set pairs)."""
    layers = read_caffemodel(path)
    net_name, num_classes, anchors = caffe_detector_spec(layers, path)
    classes = list(VOC_CLASSES if classes is None else classes)
    if len(classes) != num_classes:
        raise ValueError('{}: cls_score has {} classes, the dataset {} (pass the --imdb it was trained on)'.format(
            path, num_classes, len(classes)))
    c = build_cfg(None, cfg_files, set_cfgs)
    if anchors != len(c.ANCHOR_SCALES) * len(c.ANCHOR_RATIOS) and anchors == 12:
        c.ANCHOR_SCALES = (4, 8, 16, 32)  # the original's COCO models: four scales, 12 anchors
    if anchors != len(c.ANCHOR_SCALES) * len(c.ANCHOR_RATIOS):
        raise ValueError('{}: rpn_cls_score has {} anchors, ANCHOR_SCALES x ANCHOR_RATIOS give {}'.format(
            path, anchors, len(c.ANCHOR_SCALES) * len(c.ANCHOR_RATIOS)))
    _set_device(c, device)
    model = FasterRCNN(net_name, num_classes, c)
    load_caffe_detector(model, layers, path)
    model.to(device).eval()
    model.mode = 'end2end'
    model.name = osp.splitext(osp.basename(path))[0]
    return model, c, classes


def im_detect(net, im: np.ndarray, boxes: Optional[np.ndarray] = None, cfg=None) -> Tuple[np.ndarray, np.ndarray]:
    """Detect object classes in an image.

    net: FasterRCNN in eval mode. im: (H, W, 3) BGR uint8. boxes: None (TEST.HAS_RPN: the RPN proposes) or the
    image's object proposals (R, 4) x1y1x2y2 in its pixels (Fast R-CNN, TEST.HAS_RPN False).
    Returns scores (R, K) float32 softmax probabilities and pred_boxes (R, 4K) float32 class-specific boxes in
    the image's pixels, clipped to it (the proposals themselves, tiled, when TEST.BBOX_REG is off).

    With an RPN: one pass at TEST.SCALES[0], as the original. Opt-in test-time augmentation (the original refused
    several scales with an RPN): one pass per scale in TEST.SCALES, and with TEST.FLIP each also on the mirrored
    image; the passes' detections are concatenated (R is their sum), for the per-class NMS to merge.
    With given boxes: as the original's Fast R-CNN, one blob of every TEST.SCALES, each box pooled from the scale
    where its area comes closest to 224 x 224, boxes equal after rounding to 1/DEDUP_BOXES pixels scored once.
    """
    cfg = net.cfg if cfg is None else cfg
    if boxes is not None:
        return _detect_boxes(net, im, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), cfg)
    passes = [(target, flip) for target in cfg.TEST.SCALES for flip in ((False, True) if cfg.TEST.FLIP
                                                                         else (False,))]
    outs = [_detect_pass(net, im, target, flip, cfg) for target, flip in passes]
    if len(outs) == 1:
        return outs[0]
    return np.vstack([o[0] for o in outs]), np.vstack([o[1] for o in outs])


def project_im_rois(im_rois: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """The original's _project_im_rois: boxes (R, 4) in image pixels -> (R, 5) [level, x1, y1, x2, y2] in the
    blob of the image pyramid ``scales``: each box at the level where its scaled area is closest to 224 x 224."""
    im_rois = im_rois.astype(np.float64, copy=False)
    scales = np.asarray(scales, dtype=np.float64)
    if len(scales) > 1:
        widths = im_rois[:, 2] - im_rois[:, 0] + 1
        heights = im_rois[:, 3] - im_rois[:, 1] + 1
        scaled_areas = (widths * heights)[:, None] * (scales[None, :] ** 2)
        levels = np.abs(scaled_areas - 224 * 224).argmin(axis=1)
    else:
        levels = np.zeros(im_rois.shape[0], dtype=np.int64)
    return np.hstack((levels[:, None], im_rois * scales[levels][:, None])).astype(np.float32)


def _detect_boxes(net, im: np.ndarray, boxes: np.ndarray, cfg) -> Tuple[np.ndarray, np.ndarray]:
    """im_detect with given proposals (see there)."""
    ims, scales = [], []
    for target in cfg.TEST.SCALES:
        blob_im, scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, target, cfg.TEST.MAX_SIZE)
        ims.append(blob_im)
        scales.append(scale)
    blob = im_list_to_blob(ims, int(cfg.SIZE_DIVISIBILITY))
    rois = project_im_rois(boxes, scales)
    inv_index = None
    if cfg.DEDUP_BOXES > 0:
        # boxes that map to the same RoI (after rounding to 1/DEDUP_BOXES pixels) are pooled once
        hashes = np.round(rois.astype(np.float64) * cfg.DEDUP_BOXES).dot(np.array([1, 1e3, 1e6, 1e9, 1e12]))
        _, index, inv_index = np.unique(hashes, return_index=True, return_inverse=True)
        rois, boxes = rois[index], boxes[index]
    device = next(net.parameters()).device
    cls_prob, bbox_pred = net.detect(torch.from_numpy(blob).to(device), torch.from_numpy(rois).to(device))
    scores = cls_prob.cpu().numpy().astype(np.float32)
    if cfg.TEST.BBOX_REG:
        pred_boxes = clip_boxes(bbox_transform_inv(boxes, bbox_pred.cpu().numpy().astype(np.float32)), im.shape)
    else:
        pred_boxes = np.tile(boxes, (1, scores.shape[1]))
    if inv_index is not None:
        scores, pred_boxes = scores[inv_index], pred_boxes[inv_index]
    return scores, pred_boxes.astype(np.float32, copy=False)


def _detect_pass(net, im: np.ndarray, target: int, flip: bool, cfg) -> Tuple[np.ndarray, np.ndarray]:
    """im_detect's outputs for one scale (shortest side ``target``), on the mirrored image when ``flip``, with the
    boxes mapped back onto ``im``."""
    src = np.ascontiguousarray(im[:, ::-1]) if flip else im
    blob_im, scale = prep_im_for_blob(src, cfg.PIXEL_MEANS, target, cfg.TEST.MAX_SIZE)
    blob = im_list_to_blob([blob_im], int(cfg.SIZE_DIVISIBILITY))
    device = next(net.parameters()).device
    im_info = np.array([[blob_im.shape[0], blob_im.shape[1], scale]], dtype=np.float32)  # the image, not the padding
    with torch.no_grad():
        rois, cls_prob, bbox_pred = net(torch.from_numpy(blob).to(device), im_info)
    rois = rois.detach().cpu().numpy()
    scores = cls_prob.detach().cpu().numpy().astype(np.float32)
    boxes = rois[:, 1:5] / scale
    if cfg.TEST.BBOX_REG:
        deltas = bbox_pred.detach().cpu().numpy().astype(np.float32)
        pred_boxes = bbox_transform_inv(boxes.astype(np.float32), deltas)
        pred_boxes = clip_boxes(pred_boxes, im.shape)
    else:
        pred_boxes = np.tile(boxes, (1, scores.shape[1]))  # the proposals' dtype, as the original
    if flip:  # x -> W - 1 - x, the "+1" convention's mirror (as the training flip)
        x1 = pred_boxes[:, 0::4].copy()
        pred_boxes[:, 0::4] = im.shape[1] - 1 - pred_boxes[:, 2::4]
        pred_boxes[:, 2::4] = im.shape[1] - 1 - x1
    return scores, pred_boxes


def apply_nms(all_boxes, thresh):
    """Per class and image NMS (CPU) of all_boxes[cls][image] (D, 5) [x1, y1, x2, y2, score]; returns the same
    structure, with [] where nothing is left (as the original, used by tools/reval.py --nms)."""
    num_classes = len(all_boxes)
    num_images = len(all_boxes[0])
    nms_boxes = [[[] for _ in range(num_images)] for _ in range(num_classes)]
    for cls_ind in range(num_classes):
        for im_ind in range(num_images):
            dets = all_boxes[cls_ind][im_ind]
            if isinstance(dets, list) and dets == []:
                continue
            dets = np.asarray(dets, dtype=np.float32)
            if dets.shape[0] == 0:
                continue
            keep = nms(dets, thresh, force_cpu=True)
            if len(keep) == 0:
                continue
            nms_boxes[cls_ind][im_ind] = dets[np.asarray(keep), :].copy()
    return nms_boxes


def detections_for_image(scores: np.ndarray, boxes: np.ndarray, num_classes: int, thresh: float, nms_thresh: float,
                         max_per_image: int, cfg=None) -> List[np.ndarray]:
    """Per class j >= 1: (N_j, 5) [x1, y1, x2, y2, score] with score > thresh, after NMS, at most max_per_image in
    all (lowest scores dropped). Index 0 (background) is an empty (0, 5) array. cfg: the model's (its
    USE_GPU_NMS and GPU_ID choose the NMS back-end; None: config.py's defaults)."""
    out = [np.zeros((0, 5), dtype=np.float32)]
    for j in range(1, num_classes):
        inds = np.where(scores[:, j] > thresh)[0]
        cls_dets = np.hstack((boxes[inds, j * 4:(j + 1) * 4], scores[inds, j][:, None])).astype(np.float32,
                                                                                                copy=False)
        keep = _nms(cls_dets, nms_thresh, cfg) if len(cls_dets) else []
        out.append(cls_dets[keep, :] if len(keep) else np.zeros((0, 5), dtype=np.float32))
    if max_per_image > 0:
        all_scores = np.hstack([out[j][:, -1] for j in range(1, num_classes)])
        if len(all_scores) > max_per_image:
            th = np.sort(all_scores)[-max_per_image]
            for j in range(1, num_classes):
                out[j] = out[j][out[j][:, -1] >= th]
    return out


def vis_detections(im: np.ndarray, class_name: str, dets: np.ndarray, thresh: float = 0.3) -> np.ndarray:
    """Draw detections with score >= thresh on a copy of the BGR image (headless: cv2 only)."""
    im = im.copy()
    for d in dets:
        if d[-1] < thresh:
            continue
        draw_box(im, d[:4], '{:s} {:.3f}'.format(class_name, float(d[-1])))
    return im


def draw_box(im: np.ndarray, box: Sequence[float], text: str, color=(0, 0, 255)) -> None:
    """Draw one box and its caption on a BGR image in place."""
    x1, y1, x2, y2 = [int(round(float(v))) for v in box]
    cv2.rectangle(im, (x1, y1), (x2, y2), color, 2)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    ty = max(y1, th + base + 1)
    cv2.rectangle(im, (x1, ty - th - base - 1), (x1 + tw + 2, ty), color, -1)
    cv2.putText(im, text, (x1 + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


class _LogLines:
    """tqdm's output for a log (stdout not a terminal): each refresh of the bar one line, no carriage returns."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, text: str) -> None:
        text = text.replace('\r', '').rstrip()
        if text:
            self.f.write(text + '\n')

    def flush(self) -> None:
        self.f.flush()


def _progress_bar(n: int) -> tqdm:
    """test_net's bar: redrawn in place on a terminal, a line per tenth of the images in a log."""
    if sys.stdout.isatty():
        return tqdm(total=n, desc='im_detect', file=sys.stdout, dynamic_ncols=True)
    return tqdm(total=n, desc='im_detect', file=_LogLines(sys.stdout), ncols=100, ascii=True,
                mininterval=0, maxinterval=float('inf'), miniters=max(1, n // 10))


def check_classes(model_classes: Sequence[str], imdb) -> None:
    """A model can only be tested on a dataset with the same classes in the same order."""
    if list(model_classes) != list(imdb.classes):
        raise ValueError('the model was trained on classes {} but {} has classes {}: test it on a dataset with '
                         'the same classes (in the same order)'.format(list(model_classes), imdb.name,
                                                                        list(imdb.classes)))


def _detect_image(job: tuple, i: int) -> Tuple[int, List[np.ndarray], float, float]:
    """test_net's work on image i: (i, per-class detections, im_detect seconds, NMS and drawing seconds)."""
    net, imdb, cfg, thresh, max_per_image, vis, output_dir, proposals = job
    path = imdb.image_path_at(i)
    im = read_image(path)  # as training read it: stored pixels, truncation named
    t = time.time()
    scores, boxes = im_detect(net, im, None if proposals is None else proposals[i], cfg)
    t_detect = time.time() - t
    t = time.time()
    dets = detections_for_image(scores, boxes, imdb.num_classes, thresh, cfg.TEST.NMS, max_per_image, cfg)
    if vis:
        vim = im
        for j in range(1, imdb.num_classes):
            vim = vis_detections(vim, imdb.classes[j], dets[j], 0.3)
        vis_dir = osp.join(output_dir, 'vis')
        os.makedirs(vis_dir, exist_ok=True)
        cv2.imwrite(osp.join(vis_dir, '{}.jpg'.format(osp.splitext(osp.basename(path))[0])), vim)
    return i, dets, t_detect, time.time() - t


# test_net's job in a forked worker: handed over by fork (Pool initargs are not pickled under fork), never set in
# the parent process
_worker_job: Optional[tuple] = None


def _init_worker(job: tuple, threads: int) -> None:
    global _worker_job
    _worker_job = job
    torch.set_num_threads(threads)


def _detect_in_worker(i: int) -> Tuple[int, List[np.ndarray], float, float]:
    return _detect_image(_worker_job, i)


def _detections(job: tuple, num_images: int, nproc: int):
    """Yield _detect_image's result for every image: in order in this process, or as nproc forked workers finish
    them."""
    import multiprocessing as mp
    if nproc == 1 or num_images < 2 or 'fork' not in mp.get_all_start_methods():
        for i in range(num_images):
            yield _detect_image(job, i)
        return
    threads = max(1, torch.get_num_threads() // nproc)
    with mp.get_context('fork').Pool(min(nproc, num_images), _init_worker, (job, threads)) as pool:
        yield from pool.imap_unordered(_detect_in_worker, range(num_images))


def test_net(net, imdb, max_per_image: int = 100, thresh: float = 0.05, vis: bool = False, cfg=None,
             output_dir: Optional[str] = None, classes: Optional[Sequence[str]] = None, nproc: int = 1,
             snapshot: Optional[str] = None, imdb_spec: Optional[str] = None,
             proposals: Optional[Sequence[np.ndarray]] = None) -> Any:
    """Test ``net`` on every image of ``imdb`` and evaluate.

    ``proposals``: with TEST.HAS_RPN off (Fast R-CNN), each image's object proposals (R_i, 4) in image pixels,
    in the imdb's order (``read_proposals``).

    Writes ``detections.pkl`` (all_boxes[cls][image] = (N, 5) float32) into ``output_dir`` (default
    output/<EXP_DIR>/<imdb name>/<net.name>) and returns ``imdb.evaluate_detections``' result (the mean AP for
    VOC-style datasets). ``classes``: the model's class names, checked against the imdb's. ``nproc`` > 1 (a CPU
    model only): the images are shared out over that many forked processes, torch's threads divided among them
    (on a 2-core CPU two 1-thread processes test ~1.4x as fast as one 2-thread process; the detections are those
    of one process with as many threads as each worker). Then ``write_eval_report``: the per-class AP table,
    ``metrics.json`` (``snapshot``: the snapshot's path, ``imdb_spec``: the name given to get_imdb, both recorded
    there for tools/reval.py) and ``pr_curves.png``.
    """
    cfg = net.cfg if cfg is None else cfg
    if classes is not None:
        check_classes(classes, imdb)
    if net.num_classes != imdb.num_classes:
        raise ValueError('the model has {} classes but {} has {}'.format(net.num_classes, imdb.name,
                                                                       imdb.num_classes))
    if nproc < 1:
        raise ValueError('test_net: nproc must be at least 1, got {}'.format(nproc))
    if nproc > 1 and next(net.parameters()).device.type != 'cpu':
        raise ValueError('test_net: nproc > 1 shares a CPU model out over processes; test a GPU model with nproc 1')
    num_images = len(imdb.image_index)
    all_boxes = [[np.zeros((0, 5), dtype=np.float32) for _ in range(num_images)] for _ in range(imdb.num_classes)]
    if output_dir is None:
        from fast_rcnn.config import get_output_dir
        output_dir = get_output_dir(imdb, getattr(net, 'name', None), cfg=cfg)
    os.makedirs(output_dir, exist_ok=True)
    if proposals is None and getattr(net, 'mode', 'end2end') == 'fast_rcnn' and not cfg.TEST.HAS_RPN:
        raise ValueError('this Fast R-CNN network (TEST.HAS_RPN off) is tested on given proposals (--proposals '
                         'FILE); set TEST.HAS_RPN True if its RPN is trained')
    if proposals is not None and len(proposals) != num_images:
        raise ValueError('{} proposal lists for the {} images of {}'.format(len(proposals), num_images, imdb.name))
    job = (net, imdb, cfg, thresh, max_per_image, vis, output_dir, proposals)
    detect_s = misc_s = 0.0
    with _progress_bar(num_images) as bar:
        for done, (i, dets, t_detect, t_misc) in enumerate(_detections(job, num_images, nproc)):
            for j in range(1, imdb.num_classes):
                all_boxes[j][i] = dets[j]
            detect_s += t_detect
            misc_s += t_misc
            bar.set_postfix_str('detect {:.3f}s, nms {:.3f}s'.format(detect_s / (done + 1), misc_s / (done + 1)),
                                refresh=False)
            bar.update(1)

    det_file = osp.join(output_dir, 'detections.pkl')
    tmp = det_file + '.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump(all_boxes, f, pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, det_file)
    print('Evaluating detections')
    return evaluate_and_report(imdb, all_boxes, output_dir, snapshot, imdb_spec)


def read_proposals(imdb, path: Optional[str], method: str = 'rpn') -> List[np.ndarray]:
    """The object proposals of every image of ``imdb`` for Fast R-CNN testing, from ``path`` (rpn_generate.py's
    .npz, the original's .pkl, or a selective-search .mat) or, without one, the dataset's own file for ``method``
    (cfg.TEST.PROPOSAL_METHOD): the roidb's non-gt boxes, as the original's test_net."""
    use_proposals(imdb, proposal_method(path, method), path)
    return [entry['boxes'][entry['gt_classes'] == 0] for entry in imdb.roidb]


def portable_imdb_name(name: str) -> str:
    """The name given to get_imdb, with a <folder>:<split>'s folder made absolute (each part of a joined a+b), so
    that tools/reval.py can reopen the dataset from another working folder."""
    def one(part: str) -> str:
        if ':' in part and osp.isdir(part.rsplit(':', 1)[0]):
            path, split = part.rsplit(':', 1)
            return osp.abspath(path) + ':' + split
        return part
    if ':' in name and osp.isdir(name.rsplit(':', 1)[0]):
        return one(name)
    return '+'.join(one(p) for p in name.split('+'))


def evaluate_and_report(imdb, all_boxes, output_dir: str, snapshot: Optional[str] = None,
                        imdb_spec: Optional[str] = None) -> Any:
    """``imdb.evaluate_detections(all_boxes, output_dir)`` (its result returned), then ``write_eval_report``."""
    try:
        imdb.last_eval = None  # never report an earlier evaluation's numbers
    except AttributeError:
        pass
    result = imdb.evaluate_detections(all_boxes, output_dir)
    write_eval_report(imdb, output_dir, snapshot, imdb_spec)
    return result


def ap_table(aps: Sequence[Tuple[str, float]], mean_ap: float) -> str:
    """The per-class AP table: class names left-aligned in one column, APs right-aligned to 4 places, a rule,
    then the mean."""
    width = max([len('class'), len('mean')] + [len(c) for c, _ in aps])
    lines = ['{:<{w}}  {:>6}'.format('class', 'AP', w=width), '-' * (width + 8)]
    lines += ['{:<{w}}  {:>6.4f}'.format(c, a, w=width) for c, a in aps]
    lines += ['-' * (width + 8), '{:<{w}}  {:>6.4f}'.format('mean', mean_ap, w=width)]
    return '\n'.join(lines)


def eval_metrics(last_eval: dict, snapshot: Optional[str] = None, imdb_spec: Optional[str] = None) -> dict:
    """metrics.json's contents from an imdb's ``last_eval``: {'dataset' (the imdb's name), 'imdb' (the name given
    to get_imdb, or None), 'metric' ('voc07_11point', 'area' or 'coco'), 'mean_ap', 'snapshot' (absolute path, or
    None)} and, for VOC-style datasets, 'ap': {class: AP} (in the dataset's class order); for COCO, 'coco': the
    summary numbers (AP, AP50, AP75, AP_small, ..., AR_large). NaN or infinite numbers are null."""
    out = {'dataset': last_eval.get('dataset'), 'imdb': imdb_spec, 'metric': last_eval.get('metric'),
           'mean_ap': _finite(last_eval['mean_ap']),
           'snapshot': osp.abspath(snapshot) if snapshot else None}
    if 'ap' in last_eval:
        out['ap'] = {str(c): _finite(a) for c, a in last_eval['ap'].items()}
    if 'coco' in last_eval:
        out['coco'] = {str(k): _finite(v) for k, v in last_eval['coco'].items()}
    return out


def _finite(v: Any) -> Optional[float]:
    """A float for JSON: None for NaN or an infinity (JSON has neither)."""
    v = float(v)
    return v if np.isfinite(v) else None


def write_eval_report(imdb, output_dir: str, snapshot: Optional[str] = None,
                      imdb_spec: Optional[str] = None) -> Optional[dict]:
    """After ``imdb.evaluate_detections``: print the per-class AP table, write ``metrics.json`` (``eval_metrics``)
    and, where there are precision/recall curves, ``pr_curves.png`` into ``output_dir`` (both atomically).
    Returns the metrics, or None (nothing written) when the imdb left no ``last_eval`` (no ground truth, or a
    dataset class that does not record one)."""
    last = getattr(imdb, 'last_eval', None)
    if not isinstance(last, dict) or 'mean_ap' not in last:
        return None
    last = dict(last)
    last.setdefault('dataset', getattr(imdb, 'name', None))
    metrics = eval_metrics(last, snapshot, imdb_spec)
    if 'ap' in metrics:
        print('')
        print(ap_table([(c, float(last['ap'][c])) for c in metrics['ap']], float(last['mean_ap'])))
        print('')
    os.makedirs(output_dir, exist_ok=True)
    path = osp.join(output_dir, 'metrics.json')
    data = (json.dumps(metrics, indent=2, allow_nan=False) + '\n').encode('utf-8')
    atomic_write(path, lambda f: f.write(data))
    print('Wrote {}'.format(path))
    if last.get('curves'):
        from utils.plots import draw_pr_curves
        png = draw_pr_curves(last['curves'], last.get('ap', {}), '{}: mean AP {:.4f} ({})'.format(
            metrics['dataset'], float(last['mean_ap']), metrics['metric']))
        path = osp.join(output_dir, 'pr_curves.png')
        atomic_write(path, lambda f: f.write(png))
        print('Wrote {}'.format(path))
    return metrics
