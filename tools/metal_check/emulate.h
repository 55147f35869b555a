// A CPU emulation of the Metal vocabulary the mlx_linalg kernels use, for running a kernel
// body on the host (tools/metal_check/emulate.py): one host thread per GPU thread, one
// threadgroup at a time. Threadgroup arrays are function statics (shared by the threads of
// the running threadgroup), barriers are std::barrier, and SIMD-group functions exchange
// values through a per-simdgroup buffer between two simdgroup barriers, so a body that
// calls them from divergent lanes deadlocks here as it would misbehave on a GPU.

#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace emu {
using host_thread = std::thread;  // `thread` is a macro below
}

// The Metal words below are macros: every system header comes before them.
#define device
#define constant
#define thread
#define threadgroup static
#define LA_TG
#define LA_INLINE inline
#define LA_UNROLL

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;

struct uint3 {
  uint x, y, z;
};
struct float4 {
  float x, y, z, w;
};

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline mem_flags operator|(mem_flags a, mem_flags b) {
  return static_cast<mem_flags>(static_cast<int>(a) | static_cast<int>(b));
}

namespace emu {
inline std::unique_ptr<std::barrier<>> group;
inline std::vector<std::unique_ptr<std::barrier<>>> simd;
inline uint64_t exchange[32][32];
inline thread_local uint lane = 0;
inline thread_local uint warp = 0;

template <typename T>
inline void put(T x) {
  static_assert(sizeof(T) <= 8, "emulated shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &x, sizeof(T));
  exchange[warp][lane] = bits;
  simd[warp]->arrive_and_wait();
}
template <typename T>
inline T get(uint from) {
  T x;
  uint64_t bits = exchange[warp][from & 31u];
  std::memcpy(&x, &bits, sizeof(T));
  return x;
}
inline void done() { simd[warp]->arrive_and_wait(); }
}  // namespace emu

inline void threadgroup_barrier(mem_flags) { emu::group->arrive_and_wait(); }
inline void simdgroup_barrier(mem_flags) { emu::simd[emu::warp]->arrive_and_wait(); }

template <typename T>
T simd_shuffle(T x, ushort from) {
  emu::put(x);
  T y = emu::get<T>(from);
  emu::done();
  return y;
}
template <typename T>
T simd_broadcast(T x, ushort from) { return simd_shuffle(x, from); }
template <typename T>
T simd_broadcast_first(T x) { return simd_shuffle(x, 0); }
template <typename T>
T simd_shuffle_xor(T x, ushort mask) { return simd_shuffle(x, (ushort)(emu::lane ^ mask)); }
template <typename T>
T simd_shuffle_down(T x, ushort d) {
  return simd_shuffle(x, (ushort)(emu::lane + d < 32 ? emu::lane + d : emu::lane));
}
template <typename T>
T simd_shuffle_up(T x, ushort d) {
  return simd_shuffle(x, (ushort)(emu::lane >= d ? emu::lane - d : emu::lane));
}
template <typename T, typename F>
T simd_reduce(T x, F f) {
  emu::put(x);
  T acc = emu::get<T>(0);
  for (uint l = 1; l < 32; ++l) acc = f(acc, emu::get<T>(l));
  emu::done();
  return acc;
}
template <typename T>
T simd_sum(T x) { return simd_reduce(x, [](T a, T b) { return a + b; }); }
template <typename T>
T simd_product(T x) { return simd_reduce(x, [](T a, T b) { return a * b; }); }
template <typename T>
T simd_max(T x) { return simd_reduce(x, [](T a, T b) { return a < b ? b : a; }); }
template <typename T>
T simd_min(T x) { return simd_reduce(x, [](T a, T b) { return b < a ? b : a; }); }
inline bool simd_any(bool p) { return simd_reduce(p, [](bool a, bool b) { return a || b; }); }
inline bool simd_all(bool p) { return simd_reduce(p, [](bool a, bool b) { return a && b; }); }

namespace metal {
inline float sqrt(float x) { return std::sqrt(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float abs(float x) { return std::fabs(x); }
inline int abs(int x) { return x < 0 ? -x : x; }
inline float fabs(float x) { return std::fabs(x); }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float fmin(float a, float b) { return std::fmin(a, b); }
inline float fmax(float a, float b) { return std::fmax(a, b); }
inline float copysign(float a, float b) { return std::copysign(a, b); }
inline float hypot(float a, float b) { return std::hypot(a, b); }
inline float exp(float x) { return std::exp(x); }
inline float frexp(float x, int& e) { return std::frexp(x, &e); }
inline float ldexp(float x, int k) { return std::ldexp(x, k); }
inline float log(float x) { return std::log(x); }
inline float sin(float x) { return std::sin(x); }
inline float cos(float x) { return std::cos(x); }
inline bool isnan(float x) { return std::isnan(x); }
inline bool isinf(float x) { return std::isinf(x); }
inline bool isfinite(float x) { return std::isfinite(x); }
inline float sign(float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : x); }
template <typename T>
T min(T a, T b) { return b < a ? b : a; }
template <typename T>
T max(T a, T b) { return a < b ? b : a; }
template <typename T>
T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
namespace precise {
inline float sqrt(float x) { return std::sqrt(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float divide(float a, float b) { return a / b; }
}  // namespace precise
}  // namespace metal

// Metal's bit cast (as_type<uint>(x) of a float, and back).
template <typename T, typename U>
T as_type(U x) {
  static_assert(sizeof(T) == sizeof(U), "as_type: sizes differ");
  T t;
  std::memcpy(&t, &x, sizeof t);
  return t;
}
