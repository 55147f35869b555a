// @kernel rank_update
// @inputs C:float32 A:float32 Bm:float32 Dims:int32
// @outputs D:float32
// @template TRANS_A:bool TRANS_B:bool PRODUCT:bool
// @check TRANS_A=false,TRANS_B=false,PRODUCT=false TRANS_A=false,TRANS_B=true,PRODUCT=false TRANS_A=true,TRANS_B=false,PRODUCT=true TRANS_A=true,TRANS_B=false,PRODUCT=false
//
// D = C[.., row0:, col0:] - op(A) op(B), or D = op(A) op(B) (PRODUCT), in float32
// arithmetic (one FMA chain per entry over k, then the subtraction, as a float32 GEMM with
// alpha = -1 and beta = 1: never TF32). The update of the blocked factorizations where K
// is a panel's width (the QR's 32-column panels, the LU panel's recursive halves): one
// launch and one pass over C, where the split product (mlx_linalg/_precision.py) takes two
// splits and two products that read and write C twice. PRODUCT with TRANS_A: the QR's
// chunked Vᵀ C (K = a chunk of rows), C read once where the split product writes it split.
//
// Contract
//   C     (B, MC, NC) row-major; D's block starts at row row0, column col0 of each matrix,
//         row0 + M <= MC, col0 + N <= NC (so a trailing matrix is read in place). Not read
//         when PRODUCT (any array).
//   A     (B, MA, KA) row-major, holding op(A) (M x K) as its block from row arow0,
//         column acol0: A[b, arow0 + i, acol0 + k], or A[b, arow0 + k, acol0 + i] when
//         TRANS_A (op(A) = Aᵀ: Vᵀ C reads V), so a block of a larger matrix (a triangular
//         solve's coupling block) is read in place.
//   Bm    (B, K, N) row-major, or (B, N, K) when TRANS_B (op(B) = Bmᵀ: a Gram update
//         C - X Xᵀ reads X itself).
//   Dims  (row0, col0, arow0, acol0, M, K, 0) int32, empty (_kernels.extents): read from
//         its shape (runtime values: a template argument would compile a kernel per step
//         of a blocked loop).
//   D     (B, M, N).
// Launch: grid (B·⌈M/64⌉·⌈N/64⌉·256, 1, 1), threadgroup (256, 1, 1): one threadgroup per
//   64 x 64 tile of D; thread (tx, ty) = (t mod 16, t / 16) owns rows 4ty + r and columns
//   4tx + c, r, c < 4 (a SIMD-group covers two rows of 64 consecutive columns: coalesced C
//   and D). K is walked 16 at a time through threadgroup memory, both tiles stored k-major
//   with a row stride of 68: a thread's four rows (columns) of one k are consecutive and
//   16-byte aligned, so each is one vector load (two loads per 16 FMAs; with rows 16
//   apart it took eight), and A's k-by-k stores spread over 8 banks (a stride of 64 would
//   put 16 threads' stores in one).
// Memory traffic: C read once, D written once, A and B once per tile row / column.

constexpr int TILE = 64;
constexpr int KT = 16;
constexpr int THREADS = 256;
constexpr int LD = TILE + 4;  // row stride of the tiles: a multiple of 4 (aligned 4-vectors)

threadgroup float As[KT * LD];
threadgroup float Bs[KT * LD];

const int batch = A_shape[0];
const int MA = A_shape[1];
const int KA = A_shape[2];  // A's row stride
const int M = Dims_shape[4];
const int K = Dims_shape[5];
const int N = TRANS_B ? Bm_shape[1] : Bm_shape[2];
const int MC = PRODUCT ? 0 : C_shape[1];
const int NC = PRODUCT ? 0 : C_shape[2];
const int row0 = Dims_shape[0];
const int col0 = Dims_shape[1];
const int arow0 = Dims_shape[2];
const int acol0 = Dims_shape[3];
const int tiles_m = (M + TILE - 1) / TILE;
const int tiles_n = (N + TILE - 1) / TILE;

const int group = (int)threadgroup_position_in_grid.x;
if (group >= batch * tiles_m * tiles_n) {
  return;
}
const int b = group / (tiles_m * tiles_n);
const int tile = group % (tiles_m * tiles_n);
const int first_row = (tile / tiles_n) * TILE;
const int first_col = (tile % tiles_n) * TILE;
const int t = (int)thread_index_in_threadgroup;
const int tx = t % 16;
const int ty = t / 16;

const device float* a =
    A + (size_t)b * (size_t)MA * (size_t)KA + (size_t)arow0 * (size_t)KA + (size_t)acol0;
const device float* bm = Bm + (size_t)b * (size_t)K * (size_t)N;

float acc[4][4];
LA_UNROLL
for (int r = 0; r < 4; ++r) {
  LA_UNROLL
  for (int c = 0; c < 4; ++c) {
    acc[r][c] = 0.0f;
  }
}

for (int k0 = 0; k0 < K; k0 += KT) {
  // Each thread loads four entries of each tile; entries past M, N or K are zeros. Two
  // orders of a tile's entries: k fastest, for an operand whose k is contiguous (A (M, K),
  // Bm (N, K)), and row / column fastest (A (K, M), Bm (K, N)), so that consecutive
  // threads read consecutive addresses either way.
  for (int e = t; e < KT * TILE; e += THREADS) {
    const int k_fast = e % KT;
    const int across_slow = e / KT;
    const int k_slow = e / TILE;
    const int across_fast = e % TILE;
    {
      const int kk = TRANS_A ? k_slow : k_fast;
      const int ii = TRANS_A ? across_fast : across_slow;
      const int row = first_row + ii;
      float value = 0.0f;
      if (row < M && k0 + kk < K) {
        value = TRANS_A ? a[(size_t)(k0 + kk) * (size_t)KA + (size_t)row]
                        : a[(size_t)row * (size_t)KA + (size_t)(k0 + kk)];
      }
      As[kk * LD + ii] = value;
    }
    {
      const int kk = TRANS_B ? k_fast : k_slow;
      const int jj = TRANS_B ? across_slow : across_fast;
      const int col = first_col + jj;
      float value = 0.0f;
      if (col < N && k0 + kk < K) {
        value = TRANS_B ? bm[(size_t)col * (size_t)K + (size_t)(k0 + kk)]
                        : bm[(size_t)(k0 + kk) * (size_t)N + (size_t)col];
      }
      Bs[kk * LD + jj] = value;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int k = 0; k < KT; ++k) {
    float x[4];
    float y[4];
    LA_UNROLL
    for (int r = 0; r < 4; ++r) {
      x[r] = As[k * LD + 4 * ty + r];
    }
    LA_UNROLL
    for (int c = 0; c < 4; ++c) {
      y[c] = Bs[k * LD + 4 * tx + c];
    }
    LA_UNROLL
    for (int r = 0; r < 4; ++r) {
      LA_UNROLL
      for (int c = 0; c < 4; ++c) {
        acc[r][c] = metal::fma(x[r], y[c], acc[r][c]);
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

const device float* c_in = C + (size_t)b * (size_t)MC * (size_t)NC;
device float* d_out = D + (size_t)b * (size_t)M * (size_t)N;
LA_UNROLL
for (int r = 0; r < 4; ++r) {
  const int row = first_row + 4 * ty + r;
  if (row >= M) {
    continue;
  }
  LA_UNROLL
  for (int c = 0; c < 4; ++c) {
    const int col = first_col + 4 * tx + c;
    if (col < N) {
      const float old =
          PRODUCT ? 0.0f : c_in[(size_t)(row0 + row) * (size_t)NC + (size_t)(col0 + col)];
      d_out[(size_t)row * (size_t)N + (size_t)col] = PRODUCT ? acc[r][c] : old - acc[r][c];
    }
  }
}
