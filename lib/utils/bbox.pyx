# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""IoU of two box sets with the +1 pixel convention (compiled as utils.cython_bbox)."""
import numpy as np
cimport numpy as cnp

cnp.import_array()


def _as_boxes(x, name):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] < 4:
        if x.size == 0:
            return np.zeros((0, 4), dtype=np.float64)
        raise ValueError('bbox_overlaps: {} must be (N, 4) or (N, 5), got shape {}'.format(name, x.shape))
    return np.ascontiguousarray(x[:, :4], dtype=np.float64)


def bbox_overlaps(boxes, query_boxes):
    """IoU matrix.

    boxes: (N, >=4) float64 x1y1x2y2[...]; query_boxes: (K, >=4) float64 x1y1x2y2[...] (extra columns, such as
    gt_boxes' class, are ignored, as the original). Returns (N, K) float64; 0 where two boxes share no pixel.
    Other dtypes are converted to float64.
    """
    cdef cnp.ndarray[cnp.float64_t, ndim=2] b = _as_boxes(boxes, 'boxes')
    cdef cnp.ndarray[cnp.float64_t, ndim=2] q = _as_boxes(query_boxes, 'query_boxes')
    cdef Py_ssize_t N = b.shape[0]
    cdef Py_ssize_t K = q.shape[0]
    cdef cnp.ndarray[cnp.float64_t, ndim=2] overlaps = np.zeros((N, K), dtype=np.float64)
    cdef double iw, ih, box_area, ua
    cdef Py_ssize_t k, n
    with nogil:
        for k in range(K):
            box_area = (q[k, 2] - q[k, 0] + 1) * (q[k, 3] - q[k, 1] + 1)
            for n in range(N):
                iw = min(b[n, 2], q[k, 2]) - max(b[n, 0], q[k, 0]) + 1
                if iw > 0:
                    ih = min(b[n, 3], q[k, 3]) - max(b[n, 1], q[k, 1]) + 1
                    if ih > 0:
                        ua = (b[n, 2] - b[n, 0] + 1) * (b[n, 3] - b[n, 1] + 1) + box_area - iw * ih
                        overlaps[n, k] = iw * ih / ua
    return overlaps
