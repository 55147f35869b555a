// A C++ stand-in for what a Metal kernel body can see: the Metal standard library names the
// mlx_linalg kernels may use, with Metal's types and overloads, declared for a host C++
// compiler. tools/metal_check/check.py pastes a kernel's headers and body after this file,
// inside a signature written the way mx.fast.metal_kernel writes it, and compiles the result
// with -nostdinc: a name that Metal (or the signature MLX generates) would not provide, and
// any syntax error, fails the compile. It checks names, types and syntax, not Metal's
// semantics (address-space rules, for one, are erased here).



// Address spaces and the threadgroup-pointer qualifier (see linalg_common.h).
#define device
#define constant
#define thread
#define threadgroup
#define LA_TG threadgroup
#define LA_INLINE inline
#define LA_UNROLL _Pragma("GCC unroll 64")

#define NAN __builtin_nanf("")
#define INFINITY __builtin_huge_valf()

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef unsigned long size_t;
typedef long ptrdiff_t;

namespace metal {

template <typename T>
struct vec2 {
  T x, y;
  vec2() = default;
  vec2(T a, T b) : x(a), y(b) {}
};
template <typename T>
struct vec3 {
  T x, y, z;
  vec3() = default;
  vec3(T a, T b, T c) : x(a), y(b), z(c) {}
};
template <typename T>
struct vec4 {
  T x, y, z, w;
  vec4() = default;
  vec4(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {}
};

enum class mem_flags {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
};

mem_flags operator|(mem_flags a, mem_flags b);
void threadgroup_barrier(mem_flags flags);
void simdgroup_barrier(mem_flags flags);

template <typename T, typename U> T as_type(U x);
template <typename T> T simd_sum(T x);
template <typename T> T simd_product(T x);
template <typename T> T simd_max(T x);
template <typename T> T simd_min(T x);
template <typename T> T simd_shuffle(T x, ushort lane);
template <typename T> T simd_shuffle_xor(T x, ushort mask);
template <typename T> T simd_shuffle_up(T x, ushort delta);
template <typename T> T simd_shuffle_down(T x, ushort delta);
template <typename T> T simd_broadcast(T x, ushort lane);
template <typename T> T simd_broadcast_first(T x);
bool simd_any(bool p);
bool simd_all(bool p);

float sqrt(float x);
float rsqrt(float x);
float abs(float x);
int abs(int x);
float fabs(float x);
float fma(float a, float b, float c);
float fmin(float a, float b);
float fmax(float a, float b);
float copysign(float a, float b);
float hypot(float a, float b);
float exp(float x);
float frexp(float x, thread int& e);
float ldexp(float x, int k);
float log(float x);
float sin(float x);
float cos(float x);
float sign(float x);
bool isnan(float x);
bool isinf(float x);
bool isfinite(float x);
template <typename T> T min(T a, T b);
template <typename T> T max(T a, T b);
template <typename T> T clamp(T x, T lo, T hi);

namespace precise {
float sqrt(float x);
float rsqrt(float x);
float divide(float a, float b);
}  // namespace precise

}  // namespace metal

typedef metal::vec2<float> float2;
typedef metal::vec3<float> float3;
typedef metal::vec4<float> float4;
typedef metal::vec2<int> int2;
typedef metal::vec3<int> int3;
typedef metal::vec4<int> int4;
typedef metal::vec2<uint> uint2;
typedef metal::vec3<uint> uint3;
typedef metal::vec4<uint> uint4;

using namespace metal;
