// GroupNorm followed by ReLU, forward and backward in one op each, on the CPU (TINY's conv + GN + ReLU layers).
//
// Why: PyTorch runs GroupNorm, ReLU and (under bf16 autocast) the dtype casts around GroupNorm as separate passes
// over the map, and its bfloat16 GroupNorm backward is slow on the CPU; together they were ~25% of a TINY training
// iteration. Here the forward reads the input twice (statistics, then normalise + ReLU) and writes the output once;
// the backward recomputes the ReLU mask from the input instead of storing the normalised map, reads the input and
// the incoming gradient twice and writes the input gradient once. The input and output keep their dtype (float32,
// float64 or bfloat16; bfloat16 is computed in float32) and their layout (channels last or contiguous).
//
// Channels-last float32 / bfloat16 maps (what the detector runs) take loops over the channels of each pixel that
// the compiler vectorises, built for AVX-512, AVX2 and plain x86-64 and chosen at load time (target_clones); other
// inputs (float64, contiguous NCHW) take a plain scalar path with the same arithmetic in double.
//
// Determinism: per-channel sums run over fixed blocks of pixels (float within a block, then double), and the blocks
// are added in order, so the result depends neither on the number of threads nor on the instruction set.
#include <ATen/ATen.h>
#include <torch/python.h>  // not torch/extension.h: the whole C++ frontend, ~20 s more to compile

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FRCNN_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRCNN_MULTIVERSION
#endif

namespace {

constexpr int64_t kBlock = 128;  // pixels per float partial sum

// ------------------------------------------------------------------------------------------------ element access
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even, as c10::BFloat16; NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (f != f) ? static_cast<uint16_t>(0x7FC0u) : static_cast<uint16_t>(rounded);
}

struct F32 {
  using T = float;
  static inline float get(const float* p, int64_t i) { return p[i]; }
  static inline void put(float* p, int64_t i, float v) { p[i] = v; }
};
struct BF16 {
  using T = uint16_t;
  static inline float get(const uint16_t* p, int64_t i) { return bf16_to_float(p[i]); }
  static inline void put(uint16_t* p, int64_t i, float v) { p[i] = float_to_bf16(v); }
};

// ------------------------------------------------------------- channels-last kernels over `pixels` rows of C values
// sum[c] += x, sumsq[c] += x * x (float within the call: the caller passes at most kBlock pixels)
template <typename E>
inline void cl_stats(const typename E::T* x, int64_t pixels, int64_t C, float* sum, float* sumsq) {
  for (int64_t p = 0; p < pixels; ++p) {
    const typename E::T* row = x + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = E::get(row, c);
      sum[c] += v;
      sumsq[c] += v * v;
    }
  }
}

// y = max(x * scale[c] + shift[c], 0)
template <typename E>
inline void cl_apply(const typename E::T* x, typename E::T* y, int64_t pixels, int64_t C, const float* scale,
                     const float* shift) {
  for (int64_t p = 0; p < pixels; ++p) {
    const typename E::T* in = x + p * C;
    typename E::T* out = y + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float z = E::get(in, c) * scale[c] + shift[c];
      E::put(out, c, z > 0.f ? z : 0.f);
    }
  }
}

// dz = dy where x * scale[c] + shift[c] > 0 else 0; sdz[c] += dz, sdzx[c] += dz * x
template <typename E>
inline void cl_grad_stats(const typename E::T* x, const typename E::T* dy, int64_t pixels, int64_t C,
                          const float* scale, const float* shift, float* sdz, float* sdzx) {
  for (int64_t p = 0; p < pixels; ++p) {
    const typename E::T* in = x + p * C;
    const typename E::T* g = dy + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = E::get(in, c);
      const float z = v * scale[c] + shift[c];
      const float gv = E::get(g, c);  // loaded unconditionally, so that the select vectorises
      const float d = z > 0.f ? gv : 0.f;
      sdz[c] += d;
      sdzx[c] += d * v;
    }
  }
}

// dx = dz * k1[c] + x * k2[c] + k3[c]
template <typename E>
inline void cl_grad_apply(const typename E::T* x, const typename E::T* dy, typename E::T* dx, int64_t pixels,
                          int64_t C, const float* scale, const float* shift, const float* k1, const float* k2,
                          const float* k3) {
  for (int64_t p = 0; p < pixels; ++p) {
    const typename E::T* in = x + p * C;
    const typename E::T* g = dy + p * C;
    typename E::T* out = dx + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = E::get(in, c);
      const float z = v * scale[c] + shift[c];
      const float gv = E::get(g, c);  // loaded unconditionally, so that the select vectorises
      const float d = z > 0.f ? gv : 0.f;
      E::put(out, c, d * k1[c] + v * k2[c] + k3[c]);
    }
  }
}

// One multiversioned entry point per kernel and element type (target_clones needs plain functions).
FRCNN_MULTIVERSION void stats_f32(const float* x, int64_t n, int64_t C, float* s, float* q) {
  cl_stats<F32>(x, n, C, s, q);
}
FRCNN_MULTIVERSION void stats_bf16(const uint16_t* x, int64_t n, int64_t C, float* s, float* q) {
  cl_stats<BF16>(x, n, C, s, q);
}
FRCNN_MULTIVERSION void apply_f32(const float* x, float* y, int64_t n, int64_t C, const float* a, const float* b) {
  cl_apply<F32>(x, y, n, C, a, b);
}
FRCNN_MULTIVERSION void apply_bf16(const uint16_t* x, uint16_t* y, int64_t n, int64_t C, const float* a,
                                   const float* b) {
  cl_apply<BF16>(x, y, n, C, a, b);
}
FRCNN_MULTIVERSION void grad_stats_f32(const float* x, const float* dy, int64_t n, int64_t C, const float* a,
                                       const float* b, float* s, float* q) {
  cl_grad_stats<F32>(x, dy, n, C, a, b, s, q);
}
FRCNN_MULTIVERSION void grad_stats_bf16(const uint16_t* x, const uint16_t* dy, int64_t n, int64_t C,
                                        const float* a, const float* b, float* s, float* q) {
  cl_grad_stats<BF16>(x, dy, n, C, a, b, s, q);
}
FRCNN_MULTIVERSION void grad_apply_f32(const float* x, const float* dy, float* dx, int64_t n, int64_t C,
                                       const float* a, const float* b, const float* k1, const float* k2,
                                       const float* k3) {
  cl_grad_apply<F32>(x, dy, dx, n, C, a, b, k1, k2, k3);
}
FRCNN_MULTIVERSION void grad_apply_bf16(const uint16_t* x, const uint16_t* dy, uint16_t* dx, int64_t n, int64_t C,
                                        const float* a, const float* b, const float* k1, const float* k2,
                                        const float* k3) {
  cl_grad_apply<BF16>(x, dy, dx, n, C, a, b, k1, k2, k3);
}

struct Kernels {
  void (*stats)(const void*, int64_t, int64_t, float*, float*);
  void (*apply)(const void*, void*, int64_t, int64_t, const float*, const float*);
  void (*grad_stats)(const void*, const void*, int64_t, int64_t, const float*, const float*, float*, float*);
  void (*grad_apply)(const void*, const void*, void*, int64_t, int64_t, const float*, const float*, const float*,
                     const float*, const float*);
  int64_t elem;  // bytes per element
};

Kernels kernels_for(at::ScalarType t) {
  if (t == at::kFloat)
    return {[](const void* x, int64_t n, int64_t C, float* s, float* q) {
              stats_f32(static_cast<const float*>(x), n, C, s, q);
            },
            [](const void* x, void* y, int64_t n, int64_t C, const float* a, const float* b) {
              apply_f32(static_cast<const float*>(x), static_cast<float*>(y), n, C, a, b);
            },
            [](const void* x, const void* g, int64_t n, int64_t C, const float* a, const float* b, float* s,
               float* q) {
              grad_stats_f32(static_cast<const float*>(x), static_cast<const float*>(g), n, C, a, b, s, q);
            },
            [](const void* x, const void* g, void* d, int64_t n, int64_t C, const float* a, const float* b,
               const float* k1, const float* k2, const float* k3) {
              grad_apply_f32(static_cast<const float*>(x), static_cast<const float*>(g), static_cast<float*>(d), n,
                             C, a, b, k1, k2, k3);
            },
            4};
  return {[](const void* x, int64_t n, int64_t C, float* s, float* q) {
            stats_bf16(static_cast<const uint16_t*>(x), n, C, s, q);
          },
          [](const void* x, void* y, int64_t n, int64_t C, const float* a, const float* b) {
            apply_bf16(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), n, C, a, b);
          },
          [](const void* x, const void* g, int64_t n, int64_t C, const float* a, const float* b, float* s,
             float* q) {
            grad_stats_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(g), n, C, a, b, s, q);
          },
          [](const void* x, const void* g, void* d, int64_t n, int64_t C, const float* a, const float* b,
             const float* k1, const float* k2, const float* k3) {
            grad_apply_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(g),
                            static_cast<uint16_t*>(d), n, C, a, b, k1, k2, k3);
          },
          2};
}

// ------------------------------------------------------------------------------------------------------ shapes
struct Shape {
  int64_t n, c, hw, groups, cpg;  // cpg: channels per group
};

Shape shape_of(const at::Tensor& x, int64_t groups) {
  TORCH_CHECK(x.dim() == 4, "group_norm_relu: input must be (N, C, H, W), got ", x.dim(), " dims");
  const int64_t c = x.size(1);
  TORCH_CHECK(groups > 0 && c % groups == 0, "group_norm_relu: ", c, " channels do not split into ", groups,
              " groups");
  return {x.size(0), c, x.size(2) * x.size(3), groups, c / groups};
}

bool fast_path(const at::Tensor& x) {
  return (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16) &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Per (n, c) sums over the pixels of the two values `block(n, p0, p1, a, b)` accumulates into a, b (float, C
// each) for pixels [p0, p1); blocks of kBlock pixels run in parallel and are added in order in double.
template <typename F>
void blocked_sums(const Shape& s, std::vector<double>& sum_a, std::vector<double>& sum_b, const F& block) {
  const int64_t blocks = (s.hw + kBlock - 1) / kBlock;
  std::vector<float> part_a(s.n * blocks * s.c, 0.f), part_b(s.n * blocks * s.c, 0.f);
  at::parallel_for(0, s.n * blocks, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, p0 = (t % blocks) * kBlock, p1 = std::min(s.hw, p0 + kBlock);
      block(n, p0, p1, part_a.data() + t * s.c, part_b.data() + t * s.c);
    }
  });
  sum_a.assign(s.n * s.c, 0.0);
  sum_b.assign(s.n * s.c, 0.0);
  for (int64_t t = 0; t < s.n * blocks; ++t) {
    const int64_t n = t / blocks;
    for (int64_t c = 0; c < s.c; ++c) {
      sum_a[n * s.c + c] += part_a[t * s.c + c];
      sum_b[n * s.c + c] += part_b[t * s.c + c];
    }
  }
}

// pixels of all images in parallel chunks: op(n, p0, p1) for pixels [p0, p1) of image n
template <typename F>
void blocked_apply(const Shape& s, const F& op) {
  const int64_t blocks = (s.hw + kBlock - 1) / kBlock;
  at::parallel_for(0, s.n * blocks, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, p0 = (t % blocks) * kBlock;
      op(n, p0, std::min(s.hw, p0 + kBlock));
    }
  });
}

// Element offset of (n, c, p) and the generic (scalar, double) path's accessors.
struct Layout {
  Shape s;
  bool channels_last;
  int64_t at(int64_t n, int64_t c, int64_t p) const {
    return channels_last ? (n * s.hw + p) * s.c + c : (n * s.c + c) * s.hw + p;
  }
};

// ------------------------------------------------------------------------------------------------------ forward
// From per-(n, c) sums: mean, rstd per (n, g) and the per-(n, c) affine map of the forward.
void group_stats(const Shape& s, const std::vector<double>& sum, const std::vector<double>& sumsq, double eps,
                 const double* W, const double* B, double* M, double* R, std::vector<float>& scale,
                 std::vector<float>& shift) {
  const double count = static_cast<double>(s.cpg * s.hw);
  scale.resize(s.n * s.c);
  shift.resize(s.n * s.c);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      double su = 0.0, sq = 0.0;
      for (int64_t c = g * s.cpg; c < (g + 1) * s.cpg; ++c) {
        su += sum[n * s.c + c];
        sq += sumsq[n * s.c + c];
      }
      const double mu = su / count, var = std::max(sq / count - mu * mu, 0.0), r = 1.0 / std::sqrt(var + eps);
      M[n * s.groups + g] = mu;
      R[n * s.groups + g] = r;
      for (int64_t c = g * s.cpg; c < (g + 1) * s.cpg; ++c) {
        scale[n * s.c + c] = static_cast<float>(r * W[c]);
        shift[n * s.c + c] = static_cast<float>(B[c] - mu * r * W[c]);
      }
    }
}

std::vector<at::Tensor> forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                                int64_t groups, double eps) {
  TORCH_CHECK(input.device().is_cpu(), "group_norm_relu: CPU tensors only, got ", input.device());
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == input.size(1) && bias.dim() == 1 &&
                  bias.size(0) == input.size(1),
              "group_norm_relu: weight and bias must be (C,) with C = ", input.size(1));
  const at::Tensor x = input.contiguous(input.suggest_memory_format());
  const Shape s = shape_of(x, groups);
  at::Tensor y = at::empty_like(x);
  const auto dopt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor mean = at::empty({s.n, groups}, dopt), rstd = at::empty({s.n, groups}, dopt);
  const at::Tensor w64 = weight.detach().to(at::kDouble).contiguous(), b64 = bias.detach().to(at::kDouble).contiguous();
  std::vector<double> sum, sumsq;
  std::vector<float> scale, shift;
  if (fast_path(x)) {
    const Kernels k = kernels_for(x.scalar_type());
    const char* X = static_cast<const char*>(x.data_ptr());
    char* Y = static_cast<char*>(y.data_ptr());
    const int64_t C = s.c, E = k.elem;
    blocked_sums(s, sum, sumsq, [&](int64_t n, int64_t p0, int64_t p1, float* a, float* b) {
      k.stats(X + (n * s.hw + p0) * C * E, p1 - p0, C, a, b);
    });
    group_stats(s, sum, sumsq, eps, w64.data_ptr<double>(), b64.data_ptr<double>(), mean.data_ptr<double>(),
                rstd.data_ptr<double>(), scale, shift);
    blocked_apply(s, [&](int64_t n, int64_t p0, int64_t p1) {
      const int64_t off = (n * s.hw + p0) * C * E;
      k.apply(X + off, Y + off, p1 - p0, C, scale.data() + n * C, shift.data() + n * C);
    });
    return {y, mean, rstd};
  }
  // generic path: any float dtype, any of the two layouts; double arithmetic
  const Layout L{s, x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()};
  sum.assign(s.n * s.c, 0.0);
  sumsq.assign(s.n * s.c, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "group_norm_relu_forward", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>();
    scalar_t* Y = y.data_ptr<scalar_t>();
    at::parallel_for(0, s.n * s.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        double a = 0.0, b = 0.0;
        for (int64_t p = 0; p < s.hw; ++p) {
          const double v = static_cast<double>(X[L.at(row / s.c, row % s.c, p)]);
          a += v;
          b += v * v;
        }
        sum[row] = a;
        sumsq[row] = b;
      }
    });
    group_stats(s, sum, sumsq, eps, w64.data_ptr<double>(), b64.data_ptr<double>(), mean.data_ptr<double>(),
                rstd.data_ptr<double>(), scale, shift);
    const double* M = mean.data_ptr<double>();
    const double* R = rstd.data_ptr<double>();
    const double* W = w64.data_ptr<double>();
    const double* B = b64.data_ptr<double>();
    at::parallel_for(0, s.n * s.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / s.c, c = row % s.c, g = c / s.cpg;
        const double a = R[n * groups + g] * W[c], b = B[c] - M[n * groups + g] * a;
        for (int64_t p = 0; p < s.hw; ++p) {
          const int64_t i = L.at(n, c, p);
          const double z = static_cast<double>(X[i]) * a + b;
          Y[i] = static_cast<scalar_t>(z > 0.0 ? z : 0.0);
        }
      }
    });
  });
  return {y, mean, rstd};
}

// ----------------------------------------------------------------------------------------------------- backward
// dx = rstd * (dz * w - mean_g(dz * w) - xhat * mean_g(dz * w * xhat)) = dz * k1[c] + x * k2[g] + k3[g], from the
// per-(n, c) sums of dz and dz * x; accumulates dweight, dbias.
void grad_coefficients(const Shape& s, const std::vector<double>& sdz, const std::vector<double>& sdzx,
                       const double* M, const double* R, const double* W, double* DW, double* DB,
                       std::vector<double>& k1, std::vector<double>& k2, std::vector<double>& k3) {
  const double count = static_cast<double>(s.cpg * s.hw);
  k1.resize(s.n * s.c);
  k2.resize(s.n * s.c);
  k3.resize(s.n * s.c);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      const double mu = M[n * s.groups + g], r = R[n * s.groups + g];
      double a = 0.0, b = 0.0;  // sum of dz * w, sum of dz * w * xhat over the group
      for (int64_t c = g * s.cpg; c < (g + 1) * s.cpg; ++c) {
        const double d = sdz[n * s.c + c], dxh = r * (sdzx[n * s.c + c] - mu * d);  // sum dz, sum dz * xhat
        DB[c] += d;
        DW[c] += dxh;
        a += W[c] * d;
        b += W[c] * dxh;
      }
      const double c2 = -r * r * b / count, c3 = -r * a / count - mu * c2;
      for (int64_t c = g * s.cpg; c < (g + 1) * s.cpg; ++c) {
        k1[n * s.c + c] = r * W[c];
        k2[n * s.c + c] = c2;
        k3[n * s.c + c] = c3;
      }
    }
}

std::vector<at::Tensor> backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& mean_in,
                                 const at::Tensor& rstd_in, const at::Tensor& weight, const at::Tensor& bias,
                                 int64_t groups) {
  const at::Tensor x = input.contiguous(input.suggest_memory_format());
  const Shape s = shape_of(x, groups);
  TORCH_CHECK(grad_output.sizes() == x.sizes(), "group_norm_relu: grad_output is ", grad_output.sizes(),
              " but the input was ", x.sizes());
  // the gradient in the input's dtype and layout
  const bool cl = x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  const at::Tensor dy = grad_output.to(x.scalar_type())
                            .contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  const at::Tensor mean = mean_in.to(at::kDouble).contiguous(), rstd = rstd_in.to(at::kDouble).contiguous();
  const at::Tensor w64 = weight.detach().to(at::kDouble).contiguous(), b64 = bias.detach().to(at::kDouble).contiguous();
  const double* M = mean.data_ptr<double>();
  const double* R = rstd.data_ptr<double>();
  const double* W = w64.data_ptr<double>();
  const double* B = b64.data_ptr<double>();
  const auto dopt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor dweight = at::zeros({s.c}, dopt), dbias = at::zeros({s.c}, dopt);
  at::Tensor dx = at::empty_like(x);
  // the forward's per-(n, c) affine map, to recompute the ReLU mask
  std::vector<double> scale_d(s.n * s.c), shift_d(s.n * s.c);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const double mu = M[n * groups + c / s.cpg], r = R[n * groups + c / s.cpg];
      scale_d[n * s.c + c] = r * W[c];
      shift_d[n * s.c + c] = B[c] - mu * r * W[c];
    }
  std::vector<double> sdz, sdzx, k1, k2, k3;
  if (fast_path(x)) {
    const Kernels k = kernels_for(x.scalar_type());
    std::vector<float> scale(scale_d.begin(), scale_d.end()), shift(shift_d.begin(), shift_d.end());
    const char* X = static_cast<const char*>(x.data_ptr());
    const char* G = static_cast<const char*>(dy.data_ptr());
    char* D = static_cast<char*>(dx.data_ptr());
    const int64_t C = s.c, E = k.elem;
    blocked_sums(s, sdz, sdzx, [&](int64_t n, int64_t p0, int64_t p1, float* a, float* b) {
      const int64_t off = (n * s.hw + p0) * C * E;
      k.grad_stats(X + off, G + off, p1 - p0, C, scale.data() + n * C, shift.data() + n * C, a, b);
    });
    grad_coefficients(s, sdz, sdzx, M, R, W, dweight.data_ptr<double>(), dbias.data_ptr<double>(), k1, k2, k3);
    std::vector<float> f1(k1.begin(), k1.end()), f2(k2.begin(), k2.end()), f3(k3.begin(), k3.end());
    blocked_apply(s, [&](int64_t n, int64_t p0, int64_t p1) {
      const int64_t off = (n * s.hw + p0) * C * E;
      k.grad_apply(X + off, G + off, D + off, p1 - p0, C, scale.data() + n * C, shift.data() + n * C,
                   f1.data() + n * C, f2.data() + n * C, f3.data() + n * C);
    });
  } else {
    const Layout L{s, cl};
    sdz.assign(s.n * s.c, 0.0);
    sdzx.assign(s.n * s.c, 0.0);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "group_norm_relu_backward", [&] {
      const scalar_t* X = x.data_ptr<scalar_t>();
      const scalar_t* G = dy.data_ptr<scalar_t>();
      scalar_t* D = dx.data_ptr<scalar_t>();
      auto dz_at = [&](int64_t i, int64_t nc, double v) {
        return v * scale_d[nc] + shift_d[nc] > 0.0 ? static_cast<double>(G[i]) : 0.0;
      };
      at::parallel_for(0, s.n * s.c, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          double a = 0.0, b = 0.0;
          for (int64_t p = 0; p < s.hw; ++p) {
            const int64_t i = L.at(row / s.c, row % s.c, p);
            const double v = static_cast<double>(X[i]), d = dz_at(i, row, v);
            a += d;
            b += d * v;
          }
          sdz[row] = a;
          sdzx[row] = b;
        }
      });
      grad_coefficients(s, sdz, sdzx, M, R, W, dweight.data_ptr<double>(), dbias.data_ptr<double>(), k1, k2, k3);
      at::parallel_for(0, s.n * s.c, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row)
          for (int64_t p = 0; p < s.hw; ++p) {
            const int64_t i = L.at(row / s.c, row % s.c, p);
            const double v = static_cast<double>(X[i]);
            D[i] = static_cast<scalar_t>(dz_at(i, row, v) * k1[row] + v * k2[row] + k3[row]);
          }
      });
    });
  }
  return {dx, dweight.to(weight.scalar_type()), dbias.to(bias.scalar_type())};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("group_norm_relu_forward", &forward, "relu(group_norm(x)) -> (y, mean (N, G), rstd (N, G)) [CPU]");
  m.def("group_norm_relu_backward", &backward, "-> (grad_input, grad_weight, grad_bias) [CPU]");
}
