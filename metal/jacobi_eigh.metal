// @kernel jacobi_eigh
// @inputs A:float32
// @outputs W:float32 Vt:float32 info:int32
// @template N:int L:int WANT_V:bool MAX_SWEEPS:int
// @headers linalg_common.h jacobi_common.h
// @check N=5,L=4,WANT_V=true,MAX_SWEEPS=30 N=64,L=8,WANT_V=true,MAX_SWEEPS=30 N=33,L=8,WANT_V=false,MAX_SWEEPS=30
//
// Symmetric eigendecomposition of a stack of small matrices by one-sided Jacobi on a
// shifted copy, one threadgroup per matrix.
//
// Contract
//   A     (B, N, N) row-major; only the lower triangle is read (the matrix used is
//         tril(A) + tril(A, -1)ᵀ). Scaled so that its largest entry lies in [1, 2) (the
//         launcher scales by a power of two and masks non-finite matrices).
//   W     (B, N) eigenvalues, ascending.
//   Vt    (B, N, N): row k is the unit eigenvector of W[k]. (1,) holding 0 when !WANT_V.
//   info  (B,) sweeps made; negative when MAX_SWEEPS ran out first.
//   Threadgroup (T, 1, 1), grid (B·T, 1, 1), T = (NP / 2)·L rounded up to a multiple of
//   32: L lanes (a power of two, 4 <= L <= 32, N <= 8·L) per column pair, NP = N rounded
//   up to even. Limits: N <= 64 (2·N·N floats of threadgroup memory), ceil(N / (T / 32))
//   <= 16 (true for the launcher's L = clamp(2^ceil(log2(N/8)), 4, 32)).
//
// Algorithm
//   With c = |A|_F, A + cI is positive semidefinite. One-sided Jacobi (jacobi_common.h)
//   on W = (A + cI)·V makes W's columns orthogonal, i.e. Vᵀ(A + cI)²V diagonal: the columns
//   of V are eigenvectors of (A + cI)² and hence of A (the square root of a positive
//   semidefinite matrix is unique). This is the implicit cyclic Jacobi method on (A + cI)²
//   (Veselić & Hari 1989); the off-diagonal part of Vᵀ(A + cI)V left at convergence is at
//   most tol·min(|w_p|, |w_q|) per entry, so the residual is O(tol·|A|_F).
//   Eigenvalue k: the Rayleigh quotient v_kᵀ w_k - c (|w_k| - c without vectors).
//   Then a rank sort (ascending) and permuted, coalesced writes.

constexpr int VN = WANT_V ? N * N : 32;

threadgroup float At[N * N];
threadgroup float Vs[VN < 32 ? 32 : VN];

const uint b = threadgroup_position_in_grid.x;
const uint nb = (uint)A_shape[0];
if (b >= nb) {
  return;
}
const uint tid = thread_index_in_threadgroup;
const uint lane = thread_index_in_simdgroup;
const uint sg = simdgroup_index_in_threadgroup;
const uint nsg = simdgroups_per_threadgroup;
const uint nthreads = nsg * 32;

if (!WANT_V && b == 0 && tid == 0) {
  Vt[0] = 0.0f;
}

// Load the symmetric matrix from the lower triangle; sum of squares for the shift.
const device float* a = A + (size_t)b * (N * N);
float ss = 0.0f;
for (uint t = tid; t < (uint)(N * N); t += nthreads) {
  const uint r = t / N;
  const uint c = t % N;
  const float x = r >= c ? a[t] : a[c * N + r];
  At[t] = x;
  ss = metal::fma(x, x, ss);
}
ss = simd_sum(ss);
if (lane == 0) {
  Vs[sg] = ss;
}
threadgroup_barrier(mem_flags::mem_threadgroup);
float total = 0.0f;
for (uint g = 0; g < nsg; ++g) {
  total += Vs[g];
}
const float shift = metal::sqrt(total);
threadgroup_barrier(mem_flags::mem_threadgroup);
for (uint t = tid; t < (uint)(N * N); t += nthreads) {
  if (t / N == t % N) {
    At[t] += shift;
  }
  if (WANT_V) {
    Vs[t] = (t / N == t % N) ? 1.0f : 0.0f;
  }
}
device int* flag = info + b;
if (tid == 0) {
  *flag = 0;
}
threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);

// Rotation threshold sqrt(N)·eps: above the rounding noise of an N-term dot product.
const float tol = metal::sqrt((float)N) * 1.1920929e-7f;
const int sweeps = la_jacobi_sweeps<N, N, L, WANT_V>(At, Vs, flag, tol, MAX_SWEEPS, tid);

// Eigenvalues, unsorted, into W (scratch for the ranking). The L-lane segment g handles
// columns g and g + nseg (nseg >= NP / 2, so that is all of them).
const int g = (int)(tid / L);
const int sl = (int)(tid % L);
const int nseg = (int)(nthreads / L);
device float* w_out = W + (size_t)b * N;
device float* v_out = Vt + (size_t)b * (WANT_V ? N * N : 0);
for (int h = 0; h < 2; ++h) {
  const int i = g + h * nseg;
  const bool ok = i < N;
  float acc = 0.0f;
  if (ok) {
    for (int row = sl; row < N; row += L) {
      const float w = At[i * N + row];
      acc = metal::fma(WANT_V ? Vs[i * N + row] : w, w, acc);
    }
  }
  acc = la_segment_sum<L>(acc);
  if (ok && sl == 0) {
    w_out[i] = (WANT_V ? acc : metal::sqrt(acc)) - shift;
  }
}
threadgroup_barrier(mem_flags::mem_device);
// Ranks (ascending) and the permuted, coalesced eigenvector writes (rows of Vt).
float lambda[2];
int rank[2];
for (int h = 0; h < 2; ++h) {
  const int i = g + h * nseg;
  const bool ok = i < N;
  lambda[h] = ok ? w_out[i] : 0.0f;
  rank[h] = la_rank<false, L>(w_out, N, lambda[h], i, ok, sl);
  if (WANT_V && ok) {
    for (int row = sl; row < N; row += L) {
      v_out[rank[h] * N + row] = Vs[i * N + row];
    }
  }
}
threadgroup_barrier(mem_flags::mem_device);
for (int h = 0; h < 2; ++h) {
  if (g + h * nseg < N && sl == 0) {
    w_out[rank[h]] = lambda[h];
  }
}
threadgroup_barrier(mem_flags::mem_device);
if (tid == 0) {
  *flag = sweeps;
}
