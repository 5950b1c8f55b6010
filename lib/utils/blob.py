"""Image blobs as the original's Caffe data layers made them."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def im_list_to_blob(ims: Sequence[np.ndarray], size_divisibility: int = 1) -> np.ndarray:
    """Stack HWC images into a zero-padded (N, 3, H_max, W_max) float32 blob.

    ims: N arrays (H_i, W_i, 3), already mean-subtracted and scaled by prep_im_for_blob.
    Each image sits in the top-left corner; the padding is 0 (the mean colour after subtraction).
    size_divisibility: H_max and W_max are rounded up to a multiple of it (1: the original, no rounding); see
    cfg.SIZE_DIVISIBILITY.
    """
    if len(ims) == 0:
        raise ValueError('im_list_to_blob needs at least one image')
    if size_divisibility < 1:
        raise ValueError('im_list_to_blob: size_divisibility must be >= 1, got {}'.format(size_divisibility))
    d = int(size_divisibility)
    max_h = -(-max(im.shape[0] for im in ims) // d) * d
    max_w = -(-max(im.shape[1] for im in ims) // d) * d
    blob = np.zeros((len(ims), max_h, max_w, 3), dtype=np.float32)
    for i, im in enumerate(ims):
        blob[i, :im.shape[0], :im.shape[1], :] = im
    return blob.transpose(0, 3, 1, 2).copy()


def blob_scale(im_shape: Sequence[int], target_size: float, max_size: float) -> float:
    """The resize factor: shortest side to ``target_size`` unless the longest side would round past ``max_size``."""
    im_size_min = min(im_shape[0], im_shape[1])
    im_size_max = max(im_shape[0], im_shape[1])
    im_scale = float(target_size) / float(im_size_min)
    if np.round(im_scale * im_size_max) > max_size:
        im_scale = float(max_size) / float(im_size_max)
    return im_scale


def prep_im_for_blob(im: np.ndarray, pixel_means: np.ndarray, target_size: float,
                     max_size: float) -> tuple[np.ndarray, float]:
    """Mean-subtract a BGR uint8 image and resize it for a blob.

    im: (H, W, 3) BGR; pixel_means: broadcastable to (1, 1, 3). Returns (image (H', W', 3) float32, im_scale),
    where H' x W' is what cv2.resize (bilinear, fx = fy = im_scale) produces: cvRound of H*scale, W*scale.
    The means are subtracted before resizing, as the original.
    """
    if im is None or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('prep_im_for_blob expects an (H, W, 3) BGR image, got shape {}'.format(
            None if im is None else im.shape))
    im = im.astype(np.float32, copy=True)
    im -= pixel_means
    im_scale = blob_scale(im.shape, target_size, max_size)
    im = cv2.resize(im, None, None, fx=im_scale, fy=im_scale, interpolation=cv2.INTER_LINEAR)
    return im, im_scale
