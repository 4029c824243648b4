// Training-mode BatchNorm of a channels_last map on the CPU, in two passes over memory each way
// (pdarts/native.py, fast_ops._native_batch_norm).
//
// The map is read as rows of W columns, W a multiple of 16 (one AVX-512 register of fp32): C channels
// where C is a multiple of 16, otherwise f = 16 / gcd(C, 16) pixels a row (column j holds channel
// j % C), as fast_ops' wide form reads it; the loops are written in 16-float vectors (GCC's vector
// extensions: AVX-512, AVX2 or SSE by the CPU, target_clones), with the row width known when
// compiling for 16 to 128 columns. Rows are cut into blocks of about 8,192 values, which stay in the
// cache while they are read twice: each block's column means (summed as differences from the block's
// first row, so that fp32 keeps the digits of a map far from zero), then its sums of squared
// deviations from them; blocks and the columns of a channel are combined in fp64 (Chan et al.'s
// pairwise rule). So the statistics take one pass over memory, as accurate as a two-pass variance,
// and the same for any number of threads (the blocks do not depend on it).
//
// forward:  mean, var (biased) per channel; invstd = 1 / sqrt(var + eps); y = x * a + b with
//           a = invstd * weight, b = bias - mean * a (ATen's form); the running statistics take
//           momentum * (mean, unbiased var) + (1 - momentum) * themselves.
// relu:     y through a ReLU, and the backward pass of both (the gradient where x * a + b > 0, from x).
// backward: per channel sum_g = sum(grad), dot = sum(grad * (x - mean)) (fp32 per block, fp64 across);
//           grad_weight = dot * invstd, grad_bias = sum_g;
//           grad_x = (grad - sum_g / M) * invstd * weight - (x - mean) * dot / M * invstd^3 * weight.
// bf16 maps are read and written in bf16 (rounded to nearest even, as c10::BFloat16), computed in fp32.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PDARTS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PDARTS_CLONES
#endif

using f32x16 = float __attribute__((vector_size(64)));
using u32x16 = uint32_t __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));
using u16x16 = uint16_t __attribute__((vector_size(32)));

constexpr int64_t kLanes = 16;
constexpr int64_t kBlockElements = 8192;

inline f32x16 load(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline f32x16 load(const uint16_t* p) {  // bf16: the high half of an fp32
  u16x16 h;
  std::memcpy(&h, p, sizeof(h));
  return reinterpret_cast<f32x16>(__builtin_convertvector(h, u32x16) << 16);
}
inline void store(float* p, f32x16 v) { std::memcpy(p, &v, sizeof(v)); }
inline void store(uint16_t* p, f32x16 v) {  // to nearest even, as c10::BFloat16 rounds (NaN: 0x7FC0)
  const u32x16 bits = reinterpret_cast<u32x16>(v);
  const u32x16 rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const u32x16 nan = reinterpret_cast<u32x16>(v != v);
  const u16x16 h = __builtin_convertvector((rounded & ~nan) | (0x7FC0u & nan), u16x16);
  std::memcpy(p, &h, sizeof(h));
}

// The ReLU's gradient gate: g where the pre-activation is positive (as threshold_backward: y > 0).
inline f32x16 gate(f32x16 g, f32x16 pre) { return pre > 0.f ? g : f32x16{}; }
inline f32x16 relu(f32x16 v) { return v <= 0.f ? f32x16{} : v; }  // NaN stays NaN, as torch's

// The gradient at ``at`` (x's values there: xv), gated with RELU by the forward pass's x * pa + pb.
template <bool RELU, typename T>
inline f32x16 gradient_at(const T* grad, int64_t at, f32x16 xv, f32x16 pa, f32x16 pb) {
  const f32x16 g = load(grad + at);
  if constexpr (RELU) return gate(g, xv * pa + pb);
  return g;
}

// The kernels below run over one block: ``rows`` rows of ``NV`` vectors (NV_CT where it is known when
// compiling, else the runtime ``nv``). Per-column vectors (``mean``, ``a``...) hold W floats.

// Each column's mean and sum of squared deviations from it. The sums are vectors in registers where the
// row width is known when compiling; otherwise in ``mean`` and ``m2`` themselves (and a row of floats for
// the block's first row), read and written unaligned.
template <typename T, int64_t NV_CT>
PDARTS_CLONES void block_statistics(const T* __restrict x, int64_t rows, int64_t nv, float* __restrict mean,
                                    float* __restrict m2) {
  if constexpr (NV_CT > 0) {
    constexpr int64_t width = NV_CT * kLanes;
    f32x16 first[NV_CT], sum[NV_CT];
    for (int64_t j = 0; j < NV_CT; ++j) first[j] = load(x + j * kLanes), sum[j] = f32x16{};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < NV_CT; ++j) sum[j] += load(x + r * width + j * kLanes) - first[j];
    const float inverse = 1.f / static_cast<float>(rows);
    for (int64_t j = 0; j < NV_CT; ++j) first[j] += sum[j] * inverse, sum[j] = f32x16{};  // the means now
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < NV_CT; ++j) {
        const f32x16 d = load(x + r * width + j * kLanes) - first[j];
        sum[j] += d * d;
      }
    for (int64_t j = 0; j < NV_CT; ++j) store(mean + j * kLanes, first[j]), store(m2 + j * kLanes, sum[j]);
  } else {
    const int64_t width = nv * kLanes;
    std::vector<float> first_row(width);
    for (int64_t j = 0; j < nv; ++j) store(&first_row[j * kLanes], load(x + j * kLanes));
    const float* first = first_row.data();
    for (int64_t j = 0; j < nv; ++j) store(mean + j * kLanes, f32x16{}), store(m2 + j * kLanes, f32x16{});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t v = j * kLanes;
        store(mean + v, load(mean + v) + (load(x + r * width + v) - load(first + v)));
      }
    const float inverse = 1.f / static_cast<float>(rows);
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t v = j * kLanes;
      store(mean + v, load(first + v) + load(mean + v) * inverse);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t v = j * kLanes;
        const f32x16 d = load(x + r * width + v) - load(mean + v);
        store(m2 + v, load(m2 + v) + d * d);
      }
  }
}

// y = x * a + b per column, through a ReLU with RELU.
template <typename T, int64_t NV_CT, bool RELU>
PDARTS_CLONES void affine(const T* __restrict x, T* __restrict y, int64_t rows, int64_t nv, const float* __restrict a,
                          const float* __restrict b) {
  constexpr int64_t kFixed = NV_CT > 0 ? NV_CT : 1;
  if constexpr (NV_CT > 0) nv = NV_CT;
  const int64_t width = nv * kLanes;
  auto out = [](f32x16 v) { return RELU ? relu(v) : v; };
  if constexpr (NV_CT > 0) {  // the per-column vectors in registers
    f32x16 va[kFixed], vb[kFixed];
    for (int64_t j = 0; j < nv; ++j) va[j] = load(a + j * kLanes), vb[j] = load(b + j * kLanes);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t at = r * width + j * kLanes;
        store(y + at, out(load(x + at) * va[j] + vb[j]));
      }
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t at = r * width + j * kLanes;
        store(y + at, out(load(x + at) * load(a + j * kLanes) + load(b + j * kLanes)));
      }
  }
}

// Each column's sum of the gradient and of the gradient times (x - mean) (in registers or in the outputs,
// as ``block_statistics``); with RELU, of the gradient where the forward pass's x * pa + pb > 0.
template <typename T, int64_t NV_CT, bool RELU>
PDARTS_CLONES void block_gradient_sums(const T* __restrict grad, const T* __restrict x, int64_t rows, int64_t nv,
                                       const float* __restrict mean, const float* __restrict pa,
                                       const float* __restrict pb, float* __restrict sum, float* __restrict dot) {
  if constexpr (NV_CT > 0) {
    constexpr int64_t width = NV_CT * kLanes;
    f32x16 vm[NV_CT], vs[NV_CT], vd[NV_CT], va[NV_CT], vb[NV_CT];
    for (int64_t j = 0; j < NV_CT; ++j) {
      vm[j] = load(mean + j * kLanes), vs[j] = f32x16{}, vd[j] = f32x16{};
      va[j] = load(pa + j * kLanes), vb[j] = load(pb + j * kLanes);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < NV_CT; ++j) {
        const int64_t at = r * width + j * kLanes;
        const f32x16 xv = load(x + at), g = gradient_at<RELU>(grad, at, xv, va[j], vb[j]);
        vs[j] += g;
        vd[j] += g * (xv - vm[j]);
      }
    for (int64_t j = 0; j < NV_CT; ++j) store(sum + j * kLanes, vs[j]), store(dot + j * kLanes, vd[j]);
  } else {
    const int64_t width = nv * kLanes;
    for (int64_t j = 0; j < nv; ++j) store(sum + j * kLanes, f32x16{}), store(dot + j * kLanes, f32x16{});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t at = r * width + j * kLanes, v = j * kLanes;
        const f32x16 xv = load(x + at), g = gradient_at<RELU>(grad, at, xv, load(pa + v), load(pb + v));
        store(sum + v, load(sum + v) + g);
        store(dot + v, load(dot + v) + g * (xv - load(mean + v)));
      }
  }
}

// grad_x = g * a - (shift + (x - mean) * k), per column; g the gradient (with RELU, gated as above).
template <typename T, int64_t NV_CT, bool RELU>
PDARTS_CLONES void input_gradient(const T* __restrict grad, const T* __restrict x, T* __restrict grad_x, int64_t rows,
                                  int64_t nv, const float* __restrict mean, const float* __restrict pa,
                                  const float* __restrict pb, const float* __restrict shift, const float* __restrict a,
                                  const float* __restrict k) {
  if constexpr (NV_CT > 0) nv = NV_CT;
  const int64_t width = nv * kLanes;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t at = r * width + j * kLanes, v = j * kLanes;
      const f32x16 xv = load(x + at), g = gradient_at<RELU>(grad, at, xv, load(pa + v), load(pb + v));
      store(grad_x + at, g * load(a + v) - (load(shift + v) + (xv - load(mean + v)) * load(k + v)));
    }
}

// How many pixels make one row of a multiple of 16 values: 16 / gcd(C, 16).
inline int64_t pixels_per_row(int64_t channels) { return kLanes / std::gcd(channels, kLanes); }

// The map as rows of W columns (W = f * C, a multiple of 16), cut into blocks of rows.
struct Layout {
  int64_t channels, factor, width, rows, rows_per_block, blocks;
  Layout(int64_t count, int64_t channels)
      : channels(channels),
        factor(pixels_per_row(channels)),
        width(factor * channels),
        rows(count / width),
        rows_per_block(std::max<int64_t>(1, kBlockElements / width)),
        blocks((rows + rows_per_block - 1) / rows_per_block) {}
  int64_t vectors() const { return width / kLanes; }
  int64_t first(int64_t block) const { return block * rows_per_block * width; }  // its first element
  int64_t size(int64_t block) const { return std::min(rows_per_block, rows - block * rows_per_block); }
  std::vector<float> tiled(const std::vector<float>& per_channel) const {  // one value per column
    std::vector<float> out(width);
    for (int64_t j = 0; j < width; ++j) out[j] = per_channel[j % channels];
    return out;
  }
  // run(block, its first element, its rows, NV_CT) for every block, on the intra-op threads.
  template <typename F>
  void for_blocks(F&& run) const {
    auto each = [&](auto nv_ct) {
      at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) run(b, first(b), size(b), nv_ct);
      });
    };
    switch (vectors()) {  // the search's 16, 32, 64 and 128 channels; the rest at run time
      case 1: return each(std::integral_constant<int64_t, 1>{});
      case 2: return each(std::integral_constant<int64_t, 2>{});
      case 4: return each(std::integral_constant<int64_t, 4>{});
      case 8: return each(std::integral_constant<int64_t, 8>{});
      default: return each(std::integral_constant<int64_t, 0>{});
    }
  }
};

template <typename T>
void statistics(const T* x, const Layout& layout, std::vector<double>& mean, std::vector<double>& m2) {
  const int64_t W = layout.width, C = layout.channels;
  std::vector<float> means(layout.blocks * W), m2s(layout.blocks * W);
  layout.for_blocks([&](int64_t b, int64_t first, int64_t rows, auto nv_ct) {
    block_statistics<T, decltype(nv_ct)::value>(x + first, rows, layout.vectors(), &means[b * W], &m2s[b * W]);
  });
  // Chan et al.: (count, mean, m2) merged with each block's, per column, then the columns per channel.
  std::vector<double> column_mean(W, 0.0), column_m2(W, 0.0);
  double count = 0.0;
  for (int64_t b = 0; b < layout.blocks; ++b) {
    const double n = static_cast<double>(layout.size(b)), total = count + n;
    for (int64_t j = 0; j < W; ++j) {
      const double delta = means[b * W + j] - column_mean[j];
      column_mean[j] += delta * n / total;
      column_m2[j] += m2s[b * W + j] + delta * delta * count * n / total;
    }
    count = total;
  }
  mean.assign(C, 0.0), m2.assign(C, 0.0);
  for (int64_t j = 0; j < W; ++j) mean[j % C] += column_mean[j] / layout.factor;
  for (int64_t j = 0; j < W; ++j) {
    const double delta = column_mean[j] - mean[j % C];
    m2[j % C] += column_m2[j] + count * delta * delta;
  }
}

void check_map(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be a channels_last map");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name, " must be fp32 or bf16");
  const int64_t channels = t.size(1), pixels = channels > 0 ? t.numel() / channels : 0;
  TORCH_CHECK(channels > 0 && pixels > 0 && pixels % pixels_per_row(channels) == 0, name,
              " must have pixels that fill rows of a multiple of 16 values (see fast_ops._native_batch_norm)");
}

void check_vector(const c10::optional<at::Tensor>& t, int64_t channels, const char* name) {
  if (!t.has_value()) return;
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->numel() == channels && t->is_contiguous(),
              name, " must be a contiguous fp32 vector of one value per channel");
}

std::vector<float> vector_or(const c10::optional<at::Tensor>& t, int64_t channels, float fill) {
  if (!t.has_value()) return std::vector<float>(channels, fill);
  const float* data = t->const_data_ptr<float>();
  return std::vector<float>(data, data + channels);
}

// run(T*) with T the element type of x as the kernels read it (uint16_t: bf16 bits).
template <typename F>
void by_dtype(const at::Tensor& x, F&& run) {
  if (x.scalar_type() == at::kBFloat16) run(static_cast<uint16_t*>(nullptr));
  else run(static_cast<float*>(nullptr));
}

template <typename F>
void by_relu(bool relu, F&& run) {
  if (relu) run(std::true_type{});
  else run(std::false_type{});
}

// The forward pass's y = x * a + shift per channel: a = invstd * weight, shift = bias - mean * a.
void coefficients(const float* mean, const float* invstd, const std::vector<float>& w, const std::vector<float>& b,
                  std::vector<float>& a, std::vector<float>& shift) {
  const size_t C = w.size();
  a.resize(C), shift.resize(C);
  for (size_t c = 0; c < C; ++c) a[c] = invstd[c] * w[c], shift[c] = b[c] - mean[c] * a[c];
}

}  // namespace

// Returns (y in x's layout and dtype, mean, invstd), the statistics in fp32; y through a ReLU with ``relu``.
std::vector<at::Tensor> forward(const at::Tensor& x, const c10::optional<at::Tensor>& weight,
                                const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& running_mean,
                                const c10::optional<at::Tensor>& running_var, double momentum, double eps, bool relu) {
  check_map(x, "x");
  const int64_t C = x.size(1), M = x.numel() / C;
  for (auto [t, name] : {std::pair{&weight, "weight"}, {&bias, "bias"}, {&running_mean, "running_mean"},
                         {&running_var, "running_var"}})
    check_vector(*t, C, name);
  const Layout layout(x.numel(), C);
  std::vector<double> mean, m2;
  auto y = at::empty_like(x);
  auto save_mean = at::empty({C}, x.options().dtype(at::kFloat));
  auto save_invstd = at::empty({C}, x.options().dtype(at::kFloat));
  std::vector<float> w = vector_or(weight, C, 1.f), b = vector_or(bias, C, 0.f), a(C), shift(C);
  float* mean_out = save_mean.mutable_data_ptr<float>();
  float* invstd_out = save_invstd.mutable_data_ptr<float>();
  by_dtype(x, [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    const T* data = static_cast<const T*>(x.const_data_ptr());
    statistics(data, layout, mean, m2);
    for (int64_t c = 0; c < C; ++c) {
      mean_out[c] = static_cast<float>(mean[c]);
      invstd_out[c] = static_cast<float>(1.0 / std::sqrt(m2[c] / M + eps));
    }
    coefficients(mean_out, invstd_out, w, b, a, shift);
    const std::vector<float> wide_a = layout.tiled(a), wide_shift = layout.tiled(shift);
    T* out = static_cast<T*>(y.mutable_data_ptr());
    by_relu(relu, [&](auto with_relu) {
      layout.for_blocks([&](int64_t, int64_t first, int64_t rows, auto nv_ct) {
        affine<T, decltype(nv_ct)::value, decltype(with_relu)::value>(data + first, out + first, rows,
                                                                      layout.vectors(), wide_a.data(),
                                                                      wide_shift.data());
      });
    });
  });
  if (running_mean.has_value()) {
    float* rm = running_mean->mutable_data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) rm[c] = static_cast<float>(momentum * mean[c] + (1 - momentum) * rm[c]);
  }
  if (running_var.has_value()) {
    float* rv = running_var->mutable_data_ptr<float>();
    const double unbiased = 1.0 / static_cast<double>(std::max<int64_t>(M - 1, 1));
    for (int64_t c = 0; c < C; ++c) rv[c] = static_cast<float>(momentum * m2[c] * unbiased + (1 - momentum) * rv[c]);
  }
  return {y, save_mean, save_invstd};
}

// grad and x channels_last with the same dtype; returns (grad_x, grad_weight, grad_bias), each an
// undefined tensor unless asked for. With ``relu``, of BatchNorm followed by a ReLU (the forward pass's
// with ``relu``, its bias given): the gradient counts where x * a + shift > 0, recomputed from x.
std::vector<at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x, const c10::optional<at::Tensor>& weight,
                                 const c10::optional<at::Tensor>& bias, const at::Tensor& mean,
                                 const at::Tensor& invstd, bool input_grad, bool weight_grad, bool bias_grad,
                                 bool relu) {
  check_map(x, "x");
  check_map(grad, "grad");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(), "grad must match x");
  const int64_t C = x.size(1), M = x.numel() / C;
  check_vector(weight, C, "weight");
  check_vector(bias, C, "bias");
  check_vector(mean, C, "mean");
  check_vector(invstd, C, "invstd");
  const Layout layout(x.numel(), C);
  const int64_t W = layout.width;
  const float* is = invstd.const_data_ptr<float>();
  const std::vector<float> w = vector_or(weight, C, 1.f), wide_mean = layout.tiled(vector_or(mean, C, 0.f));
  std::vector<float> pre_a, pre_shift;  // the forward pass's coefficients (the ReLU's gate)
  coefficients(mean.const_data_ptr<float>(), is, w, vector_or(bias, C, 0.f), pre_a, pre_shift);
  const std::vector<float> wide_pa = layout.tiled(pre_a), wide_pb = layout.tiled(pre_shift);
  std::vector<double> sum(C, 0.0), dot(C, 0.0);
  at::Tensor grad_x, grad_weight, grad_bias;
  by_dtype(x, [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    const T* g = static_cast<const T*>(grad.const_data_ptr());
    const T* data = static_cast<const T*>(x.const_data_ptr());
    std::vector<float> sums(layout.blocks * W), dots(layout.blocks * W);
    by_relu(relu, [&](auto with_relu) {
      layout.for_blocks([&](int64_t b, int64_t first, int64_t rows, auto nv_ct) {
        block_gradient_sums<T, decltype(nv_ct)::value, decltype(with_relu)::value>(
            g + first, data + first, rows, layout.vectors(), wide_mean.data(), wide_pa.data(), wide_pb.data(),
            &sums[b * W], &dots[b * W]);
      });
    });
    for (int64_t b = 0; b < layout.blocks; ++b)
      for (int64_t j = 0; j < W; ++j) sum[j % C] += sums[b * W + j], dot[j % C] += dots[b * W + j];
    if (!input_grad) return;
    std::vector<float> shift(C), a(C), k(C);
    for (int64_t c = 0; c < C; ++c) {
      a[c] = is[c] * w[c];
      shift[c] = static_cast<float>(sum[c] / M) * a[c];
      k[c] = static_cast<float>(dot[c] / M * is[c] * is[c]) * a[c];
    }
    const std::vector<float> wide_shift = layout.tiled(shift), wide_a = layout.tiled(a), wide_k = layout.tiled(k);
    grad_x = at::empty_like(x);
    T* out = static_cast<T*>(grad_x.mutable_data_ptr());
    by_relu(relu, [&](auto with_relu) {
      layout.for_blocks([&](int64_t, int64_t first, int64_t rows, auto nv_ct) {
        input_gradient<T, decltype(nv_ct)::value, decltype(with_relu)::value>(
            g + first, data + first, out + first, rows, layout.vectors(), wide_mean.data(), wide_pa.data(),
            wide_pb.data(), wide_shift.data(), wide_a.data(), wide_k.data());
      });
    });
  });
  auto vector_options = x.options().dtype(at::kFloat);
  if (weight_grad) {
    grad_weight = at::empty({C}, vector_options);
    float* gw = grad_weight.mutable_data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) gw[c] = static_cast<float>(dot[c] * is[c]);
  }
  if (bias_grad) {
    grad_bias = at::empty({C}, vector_options);
    float* gb = grad_bias.mutable_data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) gb[c] = static_cast<float>(sum[c]);
  }
  return {grad_x, grad_weight, grad_bias};
}

namespace {

// The layer (and the ReLU after it, with ``relu``) as one autograd node with its backward pass in C++ (a
// Python autograd.Function costs about 15 us a call each way, a tenth of the kernel's time at
// 32x16x32x32): saves x, the weight, the bias (for the ReLU's gate) and the statistics; inputs x, weight,
// bias, running mean, running variance (edges where given), momentum, eps, relu.
struct TrainBatchNorm : public torch::autograd::Function<TrainBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                            const c10::optional<at::Tensor>& running_mean,
                            const c10::optional<at::Tensor>& running_var, double momentum, double eps, bool relu) {
    auto out = ::forward(x, weight, bias, running_mean, running_var, momentum, eps, relu);
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor()), out[1], out[2]});
    ctx->saved_data["relu"] = relu;
    return out[0];
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    auto given = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
    size_t edge = 0;  // the inputs given, in order
    const bool input_grad = ctx->needs_input_grad(edge++);
    const bool weight_grad = weight.defined() && ctx->needs_input_grad(edge++);
    const bool bias_grad = bias.defined() && ctx->needs_input_grad(edge++);
    const auto grad = grads[0].to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
    auto out = ::backward(grad, x, given(weight), given(bias), saved[3], saved[4], input_grad, weight_grad,
                          bias_grad, ctx->saved_data["relu"].toBool());
    return {out[0], out[1], out[2], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor train_batch_norm(const at::Tensor& x, const c10::optional<at::Tensor>& weight,
                            const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& running_mean,
                            const c10::optional<at::Tensor>& running_var, double momentum, double eps, bool relu) {
  return TrainBatchNorm::apply(x, weight, bias, running_mean, running_var, momentum, eps, relu);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
  m.def("train_batch_norm", &train_batch_norm);
}
