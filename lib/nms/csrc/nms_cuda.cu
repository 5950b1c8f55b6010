// The original's 64-box bitmask NMS kernel idea, for today's torch. Each block compares 64 "row" boxes with 64
// "column" boxes and writes one 64-bit word per row box. IoU arithmetic uses round-to-nearest intrinsics, which
// nvcc never fuses into multiply-adds, so the result matches the CPU (numpy) float computation bit for bit.
#include <cstdint>

#include "nms_cuda.h"

namespace frcnn_nms_cuda {
namespace {

__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }

// numpy's maximum / minimum (NaN wins).
template <typename T>
__device__ __forceinline__ T np_max(T a, T b) {
  return (a != a) ? a : ((b != b) ? b : (a > b ? a : b));
}
template <typename T>
__device__ __forceinline__ T np_min(T a, T b) {
  return (a != a) ? a : ((b != b) ? b : (a < b ? a : b));
}

template <typename T>
__device__ __forceinline__ T area_of(T x1, T y1, T x2, T y2) {
  return mul_rn(add_rn(sub_rn(x2, x1), T(1)), add_rn(sub_rn(y2, y1), T(1)));
}

template <typename T, typename C>
__global__ void mask_kernel(int64_t n, const T* __restrict__ boxes, C thresh, unsigned long long* __restrict__ mask,
                            int64_t col_blocks) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;
  const int row_size = static_cast<int>(min(n - row_block * kBlock, static_cast<int64_t>(kBlock)));
  const int col_size = static_cast<int>(min(n - col_block * kBlock, static_cast<int64_t>(kBlock)));
  __shared__ T sb[kBlock * 5];
  if (threadIdx.x < col_size) {
    const T* b = boxes + (col_block * kBlock + threadIdx.x) * 4;
    sb[threadIdx.x * 5 + 0] = b[0];
    sb[threadIdx.x * 5 + 1] = b[1];
    sb[threadIdx.x * 5 + 2] = b[2];
    sb[threadIdx.x * 5 + 3] = b[3];
    sb[threadIdx.x * 5 + 4] = area_of(b[0], b[1], b[2], b[3]);
  }
  __syncthreads();
  if (threadIdx.x < row_size) {
    const int64_t cur = row_block * kBlock + threadIdx.x;
    const T* b = boxes + cur * 4;
    const T x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
    const T area = area_of(x1, y1, x2, y2);
    unsigned long long bits = 0;
    const int start = (row_block == col_block) ? threadIdx.x + 1 : 0;
    for (int k = start; k < col_size; ++k) {
      const T* o = sb + k * 5;
      const T xx1 = np_max(x1, o[0]);
      const T yy1 = np_max(y1, o[1]);
      const T xx2 = np_min(x2, o[2]);
      const T yy2 = np_min(y2, o[3]);
      const T w = np_max(T(0), add_rn(sub_rn(xx2, xx1), T(1)));
      const T h = np_max(T(0), add_rn(sub_rn(yy2, yy1), T(1)));
      const T inter = mul_rn(w, h);
      const T ovr = div_rn(inter, sub_rn(add_rn(area, o[4]), inter));
      if (!(static_cast<C>(ovr) <= thresh)) bits |= 1ULL << k;
    }
    mask[cur * col_blocks + col_block] = bits;
  }
}

}  // namespace

template <typename T, typename C>
cudaError_t nms_mask(const T* boxes, int64_t n, C thresh, unsigned long long* mask, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const int64_t col_blocks = (n + kBlock - 1) / kBlock;
  if (col_blocks > 65535) return cudaErrorInvalidValue;
  const dim3 blocks(static_cast<unsigned int>(col_blocks), static_cast<unsigned int>(col_blocks));
  mask_kernel<T, C><<<blocks, kBlock, 0, stream>>>(n, boxes, thresh, mask, col_blocks);
  return cudaGetLastError();
}

template cudaError_t nms_mask<float, float>(const float*, int64_t, float, unsigned long long*, cudaStream_t);
template cudaError_t nms_mask<float, double>(const float*, int64_t, double, unsigned long long*, cudaStream_t);
template cudaError_t nms_mask<double, double>(const double*, int64_t, double, unsigned long long*, cudaStream_t);

}  // namespace frcnn_nms_cuda
