/* gemm.c: matrix products on the kernels' own OpenMP threads, block by block, each block one
 * single-threaded call of the BLAS the caller hands over (fg_blas: NumPy's OpenBLAS from
 * Python).
 *
 * Why: a BLAS that runs a product on its own threads leaves them spinning after the call, and
 * a parallel kernel right after it waits for a core (4-8 ms for a 0.15 ms kernel on 2 cores);
 * with the products on the OpenMP threads, the kernels before and after find those threads
 * awake and the cores free. The blocking rule (fastgrad.h, "matrix products") depends on the
 * shapes alone, so each element comes from the same BLAS call whatever the thread count.
 *
 * The type-generic bodies are in gemm.inc, compiled once for float and once for double.
 */
#include <stdlib.h>

#include "fastgrad.h"
#include "fg_internal.h"

/* CBLAS's enum values */
enum { FG_CBLAS_ROW_MAJOR = 101, FG_CBLAS_NO_TRANS = 111, FG_CBLAS_TRANS = 112 };

typedef int (*fg_get_threads_fn)(void);
typedef void (*fg_set_threads_fn)(int);

/* m n k, or INT64_MAX where that overflows (m n fits: it is out's size) */
static int64_t fg_gemm_work(int64_t m, int64_t n, int64_t k)
{
    return k != 0 && m * n > INT64_MAX / k ? INT64_MAX : m * n * k;
}

int fg_blas_usable(const fg_blas *blas, size_t itemsize, int64_t m, int64_t n, int64_t k)
{
    if (blas == NULL || (itemsize == sizeof(float) ? blas->sgemm : blas->dgemm) == 0)
        return 0;
    if (blas->int_bits == 64)
        return 1;
    return blas->int_bits == 32 && fg_max64(m, fg_max64(n, k)) <= INT32_MAX;
}

fg_gemm_plan fg_gemm_plan_for(int64_t rows, int64_t cols, int64_t depth)
{
    fg_gemm_plan plan;
    plan.along_rows = rows > cols;
    plan.side = plan.along_rows ? rows : cols;
    int64_t by_work = fg_gemm_work(rows, cols, depth) / FG_GEMM_MIN_BLOCK_WORK;
    int64_t by_side = (plan.side + FG_GEMM_ALIGN - 1) / FG_GEMM_ALIGN;
    plan.blocks = fg_max64(1, fg_min64(FG_GEMM_MAX_BLOCKS, fg_min64(by_work, by_side)));
    return plan;
}

void fg_gemm_bounds(const fg_gemm_plan *plan, int64_t p, int64_t *lo, int64_t *hi)
{
    /* equal shares of whole ALIGN units, the last block taking the rest */
    int64_t units = (plan->side + FG_GEMM_ALIGN - 1) / FG_GEMM_ALIGN;
    *lo = fg_min64(plan->side, units * p / plan->blocks * FG_GEMM_ALIGN);
    *hi = p == plan->blocks - 1
              ? plan->side
              : fg_min64(plan->side, units * (p + 1) / plan->blocks * FG_GEMM_ALIGN);
}

int64_t fg_gemm_blocks(int64_t m, int64_t n, int64_t k, int *along_rows, int64_t *edges)
{
    fg_gemm_plan plan = fg_gemm_plan_for(m, n, k);
    *along_rows = plan.along_rows;
    for (int64_t p = 0; p < plan.blocks; p++)
        fg_gemm_bounds(&plan, p, &edges[p], &edges[p + 1]);
    return plan.blocks;
}

int fg_blas_single_thread(const fg_blas *blas, int64_t m, int64_t n, int64_t k)
{
    /* at most FG_GEMM_BLAS_SERIAL_WORK, OpenBLAS stays on the calling thread by itself: no
     * switch (about a microsecond each way) for the many small products */
    if (fg_gemm_work(m, n, k) <= FG_GEMM_BLAS_SERIAL_WORK || blas->get_threads == 0 ||
        blas->set_threads == 0)
        return 1;
    int previous = ((fg_get_threads_fn)blas->get_threads)();
    if (previous != 1)
        ((fg_set_threads_fn)blas->set_threads)(1);
    return previous;
}

void fg_blas_restore(const fg_blas *blas, int previous)
{
    if (previous != 1)
        ((fg_set_threads_fn)blas->set_threads)(previous);
}

int64_t fg_packed_blocks(int64_t m, int64_t n, int64_t k)
{
    /* as many blocks as the product has FG_GEMM_MIN_BLOCK_WORK multiply-adds, at most one a
     * panel and FG_GEMM_MAX_BLOCKS; the panel size is the smaller one's (float64) so that one
     * count serves both types */
    int64_t panels = (n + 15) / 16;
    return fg_max64(1, fg_min64(FG_GEMM_MAX_BLOCKS,
                                fg_min64(panels, fg_gemm_work(m, n, k) / FG_GEMM_MIN_BLOCK_WORK)));
}

#define T float
#define TI int32_t /* T's width in an integer: shuffle masks */
#define SFX f32
#define GEMM_FIELD sgemm
#include "gemm.inc"
#undef T
#undef TI
#undef SFX
#undef GEMM_FIELD

#define T double
#define TI int64_t
#define SFX f64
#define GEMM_FIELD dgemm
#include "gemm.inc"
#undef T
#undef TI
#undef SFX
#undef GEMM_FIELD
