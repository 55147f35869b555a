// @kernel tsqr_product
// @inputs A:float32 Bm:float32 Top:float32 Dims:int32
// @outputs C:float32
// @template TRANS:bool TOP:int
// @check TRANS=false,TOP=0 TRANS=true,TOP=0 TRANS=true,TOP=32
//
// The batched small products of the TSQR panel (mlx_linalg/_gpu/tsqr.py) in float32
// arithmetic (one FMA chain per entry, as a float32 GEMM: never TF32), with the products'
// rows laid end to end per matrix, a slice of them, and a top block.
//
// Contract
//   A    (G, MA, K) when not TRANS, else (G, K, MA) (op(A) = Aᵀ: a Qt of qr_small).
//   Bm   (G, K, N).
//   Top  (BT, TOP, N) when TOP > 0 (else any array, not read).
//   Dims (BT, ROWS, 0) int32, empty (_kernels.extents): BT and ROWS, read from its shape
//        (runtime sizes: a template argument would compile a kernel per panel height).
//   C    (BT, ROWS, N), G a multiple of BT, ROWS <= (G / BT) MA: matrix bt's products
//        op(A_g) Bm_g for g = bt (G / BT), ..., stacked row after row (MA rows each), the
//        first ROWS of those rows, except that rows i < TOP are Top[bt, i] instead.
//        (BT = 1, ROWS = G MA: the plain batched product.)
// Launch: grid (⌈BT·ROWS·N / 256⌉·256, 1, 1), threadgroup (256, 1, 1): one thread per
//   entry of C; consecutive threads take consecutive columns j of one row (coalesced Bm
//   and C; A's entry is the same for the row's threads).
// Memory traffic: C written once; A and Bm read K times per entry, from cache.

const int G = A_shape[0];
const int MA = TRANS ? A_shape[2] : A_shape[1];
const int K = TRANS ? A_shape[1] : A_shape[2];
const int N = Bm_shape[2];
const int BT = Dims_shape[0];
const int ROWS = Dims_shape[1];
const size_t entry = (size_t)thread_position_in_grid.x;
if (entry >= (size_t)BT * (size_t)ROWS * (size_t)N) {
  return;
}
const int j = (int)(entry % (size_t)N);
const size_t row_index = entry / (size_t)N;
const int i = (int)(row_index % (size_t)ROWS);
const int bt = (int)(row_index / (size_t)ROWS);
if (TOP > 0 && i < TOP) {
  C[entry] = Top[((size_t)bt * TOP + (size_t)i) * (size_t)N + (size_t)j];
  return;
}
const int per = G / BT;
const size_t g = (size_t)bt * (size_t)per + (size_t)(i / MA);
const int row = i % MA;
const device float* a = A + g * (size_t)MA * (size_t)K;
const device float* b = Bm + g * (size_t)K * (size_t)N + (size_t)j;
float sum = 0.0f;
for (int k = 0; k < K; ++k) {
  const float x = TRANS ? a[(size_t)k * (size_t)MA + (size_t)row]
                        : a[(size_t)row * (size_t)K + (size_t)k];
  sum = metal::fma(x, b[(size_t)k * (size_t)N], sum);
}
C[entry] = sum;
