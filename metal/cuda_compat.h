// CUDA compatibility header: the Metal vocabulary used by the kernel bodies in metal/,
// defined for mx.fast.cuda_kernel (NVRTC). MLX's generated CUDA source includes its device
// utilities and <cooperative_groups.h> first, then this header, then the kernel signature
// and the body inside namespace mlx::core::cu; the macros below are therefore defined after
// every system header and only reach our own code.
//
// Mapping (Metal -> CUDA):
//   address spaces   device, constant, thread -> nothing; threadgroup -> __shared__ (only for
//                    arrays declared in a kernel body); LA_TG -> nothing (pointer qualifier
//                    for threadgroup memory in helpers: CUDA pointers are generic)
//   LA_UNROLL        #pragma unroll (Metal: clang loop unroll(full))
//   thread indices   thread_position_in_grid, threadgroup_position_in_grid,
//                    thread_position_in_threadgroup, threads_per_threadgroup (uint3),
//                    thread_index_in_threadgroup, thread_index_in_simdgroup,
//                    simdgroup_index_in_threadgroup, simdgroups_per_threadgroup,
//                    threads_per_simdgroup (uint), threadgroups_per_grid, threads_per_grid
//   barriers         threadgroup_barrier -> __syncthreads, simdgroup_barrier -> __syncwarp
//   SIMD-group ops   simd_sum/max/min/product, simd_shuffle[_xor/_up/_down],
//                    simd_broadcast[_first], simd_any/all -> warp shuffles over all 32 lanes
//   math             metal::sqrt, rsqrt, abs, fabs, fma, min, max, fmin, fmax, copysign,
//                    hypot, exp, frexp, ldexp, log, isnan, isinf, isfinite, sign, clamp, precise::*
//   bit casts        as_type<uint>(float), as_type<float>(uint) -> __float_as_uint, __uint_as_float
//
// A warp is 32 lanes on every NVIDIA GPU, as a SIMD-group is on Apple GPUs. The SIMD-group
// functions use the full warp mask: call them only where all 32 lanes of the simdgroup are
// active (simdgroup-uniform control flow), which the kernel contract requires anyway.


// CUDA spells __device__ as __attribute__((device)) through a macro, so once `device` is an
// empty macro (Metal's address space) that spelling breaks; the attribute's reserved name
// __device__ is expanded by nobody. Same for __constant__, which nothing after this uses.
#undef __device__
#define __device__ __attribute__((__device__))

#define device
#define constant
#define thread
#define threadgroup __shared__
#define LA_TG
#define LA_INLINE __device__ __forceinline__
#define LA_UNROLL _Pragma("unroll")

#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;

#define thread_position_in_grid                                                   \
  (make_uint3(blockIdx.x * blockDim.x + threadIdx.x, blockIdx.y * blockDim.y + threadIdx.y, \
              blockIdx.z * blockDim.z + threadIdx.z))
#define threadgroup_position_in_grid (blockIdx)
#define thread_position_in_threadgroup (threadIdx)
#define threads_per_threadgroup (blockDim)
#define threadgroups_per_grid (gridDim)
#define threads_per_grid \
  (make_uint3(gridDim.x * blockDim.x, gridDim.y * blockDim.y, gridDim.z * blockDim.z))
#define thread_index_in_threadgroup \
  (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z))
#define thread_index_in_simdgroup (thread_index_in_threadgroup & 31u)
#define simdgroup_index_in_threadgroup (thread_index_in_threadgroup >> 5)
#define simdgroups_per_threadgroup ((blockDim.x * blockDim.y * blockDim.z + 31u) >> 5)
#define threads_per_simdgroup (32u)
#define thread_execution_width (32u)

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
__device__ __forceinline__ mem_flags operator|(mem_flags a, mem_flags b) {
  return static_cast<mem_flags>(static_cast<int>(a) | static_cast<int>(b));
}

template <typename T, typename U>
__device__ __forceinline__ T as_type(U x);
template <>
__device__ __forceinline__ uint as_type<uint, float>(float x) { return __float_as_uint(x); }
template <>
__device__ __forceinline__ float as_type<float, uint>(uint x) { return __uint_as_float(x); }

__device__ __forceinline__ void threadgroup_barrier(mem_flags) { __syncthreads(); }
__device__ __forceinline__ void simdgroup_barrier(mem_flags) { __syncwarp(); }

template <typename T>
__device__ __forceinline__ T simd_shuffle(T x, uint lane) {
  return __shfl_sync(0xffffffffu, x, lane);
}
template <typename T>
__device__ __forceinline__ T simd_broadcast(T x, uint lane) {
  return __shfl_sync(0xffffffffu, x, lane);
}
template <typename T>
__device__ __forceinline__ T simd_broadcast_first(T x) {
  return __shfl_sync(0xffffffffu, x, 0);
}
template <typename T>
__device__ __forceinline__ T simd_shuffle_xor(T x, uint mask) {
  return __shfl_xor_sync(0xffffffffu, x, mask);
}
template <typename T>
__device__ __forceinline__ T simd_shuffle_down(T x, uint delta) {
  return __shfl_down_sync(0xffffffffu, x, delta);
}
template <typename T>
__device__ __forceinline__ T simd_shuffle_up(T x, uint delta) {
  return __shfl_up_sync(0xffffffffu, x, delta);
}
template <typename T>
__device__ __forceinline__ T simd_sum(T x) {
  for (int m = 16; m > 0; m >>= 1) x += __shfl_xor_sync(0xffffffffu, x, m);
  return x;
}
template <typename T>
__device__ __forceinline__ T simd_product(T x) {
  for (int m = 16; m > 0; m >>= 1) x *= __shfl_xor_sync(0xffffffffu, x, m);
  return x;
}
template <typename T>
__device__ __forceinline__ T simd_max(T x) {
  for (int m = 16; m > 0; m >>= 1) {
    T y = __shfl_xor_sync(0xffffffffu, x, m);
    x = y > x ? y : x;
  }
  return x;
}
template <typename T>
__device__ __forceinline__ T simd_min(T x) {
  for (int m = 16; m > 0; m >>= 1) {
    T y = __shfl_xor_sync(0xffffffffu, x, m);
    x = y < x ? y : x;
  }
  return x;
}
__device__ __forceinline__ bool simd_any(bool p) { return __any_sync(0xffffffffu, p); }
__device__ __forceinline__ bool simd_all(bool p) { return __all_sync(0xffffffffu, p); }

namespace metal {
__device__ __forceinline__ float sqrt(float x) { return ::sqrtf(x); }
__device__ __forceinline__ float rsqrt(float x) { return ::rsqrtf(x); }
__device__ __forceinline__ float abs(float x) { return ::fabsf(x); }
__device__ __forceinline__ int abs(int x) { return x < 0 ? -x : x; }
__device__ __forceinline__ float fabs(float x) { return ::fabsf(x); }
__device__ __forceinline__ float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
__device__ __forceinline__ float fmin(float a, float b) { return ::fminf(a, b); }
__device__ __forceinline__ float fmax(float a, float b) { return ::fmaxf(a, b); }
__device__ __forceinline__ float copysign(float a, float b) { return ::copysignf(a, b); }
__device__ __forceinline__ float hypot(float a, float b) { return ::hypotf(a, b); }
__device__ __forceinline__ float exp(float x) { return ::expf(x); }
__device__ __forceinline__ float frexp(float x, int& e) { return ::frexpf(x, &e); }
__device__ __forceinline__ float ldexp(float x, int k) { return ::ldexpf(x, k); }
__device__ __forceinline__ float log(float x) { return ::logf(x); }
__device__ __forceinline__ float sin(float x) { return ::sinf(x); }
__device__ __forceinline__ float cos(float x) { return ::cosf(x); }
__device__ __forceinline__ bool isnan(float x) { return x != x; }
__device__ __forceinline__ bool isinf(float x) { return ::fabsf(x) == __int_as_float(0x7f800000); }
__device__ __forceinline__ bool isfinite(float x) { return ::fabsf(x) <= 3.402823466e38f; }
__device__ __forceinline__ float sign(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == 0.0f ? 0.0f : x));
}
template <typename T>
__device__ __forceinline__ T min(T a, T b) { return b < a ? b : a; }
template <typename T>
__device__ __forceinline__ T max(T a, T b) { return a < b ? b : a; }
template <typename T>
__device__ __forceinline__ T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
namespace precise {
__device__ __forceinline__ float sqrt(float x) { return ::__fsqrt_rn(x); }
__device__ __forceinline__ float divide(float a, float b) { return ::__fdiv_rn(a, b); }
__device__ __forceinline__ float rsqrt(float x) { return 1.0f / ::__fsqrt_rn(x); }
}  // namespace precise
}  // namespace metal
