/* fg_internal.h: what the kernel sources share (not part of the public contract).
 *
 * Elementary functions. glibc's expf/tanhf are scalar calls that stop vectorisation, and its
 * vector versions (libmvec) need -ffast-math, which would break NaN and inf handling. So exp,
 * sigmoid and tanh are evaluated with arithmetic only, the same algorithm as the Numba
 * backend: Cody-Waite reduction v = t ln2 + r, a Taylor polynomial in r, 2**t built from its
 * bits. Float versions stay in float (within 2.5 ulp of the exact value, as NumPy's float32
 * ufuncs), double versions in double (within 2e-14 relative). Results below the smallest
 * normal number flush to zero. The build uses -std=c11, so the compiler does not contract
 * a * b + c into an FMA: the same input rounds the same way in every kernel.
 */
#ifndef FG_INTERNAL_H
#define FG_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastgrad.h"

/* Elements per parallel work unit and per reduction piece: the pieces fix the rounding of
 * every reduction, so changing this changes sums and norms in their last bits. */
#define FG_CHUNK 16384
/* At most this many partial rows per reduction over rows (bias gradient, batchnorm). */
#define FG_MAX_PIECES 64

/* exp's argument reduction v = t ln2 + r (ln2 split so that t * hi is exact) and the range
 * beyond which exp's result is flushed to 0 or is inf, per type: the Numba backend's _LOG2E,
 * _LN2_* and _EXP_* (fastgrad/backends/numba_cpu/_layers.py), tests/test_constants.py checks
 * they agree. */
#define FG_LOG2E_32 1.4426950408889634f
#define FG_LN2_HI32 0.693359375f
#define FG_LN2_LO32 (-2.12194440e-4f)
#define FG_EXP_MIN32 (-87.3f)
#define FG_EXP_MAX32 88.0f
#define FG_LOG2E_64 1.4426950408889634
#define FG_LN2_HI64 0.693145751953125
#define FG_LN2_LO64 1.4286068203094173e-06
#define FG_EXP_MIN64 (-708.3)
#define FG_EXP_MAX64 709.0

/* The loops are compiled for three x86-64 levels and the best one the CPU supports is chosen
 * when the library loads (GCC's target_clones, an ifunc): SSE4.2 (x86-64-v2, the portable
 * baseline), AVX2 (x86-64-v3) and AVX-512 (x86-64-v4). Every level runs the same IEEE
 * operations in the same order (no FMA contraction: -ffp-contract=off), so the results are
 * bit-identical whichever runs. A native build (FASTGRAD_NATIVE=1 defines FG_NATIVE), another
 * compiler or platform gets one version. FG_INLINE bodies are inlined into each clone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FG_NATIVE)
#define FG_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define FG_CLONES
#endif
#if defined(__GNUC__)
#define FG_INLINE static inline __attribute__((always_inline))
#else
#define FG_INLINE static inline
#endif

#define FG_PASTE(a, b) a##b
#define FG_XPASTE(a, b) FG_PASTE(a, b)

static inline int64_t fg_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t fg_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- the block GEMM (gemm.c), shared by fg_gemm_* and fg_linear_fwd_* ---- */
/* How a product's output (rows, cols) is cut: `blocks` blocks of its rows (along_rows) or
 * columns, over `side` rows or columns (fastgrad.h, "matrix products"). */
typedef struct fg_gemm_plan {
    int64_t blocks, side;
    int along_rows;
} fg_gemm_plan;

/* 1 when `blas` can compute a product of these sizes in elements of `itemsize` bytes */
int fg_blas_usable(const fg_blas *blas, size_t itemsize, int64_t m, int64_t n, int64_t k);
fg_gemm_plan fg_gemm_plan_for(int64_t rows, int64_t cols, int64_t depth);
/* block p of `plan`: rows or columns [*lo, *hi) */
void fg_gemm_bounds(const fg_gemm_plan *plan, int64_t p, int64_t *lo, int64_t *hi);
/* BLAS set to one thread for a product of these sizes, when it would use more; returns the
 * count for fg_blas_restore */
int fg_blas_single_thread(const fg_blas *blas, int64_t m, int64_t n, int64_t k);
void fg_blas_restore(const fg_blas *blas, int previous);
/* out = op(a) @ op(b) + beta out over rows (along_rows) or columns [lo, hi) of out (m, n):
 * one BLAS call on the calling thread; k >= 1 */
void fg_gemm_block_f32(const fg_blas *blas, const float *a, const float *b, int64_t m,
                       int64_t n, int64_t k, int trans_a, int trans_b, float beta, float *out,
                       int along_rows, int64_t lo, int64_t hi);
void fg_gemm_block_f64(const fg_blas *blas, const double *a, const double *b, int64_t m,
                       int64_t n, int64_t k, int trans_a, int trans_b, double beta,
                       double *out, int along_rows, int64_t lo, int64_t hi);

/* ---- float ---- */
static inline float fg_expm1_reduced32(float r)
{
    /* expm1(r) for |r| <= ln2/2: Taylor to r**7 (truncation below 2e-8 relative) */
    float p = 1.0f / 720 + r * (1.0f / 5040);
    p = 1.0f / 120 + r * p;
    p = 1.0f / 24 + r * p;
    p = 1.0f / 6 + r * p;
    p = 1.0f / 2 + r * p;
    return r * (1.0f + r * p);
}

static inline float fg_pow2_32(float t)
{
    /* 2**t for an integral t in [-126, 127], from its bits */
    int32_t bits = ((int32_t)t + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

static inline float fg_exp32(float v)
{
    /* exp(v); 0 below -87.3, inf from 88 on, NaN kept */
    const float lo = FG_EXP_MIN32, hi = FG_EXP_MAX32;
    float c = v > lo ? v : lo;
    c = c < hi ? c : hi;
    float t = rintf(c * FG_LOG2E_32);
    float r = (c - t * FG_LN2_HI32) - t * FG_LN2_LO32;
    float e = (1.0f + fg_expm1_reduced32(r)) * fg_pow2_32(t);
    e = v > lo ? e : 0.0f;
    e = v < hi ? e : INFINITY;
    return v == v ? e : v;
}

static inline float fg_sigmoid32(float v)
{
    /* (1 if v >= 0 else e) / (1 + e) with e = exp(-|v|): the reference's stable sigmoid */
    float e = fg_exp32(-fabsf(v));
    return (v >= 0 ? 1.0f : e) / (1.0f + e);
}

static inline float fg_tanh32(float v)
{
    /* tanh(v) = -m / (2 + m), m = expm1(-2|v|), odd-extended: no cancellation near 0 */
    const float lo = FG_EXP_MIN32;
    float a = -2.0f * fabsf(v);
    a = a > lo ? a : lo;
    float t = rintf(a * FG_LOG2E_32);
    float r = (a - t * FG_LN2_HI32) - t * FG_LN2_LO32;
    float scale = fg_pow2_32(t);
    float m = scale * fg_expm1_reduced32(r) + (scale - 1.0f);
    float y = -m / (2.0f + m);
    y = v >= 0 ? y : -y;
    return v == v ? y : v;
}

/* ---- double ---- */
static inline double fg_expm1_reduced64(double r)
{
    /* expm1(r) for |r| <= ln2/2: Taylor to r**13 (truncation below 2e-17) */
    double p = 1.0 / 479001600 + r * (1.0 / 6227020800);
    p = 1.0 / 39916800 + r * p;
    p = 1.0 / 3628800 + r * p;
    p = 1.0 / 362880 + r * p;
    p = 1.0 / 40320 + r * p;
    p = 1.0 / 5040 + r * p;
    p = 1.0 / 720 + r * p;
    p = 1.0 / 120 + r * p;
    p = 1.0 / 24 + r * p;
    p = 1.0 / 6 + r * p;
    p = 1.0 / 2 + r * p;
    return r * (1.0 + r * p);
}

static inline double fg_pow2_64(double t)
{
    /* 2**t for an integral t in [-1022, 1023], from its bits */
    /* through int32 (t fits): SSE has no vector double -> int64 conversion */
    int64_t bits = (int64_t)((int32_t)t + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

static inline double fg_exp64(double v)
{
    /* exp(v); 0 below -708.3, inf from 709 on, NaN kept */
    const double lo = FG_EXP_MIN64, hi = FG_EXP_MAX64;
    double c = v > lo ? v : lo;
    c = c < hi ? c : hi;
    double t = rint(c * FG_LOG2E_64);
    double r = (c - t * FG_LN2_HI64) - t * FG_LN2_LO64;
    double e = (1.0 + fg_expm1_reduced64(r)) * fg_pow2_64(t);
    e = v > lo ? e : 0.0;
    e = v < hi ? e : INFINITY;
    return v == v ? e : v;
}

static inline double fg_sigmoid64(double v)
{
    double e = fg_exp64(-fabs(v));
    return (v >= 0 ? 1.0 : e) / (1.0 + e);
}

static inline double fg_tanh64(double v)
{
    const double lo = FG_EXP_MIN64;
    double a = -2.0 * fabs(v);
    a = a > lo ? a : lo;
    double t = rint(a * FG_LOG2E_64);
    double r = (a - t * FG_LN2_HI64) - t * FG_LN2_LO64;
    double scale = fg_pow2_64(t);
    double m = scale * fg_expm1_reduced64(r) + (scale - 1.0);
    double y = -m / (2.0 + m);
    y = v >= 0 ? y : -y;
    return v == v ? y : v;
}

#endif /* FG_INTERNAL_H */
