// @kernel split_gram
// @inputs X:float32
// @outputs HI:float32 PAIR:float32 SWAPPED:float32
// @headers linalg_common.h
//
// Both operands of a split (TF32) Gram product X Xᵀ in one pass: split_pair's hi/lo split
// and stacked left operand, plus the right operand's stack, for updates C - X Xᵀ (the
// blocked Cholesky's) whose right operand is the left one transposed.
//   X        (B, R, C) float32.
//   HI       (B, R, C): X rounded to TF32 (_precision.tf32_round).
//   PAIR     (B, R, 2C) [HI | LO], LO = X - HI rounded to TF32: the left operand's stack.
//   SWAPPED  (B, R, 2C) [LO | HI]: its transpose is the right operand's stack [LO ; HI]ᵀ
//            of Xᵀ, so PAIR @ SWAPPEDᵀ = HI LOᵀ + LO HIᵀ, the correction terms.
// Launch: grid (B R C, 1, 1), threadgroup (T, 1, 1): one thread per entry of X.

const int rows = X_shape[1];
const int cols = X_shape[2];
const size_t total = (size_t)X_shape[0] * (size_t)rows * (size_t)cols;
const size_t i = (size_t)thread_position_in_grid.x;
if (i >= total) {
  return;
}
const float x = X[i];
const float hi = tf32_round(x);
const float lo = tf32_round(x - hi);
HI[i] = hi;
const size_t c = i % (size_t)cols;
const size_t row = i / (size_t)cols;  // over all matrices: (b, r) flattened
const size_t base = row * 2 * (size_t)cols;
PAIR[base + c] = hi;
PAIR[base + cols + c] = lo;
SWAPPED[base + c] = lo;
SWAPPED[base + cols + c] = hi;
