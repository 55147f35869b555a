// @kernel gather_rows
// @inputs X:float32 rows:int32 first:int32
// @outputs Y:float32
//
// Row interchanges of the blocked LU as one gather of whole rows: the rows `rows` of each
// X[b], from column F on (a trailing matrix's columns right of its panel, read in
// place).
//   X     (B, M, N) float32.
//   rows  (B, R) int32: Y's row i is X's row rows[b, i]; an entry outside [0, M) gives a
//         row of NaN.
//   first (F, 0) int32, empty (_kernels.extents): 0 <= F <= N, read from its shape (not
//         a template argument, so no column offset compiles a kernel of its own).
//   Y     (B, R, N - F): Y[b, i, c] = X[b, rows[b, i], F + c].
// Launch: grid (B R T, 1, 1), threadgroup (T, 1, 1): threadgroup g copies row g of the
// (B R) rows of Y, its threads along the row (coalesced reads and writes), UNROLL entries
// per thread loaded before they are stored (the compiler cannot prove that X and Y do not
// alias, so a load-store loop would wait for each load in turn). MLX's take_along_axis,
// which this replaces on the GPU, took 399 us for a 4096 x 4096 matrix on an H100 (about
// 320 GB/s); copying its 128 MB at the H100's ~3 TB/s takes about 45 us.

constexpr int UNROLL = 4;
const int m = X_shape[1];
const int n = X_shape[2];
const int r = rows_shape[1];
const int offset = first_shape[0];
const int width = n - offset;
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const size_t row = (size_t)threadgroup_position_in_grid.x;  // b * r + i
if (row < (size_t)X_shape[0] * (size_t)r) {
  const size_t b = row / (size_t)r;
  const int source = rows[row];
  const bool inside = source >= 0 && source < m;
  const device float* from = X + (b * (size_t)m + (size_t)(inside ? source : 0)) * (size_t)n + offset;
  device float* to = Y + row * (size_t)width;
  for (int c0 = tid; c0 < width; c0 += UNROLL * nthreads) {
    float x[UNROLL];
    LA_UNROLL
    for (int u = 0; u < UNROLL; ++u) {
      const int c = c0 + u * nthreads;
      x[u] = (inside && c < width) ? from[c] : NAN;
    }
    LA_UNROLL
    for (int u = 0; u < UNROLL; ++u) {
      const int c = c0 + u * nthreads;
      if (c < width) {
        to[c] = x[u];
      }
    }
  }
}
