"""RPN proposals for images and datasets (the original's lib/rpn/generate.py): what rpn_generate.py writes, and
what Fast R-CNN trains and tests on, and eval_recall scores."""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import torch

from datasets.ds_utils import read_image, save_proposals
from utils.blob import im_list_to_blob, prep_im_for_blob


def im_proposals(net, im: np.ndarray, cfg=None) -> Tuple[np.ndarray, np.ndarray]:
    """The RPN proposals of one image at TEST.SCALES[0] (as the original: one scale, no flip).

    net: FasterRCNN in eval mode. im: (H, W, 3) BGR uint8. Returns (boxes (R, 4) float32 x1y1x2y2 in the image's
    pixels, scores (R,) float32), best first, with cfg.TEST's RPN_* settings (cfg: default net.cfg)."""
    cfg = net.cfg if cfg is None else cfg
    blob_im, scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, cfg.TEST.SCALES[0], cfg.TEST.MAX_SIZE)
    blob = im_list_to_blob([blob_im], int(cfg.SIZE_DIVISIBILITY))
    im_info = np.array([[blob_im.shape[0], blob_im.shape[1], scale]], dtype=np.float32)
    device = next(net.parameters()).device
    with torch.no_grad():
        rois, scores = net.proposals(torch.from_numpy(blob).to(device), im_info)
    return (rois[:, 1:5] / scale).astype(np.float32), scores.reshape(-1).astype(np.float32)


def imdb_proposals(net, imdb, cfg=None, log=print) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """im_proposals for every image of ``imdb``, in its order: (boxes per image, scores per image)."""
    boxes: List[np.ndarray] = []
    scores: List[np.ndarray] = []
    n = imdb.num_images
    for i in range(n):
        b, s = im_proposals(net, read_image(imdb.image_path_at(i)), cfg)
        boxes.append(b)
        scores.append(s)
        if log is not None and ((i + 1) % max(1, n // 10) == 0 or i + 1 == n):
            log('im_proposals: {:d}/{:d} ({} proposals)'.format(i + 1, n, len(b)))
    return boxes, scores


def proposals_path(output_dir: str, net_name: str) -> str:
    """<output_dir>/<snapshot name>_rpn_proposals.npz (the original wrote <net>_rpn_proposals.pkl)."""
    return osp.join(output_dir, '{}_rpn_proposals.npz'.format(net_name))


def save_imdb_proposals(path: str, imdb, boxes: List[np.ndarray], scores: List[np.ndarray],
                        image_ids: Optional[List[str]] = None) -> None:
    """Write ``boxes``/``scores`` of every image of ``imdb`` atomically as .npz (datasets.ds_utils.save_proposals),
    with the images' ids."""
    rows = [np.hstack([b, s[:, None]]) for b, s in zip(boxes, scores)]
    save_proposals(path, rows, image_ids=list(imdb.image_index) if image_ids is None else image_ids)
