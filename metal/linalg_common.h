// Helpers shared by the mlx_linalg kernel bodies; valid Metal and, after cuda_compat.h,
// valid CUDA. Only value-level helpers and helpers on pointers qualified with LA_TG
// (threadgroup memory) live here: threadgroup arrays themselves are declared in the bodies.

#ifndef LA_INLINE
#define LA_INLINE inline
#endif
#ifndef LA_TG
#define LA_TG threadgroup
#endif

// A quiet NaN, for the outputs of matrices that failed.
LA_INLINE float la_nan() {
  return NAN;
}

// A pivot candidate's score: |x|, or -0.5 for a NaN. A NaN then loses to any number (and
// rows past the end, which score -1, to everything), and no comparison involves a NaN, so
// every thread of a reduction agrees on the winner; NaN entries stay where they are and
// propagate through the elimination.
LA_INLINE float la_pivot_score(float x) {
  const float w = metal::abs(x);
  return w >= 0.0f ? w : -0.5f;
}

// Keeps the better of two pivot candidates (score, row) in (v, idx): the larger score, the
// lower row between equal scores (the first of equals, as LAPACK's isamax).
LA_INLINE void la_pivot_merge(thread float& v, thread int& idx, float ov, int oi) {
  if (ov > v || (ov == v && oi < idx)) {
    v = ov;
    idx = oi;
  }
}

// Every lane's candidate (v, idx) merged over the simdgroup by shuffles: called by all 32
// lanes, each left with the simdgroup's best.
LA_INLINE void la_simd_pivot(thread float& v, thread int& idx) {
  for (ushort off = 16; off > 0; off >>= 1) {
    la_pivot_merge(v, idx, simd_shuffle_xor(v, off), simd_shuffle_xor(idx, off));
  }
}

// The row of the best of the simdgroups' candidates best_v/best_i[0 .. nwarps), which each
// simdgroup wrote before a barrier: every thread of the threadgroup gets the same row.
LA_INLINE int la_pivot_of_simdgroups(const LA_TG float* best_v, const LA_TG int* best_i,
                                     int nwarps) {
  float v = best_v[0];
  int idx = best_i[0];
  for (int w = 1; w < nwarps; ++w) {
    la_pivot_merge(v, idx, best_v[w], best_i[w]);
  }
  return idx;
}

// Index of the entry of largest absolute value among rows [j, m) of column `j` of a tile
// with row stride `s` (m <= 64), the first one on ties, as LAPACK's isamax picks it.
// Called by all 32 lanes of one simdgroup; every lane gets the same answer (NaN entries
// never win: la_pivot_score).
LA_INLINE int la_pivot_row(const LA_TG float* tile, int s, int m, int j, uint lane) {
  int r0 = j + (int)lane;
  int r1 = r0 + 32;
  float v = -1.0f;
  int idx = m;
  if (r0 < m) {
    v = la_pivot_score(tile[r0 * s + j]);
    idx = r0;
  }
  if (r1 < m) {
    const float w = la_pivot_score(tile[r1 * s + j]);
    if (w > v) {
      v = w;
      idx = r1;
    }
  }
  la_simd_pivot(v, idx);
  return idx < m ? idx : j;
}

// Element (i, k) of the matrix used by la_trsv_lane: of the stored tile, or of its
// transpose when TRANS.
template <bool TRANS>
LA_INLINE float la_tile_at(const LA_TG float* tile, int s, int i, int k) {
  return TRANS ? tile[k * s + i] : tile[i * s + k];
}

// Row i of la_trsv_lane's x updated by the solved block of rows jb.. held in r: acc minus
// t_{i,jb+k} r[k] for each k (ascending when LOWER, else descending), FMA by FMA.
template <bool LOWER, bool TRANS>
LA_INLINE float la_trsv_update(const LA_TG float* tile, int s, int n, int i, int jb,
                               thread const float (&r)[8], float acc) {
  LA_UNROLL
  for (int t = 0; t < 8; ++t) {
    const int k = LOWER ? t : 7 - t;
    if (jb + k < n) {
      acc = metal::fma(-la_tile_at<TRANS>(tile, s, i, jb + k), r[k], acc);
    }
  }
  return acc;
}

// Triangular solve of one right-hand side owned by one thread: x[32 i] is row i (i < n;
// rows >= n are neither read nor written), in threadgroup memory with a stride of 32 so that
// the 32 lanes of a simdgroup, each passing its own column (x = base + lane), hit 32
// different banks. The n x n triangle is read from `tile` (row stride s), element (i, k) at
// tile[i * s + k], or at tile[k * s + i] when TRANS (the matrix used is then the transpose
// of the stored one). LOWER: forward substitution with the lower triangle of the matrix
// used; otherwise back substitution with the upper one. UNIT: the diagonal is taken as
// ones and not read. Blocked by 8 rows: a block of x is held in registers and
// solved with its diagonal block (unrolled), then each row still to come is updated by the
// block (one load and one store of x per 8 FMAs, in a loop with a small body,
// so the code stays in the instruction cache). Per entry, the operations and their order
// are those of column-oriented substitution (LAPACK trsv): x[j] /= t_jj once every update
// of x[j] is done, then x[i] = fma(-t_ij, x[j], x[i]) for the rows i to come, j ascending
// (LOWER) or descending. Each tile address depends only on (i, j), so the lanes read the
// same word (a broadcast). No barriers and no SIMD-group calls: callable from divergent
// lanes; the caller orders x's writes before this call and its reads after (same thread).
template <bool LOWER, bool TRANS, bool UNIT>
LA_INLINE void la_trsv_lane(const LA_TG float* tile, int s, int n, LA_TG float* x) {
  constexpr int BS = 8;
  const int nb = (n + BS - 1) / BS;
  for (int blk = 0; blk < nb; ++blk) {
    const int jb = BS * (LOWER ? blk : nb - 1 - blk);
    float r[BS];
    LA_UNROLL
    for (int k = 0; k < BS; ++k) {
      r[k] = jb + k < n ? x[(jb + k) * 32] : 0.0f;
    }
    LA_UNROLL
    for (int t = 0; t < BS; ++t) {
      const int k = LOWER ? t : BS - 1 - t;
      const int j = jb + k;
      if (j < n) {
        if (!UNIT) {
          r[k] = r[k] / la_tile_at<TRANS>(tile, s, j, j);
        }
        LA_UNROLL
        for (int k2 = 0; k2 < BS; ++k2) {
          if ((LOWER ? k2 > k : k2 < k) && jb + k2 < n) {
            r[k2] = metal::fma(-la_tile_at<TRANS>(tile, s, jb + k2, j), r[k], r[k2]);
          }
        }
      }
    }
    LA_UNROLL
    for (int k = 0; k < BS; ++k) {
      if (jb + k < n) {
        x[(jb + k) * 32] = r[k];
      }
    }
    // The rows still to come, two at a time: two independent FMA chains.
    const int hi = LOWER ? n : jb;
    int i = LOWER ? jb + BS : 0;
    for (; i + 1 < hi; i += 2) {
      const float a0 = la_trsv_update<LOWER, TRANS>(tile, s, n, i, jb, r, x[i * 32]);
      const float a1 = la_trsv_update<LOWER, TRANS>(tile, s, n, i + 1, jb, r, x[(i + 1) * 32]);
      x[i * 32] = a0;
      x[(i + 1) * 32] = a1;
    }
    if (i < hi) {
      x[i * 32] = la_trsv_update<LOWER, TRANS>(tile, s, n, i, jb, r, x[i * 32]);
    }
  }
}

// LU with partial pivoting (LAPACK getf2's arithmetic and pivot choices) of an m x n
// matrix, m, n <= NMAX = 32 R, held in the registers of one simdgroup: lane l holds rows
// l + 32 q (q < R), in their original order, which never moves. cp[q] is that row's current
// position in getf2's arrangement (initially its index); an interchange only swaps two
// positions. Step j: a SIMD-group argmax over rows at positions >= j (first position on
// ties; NaN never wins) picks the pivot row, it takes position j, the row there takes the
// pivot's old position, and lane 0 writes that position to piv_out[j]; the pivot row is
// broadcast a column at a time by shuffles, and every row still at a position > j scales
// its column-j entry by the pivot (not when the pivot is zero, like getf2) and updates its
// columns > j. All column loops are unrolled, so the rows stay in registers; no barriers.
// Returns j + 1 for the first zero pivot j, or 0. Call from all 32 lanes of one simdgroup.
template <int R, int NMAX>
LA_INLINE int la_lu_simd(thread float (&row)[R][NMAX], thread int (&cp)[R], int m, int n,
                         uint lane, LA_TG int* piv_out) {
  const int kmin = metal::min(m, n);
  int zero = 0;
  LA_UNROLL
  for (int j = 0; j < NMAX; ++j) {
    if (j < kmin) {
      float best = -1.0f;
      int best_pos = 1 << 30;
      int best_row = 0;
      LA_UNROLL
      for (int q = 0; q < R; ++q) {
        const int i = (int)lane + 32 * q;
        if (i < m && cp[q] >= j) {
          float w = metal::abs(row[q][j]);
          w = w >= 0.0f ? w : -0.5f;
          if (w > best || (w == best && cp[q] < best_pos)) {
            best = w;
            best_pos = cp[q];
            best_row = i;
          }
        }
      }
      for (ushort off = 16; off > 0; off >>= 1) {
        const float other = simd_shuffle_xor(best, off);
        const int other_pos = simd_shuffle_xor(best_pos, off);
        const int other_row = simd_shuffle_xor(best_row, off);
        if (other > best || (other == best && other_pos < best_pos)) {
          best = other;
          best_pos = other_pos;
          best_row = other_row;
        }
      }
      bool candidate[R];
      LA_UNROLL
      for (int q = 0; q < R; ++q) {
        const int i = (int)lane + 32 * q;
        if (i == best_row) {
          cp[q] = j;
        } else if (cp[q] == j) {
          cp[q] = best_pos;
        }
        candidate[q] = i < m && cp[q] > j;
      }
      if (lane == 0) {
        piv_out[j] = best_pos;
      }
      const ushort src = (ushort)(best_row & 31);
      const int qsrc = best_row >> 5;
      float own = row[0][j];
      LA_UNROLL
      for (int q = 1; q < R; ++q) {
        own = qsrc == q ? row[q][j] : own;
      }
      const float pivot = simd_shuffle(own, src);
      if (pivot == 0.0f && zero == 0) {
        zero = j + 1;
      }
      float l[R];
      LA_UNROLL
      for (int q = 0; q < R; ++q) {
        l[q] = candidate[q] && pivot != 0.0f ? row[q][j] / pivot : row[q][j];
        row[q][j] = candidate[q] ? l[q] : row[q][j];
      }
      LA_UNROLL
      for (int k = j + 1; k < NMAX; ++k) {
        if (k < n) {
          float mine = row[0][k];
          LA_UNROLL
          for (int q = 1; q < R; ++q) {
            mine = qsrc == q ? row[q][k] : mine;
          }
          const float u = simd_shuffle(mine, src);
          LA_UNROLL
          for (int q = 0; q < R; ++q) {
            if (candidate[q]) {
              row[q][k] = metal::fma(-l[q], u, row[q][k]);
            }
          }
        }
      }
    }
  }
  return zero;
}

// x rounded to the nearest TF32 value (10 mantissa bits; ties away from zero), as float32:
// _precision.tf32_round bit for bit. A finite x that would round to infinity has its low 13
// bits cleared instead; infinities and NaNs are returned unchanged.
LA_INLINE float tf32_round(float x) {
  const uint bits = as_type<uint>(x);
  if ((bits & 0x7F800000u) == 0x7F800000u) {
    return x;
  }
  uint rounded = (bits + 0x1000u) & 0xFFFFE000u;
  if ((rounded & 0x7F800000u) == 0x7F800000u) {
    rounded = bits & 0xFFFFE000u;
  }
  return as_type<float>(rounded);
}
