// torch binding of the CUDA bitmask NMS: sort-free (the caller passes the score order), mask on the GPU, the greedy
// pass over the mask on the CPU (one device-to-host copy), kept indices back on the GPU.
#include <ATen/ATen.h>
#include <torch/python.h>  // not torch/extension.h: the whole C++ frontend, ~20 s more to compile a file

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <string>
#include <tuple>
#include <vector>

#include "nms_cuda.h"

// setup.py passes the archs built for as one identifier (sm80_sm90ptx); it is quoted here for messages.
#define FRCNN_STR2(x) #x
#define FRCNN_STR(x) FRCNN_STR2(x)
#ifdef FRCNN_CUDA_ARCHS_ID
#define FRCNN_CUDA_ARCHS FRCNN_STR(FRCNN_CUDA_ARCHS_ID)
#else
#define FRCNN_CUDA_ARCHS ""
#endif

namespace {

// dets: (N, >=5) float32/float64 CUDA; order: (N,) int64 CUDA, row indices by descending score.
// cmp_f64: compare the IoU with thresh in float64 (else in the dets' dtype).
// Returns ((K,) int64 CUDA kept row indices in order, cuda_error: '' or the CUDA failure). The failure is returned,
// not thrown, so that the Python side can always raise a clear error.
std::tuple<at::Tensor, std::string> nms_cuda(const at::Tensor& dets, const at::Tensor& order, double thresh, bool cmp_f64) {
  TORCH_CHECK(dets.is_cuda() && order.is_cuda(), "gpu_nms: dets and order must be CUDA tensors");
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) >= 5, "gpu_nms: dets must be (N, 5), got ", dets.sizes());
  TORCH_CHECK(order.dim() == 1 && order.size(0) == dets.size(0) && order.scalar_type() == at::kLong,
              "gpu_nms: order must be (N,) int64");
  TORCH_CHECK(dets.scalar_type() == at::kFloat || dets.scalar_type() == at::kDouble,
              "gpu_nms: float32 or float64 dets expected, got ", dets.scalar_type());
  const c10::cuda::CUDAGuard guard(dets.device());
  const int64_t n = dets.size(0);
  if (n == 0) return {at::empty({0}, order.options()), std::string()};
  const auto boxes = dets.index_select(0, order).narrow(1, 0, 4).contiguous();
  const int64_t col_blocks = (n + frcnn_nms_cuda::kBlock - 1) / frcnn_nms_cuda::kBlock;
  auto mask = at::empty({n, col_blocks}, dets.options().dtype(at::kLong));
  auto* mask_ptr = reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  cudaError_t err;
  if (dets.scalar_type() == at::kDouble)
    err = frcnn_nms_cuda::nms_mask<double, double>(boxes.data_ptr<double>(), n, thresh, mask_ptr, stream);
  else if (cmp_f64)
    err = frcnn_nms_cuda::nms_mask<float, double>(boxes.data_ptr<float>(), n, thresh, mask_ptr, stream);
  else
    err = frcnn_nms_cuda::nms_mask<float, float>(boxes.data_ptr<float>(), n, static_cast<float>(thresh), mask_ptr,
                                                 stream);
  if (err != cudaSuccess)
    return {at::empty({0}, order.options()), std::string("gpu_nms: CUDA kernel failed: ") + cudaGetErrorString(err) +
                                                 " (built for CUDA archs '" + FRCNN_CUDA_ARCHS + "')"};

  const auto mask_cpu = mask.to(at::kCPU);
  const auto* m = reinterpret_cast<const unsigned long long*>(mask_cpu.data_ptr<int64_t>());
  std::vector<unsigned long long> removed(static_cast<size_t>(col_blocks), 0ULL);
  std::vector<int64_t> keep;
  keep.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t blk = i / frcnn_nms_cuda::kBlock, bit = i % frcnn_nms_cuda::kBlock;
    if (removed[blk] & (1ULL << bit)) continue;
    keep.push_back(i);
    const unsigned long long* row = m + i * col_blocks;
    for (int64_t j = blk; j < col_blocks; ++j) removed[j] |= row[j];
  }
  auto keep_pos = at::from_blob(keep.data(), {static_cast<int64_t>(keep.size())}, at::kLong)
                      .to(order.device(), /*non_blocking=*/false, /*copy=*/true);
  return {order.index_select(0, keep_pos), std::string()};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CUDA bitmask NMS (py_cpu_nms semantics)";
  m.def("nms_cuda", &nms_cuda, "dets (N,5) CUDA, order (N,) int64 CUDA, thresh, cmp_f64 -> (kept indices (CUDA), cuda_error)");
  m.attr("cuda_archs") = FRCNN_CUDA_ARCHS;
}
