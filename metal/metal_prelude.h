// Metal prelude of every mlx_linalg kernel: the standard library, unqualified.
// MLX prepends its own utilities to a custom kernel's library; this makes the names the
// bodies use (simd_sum, threadgroup_barrier, mem_flags, ...) independent of what those
// utilities happen to pull in.
#include <metal_stdlib>
using namespace metal;

// Full unrolling of a loop with a compile-time trip count (keeps register arrays in
// registers); cuda_compat.h spells it for NVRTC.
#define LA_UNROLL _Pragma("clang loop unroll(full)")
