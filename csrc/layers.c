/* layers.c: the layers' kernels: activations, the linear layer (its product by gemm.c's
 * blocks, fused with the bias and activation), cross-entropy, batchnorm and the LSTM cell.
 *
 * The type-generic bodies are in layers.inc, compiled once for float and once for double.
 * Work is split into pieces of about FG_CHUNK elements (whole rows), run in parallel from the
 * caller's parallel_min (fastgrad.h's FG_PAR_* are the measured values). Reductions (bias
 * gradient, batchnorm statistics) sum each piece into its own double partial and add the
 * partials in piece order: the pieces depend on the shapes only, so results are
 * bit-identical for every thread count.
 */
#include <stdlib.h>

#include "fastgrad.h"
#include "fg_internal.h"

/* Rows per reduction piece over rows of `width` elements: about FG_CHUNK elements, and at
 * most FG_MAX_PIECES pieces. */
static inline int64_t fg_rows_per_piece(int64_t rows, int64_t width)
{
    int64_t per = fg_max64(1, FG_CHUNK / fg_max64(1, width));
    return fg_max64(per, (rows + FG_MAX_PIECES - 1) / FG_MAX_PIECES);
}

/* Rows per parallel work unit (no reduction): about FG_CHUNK elements. */
static inline int64_t fg_rows_per_unit(int64_t width)
{
    return fg_max64(1, FG_CHUNK / fg_max64(1, width));
}

#define T float
#define SFX f32
#define EXP_T fg_exp32
#define SIGMOID_T fg_sigmoid32
#define TANH_T fg_tanh32
#include "layers.inc"
#undef T
#undef SFX
#undef EXP_T
#undef SIGMOID_T
#undef TANH_T

#define T double
#define SFX f64
#define EXP_T fg_exp64
#define SIGMOID_T fg_sigmoid64
#define TANH_T fg_tanh64
#include "layers.inc"
#undef T
#undef SFX
#undef EXP_T
#undef SIGMOID_T
#undef TANH_T
