// The search's skip dropout in one pass over memory each way (pdarts/native.py, SkipDropout).
//
// The mask is keep_mask's (pdarts/search/model.py), bit for bit: numpy's PCG64 stream (XSL-RR 128/64,
// the state and increment numpy's seeding gives), each 64-bit word read as four 16-bit numbers
// u compared with the high half h of the threshold (keep where u > h); where u == h, the next 16-bit
// numbers of the stream after the first draw decide against the low half l (keep where v >= l).
// Each thread jumps ahead in the stream to its first word (PCG's O(log n) advance), so the draw
// runs on every intra-op thread.
//
// forward:  y = (x * keep) * s, keep as bytes (0 or 1), in x's memory order; in bf16, rounded once
//           as torch rounds (x * keep) * s.
// backward: grad_x = (grad * s) * keep, rounded as torch rounds it; grad_s = sum(grad * x * keep)
//           accumulated in fp32 per block and fp64 across blocks.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace {

using u64 = uint64_t;
using u128 = unsigned __int128;

constexpr u128 kMultiplier = (static_cast<u128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;
constexpr int64_t kWordsPerBlock = 256;  // 1,024 mask bytes per block of the draw

// PCG64's output function (XSL-RR) of a state.
inline u64 output(u128 state) {
  u64 folded = static_cast<u64>(state >> 64) ^ static_cast<u64>(state);
  unsigned rotation = static_cast<unsigned>(state >> 122);
  return (folded >> rotation) | (folded << ((64 - rotation) & 63));
}

struct Pcg64 {
  u128 state, inc;

  inline u64 next() {
    state = state * kMultiplier + inc;
    return output(state);
  }

  // The state ``delta`` steps on (Brown, "Random number generation with arbitrary strides", 1994).
  void advance(u128 delta) {
    u128 multiply = 1, add = 0, step_multiply = kMultiplier, step_add = inc;
    while (delta > 0) {
      if (delta & 1) {
        multiply *= step_multiply;
        add = add * step_multiply + step_add;
      }
      step_add = (step_multiply + 1) * step_add;
      step_multiply *= step_multiply;
      delta >>= 1;
    }
    state = multiply * state + add;
  }
};

inline u128 join(int64_t high, int64_t low) {
  return (static_cast<u128>(static_cast<u64>(high)) << 64) | static_cast<u64>(low);
}

// Four generators, each one word ahead of the last and stepping four words at a time: the stream
// in order, from four independent 128-bit multiplication chains (one chain's multiply waits for
// its last; four overlap).
struct Pcg64x4 {
  u128 states[4];
  u128 multiply4, add4;

  explicit Pcg64x4(const Pcg64& at) {
    for (int j = 0; j < 4; ++j) {  // states[j] gives the word ``j`` words on
      Pcg64 lane = at;
      lane.advance(static_cast<u128>(j + 1));
      states[j] = lane.state;
    }
    Pcg64 origin{0, at.inc};  // four steps from 0: the additive constant of a four-step jump
    origin.advance(4);
    add4 = origin.state;
    multiply4 = kMultiplier * kMultiplier;
    multiply4 *= multiply4;
  }

  // The next 4 * ``groups`` words of the stream.
  inline void fill(u64* words, int64_t groups) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int j = 0; j < 4; ++j) {
        words[4 * g + j] = output(states[j]);
        states[j] = states[j] * multiply4 + add4;
      }
    }
  }
};

inline uint16_t round_bf16(float v) {  // to nearest even, as c10::BFloat16 does (NaN: 0x7FC0)
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(v != v ? 0x7FC0u : rounded);
}

inline float bf16_float(uint16_t v) { return std::bit_cast<float>(static_cast<uint32_t>(v) << 16); }

// The element loops, compiled for AVX-512, AVX2 and plain x86-64 (the CPU picks when the library
// loads). Each loop is branch-free, so that it vectorises: a loop that also compares the random
// numbers mispredicts every other element (3 ms against 0.1 for a 32x16x32x32 map).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PDARTS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PDARTS_CLONES
#endif

// keep[i] = numbers[i] > high; returns how many numbers equal ``high`` (ties, settled later).
PDARTS_CLONES int64_t draw_keep(const uint16_t* __restrict numbers, uint8_t* __restrict keep, int64_t n,
                                uint16_t high) {
  int64_t ties = 0;
  for (int64_t i = 0; i < n; ++i) keep[i] = numbers[i] > high;
  for (int64_t i = 0; i < n; ++i) ties += numbers[i] == high;
  return ties;
}

PDARTS_CLONES void apply_bf16(const uint16_t* __restrict x, uint16_t* __restrict y, const uint8_t* __restrict keep,
                              int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(bf16_float(x[i]) * static_cast<float>(keep[i]) * scale);
}

PDARTS_CLONES void apply_f32(const float* __restrict x, float* __restrict y, const uint8_t* __restrict keep,
                             int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * static_cast<float>(keep[i]) * scale;
}

PDARTS_CLONES float backward_bf16(const uint16_t* __restrict grad, const uint16_t* __restrict x,
                                  const uint8_t* __restrict keep, uint16_t* __restrict grad_x, int64_t n,
                                  float scale) {
  if (grad_x != nullptr) {  // torch: (grad * s) rounded, then times the mask
    for (int64_t i = 0; i < n; ++i)
      grad_x[i] = round_bf16(bf16_float(round_bf16(bf16_float(grad[i]) * scale)) * static_cast<float>(keep[i]));
  }
  float sum = 0.f;
  if (x != nullptr) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += bf16_float(grad[i]) * bf16_float(x[i]) * static_cast<float>(keep[i]);
  }
  return sum;
}

PDARTS_CLONES float backward_f32(const float* __restrict grad, const float* __restrict x,
                                 const uint8_t* __restrict keep, float* __restrict grad_x, int64_t n, float scale) {
  if (grad_x != nullptr) {
    for (int64_t i = 0; i < n; ++i) grad_x[i] = (grad[i] * scale) * static_cast<float>(keep[i]);
  }
  float sum = 0.f;
  if (x != nullptr) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += grad[i] * x[i] * static_cast<float>(keep[i]);
  }
  return sum;
}

inline void apply(const at::BFloat16* x, at::BFloat16* y, const uint8_t* keep, int64_t n, float scale) {
  apply_bf16(reinterpret_cast<const uint16_t*>(x), reinterpret_cast<uint16_t*>(y), keep, n, scale);
}
inline void apply(const float* x, float* y, const uint8_t* keep, int64_t n, float scale) {
  apply_f32(x, y, keep, n, scale);
}
inline float value(float x) { return x; }
inline float value(at::BFloat16 x) { return bf16_float(x.x); }
inline void store(float* y, float v) { *y = v; }
inline void store(at::BFloat16* y, float v) { y->x = round_bf16(v); }
inline float block_backward(const at::BFloat16* grad, const at::BFloat16* x, const uint8_t* keep,
                            at::BFloat16* grad_x, int64_t n, float scale) {
  return backward_bf16(reinterpret_cast<const uint16_t*>(grad), reinterpret_cast<const uint16_t*>(x), keep,
                       reinterpret_cast<uint16_t*>(grad_x), n, scale);
}
inline float block_backward(const float* grad, const float* x, const uint8_t* keep, float* grad_x, int64_t n,
                            float scale) {
  return backward_f32(grad, x, keep, grad_x, n, scale);
}

template <typename T>
void forward_kernel(const T* x, T* y, uint8_t* keep, int64_t count, Pcg64 base, uint16_t high, uint16_t low,
                    float scale) {
  const int64_t words = (count + 3) / 4;
  std::mutex lock;
  std::map<int64_t, std::vector<int64_t>> ties_by_start;  // each thread's ties, by its first word
  at::parallel_for(0, words, kWordsPerBlock, [&](int64_t begin, int64_t end) {
    Pcg64 at_begin = base;
    at_begin.advance(static_cast<u128>(begin));
    Pcg64x4 bits(at_begin);
    std::vector<int64_t> ties;
    u64 block_words[kWordsPerBlock + 3];
    for (int64_t block = begin; block < end; block += kWordsPerBlock) {
      const int64_t count_words = std::min(kWordsPerBlock, end - block);
      bits.fill(block_words, (count_words + 3) / 4);  // a last group past the range is never read
      uint16_t numbers[4 * (kWordsPerBlock + 3)];
      std::memcpy(numbers, block_words, sizeof(u64) * count_words);  // little-endian: numpy's uint16 view
      const int64_t first = 4 * block;
      const int64_t n = std::min<int64_t>(4 * count_words, count - first);
      if (draw_keep(numbers, keep + first, n, high) > 0) {
        for (int64_t i = 0; i < n; ++i) {
          if (numbers[i] == high) ties.push_back(first + i);
        }
      }
      apply(x + first, y + first, keep + first, n, scale);
    }
    std::lock_guard<std::mutex> guard(lock);
    ties_by_start[begin] = std::move(ties);
  });
  std::vector<int64_t> ties;
  for (auto& [start, found] : ties_by_start) ties.insert(ties.end(), found.begin(), found.end());
  if (ties.empty()) return;
  Pcg64 bits = base;
  bits.advance(static_cast<u128>(words));
  for (size_t j = 0; j < ties.size(); j += 4) {
    u64 word = bits.next();
    uint16_t numbers[4];
    std::memcpy(numbers, &word, sizeof(word));
    for (size_t k = 0; k < 4 && j + k < ties.size(); ++k) {
      const int64_t i = ties[j + k];
      const bool kept = numbers[k] >= low;
      keep[i] = kept;
      store(y + i, value(x[i]) * static_cast<float>(kept) * scale);
    }
  }
}

template <typename T>
double backward_kernel(const T* grad, const T* x, const uint8_t* keep, T* grad_x, int64_t count, float scale) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * kBlock, n = std::min(kBlock, count - first);
      partial[b] = block_backward(grad + first, x == nullptr ? nullptr : x + first, keep + first,
                                  grad_x == nullptr ? nullptr : grad_x + first, n, scale);
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void check_dense(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast),
              name, " must be dense (contiguous or channels_last)");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name, " must be fp32 or bf16");
}

}  // namespace

// x dense; returns (y with x's layout, keep: count bytes in x's memory order).
std::vector<at::Tensor> forward(const at::Tensor& x, double scale, int64_t state_high, int64_t state_low,
                                int64_t inc_high, int64_t inc_low, int64_t high, int64_t low) {
  check_dense(x, "x");
  auto y = at::empty_like(x);
  auto keep = at::empty({x.numel()}, x.options().dtype(at::kByte));
  Pcg64 base{join(state_high, state_low), join(inc_high, inc_low)};
  if (x.scalar_type() == at::kBFloat16) {
    forward_kernel(x.const_data_ptr<at::BFloat16>(), y.mutable_data_ptr<at::BFloat16>(), keep.mutable_data_ptr<uint8_t>(),
                   x.numel(), base, static_cast<uint16_t>(high), static_cast<uint16_t>(low), static_cast<float>(scale));
  } else {
    forward_kernel(x.const_data_ptr<float>(), y.mutable_data_ptr<float>(), keep.mutable_data_ptr<uint8_t>(), x.numel(),
                   base, static_cast<uint16_t>(high), static_cast<uint16_t>(low), static_cast<float>(scale));
  }
  return {y, keep};
}

// grad and x with the same strides; returns (grad_x or an undefined tensor, sum(grad * x * keep) or 0).
std::tuple<at::Tensor, double> backward(const at::Tensor& grad, const c10::optional<at::Tensor>& x,
                                        const at::Tensor& keep, double scale, bool input_grad) {
  check_dense(grad, "grad");
  if (x.has_value()) TORCH_CHECK(x->strides() == grad.strides() && x->scalar_type() == grad.scalar_type(),
                                 "grad and x must have the same layout and dtype");
  at::Tensor grad_x = input_grad ? at::empty_like(grad) : at::Tensor();
  double sum = 0.0;
  const float s = static_cast<float>(scale);
  if (grad.scalar_type() == at::kBFloat16) {
    sum = backward_kernel(grad.const_data_ptr<at::BFloat16>(), x ? x->const_data_ptr<at::BFloat16>() : nullptr,
                          keep.const_data_ptr<uint8_t>(), input_grad ? grad_x.mutable_data_ptr<at::BFloat16>() : nullptr,
                          grad.numel(), s);
  } else {
    sum = backward_kernel(grad.const_data_ptr<float>(), x ? x->const_data_ptr<float>() : nullptr,
                          keep.const_data_ptr<uint8_t>(), input_grad ? grad_x.mutable_data_ptr<float>() : nullptr,
                          grad.numel(), s);
  }
  return {grad_x, sum};
}

// The first ``count`` raw 64-bit words of the stream, as numpy's PCG64.random_raw gives them (for tests).
at::Tensor raw_words(int64_t state_high, int64_t state_low, int64_t inc_high, int64_t inc_low, int64_t skip,
                     int64_t count) {
  Pcg64 bits{join(state_high, state_low), join(inc_high, inc_low)};
  bits.advance(static_cast<u128>(skip));
  auto out = at::empty({count}, at::TensorOptions().dtype(at::kLong));
  auto* data = out.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) data[i] = static_cast<int64_t>(bits.next());
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
  m.def("raw_words", &raw_words);
}
