// RoI max pooling with the semantics of caffe-fast-rcnn's ROIPoolingLayer: C round() of the scaled RoI corners,
// +1 sizes clamped to at least 1, bins from floor(p * bin) to ceil((p + 1) * bin) clipped to the map, an empty bin
// gives 0 with argmax -1, the first maximum wins (strict >). CPU kernels here; CUDA kernels in roi_pool_cuda.cu
// (compiled only when the build has CUDA, which defines WITH_CUDA).
//
// forward(features (N, C, H, W), rois (R, 5) [batch, x1, y1, x2, y2], pooled_h, pooled_w, spatial_scale)
//   -> (output (R, C, pooled_h, pooled_w), argmax (R, C, pooled_h, pooled_w) int32: flat h * W + w, or -1,
//       cuda_error: '' or the CUDA failure)
// backward(grad_output (R, C, ph, pw), rois (R, 5), argmax, N, C, H, W) -> (grad_features (N, C, H, W), cuda_error)
#include <ATen/ATen.h>
#include <torch/python.h>  // not torch/extension.h: the whole C++ frontend, ~20 s more to compile a file

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "roi_align.h"

#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "roi_pool_cuda.h"
#endif

// setup.py passes the archs built for as one identifier (sm80_sm90ptx); it is quoted here for messages.
#define FRCNN_STR2(x) #x
#define FRCNN_STR(x) FRCNN_STR2(x)
#ifdef FRCNN_CUDA_ARCHS_ID
#define FRCNN_CUDA_ARCHS FRCNN_STR(FRCNN_CUDA_ARCHS_ID)
#else
#define FRCNN_CUDA_ARCHS ""
#endif

namespace {

// Per RoI: its batch index and, per bin row/column, [start, end) on the map (Caffe's arithmetic, in scalar_t).
template <typename scalar_t>
void compute_bins(const scalar_t* rois, int64_t num_rois, int64_t height, int64_t width, int64_t ph, int64_t pw,
                  scalar_t scale, std::vector<int>& bins) {
  const int64_t per = 1 + 2 * ph + 2 * pw;
  bins.resize(static_cast<size_t>(num_rois * per));
  for (int64_t r = 0; r < num_rois; ++r) {
    const scalar_t* roi = rois + r * 5;
    int* out = bins.data() + r * per;
    out[0] = static_cast<int>(roi[0]);
    const int start_w = static_cast<int>(std::round(roi[1] * scale));
    const int start_h = static_cast<int>(std::round(roi[2] * scale));
    const int end_w = static_cast<int>(std::round(roi[3] * scale));
    const int end_h = static_cast<int>(std::round(roi[4] * scale));
    const int roi_h = std::max(end_h - start_h + 1, 1);
    const int roi_w = std::max(end_w - start_w + 1, 1);
    const scalar_t bin_h = static_cast<scalar_t>(roi_h) / static_cast<scalar_t>(ph);
    const scalar_t bin_w = static_cast<scalar_t>(roi_w) / static_cast<scalar_t>(pw);
    int* hs = out + 1;
    int* he = hs + ph;
    int* ws = he + ph;
    int* we = ws + pw;
    for (int64_t p = 0; p < ph; ++p) {
      const int s = static_cast<int>(std::floor(static_cast<scalar_t>(p) * bin_h));
      const int e = static_cast<int>(std::ceil(static_cast<scalar_t>(p + 1) * bin_h));
      hs[p] = std::min(std::max(s + start_h, 0), static_cast<int>(height));
      he[p] = std::min(std::max(e + start_h, 0), static_cast<int>(height));
    }
    for (int64_t p = 0; p < pw; ++p) {
      const int s = static_cast<int>(std::floor(static_cast<scalar_t>(p) * bin_w));
      const int e = static_cast<int>(std::ceil(static_cast<scalar_t>(p + 1) * bin_w));
      ws[p] = std::min(std::max(s + start_w, 0), static_cast<int>(width));
      we[p] = std::min(std::max(e + start_w, 0), static_cast<int>(width));
    }
  }
}

// (C, P) -> (P, C) for each of n planes, in cache-sized tiles.
template <typename scalar_t>
void to_channels_last(const scalar_t* src, int64_t n, int64_t channels, int64_t plane, scalar_t* dst) {
  constexpr int64_t T = 32;
  const int64_t ctiles = (channels + T - 1) / T, ptiles = (plane + T - 1) / T;
  at::parallel_for(0, n * ctiles * ptiles, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / (ctiles * ptiles), ct = (t / ptiles) % ctiles, pt = t % ptiles;
      const scalar_t* s = src + b * channels * plane;
      scalar_t* d = dst + b * channels * plane;
      const int64_t c1 = std::min(channels, (ct + 1) * T), p1 = std::min(plane, (pt + 1) * T);
      for (int64_t p = pt * T; p < p1; ++p)
        for (int64_t c = ct * T; c < c1; ++c) d[p * channels + c] = s[c * plane + p];
    }
  });
}

// 16-byte SIMD vectors (SSE2 on x86-64, NEON on arm64) through GCC/Clang vector extensions; comparisons give
// lane masks of the same width, so the argmax lanes match the value lanes.
template <typename scalar_t>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(16)));
  typedef int32_t M __attribute__((vector_size(16)));
  static constexpr int L = 4;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(16)));
  typedef int64_t M __attribute__((vector_size(16)));
  static constexpr int L = 2;
};
constexpr int kVecs = 4;  // vectors per channel block: 16 float or 8 double channels, all in registers

// Max over one bin's window for a block of channels (channels-last source: position p, channel c at
// src[p * channels + c]), written to best_out/idx_out. Strict > keeps the first maximum in Caffe's visiting order
// (rows, then columns); NaN never wins; an empty bin gives 0 and -1.
template <typename scalar_t>
static inline void bin_max_block(const scalar_t* __restrict__ src, int64_t channels, int64_t width, int hs, int he,
                                 int ws, int we, scalar_t* __restrict__ best_out, int* __restrict__ idx_out) {
  typedef typename Simd<scalar_t>::V V;
  typedef typename Simd<scalar_t>::M M;
  constexpr int L = Simd<scalar_t>::L;
  const bool empty = he <= hs || we <= ws;
  V best[kVecs];
  M idx[kVecs];
#pragma GCC unroll 4
  for (int k = 0; k < kVecs; ++k) {
    best[k] = V{} + (empty ? scalar_t(0) : static_cast<scalar_t>(-FLT_MAX));
    idx[k] = M{} - 1;
  }
  for (int h = hs; h < he; ++h)
    for (int w = ws; w < we; ++w) {
      const int pos = static_cast<int>(h * width + w);
      const scalar_t* v = src + static_cast<int64_t>(pos) * channels;
      const M p = M{} + pos;
#pragma GCC unroll 4
      for (int k = 0; k < kVecs; ++k) {
        V x;
        std::memcpy(&x, v + k * L, sizeof(V));
        const M gt = x > best[k];
        best[k] = gt ? x : best[k];
        idx[k] = gt ? p : idx[k];
      }
    }
#pragma GCC unroll 4
  for (int k = 0; k < kVecs; ++k)
    for (int l = 0; l < L; ++l) {
      best_out[k * L + l] = best[k][l];
      idx_out[k * L + l] = static_cast<int>(idx[k][l]);
    }
}

// The same for a partial block of cb channels (the tail), scalar.
template <typename scalar_t>
static inline void bin_max_tail(const scalar_t* src, int64_t channels, int64_t width, int hs, int he, int ws, int we,
                                int cb, scalar_t* best_out, int* idx_out) {
  const bool empty = he <= hs || we <= ws;
  for (int c = 0; c < cb; ++c) {
    best_out[c] = empty ? scalar_t(0) : static_cast<scalar_t>(-FLT_MAX);
    idx_out[c] = -1;
  }
  for (int h = hs; h < he; ++h)
    for (int w = ws; w < we; ++w) {
      const int pos = static_cast<int>(h * width + w);
      const scalar_t* v = src + static_cast<int64_t>(pos) * channels;
      for (int c = 0; c < cb; ++c)
        if (v[c] > best_out[c]) {
          best_out[c] = v[c];
          idx_out[c] = pos;
        }
    }
}

// Forward on a channels-last copy of the features, RoI by RoI (in parallel), channel block by channel block.
// Per channel the visiting order is Caffe's, so values and argmax are identical to the plain loop.
template <typename scalar_t>
void forward_cpu_kernel(const scalar_t* feat, const scalar_t* rois, int64_t batch, int64_t num_rois,
                        int64_t channels, int64_t height, int64_t width, int64_t ph, int64_t pw, scalar_t scale,
                        scalar_t* out, int* argmax) {
  constexpr int CB = kVecs * Simd<scalar_t>::L;
  std::vector<int> bins;
  compute_bins(rois, num_rois, height, width, ph, pw, scale, bins);
  const int64_t per = 1 + 2 * ph + 2 * pw;
  const int64_t plane = height * width;
  const int64_t nb = ph * pw;
  std::vector<scalar_t> nhwc(static_cast<size_t>(batch * plane * channels));
  to_channels_last(feat, batch, channels, plane, nhwc.data());
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    scalar_t best[CB];
    int idx[CB];
    for (int64_t r = begin; r < end; ++r) {
      const int* b = bins.data() + r * per;
      const int* hs = b + 1;
      const int* he = hs + ph;
      const int* ws = he + ph;
      const int* we = ws + pw;
      const scalar_t* base = nhwc.data() + static_cast<int64_t>(b[0]) * plane * channels;
      scalar_t* o = out + r * channels * nb;
      int* a = argmax + r * channels * nb;
      for (int64_t c0 = 0; c0 < channels; c0 += CB) {
        const int cb = static_cast<int>(std::min<int64_t>(CB, channels - c0));
        for (int64_t i = 0; i < ph; ++i)
          for (int64_t j = 0; j < pw; ++j) {
            if (cb == CB)
              bin_max_block<scalar_t>(base + c0, channels, width, hs[i], he[i], ws[j], we[j], best, idx);
            else
              bin_max_tail<scalar_t>(base + c0, channels, width, hs[i], he[i], ws[j], we[j], cb, best, idx);
            const int64_t k = i * pw + j;
            for (int c = 0; c < cb; ++c) {
              o[(c0 + c) * nb + k] = best[c];
              a[(c0 + c) * nb + k] = idx[c];
            }
          }
      }
    }
  });
}

// Each channel is independent, so channels run in parallel; within one, RoIs and bins are accumulated in order
// (the order torchvision's CPU kernel uses), so the sums are bit-identical to it.
template <typename scalar_t>
void backward_cpu_kernel(const scalar_t* grad_out, const scalar_t* rois, const int* argmax, int64_t num_rois,
                         int64_t channels, int64_t height, int64_t width, int64_t ph, int64_t pw,
                         scalar_t* grad_in) {
  const int64_t plane = height * width;
  const int64_t bins = ph * pw;
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t r = 0; r < num_rois; ++r) {
        const int64_t batch = static_cast<int64_t>(rois[r * 5]);
        scalar_t* dst = grad_in + (batch * channels + c) * plane;
        const scalar_t* g = grad_out + (r * channels + c) * bins;
        const int* a = argmax + (r * channels + c) * bins;
        for (int64_t k = 0; k < bins; ++k) {
          if (a[k] >= 0) dst[a[k]] += g[k];
        }
      }
    }
  });
}

#ifdef WITH_CUDA
std::string cuda_error(const char* what, cudaError_t err) {
  if (err == cudaSuccess) return std::string();
  return std::string("roi_pooling CUDA ") + what + " failed: " + cudaGetErrorString(err) + " (built for CUDA archs '" +
         FRCNN_CUDA_ARCHS + "')";
}
#endif

void check_inputs(const at::Tensor& features, const at::Tensor& rois, int64_t ph, int64_t pw) {
  TORCH_CHECK(features.dim() == 4, "roi_pooling: features must be (N, C, H, W), got ", features.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "roi_pooling: rois must be (R, 5) [batch, x1, y1, x2, y2], got ",
              rois.sizes());
  TORCH_CHECK(ph > 0 && pw > 0, "roi_pooling: pooled sizes must be positive, got ", ph, "x", pw);
  TORCH_CHECK(features.device() == rois.device(), "roi_pooling: features on ", features.device(), " but rois on ",
              rois.device());
  TORCH_CHECK(features.scalar_type() == rois.scalar_type(), "roi_pooling: features and rois dtypes differ");
  TORCH_CHECK(features.scalar_type() == at::kFloat || features.scalar_type() == at::kDouble,
              "roi_pooling: float32 or float64 expected, got ", features.scalar_type());
}

void check_batch_indices(const at::Tensor& rois, int64_t batch) {
  if (rois.size(0) == 0) return;
  const auto b = rois.select(1, 0);
  if (rois.is_cuda()) return;  // the Python side asserts on the device; the kernels skip such RoIs
  const double lo = b.min().item<double>(), hi = b.max().item<double>();
  TORCH_CHECK(lo >= 0 && hi < static_cast<double>(batch), "roi_pooling: RoI batch indices must lie in [0, ", batch,
              "), got [", lo, ", ", hi, "]");
}

// CUDA failures come back as a message (third element; empty when fine) rather than a C++ exception, so that the
// Python side can always raise a clear error (some toolchains cannot unwind exceptions out of an extension).
std::tuple<at::Tensor, at::Tensor, std::string> roi_pool_forward(const at::Tensor& features_in,
                                                                 const at::Tensor& rois_in, int64_t ph, int64_t pw,
                                                                 double spatial_scale) {
  check_inputs(features_in, rois_in, ph, pw);
  const auto features = features_in.contiguous();
  const auto rois = rois_in.contiguous();
  const int64_t R = rois.size(0), C = features.size(1), H = features.size(2), W = features.size(3);
  check_batch_indices(rois, features.size(0));
  auto out = at::empty({R, C, ph, pw}, features.options());
  auto argmax = at::empty({R, C, ph, pw}, features.options().dtype(at::kInt));
  if (out.numel() == 0) return {out, argmax, std::string()};
  if (features.is_cuda()) {
#ifdef WITH_CUDA
    const c10::cuda::CUDAGuard guard(features.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    cudaError_t err;
    if (features.scalar_type() == at::kFloat)
      err = frcnn_roi_pool::forward_cuda<float>(features.data_ptr<float>(), rois.data_ptr<float>(), features.size(0),
                                                R, C, H, W, ph,
                                                pw, static_cast<float>(spatial_scale), out.data_ptr<float>(),
                                                argmax.data_ptr<int>(), stream);
    else
      err = frcnn_roi_pool::forward_cuda<double>(features.data_ptr<double>(), rois.data_ptr<double>(),
                                                 features.size(0), R, C, H, W,
                                                 ph, pw, spatial_scale, out.data_ptr<double>(),
                                                 argmax.data_ptr<int>(), stream);
    return {out, argmax, cuda_error("forward", err)};
#else
    TORCH_CHECK(false, "roi_pooling: this build has no CUDA kernels (rebuild with WITH_CUDA=1)");
#endif
  }
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "roi_pool_forward_cpu", [&] {
    forward_cpu_kernel<scalar_t>(features.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), features.size(0), R, C,
                                 H, W, ph, pw,
                                 static_cast<scalar_t>(spatial_scale), out.data_ptr<scalar_t>(),
                                 argmax.data_ptr<int>());
  });
  return {out, argmax, std::string()};
}

std::tuple<at::Tensor, std::string> roi_pool_backward(const at::Tensor& grad_in_, const at::Tensor& rois_in,
                                                     const at::Tensor& argmax_in, int64_t N, int64_t C, int64_t H,
                                                     int64_t W) {
  const auto grad = grad_in_.contiguous();
  const auto rois = rois_in.contiguous();
  const auto argmax = argmax_in.contiguous();
  TORCH_CHECK(grad.dim() == 4 && grad.sizes() == argmax.sizes(), "roi_pooling backward: grad ", grad.sizes(),
              " and argmax ", argmax.sizes(), " differ");
  TORCH_CHECK(grad.size(0) == rois.size(0) && grad.size(1) == C, "roi_pooling backward: shapes do not match");
  const int64_t R = rois.size(0), ph = grad.size(2), pw = grad.size(3);
  auto grad_features = at::zeros({N, C, H, W}, grad.options());
  if (grad.numel() == 0) return {grad_features, std::string()};
  if (grad.is_cuda()) {
#ifdef WITH_CUDA
    const c10::cuda::CUDAGuard guard(grad.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    cudaError_t err;
    if (grad.scalar_type() == at::kFloat)
      err = frcnn_roi_pool::backward_cuda<float>(grad.data_ptr<float>(), rois.data_ptr<float>(),
                                                 argmax.data_ptr<int>(), N, R, C, H, W, ph, pw,
                                                 grad_features.data_ptr<float>(), stream);
    else
      err = frcnn_roi_pool::backward_cuda<double>(grad.data_ptr<double>(), rois.data_ptr<double>(),
                                                  argmax.data_ptr<int>(), N, R, C, H, W, ph, pw,
                                                  grad_features.data_ptr<double>(), stream);
    return {grad_features, cuda_error("backward", err)};
#else
    TORCH_CHECK(false, "roi_pooling: this build has no CUDA kernels (rebuild with WITH_CUDA=1)");
#endif
  }
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_pool_backward_cpu", [&] {
    backward_cpu_kernel<scalar_t>(grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), argmax.data_ptr<int>(), R, C,
                                  H, W, ph, pw, grad_features.data_ptr<scalar_t>());
  });
  return {grad_features, std::string()};
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "RoI max pooling (Caffe semantics), CPU and optionally CUDA; RoIAlign on the CPU";
  m.def("forward", &roi_pool_forward, "RoI pooling forward -> (output, argmax, cuda_error)");
  m.def("backward", &roi_pool_backward, "RoI pooling backward -> (grad_features, cuda_error)");
  m.def("align_forward", &frcnn_roi_align::forward_cpu,
        "RoIAlign forward on the CPU (features, rois, ph, pw, spatial_scale, sampling_ratio, aligned) -> output");
  m.def("align_backward", &frcnn_roi_align::backward_cpu,
        "RoIAlign backward on the CPU (grad, rois, N, H, W, spatial_scale, sampling_ratio, aligned) -> grad_features");
  m.def("has_cuda", &has_cuda, "whether CUDA kernels were compiled in");
  m.attr("cuda_archs") = FRCNN_CUDA_ARCHS;
}
