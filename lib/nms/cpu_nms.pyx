# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""Fast CPU NMS with exactly py_cpu_nms's kept indices (IoU > thresh suppresses, +1 areas, dets' dtype).

The work is in cpu_nms_impl.h (a grid-pruned greedy loop); this file only validates, sorts and calls it.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from "cpu_nms_impl.h" namespace "frcnn_nms":
    int64_t nms_f32_cmp_f32(const float* dets, int64_t stride, int64_t n, const int64_t* order,
                            double thresh, int64_t max_keep, int64_t* keep) nogil
    int64_t nms_f32_cmp_f64(const float* dets, int64_t stride, int64_t n, const int64_t* order,
                            double thresh, int64_t max_keep, int64_t* keep) nogil
    int64_t nms_f64(const double* dets, int64_t stride, int64_t n, const int64_t* order,
                    double thresh, int64_t max_keep, int64_t* keep) nogil


def cpu_nms(dets, thresh, max_keep=0):
    """Greedy non-maximum suppression.

    dets: (N, 5) [x1, y1, x2, y2, score] (extra columns are ignored), float32 (computed in float32) or any other
    real dtype (computed in float64); thresh: IoU above which a lower-scored box is dropped; max_keep > 0 stops
    after that many kept boxes (the same first max_keep as a full run: later boxes never change earlier ones).
    Returns (K,) int64 row indices of the kept boxes, in descending score order, identical to
    nms.py_cpu_nms.py_cpu_nms on the same input (score ties are ordered by numpy's argsort, as there).
    """
    arr = np.asarray(dets)
    if arr.ndim != 2 or arr.shape[1] < 5:
        raise ValueError('nms/cpu_nms.pyx: dets must be (N, 5) [x1, y1, x2, y2, score], got shape %s'
                         % (arr.shape,))
    if arr.dtype.kind not in 'iuf':
        raise TypeError('nms/cpu_nms.pyx: dets must hold real numbers, got dtype %s' % arr.dtype)
    cdef int64_t n = arr.shape[0]
    if n == 0:
        return np.zeros((0,), dtype=np.int64)
    # Same sort as py_cpu_nms (so ties come out in the same order): argsort of the score column, reversed.
    order_arr = np.ascontiguousarray(arr[:, 4].argsort()[::-1], dtype=np.int64)
    cdef double t = float(thresh)
    # numpy compares the float32 IoU with a Python float in float32, with a float64 scalar in float64.
    cdef bint cmp_f64 = np.result_type(arr.dtype, thresh) == np.float64
    if arr.dtype != np.float32 and arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    keep_arr = np.empty((n,), dtype=np.int64)
    cdef int64_t[::1] order = order_arr
    cdef int64_t[::1] keep = keep_arr
    cdef float[:, ::1] d32
    cdef double[:, ::1] d64
    cdef int64_t stride = arr.shape[1]
    cdef int64_t nk
    cdef int64_t mk = int(max_keep)
    if arr.dtype == np.float32:
        d32 = arr
        if cmp_f64:
            with nogil:
                nk = nms_f32_cmp_f64(&d32[0, 0], stride, n, &order[0], t, mk, &keep[0])
        else:
            with nogil:
                nk = nms_f32_cmp_f32(&d32[0, 0], stride, n, &order[0], t, mk, &keep[0])
    else:
        d64 = arr
        with nogil:
            nk = nms_f64(&d64[0, 0], stride, n, &order[0], t, mk, &keep[0])
    return keep_arr[:nk].copy()
