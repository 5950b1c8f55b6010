// Greedy NMS on the CPU, giving exactly the indices that nms/py_cpu_nms.py gives.
//
// py_cpu_nms walks the boxes in score order; a box is dropped when, for some box kept before it,
//     ovr = inter / ((area_i + area_j) - inter)        (computed in the dets' dtype, T)
// is NOT <= thresh (so IoU > thresh suppresses, and a NaN IoU suppresses too), with
//     w = max(0, (min(x2) - max(x1)) + 1), h likewise, inter = w * h, area = ((x2 - x1) + 1) * ((y2 - y1) + 1).
// This file evaluates that same formula, operation by operation, in T (compile with -ffp-contract=off so that
// no multiply-add is fused), and compares in C (float, or double when numpy would compare in float64).
//
// Speed comes from testing each candidate only against kept boxes that can possibly suppress it. Kept boxes are
// filed in a uniform grid on (x1, y1). If box i suppresses box j then (proof in the comment of window_radius)
//     |x1_i - x1_j| < (1 - a) / a * w_j + 3E   and   |y1_i - y1_j| < (1 - a) / a * h_j + 3E,
// where a is slightly below thresh and E bounds the rounding error of a computed width. So a candidate scans only
// the grid cells within that window, and stops at the first suppressor. That pruning is exact (it never skips a
// pair whose computed IoU exceeds thresh) for "well-behaved" input: finite coordinates with |coord| <= 1e6, every
// width and height >= 1e-3 and thresh >= 0.02. Anything else takes the plain O(N*K) loop, which reproduces numpy's
// arithmetic, NaN propagation included.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace frcnn_nms {

// numpy's maximum/minimum: NaN if either argument is NaN.
template <typename T>
static inline T np_max(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}
template <typename T>
static inline T np_min(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  return a < b ? a : b;
}

// Sorted, structure-of-arrays copy of the boxes (k-th entry = k-th highest score).
template <typename T>
struct Boxes {
  std::vector<T> x1, y1, x2, y2, area;
};

// The IoU exactly as py_cpu_nms computes it (same operations, same order, in T).
template <typename T>
static inline T iou_like_numpy(const Boxes<T>& b, int64_t i, int64_t j) {
  const T xx1 = np_max(b.x1[i], b.x1[j]);
  const T yy1 = np_max(b.y1[i], b.y1[j]);
  const T xx2 = np_min(b.x2[i], b.x2[j]);
  const T yy2 = np_min(b.y2[i], b.y2[j]);
  const T w = np_max(T(0), T(T(xx2 - xx1) + T(1)));
  const T h = np_max(T(0), T(T(yy2 - yy1) + T(1)));
  const T inter = T(w * h);
  return T(inter / T(T(b.area[i] + b.area[j]) - inter));
}

// The fast IoU for well-behaved boxes (no NaN possible, so plain max/min give numpy's result).
template <typename T>
static inline T iou_fast(T ax1, T ay1, T ax2, T ay2, T aarea, T bx1, T by1, T bx2, T by2, T barea) {
  const T xx1 = ax1 > bx1 ? ax1 : bx1;
  const T yy1 = ay1 > by1 ? ay1 : by1;
  const T xx2 = ax2 < bx2 ? ax2 : bx2;
  const T yy2 = ay2 < by2 ? ay2 : by2;
  T w = T(T(xx2 - xx1) + T(1));
  T h = T(T(yy2 - yy1) + T(1));
  w = w > T(0) ? w : T(0);
  h = h > T(0) ? h : T(0);
  const T inter = T(w * h);
  return T(inter / T(T(aarea + barea) - inter));
}

// Plain greedy loop: exact for any input. keep receives positions in the sorted order; it stops after max_keep
// kept boxes (a later box never changes an earlier decision, so the first max_keep are those of the full run).
template <typename T, typename C>
static int64_t nms_bruteforce(const Boxes<T>& b, int64_t n, C thresh, int64_t max_keep, int64_t* keep) {
  std::vector<unsigned char> suppressed(static_cast<size_t>(n), 0);
  int64_t nk = 0;
  for (int64_t i = 0; i < n && nk < max_keep; ++i) {
    if (suppressed[i]) continue;
    keep[nk++] = i;
    for (int64_t j = i + 1; j < n; ++j) {
      if (suppressed[j]) continue;
      const T ovr = iou_like_numpy(b, i, j);
      if (!(static_cast<C>(ovr) <= thresh)) suppressed[j] = 1;
    }
  }
  return nk;
}

// Grid-pruned greedy NMS for well-behaved input (see the file comment).
template <typename T, typename C>
static int64_t nms_grid(const Boxes<T>& b, int64_t n, C thresh, double max_abs, int64_t max_keep, int64_t* keep) {
  // Rounding: a computed width fl(fl(p - q) + 1) of coordinates |p|, |q| <= M is within E of the exact value.
  const double u = std::numeric_limits<T>::epsilon() / 2;
  const double E = 5.0 * u * (max_abs + 1.0);
  // window_radius: with a' = thresh * (1 - 1e-5) (covering the rounding of the quotient and of the area sums),
  // ovr_ij > thresh implies iw > a' * max(w_i, w_j) - 2E and iw <= w_i - |x1_i - x1_j| (for the box with the smaller
  // x1), hence |x1_i - x1_j| < (1 - a') * max(w_i, w_j) + 2E, and w_i < w_j / a' + E. Clamping a' to 1 only widens.
  const double a = std::min(static_cast<double>(thresh) * (1.0 - 1e-5), 1.0);
  const double rho = (1.0 - a) / a;
  const double pad = 3.0 * E + 1e-9 * (max_abs + 1.0);

  // Grid extent and cell size: cells about the median window radius, at most 128 x 128 cells.
  T minx = b.x1[0], maxx = b.x1[0], miny = b.y1[0], maxy = b.y1[0];
  for (int64_t k = 1; k < n; ++k) {
    minx = std::min(minx, b.x1[k]);
    maxx = std::max(maxx, b.x1[k]);
    miny = std::min(miny, b.y1[k]);
    maxy = std::max(maxy, b.y1[k]);
  }
  std::vector<double> rs;
  rs.reserve(static_cast<size_t>(std::min<int64_t>(n, 512)));
  const int64_t step = std::max<int64_t>(1, n / 512);
  for (int64_t k = 0; k < n; k += step)
    rs.push_back(rho * 0.5 * (double(b.x2[k] - b.x1[k]) + double(b.y2[k] - b.y1[k]) + 2.0));
  std::nth_element(rs.begin(), rs.begin() + rs.size() / 2, rs.end());
  const double spanx = double(maxx) - double(minx), spany = double(maxy) - double(miny);
  double cell = std::max(rs[rs.size() / 2], 1e-6);
  cell = std::max(cell, std::max(spanx, spany) / 128.0);
  const int64_t gx = std::min<int64_t>(128, static_cast<int64_t>(spanx / cell) + 1);
  const int64_t gy = std::min<int64_t>(128, static_cast<int64_t>(spany / cell) + 1);
  const double inv = 1.0 / cell;

  // Kept boxes, per cell, as singly linked lists into the kept arrays (newest first).
  std::vector<int32_t> head(static_cast<size_t>(gx * gy), -1);
  std::vector<int32_t> next;
  std::vector<T> kx1, ky1, kx2, ky2, ka;
  next.reserve(static_cast<size_t>(n));
  kx1.reserve(static_cast<size_t>(n));
  ky1.reserve(static_cast<size_t>(n));
  kx2.reserve(static_cast<size_t>(n));
  ky2.reserve(static_cast<size_t>(n));
  ka.reserve(static_cast<size_t>(n));

  auto cell_of = [&](double v, double lo, int64_t g) -> int64_t {
    const double c = std::floor((v - lo) * inv);
    if (c < 0) return 0;
    if (c > double(g - 1)) return g - 1;
    return static_cast<int64_t>(c);
  };

  int64_t nk = 0;
  for (int64_t j = 0; j < n && nk < max_keep; ++j) {
    const T x1 = b.x1[j], y1 = b.y1[j], x2 = b.x2[j], y2 = b.y2[j], ar = b.area[j];
    const double wj = double(T(T(x2 - x1) + T(1)));
    const double hj = double(T(T(y2 - y1) + T(1)));
    const double rx = rho * wj * (1.0 + 1e-6) + pad;
    const double ry = rho * hj * (1.0 + 1e-6) + pad;
    const int64_t cx0 = cell_of(double(x1) - rx, double(minx), gx), cx1 = cell_of(double(x1) + rx, double(minx), gx);
    const int64_t cy0 = cell_of(double(y1) - ry, double(miny), gy), cy1 = cell_of(double(y1) + ry, double(miny), gy);
    bool suppressed = false;
    for (int64_t cy = cy0; cy <= cy1 && !suppressed; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        for (int32_t k = head[cy * gx + cx]; k >= 0; k = next[k]) {
          const T ovr = iou_fast(kx1[k], ky1[k], kx2[k], ky2[k], ka[k], x1, y1, x2, y2, ar);
          if (static_cast<C>(ovr) > thresh) {
            suppressed = true;
            break;
          }
        }
        if (suppressed) break;
      }
    }
    if (suppressed) continue;
    const int64_t c = cell_of(double(y1), double(miny), gy) * gx + cell_of(double(x1), double(minx), gx);
    kx1.push_back(x1);
    ky1.push_back(y1);
    kx2.push_back(x2);
    ky2.push_back(y2);
    ka.push_back(ar);
    next.push_back(head[c]);
    head[c] = static_cast<int32_t>(nk);
    keep[nk++] = j;
  }
  return nk;
}

// dets: n rows of `stride` values [x1, y1, x2, y2, score, ...]; order: the n row indices in descending score
// (as numpy's argsort()[::-1] gives them); keep: room for n row indices; max_keep: stop after that many kept
// (<= 0: no limit). Returns the number kept; keep[0..k) holds row indices of dets in output order.
template <typename T, typename C>
int64_t nms(const T* dets, int64_t stride, int64_t n, const int64_t* order, C thresh, int64_t max_keep,
            int64_t* keep) {
  if (n <= 0) return 0;
  if (max_keep <= 0 || max_keep > n) max_keep = n;
  Boxes<T> b;
  b.x1.resize(n);
  b.y1.resize(n);
  b.x2.resize(n);
  b.y2.resize(n);
  b.area.resize(n);
  bool nice = (thresh >= C(0.02)) && n < (int64_t(1) << 30);
  double max_abs = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const T* d = dets + order[k] * stride;
    const T x1 = d[0], y1 = d[1], x2 = d[2], y2 = d[3];
    b.x1[k] = x1;
    b.y1[k] = y1;
    b.x2[k] = x2;
    b.y2[k] = y2;
    const T w = T(T(x2 - x1) + T(1)), h = T(T(y2 - y1) + T(1));
    b.area[k] = T(w * h);
    // Written so that NaN fails every test.
    nice = nice && (w >= T(1e-3)) && (h >= T(1e-3));
    const double m = std::max(std::max(std::fabs(double(x1)), std::fabs(double(y1))),
                              std::max(std::fabs(double(x2)), std::fabs(double(y2))));
    nice = nice && (m <= 1e6);
    if (m > max_abs) max_abs = m;
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  const int64_t nk = nice ? nms_grid<T, C>(b, n, thresh, max_abs, max_keep, pos.data())
                          : nms_bruteforce<T, C>(b, n, thresh, max_keep, pos.data());
  for (int64_t k = 0; k < nk; ++k) keep[k] = order[pos[k]];
  return nk;
}

// Entry points for Cython (no templates there).
inline int64_t nms_f32_cmp_f32(const float* dets, int64_t stride, int64_t n, const int64_t* order, double thresh,
                               int64_t max_keep, int64_t* keep) {
  return nms<float, float>(dets, stride, n, order, static_cast<float>(thresh), max_keep, keep);
}
inline int64_t nms_f32_cmp_f64(const float* dets, int64_t stride, int64_t n, const int64_t* order, double thresh,
                               int64_t max_keep, int64_t* keep) {
  return nms<float, double>(dets, stride, n, order, thresh, max_keep, keep);
}
inline int64_t nms_f64(const double* dets, int64_t stride, int64_t n, const int64_t* order, double thresh,
                               int64_t max_keep, int64_t* keep) {
  return nms<double, double>(dets, stride, n, order, thresh, max_keep, keep);
}

}  // namespace frcnn_nms
