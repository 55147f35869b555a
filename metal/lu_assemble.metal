// @kernel lu_assemble
// @inputs F:float32 moves:int32 block:int32
// @outputs LU:float32 perm:int32
//
// The last step of the blocked LU (blocked_lu.getrf_pivots): every block column's
// multipliers moved to the rows the later steps' interchanges sent them to (what LAPACK's
// dgetrf does with a dlaswp on the left columns at every step), and the whole permutation,
// in one launch. In MLX ops (blocked_lu.assemble): per block column a gather of the index,
// a gather of the rows and a slice update, and per step a gather and a concatenation of
// the permutation.
//   F      (B, M, N): the factor as the steps wrote it: step s (rows and columns from
//          R_s = s b on, width w_s = min(b, K - R_s), K = min(M, N)) wrote its packed
//          panel, rows in its own pivot order, at rows R_s.., columns R_s..R_s + w_s, and
//          U's block row right of it at rows R_s..R_s + w_s; the rows of the panel below
//          w_s are in the order of the next step's trailing matrix.
//   moves  (S, B, M) int32, S = ceil(K / b): moves[s, :, :M - R_s] is step s's
//          permutation of its trailing matrix (row i of its packed panel is row
//          moves[s, b, i] of the trailing matrix, both counted from R_s); the rest unread.
//   block  (b, 0) int32, empty (_kernels.extents): b >= 1, read from its shape.
//   LU     (B, M, N): row i is F's row i where i is final for a column (U, and the
//          panel in which i became a pivot row or, past K, the last one); in the columns
//          of an earlier panel s, F's row p_s(i), the row of panel s that the later
//          interchanges brought to position i:
//            p_t(i) = i for the panel t = min(i / b, S - 1) of row i,
//            p_s(i) = R_{s+1} + moves[s + 1, b, p_{s+1}(i) - R_{s+1}] for s < t.
//   perm   (B, M) int32: perm[i] = moves[0, b, p_0(i)], row i of P A is row perm[i] of A.
// A moved-to row outside [0, M) (moves not a permutation) gives a row of NaN and perm -1.
// Launch: grid (B M T, 1, 1), threadgroup (T, 1, 1), S <= SMAX: threadgroup g assembles
// row g of the B M rows; thread 0 follows the chain p_t(i), ..., p_0(i) (t dependent
// loads) into threadgroup memory, then the threads copy the row (coalesced along each
// block column, whose entries come from one row of F).
// Memory traffic: M N floats read and written, at most S integers read per row.

constexpr int SMAX = 1024;
threadgroup int source[SMAX];
threadgroup int valid[1];

const int m = F_shape[1];
const int n = F_shape[2];
const int steps = moves_shape[0];
const int batch = moves_shape[1];
const int b_cols = block_shape[0];
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const size_t row = (size_t)threadgroup_position_in_grid.x;  // b * m + i
if (row >= (size_t)batch * (size_t)m || steps < 1 || steps > SMAX || b_cols < 1) {
  return;
}
const size_t b = row / (size_t)m;
const int i = (int)(row - b * (size_t)m);
const int own = metal::min(i / b_cols, steps - 1);
if (tid == 0) {
  int p = i;
  int intact = 1;
  source[own] = i;
  for (int s = own - 1; s >= 0; --s) {
    const int next = (s + 1) * b_cols;
    const int moved = next + moves[((size_t)(s + 1) * (size_t)batch + b) * (size_t)m + (size_t)(p - next)];
    intact = intact != 0 && moved >= next && moved < m ? 1 : 0;
    p = intact != 0 ? moved : next;
    source[s] = p;
  }
  const int original = moves[b * (size_t)m + (size_t)p];
  intact = intact != 0 && original >= 0 && original < m ? 1 : 0;
  perm[row] = intact != 0 ? original : -1;
  valid[0] = intact;
}
threadgroup_barrier(mem_flags::mem_threadgroup);
const bool ok = valid[0] != 0;
const device float* rows_of_b = F + b * (size_t)m * (size_t)n;
device float* to = LU + row * (size_t)n;
for (int c = tid; c < n; c += nthreads) {
  const int s = metal::min(c / b_cols, steps - 1);
  const int from = s < own ? source[s] : i;
  to[c] = ok ? rows_of_b[(size_t)from * (size_t)n + (size_t)c] : NAN;
}
