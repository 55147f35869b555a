// @kernel lu_join
// @inputs P1:float32 U12:float32 P2:float32 perm1:int32 perm2:int32
// @outputs LU:float32 perm:int32
//
// The join step of the recursive LU panel (blocked_lu.panel_lu, LAPACK dgetrf2): the
// packed (M x w) panel and its permutation from the factored left part, U12 and the
// factored A22, applying A22's row order to L21, in one launch (MLX ops: a gather, three
// concatenations, a gather and a concatenation of the permutation: ten launches).
//   P1    (B, M, w1): the left part's packed L\U, rows in its own pivot order.
//   U12   (B, w1, w2): U's block right of the left part.
//   P2    (B, M - w1, w2): the packed L\U of A22, rows in its pivot order.
//   perm1 (B, M) int32: row i of P1 is row perm1[i] of the panel.
//   perm2 (B, M - w1) int32: row i of P2 is row perm2[i] of A22 (row w1 + perm2[i] of P1).
//   LU    (B, M, w), w = w1 + w2: rows i < w1 are [P1[i, :], U12[i, :]]; rows i >= w1 are
//         [P1[w1 + perm2[i - w1], :], P2[i - w1, :]].
//   perm  (B, M) int32: perm1[i] for i < w1, perm1[w1 + perm2[i - w1]] for i >= w1.
// Launch: grid (ceil(B M w / T) T, 1, 1), threadgroup (T, 1, 1): one thread per entry of
// LU in row-major order (coalesced writes; the reads of P1's rows are gathered), the
// thread of column 0 also writes perm. No synchronization.

const uint M = uint(P1_shape[1]);
const uint w1 = uint(P1_shape[2]);
const uint w2 = uint(U12_shape[2]);
const uint w = w1 + w2;
const uint rows2 = M - w1;
const size_t total = size_t(P1_shape[0]) * M * w;
const size_t t = size_t(thread_position_in_grid.x);
if (t < total) {
  const uint j = uint(t % w);
  const size_t bi = t / w;
  const uint i = uint(bi % M);
  const size_t b = bi / M;
  const uint source = i < w1 ? i : w1 + uint(perm2[b * rows2 + (i - w1)]);
  float value;
  if (j < w1) {
    value = P1[(b * M + source) * w1 + j];
  } else if (i < w1) {
    value = U12[(b * w1 + i) * w2 + (j - w1)];
  } else {
    value = P2[(b * rows2 + (i - w1)) * w2 + (j - w1)];
  }
  LU[t] = value;
  if (j == 0) {
    perm[bi] = perm1[b * M + source];
  }
}
