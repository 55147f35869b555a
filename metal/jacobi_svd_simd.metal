// @kernel jacobi_svd_simd
// @inputs A:float32
// @outputs U:float32 S:float32 Vh:float32 info:int32
// @template M:int N:int NP:int FULL:bool WANT_UV:bool WIDE:bool MAX_SWEEPS:int
// @headers linalg_common.h jacobi_common.h jacobi_simd.h
// @check M=8,N=5,NP=8,FULL=false,WANT_UV=true,WIDE=false,MAX_SWEEPS=30 M=32,N=32,NP=32,FULL=true,WANT_UV=true,WIDE=false,MAX_SWEEPS=30 M=32,N=17,NP=32,FULL=true,WANT_UV=true,WIDE=true,MAX_SWEEPS=30 M=16,N=16,NP=16,FULL=false,WANT_UV=false,WIDE=false,MAX_SWEEPS=30 M=1,N=1,NP=2,FULL=true,WANT_UV=true,WIDE=false,MAX_SWEEPS=30
//
// One-sided Jacobi SVD of a stack of small matrices (both sides <= 32), one simdgroup per
// matrix with the matrix in registers.
//
// Contract (the kernel factors the tall T (M x N), M >= N: T = A, or T = Aᵀ when WIDE)
//   A     raw (no scaling needed): (B, M, N) row-major, or (B, N, M) when WIDE.
//   S     (B, N) singular values, descending (ties keep column order), >= 0.
//   With T = U' diag(S) V'ᵀ, U' (M x UC), UC = M if FULL else N, V' (N x N):
//   not WIDE: U (B, M, UC) = U', Vh (B, N, N) = V'ᵀ (A = U diag(S) Vh);
//   WIDE:     U (B, N, N) = V', Vh (B, UC, M) = U'ᵀ (A = Tᵀ = V' diag(S) U'ᵀ);
//   that is, the layouts svd returns for A. When WANT_UV is false U and Vh are (1,) and
//   hold a 0. A matrix with a non-finite entry gets NaN in all its outputs and info 0.
//   info  (B,) sweeps made; negative when MAX_SWEEPS ran out first.
//   Threadgroup (32, 1, 1), grid (B·32, 1, 1). 1 <= N <= M <= 32, NP: a power of two,
//   max(N, 2) <= NP <= 32.
//
// Algorithm
//   Load (coalesced, staged in threadgroup memory); lane i takes row i of T; every entry
//   is checked finite (simd_all), and T is scaled by 2^-e with 2^e <= max|t| < 2^(e+1)
//   (metal::ldexp, exact). Hestenes' one-sided Jacobi (jacobi_simd.h, threshold
//   sqrt(M)·eps) rotates column pairs of W = T·V until all are orthogonal; then
//   S_k = |w_k|·2^e, U'_k = w_k / |w_k|, a rank sort (descending, ties by index). U' is
//   assembled in threadgroup memory (row i by lane i); its columns whose norm is
//   numerically zero (below 2^-50 of the largest entry) and, when FULL, columns N..M-1 are
//   completed there as in jacobi_svd.metal: the unit vector e_k whose row k of U' so far
//   has the least weight, orthogonalized twice against all columns so far (modified
//   Gram-Schmidt) and normalized. Writes are coalesced: V'ᵀ straight from the registers
//   (row rank_k of Vh is lane j's v[k] at column j), the others from threadgroup memory.
//   Traffic: A read once, U, S, Vh written once.

constexpr int TS = 33;  // row stride of the staging tile (conflict-free column reads)
constexpr int RQ = NP >= 4 ? NP / 4 : 1;
constexpr int UC = FULL ? M : N;
constexpr int C_IN = WIDE ? M : N;  // columns of A as stored

threadgroup float tile[32 * TS];
threadgroup float4 rot[2 * RQ];

const uint b = threadgroup_position_in_grid.x;
const uint nb = (uint)A_shape[0];
if (b >= nb) {
  return;
}
const uint lane = thread_index_in_simdgroup;

if (!WANT_UV && b == 0 && lane == 0) {
  U[0] = 0.0f;
  Vh[0] = 0.0f;
}

// Coalesced load of the raw matrix; lane i then takes row i of T.
const device float* a = A + (size_t)b * (M * N);
for (uint e = lane; e < (uint)(M * N); e += 32) {
  tile[(e / C_IN) * TS + e % C_IN] = a[e];
}
simdgroup_barrier(mem_flags::mem_threadgroup);
float w[NP];
float v[NP];
bool finite = true;
float largest = 0.0f;
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  float x = 0.0f;
  if (k < N && lane < (uint)M) {
    x = WIDE ? tile[k * TS + lane] : tile[lane * TS + k];
  }
  finite = finite && metal::isfinite(x);
  largest = metal::max(largest, metal::abs(x));
  w[k] = x;
  v[k] = ((uint)k == lane && k < N) ? 1.0f : 0.0f;
}
finite = simd_all(finite);

constexpr int U_SIZE = WANT_UV ? (WIDE ? N * N : M * UC) : 0;
constexpr int VH_SIZE = WANT_UV ? (WIDE ? UC * M : N * N) : 0;
device float* u_out = U + (size_t)b * U_SIZE;
device float* s_out = S + (size_t)b * N;
device float* vh_out = Vh + (size_t)b * VH_SIZE;
if (!finite) {
  const float nan_value = la_nan();
  for (uint e = lane; e < (uint)N; e += 32) {
    s_out[e] = nan_value;
  }
  if (WANT_UV) {
    for (int e = (int)lane; e < U_SIZE; e += 32) {
      u_out[e] = nan_value;
    }
    for (int e = (int)lane; e < VH_SIZE; e += 32) {
      vh_out[e] = nan_value;
    }
  }
  if (lane == 0) {
    info[b] = 0;
  }
  return;
}
const int ex = la_scale_exponent(simd_max(largest));
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  w[k] = metal::ldexp(w[k], -ex);
}

// Rotation threshold sqrt(M)·eps: above the rounding noise of an M-term dot product.
const float tol = metal::sqrt((float)M) * 1.1920929e-7f;
const int sweeps = la_simd_jacobi_sweeps<NP, WANT_UV>(w, v, rot, tol, MAX_SWEEPS, lane);

// Singular values (lane k keeps its own; the others come by shuffles), ranks, S.
float mine = 0.0f;
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  const float d = metal::sqrt(simd_sum(w[k] * w[k]));
  mine = (uint)k == lane ? d : mine;
}
const int my_rank = la_simd_rank<N, true>(mine, lane);
if (lane < (uint)N) {
  s_out[my_rank] = metal::ldexp(mine, ex);
}

if (WANT_UV) {
  const float tiny = 8.8817842e-16f;  // 2^-50
  const int good = simd_sum((lane < (uint)N && mine > tiny) ? 1 : 0);
  // U' into the tile, row i by lane i, column rank_k (zero for a numerically zero column).
  LA_UNROLL
  for (int k = 0; k < N; ++k) {
    const float sk = simd_shuffle(mine, (ushort)k);
    const int rk = simd_shuffle(my_rank, (ushort)k);
    if (lane < (uint)M) {
      tile[lane * TS + rk] = w[k] * (sk > tiny ? 1.0f / sk : 0.0f);
    }
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);
  if (good < UC) {
    // Completion (rare for FULL = false): columns good..UC-1 of U', lane i holding row i.
    const bool row_ok = lane < (uint)M;
    float weight = 0.0f;
    for (int c = 0; c < good; ++c) {
      const float u = row_ok ? tile[lane * TS + c] : 0.0f;
      weight = metal::fma(u, u, weight);
    }
    weight = row_ok ? weight : INFINITY;
    for (int j = good; j < UC; ++j) {
      // The row of least weight in the columns so far (lowest index on ties).
      const float least = simd_min(weight);
      const int k = simd_min(weight == least ? (int)lane : 1 << 30);
      float x = (int)lane == k ? 1.0f : 0.0f;
      for (int pass = 0; pass < 2; ++pass) {
        for (int c = 0; c < j; ++c) {
          const float u = row_ok ? tile[lane * TS + c] : 0.0f;
          const float d = simd_sum(u * x);
          x = metal::fma(-d, u, x);
        }
      }
      x *= 1.0f / metal::sqrt(simd_sum(x * x));
      if (row_ok) {
        tile[lane * TS + j] = x;
        weight = metal::fma(x, x, weight);
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
    }
  }
  if (WIDE) {
    // Vh = U'ᵀ (UC x M) from the tile; U = V' (N x N): column rank_k of row i is v_i[k].
    for (uint e = lane; e < (uint)(UC * M); e += 32) {
      vh_out[e] = tile[(e % M) * TS + e / M];
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    la_simd_store_columns<NP, N, N>(v, my_rank, tile, u_out, lane);
  } else {
    // U = U' (M x UC) from the tile; Vh = V'ᵀ: row rank_k is v[k] across the lanes.
    for (uint e = lane; e < (uint)(M * UC); e += 32) {
      u_out[e] = tile[(e / UC) * TS + e % UC];
    }
    LA_UNROLL
    for (int k = 0; k < N; ++k) {
      const int rk = simd_shuffle(my_rank, (ushort)k);
      if (lane < (uint)N) {
        vh_out[rk * N + lane] = v[k];
      }
    }
  }
}
if (lane == 0) {
  info[b] = sweeps;
}
