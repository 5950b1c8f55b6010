"""Pure numpy NMS, the reference semantics for every NMS back-end of this project.

A box is dropped when its IoU (with +1 areas, computed in the dets' dtype) with a box kept before it is NOT
<= thresh, i.e. IoU > thresh suppresses.
"""
import numpy as np


def py_cpu_nms(dets: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS. dets: (N, 5) [x1, y1, x2, y2, score]; returns (K,) int64 kept row indices, best score first."""
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError('nms/py_cpu_nms.py: dets must be (N, 5) [x1, y1, x2, y2, score], got shape %s'
                         % (dets.shape,))
    x1 = dets[:, 0]
    y1 = dets[:, 1]
    x2 = dets[:, 2]
    y2 = dets[:, 3]
    scores = dets[:, 4]

    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]

    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])

        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)

        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]

    return np.array(keep, dtype=np.int64)
