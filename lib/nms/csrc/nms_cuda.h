// CUDA bitmask NMS launcher (plain CUDA, no torch headers).
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace frcnn_nms_cuda {

constexpr int kBlock = 64;  // boxes per block = bits per mask word

// boxes: (n, 4) x1, y1, x2, y2, sorted by descending score, contiguous on the device.
// mask: (n, ceil(n / 64)) words; bit k of mask[i][b] is set when box b*64+k (> i) must be dropped if box i is kept,
// i.e. when !(IoU(i, b*64+k) <= thresh), with the IoU computed exactly as py_cpu_nms does in T and compared in C.
// Words left of the diagonal block are not written.
template <typename T, typename C>
cudaError_t nms_mask(const T* boxes, int64_t n, C thresh, unsigned long long* mask, cudaStream_t stream);

}  // namespace frcnn_nms_cuda
