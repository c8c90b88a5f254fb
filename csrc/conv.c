/* conv.c: convolution and pooling over NCHW images (fastgrad.h, "convolution and pooling").
 *
 * Convolutions: each batch item's columns (im2col, (channels kernel_h kernel_w, out_height
 * out_width)) in a buffer of the thread's own, then one single-threaded call of the BLAS per
 * group (gemm.c's fg_gemm_block), the batch items in parallel on the OpenMP threads: one pool,
 * as the matrix products. A single item instead runs its products in fg_gemm's parallel
 * blocks. The input gradient is the product to columns
 * followed by col2im; the weight gradient sums the batch in FG_CONV_PIECES fixed pieces added
 * in order. Depthwise convolutions (one input and one output channel per group) would have
 * products of a single row, so direct loops over the planes run instead (a single input
 * channel with several outputs, a network's first layer, measured 8x faster as a product of
 * depth kernel_h kernel_w than in direct loops). Pooling is direct loops over the batch's
 * (item, channel) planes.
 *
 * What runs where depends on the shapes alone, every element is computed by one thread in a
 * fixed order, and sums over the batch go through the fixed pieces: results are bit-identical
 * for every thread count. The type-generic bodies are in conv.inc, compiled once for float and
 * once for double.
 */
#include <stdlib.h>

#include "fastgrad.h"
#include "fg_internal.h"

/* 1 when `g` is a geometry the kernels take: sizes >= 0, kernel, stride, dilation >= 1,
 * padding >= 0. */
static int fg_window_valid(const fg_window2d *g)
{
    return g->batch >= 0 && g->channels >= 0 && g->height >= 0 && g->width >= 0 &&
           g->out_height >= 0 && g->out_width >= 0 && g->kernel_h >= 1 && g->kernel_w >= 1 &&
           g->stride_h >= 1 && g->stride_w >= 1 && g->pad_h >= 0 && g->pad_w >= 0 &&
           g->dil_h >= 1 && g->dil_w >= 1;
}

/* A valid window, and groups >= 1 dividing both channel counts. */
static int fg_conv_valid(const fg_window2d *g, int64_t out_channels, int64_t groups)
{
    return fg_window_valid(g) && out_channels >= 0 && groups >= 1 &&
           g->channels % groups == 0 && out_channels % groups == 0;
}

/* The output positions [*lo, *hi) of one axis (out_size of them) whose input coordinate
 * o stride + start lies in [0, size). */
static inline void fg_valid_range(int64_t out_size, int64_t size, int64_t stride, int64_t start,
                                  int64_t *lo, int64_t *hi)
{
    int64_t first = start >= 0 ? 0 : (-start + stride - 1) / stride;
    int64_t end = size - start > 0 ? (size - 1 - start) / stride + 1 : 0;
    *lo = fg_min64(first, out_size);
    *hi = fg_max64(*lo, fg_min64(end, out_size));
}

/* 1 when the columns of an image are the image itself: a 1x1 kernel, stride 1, no padding. */
static inline int fg_conv_pointwise(const fg_window2d *g)
{
    return g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_h == 0 && g->pad_w == 0 && g->out_height == g->height &&
           g->out_width == g->width;
}

/* 1 when each group has one input and one output channel (a depthwise convolution): direct
 * loops then beat the products, which would have a single row. */
static inline int fg_conv_depthwise(const fg_window2d *g, int64_t out_channels, int64_t groups)
{
    return g->channels == groups && out_channels == groups;
}

/* Multiply-adds of a convolution, saturating at INT64_MAX. */
static int64_t fg_conv_work(const fg_window2d *g, int64_t out_channels, int64_t groups)
{
    int64_t factors[5] = {g->batch, out_channels, g->out_height * g->out_width,
                          g->channels / groups, g->kernel_h * g->kernel_w};
    int64_t work = 1;
    for (int i = 0; i < 5; i++) {
        if (factors[i] == 0)
            return 0;
        if (work > INT64_MAX / factors[i])
            return INT64_MAX;
        work *= factors[i];
    }
    return work;
}

/* A convolution's batch items (planes, channels) run in parallel when there are two of them
 * and its work is that of two of fg_gemm's blocks. */
static inline int fg_conv_parallel(const fg_window2d *g, int64_t out_channels, int64_t groups,
                                   int64_t units)
{
    return units >= 2 && fg_conv_work(g, out_channels, groups) >= 2 * FG_GEMM_MIN_BLOCK_WORK;
}

/* The first real row (or column) of a window starting at `start`, PyTorch's: start moved on
 * by the dilation until it is >= 0 (it may then be past the image). */
static inline int64_t fg_first_real(int64_t start, int64_t dil)
{
    return start >= 0 ? start : start + (-start + dil - 1) / dil * dil;
}

#define T float
#define SFX f32
#include "conv.inc"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv.inc"
#undef T
#undef SFX
