// @kernel lu_leaf_registers
// @inputs A:float32 Cols:int32
// @outputs LU:float32 piv:int32 perm:int32
// @template R:int
// @headers linalg_common.h
// @check R=1 R=8
//
// LU factorization with partial pivoting of a stack of tall panels of at most 16 columns
// (the recursive LU's leaves), P A = L U, one threadgroup per panel, the panel held in
// registers: lu_panel's contract and arithmetic without its column-major working copy in
// device memory, which each of its elimination steps reads and writes whole.
//   A     (B, M, NA) float32 holding the panels as their first NB columns, NB <= NA,
//         1 <= NB <= 16, NB <= M <= R T (T threads per threadgroup).
//   Cols  (NB, 0) int32, empty (_kernels.extents): NB, read from its shape.
//   LU    (B, M, NB), piv (B, NB), perm (B, M): as lu_panel's (getf2's packed L\U of P A,
//         its 0-based pivots, row i of P A is row perm[i] of A), bit for bit: every entry
//         sees the same operations in the same order, the pivot search the same one.
// Launch: grid (B T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (at most 512),
// M <= R T: panel b = threadgroup_position_in_grid.x; thread t holds the rows at positions
// t, t + T, ..., t + (R - 1) T (R of them, each in registers).
// Algorithm: dgetf2 (Golub & Van Loan 4th ed. Alg. 3.4.1 with §3.4.7) on two halves of H
// = 8 columns, so that a thread holds R x 8 floats (R = 8, T = 512: 64 registers, where all
// 16 columns would not fit beside the rest: 1024-thread threadgroups allow 64 registers a
// thread, 512-thread ones 128). The left half: each thread loads its rows, then per column
// j, two barriers, as lu_panel:
//   1. the pivot: the threads' best candidates (score, position) reduced by shuffles, one
//      per SIMD-group in threadgroup memory, barrier, every thread reduces those;
//   2. the owners of positions j and p hand their rows over through threadgroup memory
//      (the pivot row stays there as U's row j), thread 0 swaps perm and writes piv[j];
//      barrier; the owners take the other row;
//   3. each thread, for its rows below j: the multiplier (kept unscaled when the pivot is
//      zero, as dgetf2), the rank-1 update of the half's columns right of j, and the best
//      candidate of column j + 1.
// The right half is loaded afterwards from A's rows perm[i] (the left half's interchanges
// applied by reading), and the left half's updates applied in their order: the top 8 rows
// by forward substitution with L11 (U12, one column per thread), the rows below by
// a_ic -= l_ij u_jc for j = 0..7, the multipliers read back from LU; then the right half's
// steps as above, each interchange also swapping the two rows' left-half entries in LU.
// Per entry the same fused multiply-adds in the same order as the right-looking lu_panel
// (which updates the right half at each left step instead), so the results agree bit for
// bit. Barriers order device memory within the threadgroup (mem_device); no grid-wide
// synchronization is needed, since a panel belongs to one threadgroup.
// nvcc (sm_90) gives the R = 8 kernel 128 registers a thread, the most a 512-thread
// threadgroup allows; whether Metal's pipeline for it takes 512 threads
// (maxTotalThreadsPerThreadgroup) is unchecked: no Apple machine was available.
// Memory traffic: M NB floats read from A and written to LU, the left half's multipliers
// read back once; every one of these passes coalesced through a threadgroup tile (T rows of
// H columns at a time), not a thread per row (whose 32-byte pieces of 32 rows made each
// load 32 cache sectors); perm written once per step.

constexpr int H = 8;
constexpr int TMAX = 512;  // threads per threadgroup at most: the staging tile's rows
constexpr int S = H + 1;   // the tile's row stride (odd: a thread per row, no bank conflicts)
threadgroup float best_v[32];
threadgroup int best_i[32];
threadgroup float urow[H];
threadgroup float jrow[H];
threadgroup float top[H * H];
threadgroup float tile[TMAX * S];

const int batch = A_shape[0];
const int m = A_shape[1];
const int na = A_shape[2];
const int nb = Cols_shape[0];
const uint b = threadgroup_position_in_grid.x;
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
if (b >= (uint)batch || nb < 1 || nb > 2 * H || nb > na || m < nb || nthreads > TMAX ||
    m > R * nthreads) {
  return;
}
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const device float* panel = A + (size_t)b * (size_t)m * (size_t)na;
device float* out = LU + (size_t)b * (size_t)m * (size_t)nb;
device int* pm = perm + (size_t)b * (size_t)m;
device int* pv = piv + (size_t)b * (size_t)nb;
for (int i = tid; i < m; i += nthreads) {
  pm[i] = i;
}

float x[R][H];
for (int c0 = 0; c0 < nb; c0 += H) {
  const int w = metal::min(H, nb - c0);
  const bool right = c0 > 0;
  // pm's identity (left half) or its interchanges, and the left half's LU (right half).
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  // The half's columns of the rows at positions q T .. q T + T - 1 (A's rows pm[i] for
  // the right half), read coalesced into the tile, then each thread's row from it.
  LA_UNROLL
  for (int q = 0; q < R; ++q) {
    for (int e = tid; e < nthreads * H; e += nthreads) {
      const int r = e / H;
      const int c = e - r * H;
      const int i = q * nthreads + r;
      float value = 0.0f;
      if (i < m && c < w) {
        const int source = right ? pm[i] : i;
        value = panel[(size_t)source * (size_t)na + (size_t)(c0 + c)];
      }
      tile[r * S + c] = value;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    LA_UNROLL
    for (int c = 0; c < H; ++c) {
      x[q][c] = tile[tid * S + c];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (right) {
    // The left half's updates of these columns: U12 = L11^-1 A12 (rows 0..H-1, held by
    // threads 0..H-1), then A22 -= L21 U12, L21's rows read coalesced through the tile.
    if (tid < H) {
      LA_UNROLL
      for (int c = 0; c < H; ++c) {
        top[tid * H + c] = x[0][c];
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid < w) {
      float u[H];
      LA_UNROLL
      for (int k = 0; k < H; ++k) {
        u[k] = top[k * H + tid];
      }
      LA_UNROLL
      for (int k = 1; k < H; ++k) {
        LA_UNROLL
        for (int j = 0; j < k; ++j) {
          u[k] = metal::fma(-out[k * nb + j], u[j], u[k]);
        }
      }
      LA_UNROLL
      for (int k = 0; k < H; ++k) {
        top[k * H + tid] = u[k];
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      for (int e = tid; e < nthreads * H; e += nthreads) {
        const int r = e / H;
        const int i = q * nthreads + r;
        tile[r * S + (e - r * H)] = i < m ? out[i * nb + (e - r * H)] : 0.0f;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      const int i = tid + q * nthreads;
      if (i < H) {
        LA_UNROLL
        for (int c = 0; c < H; ++c) {
          x[q][c] = top[i * H + c];
        }
      } else if (i < m) {
        LA_UNROLL
        for (int j = 0; j < H; ++j) {
          const float l = tile[tid * S + j];
          LA_UNROLL
          for (int c = 0; c < H; ++c) {
            x[q][c] = metal::fma(-l, top[j * H + c], x[q][c]);
          }
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
  }
  // Candidates of the half's first column: positions c0 and below. Rows past the end
  // score -1, NaN entries -0.5 (la_pivot_score): both lose to any number.
  float v = -1.0f;
  int idx = m;
  LA_UNROLL
  for (int q = 0; q < R; ++q) {
    const int i = tid + q * nthreads;
    if (i >= c0 && i < m) {
      const float s = la_pivot_score(x[q][0]);
      if (s > v) {  // positions ascend within a thread: the first of equals stays
        v = s;
        idx = i;
      }
    }
  }
  LA_UNROLL
  for (int j = 0; j < H; ++j) {
    if (j < w) {  // uniform
      const int c = c0 + j;
      // 1. The pivot: the best of every thread's candidate.
      la_simd_pivot(v, idx);
      if (lane == 0) {
        best_v[warp] = v;
        best_i[warp] = idx;
      }
      threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
      idx = la_pivot_of_simdgroups(best_v, best_i, nwarps);
      const int p = idx < m ? idx : c;

      // 2. Interchange positions c and p: their owners hand the rows over (a branch taken
      // in at most two threads).
      const int owner_c = c % nthreads;
      const int owner_p = p % nthreads;
      const int slot_c = c / nthreads;
      const int slot_p = p / nthreads;
      if (tid == owner_p) {
        LA_UNROLL
        for (int q = 0; q < R; ++q) {
          if (q == slot_p) {
            LA_UNROLL
            for (int cc = 0; cc < H; ++cc) {
              urow[cc] = x[q][cc];
            }
          }
        }
      }
      if (tid == owner_c) {
        LA_UNROLL
        for (int q = 0; q < R; ++q) {
          if (q == slot_c) {
            LA_UNROLL
            for (int cc = 0; cc < H; ++cc) {
              jrow[cc] = x[q][cc];
            }
          }
        }
      }
      if (tid == 0) {
        pv[c] = p;
        const int t = pm[c];
        pm[c] = pm[p];
        pm[p] = t;
      }
      if (right && p != c && tid < H) {  // the two rows' left-half entries, in LU
        const float upper = out[c * nb + tid];
        out[c * nb + tid] = out[p * nb + tid];
        out[p * nb + tid] = upper;
      }
      threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
      if (p != c && (tid == owner_c || tid == owner_p)) {
        LA_UNROLL
        for (int q = 0; q < R; ++q) {
          if (tid == owner_c && q == slot_c) {
            LA_UNROLL
            for (int cc = 0; cc < H; ++cc) {
              x[q][cc] = urow[cc];
            }
          }
          if (tid == owner_p && q == slot_p) {
            LA_UNROLL
            for (int cc = 0; cc < H; ++cc) {
              x[q][cc] = jrow[cc];
            }
          }
        }
      }

      // 3. Each row of this thread below c: its multiplier, its rank-1 update, and the
      // candidates of column c + 1.
      float u[H];
      LA_UNROLL
      for (int cc = 0; cc < H; ++cc) {
        u[cc] = urow[cc];
      }
      const float pivot = u[j];
      v = -1.0f;
      idx = m;
      LA_UNROLL
      for (int q = 0; q < R; ++q) {
        const int i = tid + q * nthreads;
        if (i > c && i < m) {
          float l = x[q][j];
          if (pivot != 0.0f) {
            l = l / pivot;
            x[q][j] = l;
          }
          LA_UNROLL
          for (int cc = j + 1; cc < H; ++cc) {
            if (cc < w) {
              x[q][cc] = metal::fma(-l, u[cc], x[q][cc]);
            }
          }
          if (j + 1 < w) {
            const float s = la_pivot_score(x[q][j + 1]);
            if (s > v) {
              v = s;
              idx = i;
            }
          }
        }
      }
    }
  }
  // The half's columns, at the rows' current positions, written coalesced through the
  // tile.
  LA_UNROLL
  for (int q = 0; q < R; ++q) {
    LA_UNROLL
    for (int c = 0; c < H; ++c) {
      tile[tid * S + c] = x[q][c];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int e = tid; e < nthreads * H; e += nthreads) {
      const int r = e / H;
      const int c = e - r * H;
      const int i = q * nthreads + r;
      if (i < m && c < w) {
        out[i * nb + c0 + c] = tile[r * S + c];
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}
