// The in-tile Cholesky factorization shared by cholesky_small and cholesky_panel. Valid
// Metal and, after cuda_compat.h, valid CUDA; needs linalg_common.h.

// Factors the n x n lower triangle held in threadgroup memory `tile` (row stride S,
// n <= NMAX, NMAX = 32 or 64) in place into its Cholesky factor L (A = L Lᵀ); entries above
// the diagonal are neither read nor written. Called by every thread of the threadgroup
// (tid of nthreads, lane of simdgroup warp) after a barrier that follows the tile's load
// and failed_at[0] = 0; returns 0, or j + 1 for the first column j whose pivot is not
// positive and finite (then the factorization stops there and the tile holds a partial
// factor). Every thread returns the same value, after a final barrier.
// Algorithm: right-looking blocked Cholesky (LAPACK potrf with potf2 panels), n³/3 flops,
// blocked by panels of PW = 8 columns. Per panel of columns [c0, c0 + PW): simdgroup 0
// loads rows c0.. of the panel into registers (lane l: rows c0 + l + 32 q) and factors it
// in registers (pivot and multipliers broadcast by shuffles, every column loop unrolled: the
// diagonal block's potf2 and the trsm below it in one pass), then stores it back; after a
// barrier every thread updates 4 x 4 tiles of the trailing lower triangle,
// a_ik -= sum_p l_ip l_kp over the panel's PW columns in ascending p, one fused
// multiply-add each: the same operations in the same order as the unblocked potf2 (and the
// MLX reference), so results agree to the last bit up to fma contraction. Only n / PW steps
// need the whole threadgroup, and the unrolled code is one panel's: a 64-column register
// factorization with every loop unrolled spent most of its time fetching instructions on
// the H100 (109 us for 1000 x 64 x 64, against 61).
// PW = 8 (H100, 2026-11-26, min of up to 200 calls, two interleaved rounds): 1000 x 64 x 64
// 0.146-0.147 ms against 0.157-0.166 with PW = 16 and 0.144-0.152 with PW = 4; 10000 x 32
// x 32 0.177 against 0.189-0.194. The panel (simdgroup 0 alone) costs ~PW per column, the
// trailing updates (every thread) the same flops in more, shorter passes.
template <int NMAX, int S>
LA_INLINE int la_cholesky_tile(LA_TG float* tile, int n, int tid, int nthreads, int lane,
                               int warp, LA_TG int* failed_at) {
  constexpr int PW = 8;
  constexpr int TB = 4;
  constexpr int R = NMAX / 32;
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
  return failed_at[0];
}
