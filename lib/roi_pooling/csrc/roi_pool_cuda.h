// CUDA launchers for RoI pooling. Plain CUDA (no torch headers), so the .cu file compiles in seconds per arch.
#pragma once

// RoIs whose batch index is outside [0, N) are skipped (output 0, argmax -1; no gradient); the caller asserts.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace frcnn_roi_pool {

// features (N, C, H, W) with N = batch, rois (R, 5), out/argmax (R, C, ph, pw); all contiguous device pointers.
template <typename T>
cudaError_t forward_cuda(const T* features, const T* rois, int64_t batch, int64_t num_rois, int64_t channels,
                         int64_t height, int64_t width, int64_t ph, int64_t pw, T spatial_scale, T* out, int* argmax,
                         cudaStream_t stream);

// grad_out/argmax (R, C, ph, pw), rois (R, 5), N = batch; grad_features (N, C, H, W) zero-filled on entry.
template <typename T>
cudaError_t backward_cuda(const T* grad_out, const T* rois, const int* argmax, int64_t batch, int64_t num_rois,
                          int64_t channels, int64_t height, int64_t width, int64_t ph, int64_t pw, T* grad_features,
                          cudaStream_t stream);

}  // namespace frcnn_roi_pool
