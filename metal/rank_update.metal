// @kernel rank_update
// @inputs C:float32 A:float32 Bm:float32 Dims:int32
// @outputs D:float32
// @template TRANS_B:bool
// @check TRANS_B=false TRANS_B=true
//
// D = C[.., row0:, col0:] - A op(B) for a small inner dimension K, in float32 arithmetic
// (one FMA chain per entry over k, then the subtraction, as a float32 GEMM with alpha = -1
// and beta = 1: never TF32). The update of the blocked factorizations where K is a panel's
// width (the QR's 32-column panels, the LU panel's recursive halves): one launch and one
// pass over C, where the split product (mlx_linalg/_precision.py) takes two splits and two
// products that read and write C twice.
//
// Contract
//   C     (B, MC, NC) row-major; D's block starts at row row0, column col0 of each matrix,
//         row0 + M <= MC, col0 + N <= NC (so a trailing matrix is read in place).
//   A     (B, M, K) row-major.
//   Bm    (B, K, N) row-major, or (B, N, K) when TRANS_B (op(B) = Bmᵀ: a Gram update
//         C - X Xᵀ reads X itself).
//   Dims  (2,) int32: row0, col0 (runtime values: a template argument would compile a
//         kernel per step of a blocked loop).
//   D     (B, M, N).
// Launch: grid (B·⌈M/64⌉·⌈N/64⌉·256, 1, 1), threadgroup (256, 1, 1): one threadgroup per
//   64 x 64 tile of D; thread (tx, ty) = (t mod 16, t / 16) owns rows ty + 16r and columns
//   tx + 16c, r, c < 4 (consecutive threads: consecutive columns, coalesced C and D).
//   K is walked 16 at a time through threadgroup memory, both tiles stored k-major with a
//   row stride of 65 (A's tile is stored k by k: a stride of 64 would put 16 threads' stores
//   in one bank).
// Memory traffic: C read once, D written once, A and B once per tile row / column.

constexpr int TILE = 64;
constexpr int KT = 16;
constexpr int THREADS = 256;
constexpr int LD = TILE + 1;  // row stride of the tiles: k-major stores of A hit 16 banks

threadgroup float As[KT * LD];
threadgroup float Bs[KT * LD];

const int batch = A_shape[0];
const int M = A_shape[1];
const int K = A_shape[2];
const int N = TRANS_B ? Bm_shape[1] : Bm_shape[2];
const int MC = C_shape[1];
const int NC = C_shape[2];
const int row0 = Dims[0];
const int col0 = Dims[1];
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

const device float* a = A + (size_t)b * (size_t)M * (size_t)K;
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
  // Each thread loads four entries of each tile; entries past M, N or K are zeros.
  for (int e = t; e < KT * TILE; e += THREADS) {
    // A's tile: consecutive threads read consecutive k of one row (a row's K entries are
    // contiguous), stored at As[k][row].
    const int k = e % KT;
    const int i = e / KT;
    const int row = first_row + i;
    As[k * LD + i] = (row < M && k0 + k < K) ? a[(size_t)row * (size_t)K + (size_t)(k0 + k)] : 0.0f;
    float value = 0.0f;
    if (TRANS_B) {
      // Bm (N, K): op(B)[k][j] = Bm[j][k]; consecutive threads read consecutive k.
      const int col = first_col + i;
      if (col < N && k0 + k < K) {
        value = bm[(size_t)col * (size_t)K + (size_t)(k0 + k)];
      }
      Bs[k * LD + i] = value;
    } else {
      // Bm (K, N): consecutive threads read consecutive columns of one row k.
      const int kk = e / TILE;
      const int j = e % TILE;
      const int col = first_col + j;
      if (col < N && k0 + kk < K) {
        value = bm[(size_t)(k0 + kk) * (size_t)N + (size_t)col];
      }
      Bs[kk * LD + j] = value;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int k = 0; k < KT; ++k) {
    float x[4];
    float y[4];
    LA_UNROLL
    for (int r = 0; r < 4; ++r) {
      x[r] = As[k * LD + ty + 16 * r];
    }
    LA_UNROLL
    for (int c = 0; c < 4; ++c) {
      y[c] = Bs[k * LD + tx + 16 * c];
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
  const int row = first_row + ty + 16 * r;
  if (row >= M) {
    continue;
  }
  LA_UNROLL
  for (int c = 0; c < 4; ++c) {
    const int col = first_col + tx + 16 * c;
    if (col < N) {
      const float old = c_in[(size_t)(row0 + row) * (size_t)NC + (size_t)(col0 + col)];
      d_out[(size_t)row * (size_t)N + (size_t)col] = old - acc[r][c];
    }
  }
}
