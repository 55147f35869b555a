// @kernel cholesky_small
// @inputs A:float32
// @outputs L:float32 failed:bool
// @template NMAX:int UPPER:bool
// @headers linalg_common.h
// @check NMAX=64,UPPER=false NMAX=64,UPPER=true NMAX=32,UPPER=false
//
// Cholesky factors of a stack of small symmetric positive-definite matrices, one
// threadgroup per matrix, blocked by panels of PW = 8 columns.
//   A       (B, n, n) float32, 1 <= n <= NMAX, NMAX = 32 or 64. Only the lower triangle is
//           read (the upper one when UPPER).
//   L       (B, n, n): the lower factor L with A = L Lᵀ and zeros above the diagonal, or,
//           when UPPER, U = Lᵀ with A = Uᵀ U. Every entry NaN for a matrix whose pivot at
//           some column is not positive and finite (not positive definite, or NaN/Inf).
//   failed  (B,) bool: whether some pivot failed (so that no comparison op follows the
//           kernel: the caller needs only the mask, and one more launch costs ~5 us).
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (measured on an
// H100: 32 for n <= 32, 64 above; more threads only help the first trailing updates).
// Algorithm: right-looking blocked Cholesky (LAPACK potrf with potf2 panels), n³/3 flops,
// the lower triangle in threadgroup memory (odd row stride). Per panel of columns
// [c0, c0 + PW): simdgroup 0 loads rows c0.. of the panel into registers (lane l: rows
// c0 + l + 32 q) and factors it in registers (pivot and multipliers broadcast by shuffles,
// every column loop unrolled: the diagonal block's potf2 and the trsm below it in one
// pass), then stores it back; after a barrier every thread updates 4 x 4 tiles of
// the trailing lower triangle, a_ik -= sum_p l_ip l_kp over the panel's PW columns in
// ascending p, one fused multiply-add each: the same operations in the same order as the
// unblocked potf2 (and the MLX reference), so results agree to the last bit up to fma
// contraction. Only n / PW steps need the whole threadgroup, and the unrolled code
// is one panel's: a 64-column register factorization with every loop unrolled spent most
// of its time fetching instructions on the H100 (109 us for 1000 x 64 x 64, against 61).
// PW = 8 (H100, 2026-11-26, min of up to 200 calls, two interleaved rounds): 1000 x 64 x 64
// 0.146-0.147 ms against 0.157-0.166 with PW = 16 and 0.144-0.152 with PW = 4; 10000 x 32
// x 32 0.177 against 0.189-0.194. The panel (simdgroup 0 alone) costs ~PW per column, the
// trailing updates (every thread) the same flops in more, shorter passes.
// Memory traffic: n² floats read, n² floats and one bool written.

constexpr int PW = 8;
constexpr int TB = 4;
constexpr int RF = 16;
constexpr int R = NMAX / 32;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];
threadgroup int failed_at[1];

const int batch = A_shape[0];
const int n = A_shape[1];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || n > NMAX) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;

// Coalesced loads, RF rows in flight per thread (a load loop that waits for each load
// before the next took a large part of the kernel's time): thread t reads columns
// t, t + T, ... of rows r0 .. r0 + RF - 1.
const size_t base = (size_t)b * (size_t)(n * n);
for (int r0 = 0; r0 < n; r0 += RF) {
  for (int c = tid; c < n; c += nthreads) {
    float v[RF];
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      v[u] = r0 + u < n ? A[base + (size_t)(r0 + u) * n + c] : 0.0f;
    }
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      const int r = r0 + u;
      if (UPPER ? r <= c : (c <= r && r < n)) {
        tile[UPPER ? c * S + r : r * S + c] = v[u];
      }
    }
  }
}
if (tid == 0) {
  failed_at[0] = 0;
}
threadgroup_barrier(mem_flags::mem_threadgroup);

for (int c0 = 0; c0 < n; c0 += PW) {
  const int w = metal::min(PW, n - c0);
  if (warp == 0) {
    float p[R][PW];
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      const int i = c0 + lane + 32 * q;
      LA_UNROLL
      for (int c = 0; c < PW; ++c) {
        p[q][c] = (i < n && c < w && c0 + c <= i) ? tile[i * S + c0 + c] : 0.0f;
      }
    }
    int fail = 0;
    LA_UNROLL
    for (int j = 0; j < PW; ++j) {
      if (j < w && fail == 0) {  // uniform across the simdgroup
        const float d = simd_shuffle(p[0][j], (ushort)j);
        if (!(d > 0.0f) || !metal::isfinite(d)) {
          fail = c0 + j + 1;
        } else {
          const float root = metal::sqrt(d);
          const float rinv = 1.0f / root;
          float l[R];
          LA_UNROLL
          for (int q = 0; q < R; ++q) {
            const int i = lane + 32 * q;  // row within the panel
            l[q] = p[q][j] * rinv;
            p[q][j] = i == j ? root : (i > j ? l[q] : p[q][j]);
          }
          LA_UNROLL
          for (int k = j + 1; k < PW; ++k) {
            if (k < w) {
              const float lk = simd_shuffle(l[0], (ushort)k);
              LA_UNROLL
              for (int q = 0; q < R; ++q) {
                if (lane + 32 * q >= k) {
                  p[q][k] = metal::fma(-l[q], lk, p[q][k]);
                }
              }
            }
          }
        }
      }
    }
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      const int i = c0 + lane + 32 * q;
      if (i < n) {
        LA_UNROLL
        for (int c = 0; c < PW; ++c) {
          if (c < w && c0 + c <= i) {
            tile[i * S + c0 + c] = p[q][c];
          }
        }
      }
    }
    if (lane == 0 && fail != 0) {
      failed_at[0] = fail;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (failed_at[0] != 0) {
    break;  // uniform: every thread reads the flag after the same barrier
  }
  // Trailing update of rows and columns [c1, n), lower triangle, in 4 x 4 tiles numbered
  // row-major over the triangle of tiles.
  const int c1 = c0 + w;
  const int nt = (n - c1 + TB - 1) / TB;
  for (int t = tid; t < nt * (nt + 1) / 2; t += nthreads) {
    int ti = 0;
    while ((ti + 1) * (ti + 2) / 2 <= t) {
      ++ti;
    }
    const int i0 = c1 + TB * ti;
    const int k0 = c1 + TB * (t - ti * (ti + 1) / 2);
    float acc[TB][TB];
    LA_UNROLL
    for (int r = 0; r < TB; ++r) {
      LA_UNROLL
      for (int c = 0; c < TB; ++c) {
        const int i = i0 + r;
        const int k = k0 + c;
        acc[r][c] = (i < n && k <= i) ? tile[i * S + k] : 0.0f;
      }
    }
    // A trailing matrix exists only after a full panel (w = PW). Rows past n read stale
    // tile entries: their results are never stored.
    LA_UNROLL
    for (int pc = 0; pc < PW; ++pc) {
      float li[TB];
      float lk[TB];
      LA_UNROLL
      for (int r = 0; r < TB; ++r) {
        li[r] = tile[(i0 + r) * S + c0 + pc];
        lk[r] = tile[(k0 + r) * S + c0 + pc];
      }
      LA_UNROLL
      for (int r = 0; r < TB; ++r) {
        LA_UNROLL
        for (int c = 0; c < TB; ++c) {
          acc[r][c] = metal::fma(-li[r], lk[c], acc[r][c]);
        }
      }
    }
    LA_UNROLL
    for (int r = 0; r < TB; ++r) {
      LA_UNROLL
      for (int c = 0; c < TB; ++c) {
        const int i = i0 + r;
        const int k = k0 + c;
        if (i < n && k <= i) {
          tile[i * S + k] = acc[r][c];
        }
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

const int fail = failed_at[0];
const float nan_value = la_nan();
for (int r = 0; r < n; ++r) {
  for (int c = tid; c < n; c += nthreads) {
    const int p = UPPER ? c : r;
    const int q = UPPER ? r : c;
    const float v = q <= p ? tile[p * S + q] : 0.0f;
    L[base + (size_t)r * n + c] = fail != 0 ? nan_value : v;
  }
}
if (tid == 0) {
  failed[b] = fail != 0;
}
