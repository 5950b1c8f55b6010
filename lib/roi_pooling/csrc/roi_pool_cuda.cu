// RoI pooling CUDA kernels, Caffe semantics (see roi_pool.cpp). One thread per output element; the backward
// scatters through argmax with atomicAdd (so float sums may differ from a sequential order in the last bits).
#include <cfloat>
#include <cstdint>

#include "roi_pool_cuda.h"

namespace frcnn_roi_pool {
namespace {

template <typename T>
__device__ __forceinline__ T mul_rn(T a, T b);
template <>
__device__ __forceinline__ float mul_rn<float>(float a, float b) { return __fmul_rn(a, b); }
template <>
__device__ __forceinline__ double mul_rn<double>(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__device__ __forceinline__ T div_rn(T a, T b);
template <>
__device__ __forceinline__ float div_rn<float>(float a, float b) { return __fdiv_rn(a, b); }
template <>
__device__ __forceinline__ double div_rn<double>(double a, double b) { return __ddiv_rn(a, b); }

template <typename T>
__global__ void forward_kernel(int64_t total, const T* __restrict__ features, const T* __restrict__ rois,
                               int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t ph,
                               int64_t pw, T scale, T* __restrict__ out, int* __restrict__ argmax) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t j = index % pw;
    const int64_t i = (index / pw) % ph;
    const int64_t c = (index / pw / ph) % channels;
    const int64_t r = index / pw / ph / channels;
    const T* roi = rois + r * 5;
    if (!(roi[0] >= T(0) && roi[0] < static_cast<T>(batch_size))) {
      out[index] = T(0);
      argmax[index] = -1;
      continue;
    }
    const int64_t batch = static_cast<int64_t>(roi[0]);
    const int start_w = static_cast<int>(round(mul_rn(roi[1], scale)));
    const int start_h = static_cast<int>(round(mul_rn(roi[2], scale)));
    const int end_w = static_cast<int>(round(mul_rn(roi[3], scale)));
    const int end_h = static_cast<int>(round(mul_rn(roi[4], scale)));
    const int roi_h = max(end_h - start_h + 1, 1);
    const int roi_w = max(end_w - start_w + 1, 1);
    const T bin_h = div_rn(static_cast<T>(roi_h), static_cast<T>(ph));
    const T bin_w = div_rn(static_cast<T>(roi_w), static_cast<T>(pw));
    int hs = static_cast<int>(floor(mul_rn(static_cast<T>(i), bin_h)));
    int ws = static_cast<int>(floor(mul_rn(static_cast<T>(j), bin_w)));
    int he = static_cast<int>(ceil(mul_rn(static_cast<T>(i + 1), bin_h)));
    int we = static_cast<int>(ceil(mul_rn(static_cast<T>(j + 1), bin_w)));
    hs = min(max(hs + start_h, 0), static_cast<int>(height));
    he = min(max(he + start_h, 0), static_cast<int>(height));
    ws = min(max(ws + start_w, 0), static_cast<int>(width));
    we = min(max(we + start_w, 0), static_cast<int>(width));
    const bool empty = he <= hs || we <= ws;
    T best = empty ? T(0) : static_cast<T>(-FLT_MAX);
    int best_idx = -1;
    const T* src = features + (batch * channels + c) * height * width;
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        const int idx = h * static_cast<int>(width) + w;
        const T v = src[idx];
        if (v > best) {
          best = v;
          best_idx = idx;
        }
      }
    }
    out[index] = best;
    argmax[index] = best_idx;
  }
}

template <typename T>
__global__ void backward_kernel(int64_t total, const T* __restrict__ grad_out, const T* __restrict__ rois,
                                const int* __restrict__ argmax, int64_t batch_size, int64_t channels, int64_t height,
                                int64_t width,
                                int64_t bins, T* __restrict__ grad_features) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int a = argmax[index];
    if (a < 0) continue;
    const int64_t rc = index / bins;
    const int64_t c = rc % channels;
    const int64_t r = rc / channels;
    if (!(rois[r * 5] >= T(0) && rois[r * 5] < static_cast<T>(batch_size))) continue;
    const int64_t batch = static_cast<int64_t>(rois[r * 5]);
    atomicAdd(grad_features + (batch * channels + c) * height * width + a, grad_out[index]);
  }
}

inline unsigned int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

}  // namespace

template <typename T>
cudaError_t forward_cuda(const T* features, const T* rois, int64_t batch, int64_t num_rois, int64_t channels,
                         int64_t height, int64_t width, int64_t ph, int64_t pw, T spatial_scale, T* out, int* argmax,
                         cudaStream_t stream) {
  const int64_t total = num_rois * channels * ph * pw;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  forward_kernel<T><<<grid_for(total, threads), threads, 0, stream>>>(total, features, rois, batch, channels, height,
                                                                      width, ph, pw, spatial_scale, out, argmax);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_cuda(const T* grad_out, const T* rois, const int* argmax, int64_t batch, int64_t num_rois,
                          int64_t channels, int64_t height, int64_t width, int64_t ph, int64_t pw, T* grad_features,
                          cudaStream_t stream) {
  const int64_t total = num_rois * channels * ph * pw;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  backward_kernel<T><<<grid_for(total, threads), threads, 0, stream>>>(total, grad_out, rois, argmax, batch, channels,
                                                                       height, width, ph * pw, grad_features);
  return cudaGetLastError();
}

#define FRCNN_INSTANTIATE(T)                                                                                  \
  template cudaError_t forward_cuda<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,  \
                                       int64_t, T, T*, int*, cudaStream_t);                                       \
  template cudaError_t backward_cuda<T>(const T*, const T*, const int*, int64_t, int64_t, int64_t, int64_t,       \
                                        int64_t, int64_t, int64_t, T*, cudaStream_t);
FRCNN_INSTANTIATE(float)
FRCNN_INSTANTIATE(double)
#undef FRCNN_INSTANTIATE

}  // namespace frcnn_roi_pool
