/* fastgrad.h: the C contract of fastgrad's kernels, usable from C alone.
 *
 * Every kernel of the registry (fastgrad/backends/numpy_ref.py, whose docstrings are the
 * formulas) in two versions, _f32 (float) and _f64 (double). Conventions:
 *   - arrays are C-contiguous, described by a pointer and their sizes (element counts); a
 *     kernel overwrites only its non-const arrays; output arrays must not alias inputs;
 *   - an optional array is NULL to leave it out (the reference's None);
 *   - hyperparameters are doubles, rounded to the arrays' type inside exactly as NumPy rounds
 *     a Python float in `float32_array * python_float`;
 *   - reductions accumulate in double over fixed pieces of FG_CHUNK elements combined in a fixed
 *     order, and matrix products are cut into blocks fixed by the shapes, so results do not
 *     depend on the number of OpenMP threads;
 *   - a kernel's last argument, parallel_min, is the size (elements of its largest array) from
 *     which it runs in parallel, serially below: one of the FG_PAR_ values below, 0 to always
 *     run in parallel, INT64_MAX never;
 *   - a kernel that can check its indices (segment offsets, class targets) returns a status:
 *     0 when they are valid, otherwise a negative FG_ERR_* code or the count of bad targets,
 *     and never reads or writes out of bounds.
 * No global state; kernels are reentrant. Built with OpenMP, large calls run in parallel with
 * the current OpenMP thread count (omp_set_num_threads / OMP_NUM_THREADS).
 *
 * Build: cc -O3 -std=c11 [-fopenmp] -Icsrc yourprog.c csrc/arena.c csrc/layers.c csrc/gemm.c \
 *        csrc/conv.c -lm
 */
#ifndef FASTGRAD_H
#define FASTGRAD_H

#include <stdint.h>

#define FG_ABI_VERSION 7

/* activation codes (fastgrad.backends.ACTIVATIONS; tests/test_constants.py checks they agree) */
#define FG_NONE 0
#define FG_RELU 1
#define FG_SIGMOID 2
#define FG_TANH 3

/* status codes */
#define FG_OK 0
#define FG_ERR_OFFSETS (-1)  /* offsets not non-decreasing within [0, n] */
#define FG_ERR_MEMORY (-2)   /* a work buffer could not be allocated */
#define FG_ERR_BLAS (-3)     /* fg_blas unusable: no gemm, int_bits not 32 or 64, or a size
                              * beyond a 32-bit BLAS's integers */
#define FG_ERR_ACTIVATION (-4) /* an activation code the kernels do not implement */
#define FG_ERR_GEOMETRY (-5)   /* a convolution's or pooling's window outside what the
                                * kernels take (see "convolution and pooling") */

#ifdef __cplusplus
extern "C" {
#endif

/* The text between the cffi markers is what the Python binding declares: integer constants,
 * structs and plain prototypes. */
/* cffi-begin */
/* ---- parallel thresholds (parallel_min), in elements; decimal, as cffi reads them ----
 * FG_PAR_<kernel>: for a program whose matrix products run on the same OpenMP threads as the
 * kernels (fg_gemm_*, fg_linear_fwd_*): the smallest power of two at which 2 OpenMP threads
 * beat 1 by 10% or more on the kernel alone, its threads awake from the previous region, in
 * each of three runs of interleaved medians (2-core x86-64, float32; 2**15, two FG_CHUNK
 * pieces, is the smallest size a second thread can share).
 * FG_PAR_<kernel>_SPINNING: for a program whose products run on a BLAS's own threads, which
 * keep spinning after each call (NumPy's OpenBLAS): a parallel region right after a product
 * waits for a core (4-8 ms on 2 cores), so a kernel goes parallel only where its serial time
 * is about 16 ms. */
#define FG_PAR_ACTIVATION 65536                 /* relu, none; their epilogues: 2**16 */
#define FG_PAR_ACTIVATION_EXP 32768             /* sigmoid, tanh; their epilogues: 2**15 */
#define FG_PAR_LINEAR_GRAD 65536                /* 2**16 */
#define FG_PAR_CROSS_ENTROPY 32768              /* 2**15 */
#define FG_PAR_BATCHNORM 65536                  /* 2**16 */
#define FG_PAR_LSTM 32768                       /* 2**15 */
#define FG_PAR_FILL 65536                       /* 2**16 */
#define FG_PAR_NORMS 65536                      /* segment, clip and monitor norms: 2**16 */
#define FG_PAR_SCALE 65536                      /* 2**16 */
#define FG_PAR_CLIP 65536                       /* clip_grad_range: 2**16 */
#define FG_PAR_AXPY 65536                       /* 2**16 */
#define FG_PAR_WINDOW 32768                     /* grad_window_mean: 2**15 */
#define FG_PAR_SGD 32768                        /* 2**15 */
#define FG_PAR_ADAM 32768                       /* 2**15 */
#define FG_PAR_RMSPROP 32768                    /* 2**15 */
#define FG_PAR_ADAGRAD 32768                    /* 2**15 */
/* adadelta, adamax, nadam: adam's thresholds, here and _SPINNING below (the same traffic,
 * four buffers read and three written; not measured on their own) */
#define FG_PAR_ADADELTA 32768                   /* 2**15 */
#define FG_PAR_ADAMAX 32768                     /* 2**15 */
#define FG_PAR_NADAM 32768                      /* 2**15 */
#define FG_PAR_POOL 16384                       /* pooling (planes, not pieces): 2**14 */
#define FG_PAR_ACTIVATION_SPINNING 134217728    /* 2**27 */
#define FG_PAR_ACTIVATION_EXP_SPINNING 33554432 /* 2**25 */
#define FG_PAR_LINEAR_GRAD_SPINNING 67108864    /* 2**26 */
#define FG_PAR_CROSS_ENTROPY_SPINNING 16777216  /* 2**24 */
#define FG_PAR_BATCHNORM_SPINNING 67108864      /* 2**26 */
#define FG_PAR_LSTM_SPINNING 33554432           /* 2**25 */
#define FG_PAR_FILL_SPINNING 134217728          /* 2**27 */
#define FG_PAR_NORMS_SPINNING 67108864          /* 2**26 */
#define FG_PAR_SCALE_SPINNING 67108864          /* 2**26 */
#define FG_PAR_CLIP_SPINNING 67108864           /* 2**26 */
#define FG_PAR_AXPY_SPINNING 67108864           /* 2**26 */
#define FG_PAR_WINDOW_SPINNING 33554432         /* 2**25 */
#define FG_PAR_SGD_SPINNING 33554432            /* 2**25 */
#define FG_PAR_ADAM_SPINNING 16777216           /* 2**24 */
#define FG_PAR_RMSPROP_SPINNING 16777216        /* 2**24 */
#define FG_PAR_ADAGRAD_SPINNING 33554432        /* 2**25 */
#define FG_PAR_ADADELTA_SPINNING 16777216       /* 2**24 */
#define FG_PAR_ADAMAX_SPINNING 16777216         /* 2**24 */
#define FG_PAR_NADAM_SPINNING 16777216          /* 2**24 */
#define FG_PAR_POOL_SPINNING 16777216           /* 2**24 */

int fg_abi_version(void);
int fg_openmp(void);           /* 1 when built with OpenMP */
int fg_get_num_threads(void);  /* threads a parallel kernel uses (1 without OpenMP) */
void fg_set_num_threads(int n);

/* ---- arenas: flat buffers of n elements ---- */
void fg_fill_f32(float *buffer, int64_t n, double value, int64_t parallel_min);
void fg_fill_f64(double *buffer, int64_t n, double value, int64_t parallel_min);
void fg_scale_f32(float *values, int64_t n, double factor, int64_t parallel_min);
void fg_scale_f64(double *values, int64_t n, double factor, int64_t parallel_min);
void fg_clip_grad_range_f32(float *grads, int64_t n, double min_value, double max_value,
                            int64_t parallel_min);
void fg_clip_grad_range_f64(double *grads, int64_t n, double min_value, double max_value,
                            int64_t parallel_min);
void fg_axpy_f32(float *y, const float *x, int64_t n, double alpha, int64_t parallel_min);
void fg_axpy_f64(double *y, const double *x, int64_t n, double alpha, int64_t parallel_min);
void fg_grad_window_mean_f32(float *total, float *grad, int64_t n, double weight,
                             double factor, int64_t parallel_min);
void fg_grad_window_mean_f64(double *total, double *grad, int64_t n, double weight,
                             double factor, int64_t parallel_min);
/* per-segment norms: offsets has segments + 1 non-decreasing entries in [0, n]; out has
 * `segments` entries; *total receives the norm of the whole arena */
int fg_segment_norms_f32(const float *values, int64_t n, const int64_t *offsets,
                         int64_t segments, double norm_type, double *out, double *total,
                         int64_t parallel_min);
int fg_segment_norms_f64(const double *values, int64_t n, const int64_t *offsets,
                         int64_t segments, double norm_type, double *out, double *total,
                         int64_t parallel_min);
/* segment_norms, then grads *= max_norm / (total + 1e-6) when that is below 1 or NaN (not
 * when error_if_nonfinite meets a non-finite total); *total: the norm before clipping;
 * parallel_min applies to both passes */
int fg_clip_grad_norm_f32(float *grads, int64_t n, const int64_t *offsets, int64_t segments,
                          double max_norm, double norm_type, int error_if_nonfinite,
                          double *per_param_out, double *total, int64_t parallel_min);
int fg_clip_grad_norm_f64(double *grads, int64_t n, const int64_t *offsets, int64_t segments,
                          double max_norm, double norm_type, int error_if_nonfinite,
                          double *per_param_out, double *total, int64_t parallel_min);
/* per-segment L2 norms of grads (row 0, left as it is when grads is NULL), of values (row 1)
 * and of values - prev (row 2, NaN without have_prev) into out (3, segments), then
 * prev = values over all n elements */
int fg_monitor_norms_f32(const float *grads, const float *values, float *prev, int64_t n,
                         const int64_t *offsets, int64_t segments, int have_prev, double *out,
                         int64_t parallel_min);
int fg_monitor_norms_f64(const double *grads, const double *values, double *prev, int64_t n,
                         const int64_t *offsets, int64_t segments, int have_prev, double *out,
                         int64_t parallel_min);

/* ---- optimisers: one step over n parameters (PyTorch's formulations) ---- */
void fg_sgd_step_f32(float *param, const float *grad, float *momentum_buffer, int64_t n,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize, int first_step, int64_t parallel_min);
void fg_sgd_step_f64(double *param, const double *grad, double *momentum_buffer, int64_t n,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize, int first_step, int64_t parallel_min);
/* max_exp_avg_sq NULL: no AMSGrad; step >= 1 counts this step (a double, as PyTorch's) */
void fg_adam_step_f32(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                      float *max_exp_avg_sq, int64_t n, double step, double lr, double beta1,
                      double beta2, double eps, double weight_decay,
                      int decoupled_weight_decay, int maximize, int64_t parallel_min);
void fg_adam_step_f64(double *param, const double *grad, double *exp_avg, double *exp_avg_sq,
                      double *max_exp_avg_sq, int64_t n, double step, double lr,
                      double beta1, double beta2, double eps, double weight_decay,
                      int decoupled_weight_decay, int maximize, int64_t parallel_min);
/* grad_avg NULL: not centred; momentum_buffer NULL: no momentum */
void fg_rmsprop_step_f32(float *param, const float *grad, float *square_avg, float *grad_avg,
                         float *momentum_buffer, int64_t n, double lr, double alpha,
                         double eps, double weight_decay, double momentum, int maximize,
                         int64_t parallel_min);
void fg_rmsprop_step_f64(double *param, const double *grad, double *square_avg,
                         double *grad_avg, double *momentum_buffer, int64_t n, double lr,
                         double alpha, double eps, double weight_decay, double momentum,
                         int maximize, int64_t parallel_min);
void fg_adagrad_step_f32(float *param, const float *grad, float *state_sum, int64_t n,
                         double step, double lr, double lr_decay, double weight_decay,
                         double eps, int maximize, int64_t parallel_min);
void fg_adagrad_step_f64(double *param, const double *grad, double *state_sum, int64_t n,
                         double step, double lr, double lr_decay, double weight_decay,
                         double eps, int maximize, int64_t parallel_min);
void fg_adadelta_step_f32(float *param, const float *grad, float *square_avg, float *acc_delta,
                          int64_t n, double lr, double rho, double eps, double weight_decay,
                          int maximize, int64_t parallel_min);
void fg_adadelta_step_f64(double *param, const double *grad, double *square_avg,
                          double *acc_delta, int64_t n, double lr, double rho, double eps,
                          double weight_decay, int maximize, int64_t parallel_min);
void fg_adamax_step_f32(float *param, const float *grad, float *exp_avg, float *exp_inf,
                        int64_t n, double step, double lr, double beta1, double beta2,
                        double eps, double weight_decay, int maximize, int64_t parallel_min);
void fg_adamax_step_f64(double *param, const double *grad, double *exp_avg, double *exp_inf,
                        int64_t n, double step, double lr, double beta1, double beta2,
                        double eps, double weight_decay, int maximize, int64_t parallel_min);
/* mu_product: the product of NAdam's momentum coefficients up to and including this step's */
void fg_nadam_step_f32(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                       int64_t n, double step, double mu_product, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled_weight_decay, int maximize, int64_t parallel_min);
void fg_nadam_step_f64(double *param, const double *grad, double *exp_avg, double *exp_avg_sq,
                       int64_t n, double step, double mu_product, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled_weight_decay, int maximize, int64_t parallel_min);

/* ---- matrix products on the kernels' own OpenMP threads ----
 * A product out (m, n) = op(a) (m, k) @ op(b) (k, n) is cut into blocks of rows (m > n) or
 * of columns of out, their number and edges from the shapes alone: min(FG_GEMM_MAX_BLOCKS,
 * m n k / FG_GEMM_MIN_BLOCK_WORK, ceil(side / FG_GEMM_ALIGN)) blocks (at least 1), block p
 * of B starting at floor(U p / B) FG_GEMM_ALIGN with U = ceil(side / FG_GEMM_ALIGN), the
 * last one ending at the side. Each block is one call of the BLAS's gemm on one thread, BLAS
 * set to one thread meanwhile (when the product exceeds FG_GEMM_BLAS_SERIAL_WORK, below which
 * OpenBLAS stays on the calling thread anyway) and restored after. Every element therefore
 * comes from the same BLAS call whatever the thread count: bit-identical results. The Numba
 * backend uses the same rule (fastgrad/backends/numba_cpu/_layers.py): both give the same bits.
 * The "BLAS" is fastgrad's own fg_own_gemm_* (below) unless FASTGRAD_GEMM=blas.
 */
#define FG_GEMM_ALIGN 16                 /* block edges at multiples of this (SIMD width) */
#define FG_GEMM_MIN_BLOCK_WORK 1048576   /* multiply-adds per block at least: 2**20 */
#define FG_GEMM_MAX_BLOCKS 8
#define FG_GEMM_BLAS_SERIAL_WORK 262144  /* OpenBLAS's own serial limit: 65536 * 4 */

/* The BLAS a product calls, by address: its CBLAS cblas_sgemm and cblas_dgemm (row-major
 * calls, `int_bits`-bit integers: 64 for an ILP64 BLAS such as NumPy wheels' OpenBLAS, 32 for
 * LP64), and openblas_get_num_threads / openblas_set_num_threads, or 0 for a BLAS whose
 * thread count is to be left alone (a serial BLAS). */
typedef struct fg_blas {
    uintptr_t sgemm, dgemm, get_threads, set_threads;
    int int_bits;
} fg_blas;

/* The blocks of a product out (m, n) of inner size k: returns their number B and writes their
 * B + 1 edges into `edges` (room for FG_GEMM_MAX_BLOCKS + 1): rows of out when *along_rows
 * is 1, columns when 0. */
int64_t fg_gemm_blocks(int64_t m, int64_t n, int64_t k, int *along_rows, int64_t *edges);
/* out (m, n) = op(a) @ op(b), or out += op(a) @ op(b) with accumulate; op(a) (m, k) is a
 * (m, k), or a (k, m) transposed with trans_a; op(b) (k, n) likewise; with k = 0 the
 * product is zeros. Returns FG_OK, or FG_ERR_BLAS with nothing written. */
int fg_gemm_f32(const float *a, const float *b, int64_t m, int64_t n, int64_t k, int trans_a,
                int trans_b, int accumulate, float *out, const fg_blas *blas);
int fg_gemm_f64(const double *a, const double *b, int64_t m, int64_t n, int64_t k,
                int trans_a, int trans_b, int accumulate, double *out, const fg_blas *blas);
/* out (rows, out_features) = act(x (rows, in_features) @ weight (out_features, in_features).T
 * + bias), bias (out_features,) or NULL: fg_gemm's blocks, each followed on its thread by its
 * bias and activation while it is in cache (a product of one block is followed by
 * fg_linear_epilogue). Returns as fg_gemm, or FG_ERR_ACTIVATION with nothing written. */
int fg_linear_fwd_f32(const float *x, const float *weight, const float *bias, int64_t rows,
                      int64_t in_features, int64_t out_features, int activation, float *out,
                      const fg_blas *blas, int64_t parallel_min);
int fg_linear_fwd_f64(const double *x, const double *weight, const double *bias, int64_t rows,
                      int64_t in_features, int64_t out_features, int activation, double *out,
                      const fg_blas *blas, int64_t parallel_min);

/* ---- packed operands: products by the same matrix many times (a recurrent layer's W_hh) ----
 * fg_gemm_pack writes op(b) (k, n) (b (k, n), or b (n, k) transposed with trans_b) as
 * ceil(n / W) column panels of (k, W), W = 128 / sizeof(T) (32 floats, 16 doubles), the last
 * padded with zeros: packed[(p k + d) W + j] = op(b)[d, p W + j]. fg_gemm_packed computes
 * out (m, n) = a (m, k) @ op(b), or out += with accumulate, reading op(b) from the panels
 * (no copy per call, the point of packing: a BLAS copies its operands into its own layout at
 * each call), FG_PACKED_ROWS rows at a time held in vector registers. Every element is out
 * (with accumulate) or 0, plus the sum of each block of FG_OWN_DEPTH values of k in turn, each
 * block's sum the rounded products added in ascending order from 0 (no FMA), whatever the
 * thread count and the instruction set: bit-identical results. Panels are split into
 * fg_packed_blocks(m, n, k) blocks on the OpenMP threads; fg_gemm_packed_panels_* runs panels
 * [lo, hi) on the calling thread (what the Numba backend calls from its own pool). All arrays
 * C-contiguous. */
#define FG_PACKED_ROWS 8
#define FG_PACK_PARALLEL_MIN 262144      /* elements of op(b) from which packing is parallel */
/* fg_own_gemm_*: the same product for any operands, with CBLAS's row-major interface
 * (cblas_?gemm with 64-bit integers; order row-major, alpha 1 and beta 0 or 1 only: what
 * fastgrad's products pass), single-threaded: it is the "BLAS" the blocks of fg_gemm,
 * fg_linear_* and the convolutions call on their threads (fastgrad.backends.blas chooses it
 * where the C kernels are built). Each element is the blocked sum above; rows go FG_OWN_ROWS
 * at a time. */
#define FG_OWN_DEPTH 256
#define FG_OWN_ROWS 128
void fg_own_gemm_f32(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float beta, float *c, int64_t ldc);
void fg_own_gemm_f64(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                    double alpha, const double *a, int64_t lda, const double *b, int64_t ldb,
                    double beta, double *c, int64_t ldc);
int64_t fg_packed_blocks(int64_t m, int64_t n, int64_t k);
void fg_gemm_pack_f32(const float *b, int64_t k, int64_t n, int trans_b, float *packed);
void fg_gemm_pack_f64(const double *b, int64_t k, int64_t n, int trans_b, double *packed);
void fg_gemm_packed_f32(const float *a, int64_t m, int64_t k, const float *packed, int64_t n,
                        int accumulate, float *out);
void fg_gemm_packed_f64(const double *a, int64_t m, int64_t k, const double *packed,
                        int64_t n, int accumulate, double *out);
void fg_gemm_packed_panels_f32(const float *a, int64_t m, int64_t k, const float *packed,
                               int64_t n, int accumulate, float *out, int64_t lo, int64_t hi);
void fg_gemm_packed_panels_f64(const double *a, int64_t m, int64_t k, const double *packed,
                               int64_t n, int accumulate, double *out, int64_t lo, int64_t hi);

/* ---- activations and linear epilogues: each returns FG_OK, or FG_ERR_ACTIVATION with
 * nothing written for an activation code it does not implement ---- */
int fg_activation_fwd_f32(const float *x, float *out, int64_t n, int activation,
                          int64_t parallel_min);
int fg_activation_fwd_f64(const double *x, double *out, int64_t n, int activation,
                          int64_t parallel_min);
int fg_activation_bwd_f32(const float *grad_out, const float *out, float *grad_in, int64_t n,
                          int activation, int64_t parallel_min);
int fg_activation_bwd_f64(const double *grad_out, const double *out, double *grad_in,
                          int64_t n, int activation, int64_t parallel_min);
/* out (rows, cols) = act(out + bias), in place; bias (cols,) or NULL */
int fg_linear_epilogue_f32(float *out, int64_t rows, int64_t cols, const float *bias,
                           int activation, int64_t parallel_min);
int fg_linear_epilogue_f64(double *out, int64_t rows, int64_t cols, const double *bias,
                           int activation, int64_t parallel_min);
/* g = grad_out * act'(out) (g may be NULL for FG_NONE: grad_out is then g), and
 * grad_bias (cols,) = g.sum(0) when grad_bias is not NULL; returns FG_OK, FG_ERR_MEMORY or
 * FG_ERR_ACTIVATION */
int fg_linear_grad_f32(const float *grad_out, const float *out, int64_t rows, int64_t cols,
                       int activation, float *g, float *grad_bias, int64_t parallel_min);
int fg_linear_grad_f64(const double *grad_out, const double *out, int64_t rows, int64_t cols,
                       int activation, double *g, double *grad_bias, int64_t parallel_min);

/* ---- cross-entropy: logits (rows, classes); returns how many targets were out of range
 * (such a row gets a NaN loss; its gradient row lacks the -1 at the target) ---- */
int64_t fg_cross_entropy_fwd_f32(const float *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, int64_t ignore_index, float *loss,
                                 double *lse, int64_t parallel_min);
int64_t fg_cross_entropy_fwd_f64(const double *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, int64_t ignore_index, double *loss,
                                 double *lse, int64_t parallel_min);
int64_t fg_cross_entropy_bwd_f32(const float *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, const double *lse,
                                 int64_t ignore_index, const float *grad_loss,
                                 float *grad_logits, int64_t parallel_min);
int64_t fg_cross_entropy_bwd_f64(const double *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, const double *lse,
                                 int64_t ignore_index, const double *grad_loss,
                                 double *grad_logits, int64_t parallel_min);

/* ---- batchnorm (training mode): x (n, channels, spatial), n * spatial >= 1; weight, bias
 * NULL for 1 and 0; both return FG_OK, FG_ERR_MEMORY, or FG_ERR_ACTIVATION with nothing
 * written for an activation code they do not implement ---- */
/* out = act(normalised x), the activation applied to each piece of out as it is written,
 * bit-identical to fg_batchnorm_fwd with FG_NONE followed by fg_activation_fwd; mean, var
 * (biased) and invstd (channels) the double batch statistics. running_mean and running_var
 * (channels, x's type; each NULL to skip it) are updated in place after the statistics, in
 * double and rounded once (M = n * spatial, which must then be >= 2 for the variance):
 *   running_mean = running_mean * (1 - momentum) + momentum * mean
 *   running_var = running_var * (1 - momentum) + (momentum * (M / (M - 1))) * var */
int fg_batchnorm_fwd_f32(const float *x, int64_t n, int64_t channels, int64_t spatial,
                         const float *weight, const float *bias, double eps, int activation,
                         float *running_mean, float *running_var, double momentum,
                         double *mean, double *var, double *invstd, float *out,
                         int64_t parallel_min);
int fg_batchnorm_fwd_f64(const double *x, int64_t n, int64_t channels, int64_t spatial,
                         const double *weight, const double *bias, double eps, int activation,
                         double *running_mean, double *running_var, double momentum,
                         double *mean, double *var, double *invstd, double *out,
                         int64_t parallel_min);
/* the gradients with dy = grad_out * act'(out) (out the forward's output, read only when
 * activation is not FG_NONE: NULL then) in grad_out's place, bit-identical to
 * fg_activation_bwd followed by fg_batchnorm_bwd with FG_NONE (dy in a work buffer of x's
 * size); grad_x, grad_weight, grad_bias may each be NULL to skip them */
int fg_batchnorm_bwd_f32(const float *grad_out, const float *x, int64_t n, int64_t channels,
                         int64_t spatial, const float *weight, const double *mean,
                         const double *invstd, const float *out, int activation,
                         float *grad_x, float *grad_weight, float *grad_bias,
                         int64_t parallel_min);
int fg_batchnorm_bwd_f64(const double *grad_out, const double *x, int64_t n,
                         int64_t channels, int64_t spatial, const double *weight,
                         const double *mean, const double *invstd, const double *out,
                         int activation, double *grad_x, double *grad_weight,
                         double *grad_bias, int64_t parallel_min);

/* ---- LSTM cell, pointwise: gates (rows, 4 hidden) in the order i, f, g, o ---- */
void fg_lstm_cell_fwd_f32(const float *gates, const float *c_prev, int64_t rows,
                          int64_t hidden, float *gates_act, float *h, float *c,
                          int64_t parallel_min);
void fg_lstm_cell_fwd_f64(const double *gates, const double *c_prev, int64_t rows,
                          int64_t hidden, double *gates_act, double *h, double *c,
                          int64_t parallel_min);
/* grad_c_prev may be NULL */
void fg_lstm_cell_bwd_f32(const float *grad_h, const float *grad_c, const float *c_prev,
                          const float *c, const float *gates_act, int64_t rows, int64_t hidden,
                          float *grad_gates, float *grad_c_prev, int64_t parallel_min);
void fg_lstm_cell_bwd_f64(const double *grad_h, const double *grad_c, const double *c_prev,
                          const double *c, const double *gates_act, int64_t rows,
                          int64_t hidden, double *grad_gates, double *grad_c_prev,
                          int64_t parallel_min);

/* ---- convolution and pooling over NCHW images ----
 * A sliding window over x (batch, channels, height, width) with out_height x out_width
 * positions: position (i, j) covers the rows i stride_h - pad_h + p dil_h (p < kernel_h) and
 * the columns j stride_w - pad_w + q dil_w (q < kernel_w); those outside the image are
 * padding, which no kernel reads (zeros for a convolution, never the maximum of a max
 * pooling). Every kernel takes any out_height and out_width (each access is checked against
 * the image) and returns FG_ERR_GEOMETRY, with nothing written, for a window outside these
 * rules: sizes >= 0, kernel sizes, strides and dilations >= 1, paddings >= 0.
 * pad_h and pad_w are the top and left padding; the bottom and right padding is what the
 * output size implies, so an asymmetric one is an out_height (out_width) counted with it:
 * (height + top + bottom - dil_h (kernel_h - 1) - 1) / stride_h + 1. That is how a C caller
 * runs padding "same" with an even dil (kernel - 1) (PyTorch's odd padding at the bottom and
 * right) and a pooling's ceil_mode (the caller's rounded-up count of windows). */
typedef struct fg_window2d {
    int64_t batch, channels, height, width, out_height, out_width, kernel_h, kernel_w;
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
} fg_window2d;

/* Convolution (the reference's conv2d_*): x and grad_x (batch, channels, height, width),
 * weight and grad_weight (out_channels, channels / groups, kernel_h, kernel_w), bias and
 * grad_bias (out_channels,) or NULL, out and grad_out (batch, out_channels, out_height,
 * out_width); groups >= 1 divides both channel counts (else FG_ERR_GEOMETRY). Overwrite their
 * outputs.
 * Each batch item's columns (channels kernel_h kernel_w, out_height out_width) in a buffer of
 * the thread's own (none for a 1x1 kernel of stride 1 and no padding: the image is its
 * columns) and one single-threaded BLAS product per group (as fg_gemm's blocks), the items in
 * parallel on the OpenMP threads once the convolution has the multiply-adds of two
 * FG_GEMM_MIN_BLOCK_WORK blocks; a single item runs its products in fg_gemm's blocks. The
 * input gradient is the products to columns, then the columns added back into the image. The
 * weight and bias gradients sum the batch in min(batch, FG_CONV_PIECES) pieces of consecutive
 * items, each summed in order, the pieces added in order (the bias's in double).
 * Depthwise (one input and one output channel per group, channels == out_channels == groups):
 * direct loops over the planes, in parallel from the same work; the weight and bias gradients
 * per channel in double. blas is then not used and may be NULL.
 * Results are bit-identical for any thread count. Returns FG_OK, FG_ERR_GEOMETRY,
 * FG_ERR_MEMORY or FG_ERR_BLAS (fg_blas unusable for these sizes). */
#define FG_CONV_PIECES 8
int fg_conv2d_fwd_f32(const float *x, const float *weight, const float *bias,
                      const fg_window2d *window, int64_t out_channels, int64_t groups,
                      float *out, const fg_blas *blas);
int fg_conv2d_fwd_f64(const double *x, const double *weight, const double *bias,
                      const fg_window2d *window, int64_t out_channels, int64_t groups,
                      double *out, const fg_blas *blas);
int fg_conv2d_bwd_input_f32(const float *grad_out, const float *weight,
                            const fg_window2d *window, int64_t out_channels, int64_t groups,
                            float *grad_x, const fg_blas *blas);
int fg_conv2d_bwd_input_f64(const double *grad_out, const double *weight,
                            const fg_window2d *window, int64_t out_channels, int64_t groups,
                            double *grad_x, const fg_blas *blas);
int fg_conv2d_bwd_weight_f32(const float *grad_out, const float *x, const fg_window2d *window,
                             int64_t out_channels, int64_t groups, float *grad_weight,
                             float *grad_bias, const fg_blas *blas);
int fg_conv2d_bwd_weight_f64(const double *grad_out, const double *x,
                             const fg_window2d *window, int64_t out_channels, int64_t groups,
                             double *grad_weight, double *grad_bias, const fg_blas *blas);

/* Pooling, per (item, channel) plane, planes in parallel from parallel_min (elements of the
 * larger of x and out). out (batch, channels, out_height, out_width).
 * max_pool2d_fwd: out the window's maximum and indices (int64, not NULL: a caller that needs
 * the maxima alone passes a scratch buffer) its flat position h width + w in the plane;
 * ties keep the first in the order (p, q), a NaN is the maximum (the last NaN of the window),
 * as PyTorch; a window of padding only gives -inf at its first position (PyTorch's). Returns
 * FG_OK or FG_ERR_GEOMETRY. */
int fg_max_pool2d_fwd_f32(const float *x, const fg_window2d *window, float *out,
                          int64_t *indices, int64_t parallel_min);
int fg_max_pool2d_fwd_f64(const double *x, const fg_window2d *window, double *out,
                          int64_t *indices, int64_t parallel_min);
/* grad_x (planes, plane) = zeros, then grad_x[u][indices[u][k]] += grad_out[u][k] over the
 * `positions` entries of each plane u; returns how many indices were outside [0, plane)
 * (skipped), or FG_ERR_GEOMETRY for a negative size. */
int64_t fg_max_pool2d_bwd_f32(const float *grad_out, const int64_t *indices, int64_t planes,
                              int64_t plane, int64_t positions, float *grad_x,
                              int64_t parallel_min);
int64_t fg_max_pool2d_bwd_f64(const double *grad_out, const int64_t *indices, int64_t planes,
                              int64_t plane, int64_t positions, double *grad_x,
                              int64_t parallel_min);
/* avg_pool2d_fwd: out the window's sum (in the order (p, q)) over a divisor: divisor_override
 * unless 0, else with count_include_pad the window's size within the padded image, else its
 * count of real elements; a window without real elements gives 0 (PyTorch's rule). The window
 * has no dilation: dil_h and dil_w must be 1. avg_pool2d_bwd: grad_x = zeros, then each
 * window's real elements += its grad_out over its divisor. Return FG_OK or FG_ERR_GEOMETRY. */
int fg_avg_pool2d_fwd_f32(const float *x, const fg_window2d *window, int count_include_pad,
                          int64_t divisor_override, float *out, int64_t parallel_min);
int fg_avg_pool2d_fwd_f64(const double *x, const fg_window2d *window, int count_include_pad,
                          int64_t divisor_override, double *out, int64_t parallel_min);
int fg_avg_pool2d_bwd_f32(const float *grad_out, const fg_window2d *window,
                          int count_include_pad, int64_t divisor_override, float *grad_x,
                          int64_t parallel_min);
int fg_avg_pool2d_bwd_f64(const double *grad_out, const fg_window2d *window,
                          int count_include_pad, int64_t divisor_override, double *grad_x,
                          int64_t parallel_min);
/* cffi-end */

/* ---- running a network exported by fastgrad.export from C ----
 * The exported .safetensors file holds the weights (little-endian float32 or float64 after
 * an 8-byte header length and a JSON header of dtype, shape and data_offsets per key) and,
 * in the header's "__metadata__", the graph under "fastgrad.graph" (JSON; its node types are
 * in fastgrad/runtime.py's docstring). Each node is a call of the kernels above on NCHW
 * buffers, in the exported dtype:
 *   conv2d       fg_conv2d_fwd_*: the weight and bias as stored (BatchNorm2d is already
 *                folded into them); pad_h, pad_w the padding's first (top, left) entries,
 *                out_height and out_width counted with both (see fg_window2d); a BLAS in
 *                fg_blas unless depthwise
 *   max_pool2d   fg_max_pool2d_fwd_*, out_height and out_width by PyTorch's rule
 *                (fastgrad.backends.numpy_ref.conv_output_size, ceil_mode included)
 *   avg_pool2d   fg_avg_pool2d_fwd_* with count_include_pad and divisor_override (0: none)
 *   adaptive_avg_pool2d  to an output size dividing the input's (1 for global pooling):
 *                fg_avg_pool2d_fwd_* with kernel = stride = input / output, no padding;
 *                other sizes (overlapping windows) and adaptive_max_pool2d have no kernel
 *   linear       fg_linear_fwd_* (FG_NONE, or the activation that follows fused)
 *   relu, sigmoid, tanh  fg_activation_fwd_*; the other activations have no kernel
 *   residual     the block's output, then fg_axpy_* (alpha 1) of the shortcut's (or input)
 *   flatten      nothing: the buffer is already contiguous
 *   batch_norm   (one not folded) x * scale + shift per channel of dimension 1: no kernel
 *                (fg_batchnorm_fwd_* is the training-mode one)
 * tests/test_export_conv.py generates such a program for an exported network and checks it
 * against fastgrad.runtime. */

#ifdef __cplusplus
}
#endif

#endif /* FASTGRAD_H */
