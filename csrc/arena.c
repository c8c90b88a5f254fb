/* arena.c: kernels over flat buffers (fill, norms, clipping, scaling) and the optimiser steps.
 *
 * The type-generic bodies are in arena.inc, compiled once for float and once for double.
 * Every kernel is one pass; elementwise kernels split the buffer into chunks of FG_CHUNK
 * elements, processed in parallel from the caller's parallel_min (serially under it; the
 * measured values are fastgrad.h's FG_PAR_*).
 */
#include <stdlib.h>

#include "fastgrad.h"
#include "fg_internal.h"

/* norm kinds: the common norms get their own vectorised loops */
enum { FG_L2, FG_L1, FG_LINF, FG_LP };

int fg_abi_version(void) { return FG_ABI_VERSION; }

int fg_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fg_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void fg_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n >= 1)
        omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static int fg_norm_kind(double norm_type)
{
    if (norm_type == 2.0)
        return FG_L2;
    if (norm_type == 1.0)
        return FG_L1;
    if (norm_type == INFINITY)
        return FG_LINF;
    return FG_LP;
}

static double fg_root(double power_sum, int kind, double p)
{
    if (kind == FG_L2)
        return sqrt(power_sum);
    if (kind == FG_LP)
        return pow(power_sum, 1.0 / p);
    return power_sum;
}

static double fg_combine(double acc, double part, int kind)
{
    /* a sum, or for the inf-norm a maximum that keeps NaN */
    if (kind == FG_LINF)
        return (part > acc || part != part) ? part : acc;
    return acc + part;
}

/* Offsets valid for a buffer of n elements: non-decreasing, within [0, n]. */
static int fg_offsets_valid(int64_t n, const int64_t *offsets, int64_t segments)
{
    if (segments < 0 || offsets[0] < 0 || offsets[segments] > n)
        return 0;
    for (int64_t s = 0; s < segments; s++)
        if (offsets[s + 1] < offsets[s])
            return 0;
    return 1;
}

#define T float
#define SFX f32
#define SQRT sqrtf
#define FABS fabsf
#include "arena.inc"
#undef T
#undef SFX
#undef SQRT
#undef FABS

#define T double
#define SFX f64
#define SQRT sqrt
#define FABS fabs
#include "arena.inc"
#undef T
#undef SFX
#undef SQRT
#undef FABS
