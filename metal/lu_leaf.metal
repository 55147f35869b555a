// @kernel lu_leaf
// @inputs A:float32
// @outputs LU:float32 piv:int32 perm:int32 work:float32
// @template ROWS:int CHUNK:int
// @check ROWS=2,CHUNK=16 ROWS=4,CHUNK=8 ROWS=8,CHUNK=4 ROWS=16,CHUNK=2
//
// LU factorization with partial pivoting of a stack of tall, narrow panels (the leaves of
// the recursive panel LU), P A = L U, one threadgroup per panel, the panel's rows in the
// threads' registers: the contract of lu_panel (metal/lu_panel.metal) for NB <= 32 and
// M <= ROWS * T, with the same factors and pivots.
//   A     (B, M, NB) float32, 1 <= NB <= 32, 1 <= M <= ROWS T, M NB < 2^31.
//   LU    (B, M, NB): row i is row i of the eliminated P A: U on and above the diagonal,
//         the multipliers of unit-lower L below it (LAPACK getrf's packed form). A zero
//         pivot is kept and its column's multipliers are left unscaled (as dgetf2); NaN
//         and Inf entries propagate within their own panel.
//   piv   (B, k) int32, k = min(M, NB), 0-based: row j was interchanged with row piv[j]
//         (LAPACK's ipiv minus one).
//   perm  (B, M) int32: row i of P A is row perm[i] of A.
//   work  (B, M, 32): scratch, the finished chunks of columns by row of A, rows padded to
//         32 floats for 16-byte vector loads (the caller discards it).
// Pivot choice: the first entry of largest magnitude among current positions j..M-1 of
// column j, exactly as dgetf2/isamax; a NaN never wins (it scores below every number).
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32, at most 1024:
// panel b = threadgroup_position_in_grid.x. ROWS CHUNK <= 32 keeps a thread's share in
// registers (the caller's choice: ROWS = 2, 4, 8, 16 with CHUNK = 16, 8, 4, 2, T <= 256).
// On CUDA (MLX's custom kernels have no launch bounds) ptxas gives this body 104 to 211
// registers a thread, so a threadgroup of 512 or 1024 threads may fail to launch.
// Algorithm: dgetf2 (Golub & Van Loan 4th ed. Alg. 3.4.1 with §3.4.7), left-looking by
// chunks of CHUNK columns and right-looking within a chunk. Thread t owns rows t, t + T,
// ..., t + (ROWS - 1) T of A for the whole factorization; rows never move: an interchange
// only swaps two rows' current positions (each thread keeps its rows' positions), and the
// last step writes every row to its final position. For each chunk of columns:
//   1. its entries of the thread's rows are loaded into registers; the earlier pivots'
//      updates are applied: U12 = L11⁻¹ A12 of the pivot rows (forward substitution by
//      CHUNK threads on L11 staged in threadgroup memory from `work`), then every other
//      row subtracts its multipliers times U12, in step order (the multipliers read from
//      `work` four at a time, all the thread's rows' loads in flight together);
//   2. per column j of the chunk, one barrier: every thread's best candidate of its rows
//      (largest magnitude, then smallest current position), a SIMD-group reduction by
//      shuffles, and the SIMD-group's winner's CHUNK entries and (score, position, row)
//      into threadgroup memory (two buffers, alternating by column, so one barrier per
//      column suffices); after the barrier every SIMD-group reduces the SIMD-groups'
//      winners by shuffles, so every thread agrees on the pivot row; positions swap; each
//      row below the pivot divides its entry of column j by the pivot (kept unscaled when
//      the pivot is zero) and updates its later entries of the chunk, one fma each;
//   3. the chunk goes to `work` (unless it is the last).
// Every entry receives the same fma in the same order as in lu_panel (the update of
// column c by step i, for i = 0, 1, ...), and the multipliers are the same quotients, so
// the factors and pivots equal lu_panel's exactly (a NaN's sign aside).
// Memory traffic: A read once (M NB floats), LU written once; `work` written once and
// read by each later chunk up to its first column (M NB² / (2 CHUNK) floats at most).
// lu_panel instead updates its column-major copy in device memory column by column (M NB²
// floats each way), one threadgroup reading and writing 4 MB for M = 4096, NB = 16.

constexpr int NBMAX = 32;  // also the row stride of `work`
constexpr int WARPS = 32;
constexpr int NONE = 0x7fffffff;  // the position of a row past the end of the panel
threadgroup float best_x[2][WARPS][CHUNK];
threadgroup float best_v[2][WARPS];
threadgroup int best_pos[2][WARPS];
threadgroup int best_row[2][WARPS];
threadgroup int pivot_row[NBMAX];
threadgroup float l11[NBMAX][NBMAX];
threadgroup float u12[NBMAX][CHUNK];

const int batch = A_shape[0];
const int m = A_shape[1];
const int nb = A_shape[2];
const int nthreads = (int)threads_per_threadgroup.x;
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || nb > NBMAX || nb < 1 || m < 1 || m > ROWS * nthreads) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const int k = metal::min(m, nb);
const size_t base = (size_t)b * (size_t)m * (size_t)nb;
device const float* a = A + base;
device float* w = work + (size_t)b * (size_t)m * NBMAX;  // w[row * NBMAX + c]: entry (row, c)

float x[ROWS][CHUNK];
int pos[ROWS];
LA_UNROLL
for (int s = 0; s < ROWS; ++s) {
  const int row = tid + s * nthreads;
  pos[s] = row < m ? row : NONE;
}

int buf = 0;
int c0 = 0;
for (;; c0 += CHUNK) {
  // 1. The chunk's entries of this thread's rows, with the earlier pivots' updates.
  LA_UNROLL
  for (int s = 0; s < ROWS; ++s) {
    const int row = tid + s * nthreads;
    LA_UNROLL
    for (int c = 0; c < CHUNK; ++c) {
      x[s][c] = row < m && c0 + c < nb ? a[row * nb + c0 + c] : 0.0f;
    }
  }
  const int done = metal::min(c0, k);
  if (done > 0) {
    for (int e = tid; e < done * NBMAX; e += nthreads) {
      const int i = e / NBMAX;
      const int c = e - i * NBMAX;
      if (c < i) {
        l11[i][c] = w[pivot_row[i] * NBMAX + c];
      }
    }
    for (int e = tid; e < done * CHUNK; e += nthreads) {
      const int i = e / CHUNK;
      const int c = e - i * CHUNK;
      u12[i][c] = c0 + c < nb ? a[pivot_row[i] * nb + c0 + c] : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid < CHUNK) {
      for (int i = 1; i < done; ++i) {
        float y = u12[i][tid];
        for (int i2 = 0; i2 < i; ++i2) {
          y = metal::fma(-l11[i][i2], u12[i2][tid], y);
        }
        u12[i][tid] = y;
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int i0 = 0; i0 < done; i0 += 4) {
      float4 l4[ROWS];  // rows past the end read the last row, their results unused
      LA_UNROLL
      for (int s = 0; s < ROWS; ++s) {
        const int row = metal::min(tid + s * nthreads, m - 1);
        l4[s] = *((device const float4*)(w + row * NBMAX + i0));
      }
      LA_UNROLL
      for (int q = 0; q < 4; ++q) {
        if (i0 + q < done) {
          LA_UNROLL
          for (int s = 0; s < ROWS; ++s) {
            const float l = q == 0 ? l4[s].x : q == 1 ? l4[s].y : q == 2 ? l4[s].z : l4[s].w;
            LA_UNROLL
            for (int c = 0; c < CHUNK; ++c) {
              x[s][c] = metal::fma(-l, u12[i0 + q][c], x[s][c]);
            }
          }
        }
      }
    }
    LA_UNROLL
    for (int s = 0; s < ROWS; ++s) {
      if (pos[s] < done) {
        LA_UNROLL
        for (int c = 0; c < CHUNK; ++c) {
          x[s][c] = u12[pos[s]][c];
        }
      }
    }
  }

  // 2. The chunk's columns, one barrier each.
  const int steps = k - c0;
  LA_UNROLL
  for (int jj = 0; jj < CHUNK; ++jj) {
    if (jj < steps) {
      const int j = c0 + jj;
      float v = -1.0f;
      int best = NONE;
      int brow = -1;
      LA_UNROLL
      for (int s = 0; s < ROWS; ++s) {
        if (pos[s] >= j && pos[s] != NONE) {
          float score = metal::abs(x[s][jj]);
          score = score >= 0.0f ? score : -0.5f;
          if (score > v || (score == v && pos[s] < best)) {
            v = score;
            best = pos[s];
            brow = tid + s * nthreads;
          }
        }
      }
      for (ushort off = 16; off > 0; off >>= 1) {
        const float ov = simd_shuffle_xor(v, off);
        const int op = simd_shuffle_xor(best, off);
        const int orow = simd_shuffle_xor(brow, off);
        if (ov > v || (ov == v && op < best)) {
          v = ov;
          best = op;
          brow = orow;
        }
      }
      if (brow >= 0 && brow % nthreads == tid) {
        LA_UNROLL
        for (int s = 0; s < ROWS; ++s) {
          if (s == brow / nthreads) {
            LA_UNROLL
            for (int c = 0; c < CHUNK; ++c) {
              best_x[buf][warp][c] = x[s][c];
            }
          }
        }
      }
      if (lane == 0) {
        best_v[buf][warp] = v;
        best_pos[buf][warp] = best;
        best_row[buf][warp] = brow;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      v = lane < nwarps ? best_v[buf][lane] : -2.0f;
      best = lane < nwarps ? best_pos[buf][lane] : NONE;
      brow = lane < nwarps ? best_row[buf][lane] : -1;
      for (ushort off = 16; off > 0; off >>= 1) {
        const float ov = simd_shuffle_xor(v, off);
        const int op = simd_shuffle_xor(best, off);
        const int orow = simd_shuffle_xor(brow, off);
        if (ov > v || (ov == v && op < best)) {
          v = ov;
          best = op;
          brow = orow;
        }
      }
      const int p = best;
      const int winner = (brow % nthreads) / 32;
      if (tid == 0) {
        piv[(size_t)b * k + j] = p;
        pivot_row[j] = brow;
      }
      LA_UNROLL
      for (int s = 0; s < ROWS; ++s) {
        if (tid + s * nthreads == brow) {
          pos[s] = j;
        } else if (pos[s] == j) {
          pos[s] = p;
        }
      }
      const float pivot = best_x[buf][winner][jj];
      LA_UNROLL
      for (int s = 0; s < ROWS; ++s) {
        if (pos[s] > j && pos[s] != NONE) {
          float l = x[s][jj];
          if (pivot != 0.0f) {
            l = l / pivot;
            x[s][jj] = l;
          }
          LA_UNROLL
          for (int c = jj + 1; c < CHUNK; ++c) {
            x[s][c] = metal::fma(-l, best_x[buf][winner][c], x[s][c]);
          }
        }
      }
      buf ^= 1;
    }
  }
  if (c0 + CHUNK >= nb) {
    break;
  }

  // 3. The chunk to `work`, for the later chunks.
  LA_UNROLL
  for (int s = 0; s < ROWS; ++s) {
    const int row = tid + s * nthreads;
    if (row < m) {
      LA_UNROLL
      for (int c = 0; c < CHUNK; ++c) {
        w[row * NBMAX + c0 + c] = x[s][c];
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
}

// Every row to its final position: the earlier chunks from `work` (four columns at a time,
// all the thread's rows' loads in flight together), the last from registers.
device float* out = LU + base;
for (int c = 0; c < c0; c += 4) {
  float4 y[ROWS];
  LA_UNROLL
  for (int s = 0; s < ROWS; ++s) {
    const int row = tid + s * nthreads;
    y[s] = *((device const float4*)(w + metal::min(row, m - 1) * NBMAX + c));
  }
  LA_UNROLL
  for (int s = 0; s < ROWS; ++s) {
    if (tid + s * nthreads < m) {
      device float* dst = out + (size_t)pos[s] * nb + c;
      LA_UNROLL
      for (int q = 0; q < 4; ++q) {
        if (c + q < c0) {
          dst[q] = q == 0 ? y[s].x : q == 1 ? y[s].y : q == 2 ? y[s].z : y[s].w;
        }
      }
    }
  }
}
LA_UNROLL
for (int s = 0; s < ROWS; ++s) {
  const int row = tid + s * nthreads;
  if (row < m) {
    device float* dst = out + (size_t)pos[s] * nb;
    LA_UNROLL
    for (int c = 0; c < CHUNK; ++c) {
      if (c0 + c < nb) {
        dst[c0 + c] = x[s][c];
      }
    }
    perm[(size_t)b * m + pos[s]] = row;
  }
}
