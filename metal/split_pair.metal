// @kernel split_pair
// @inputs X:float32
// @outputs HI:float32 PAIR:float32
// @template RIGHT:bool
// @headers linalg_common.h
// @check RIGHT=false RIGHT=true
//
// The hi/lo split of a float32 stack for the split (TF32) product, and the stacked operand
// of its correction product, in one pass: what _precision.split_float32 and
// _precision.pair form with three launches (a bit mask, a subtraction, a select).
//   X     (B, R, C) float32.
//   HI    (B, R, C): X rounded to TF32 (_precision.tf32_round).
//   PAIR  (B, R, 2C) [HI | LO] for a left operand (RIGHT = false), (B, 2R, C) [LO ; HI]
//         for a right one, LO = X - HI rounded to TF32, as blocked_common.left / right
//         stack them.
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
const size_t r = (i / (size_t)cols) % (size_t)rows;
const size_t b = i / ((size_t)rows * (size_t)cols);
if (RIGHT) {
  const size_t base = b * 2 * (size_t)rows * (size_t)cols;
  PAIR[base + r * cols + c] = lo;
  PAIR[base + ((size_t)rows + r) * cols + c] = hi;
} else {
  const size_t base = (b * (size_t)rows + r) * 2 * (size_t)cols;
  PAIR[base + c] = hi;
  PAIR[base + cols + c] = lo;
}
