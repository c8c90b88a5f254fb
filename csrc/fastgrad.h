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
 *     order, so results do not depend on the number of OpenMP threads;
 *   - a kernel that can check its indices (segment offsets, class targets) returns a status:
 *     0 when they are valid, otherwise a negative FG_ERR_* code or the count of bad targets,
 *     and never reads or writes out of bounds.
 * No global state; kernels are reentrant. Built with OpenMP, large calls run in parallel with
 * the current OpenMP thread count (omp_set_num_threads / OMP_NUM_THREADS).
 *
 * Build: cc -O3 -std=c11 [-fopenmp] -Icsrc yourprog.c csrc/arena.c csrc/layers.c -lm
 */
#ifndef FASTGRAD_H
#define FASTGRAD_H

#include <stdint.h>

#define FG_ABI_VERSION 1

/* activation codes (fastgrad.backends.spec.ACTIVATIONS) */
#define FG_NONE 0
#define FG_RELU 1
#define FG_SIGMOID 2
#define FG_TANH 3

/* status codes */
#define FG_OK 0
#define FG_ERR_OFFSETS (-1)  /* offsets not non-decreasing within [0, n] */
#define FG_ERR_MEMORY (-2)   /* a work buffer could not be allocated */

#ifdef __cplusplus
extern "C" {
#endif

/* The text between the cffi markers is what the Python binding declares: plain prototypes. */
/* cffi-begin */
int fg_abi_version(void);
int fg_openmp(void);           /* 1 when built with OpenMP */
int fg_get_num_threads(void);  /* threads a parallel kernel uses (1 without OpenMP) */
void fg_set_num_threads(int n);

/* ---- arenas: flat buffers of n elements ---- */
void fg_fill_f32(float *buffer, int64_t n, double value);
void fg_fill_f64(double *buffer, int64_t n, double value);
void fg_scale_f32(float *values, int64_t n, double factor);
void fg_scale_f64(double *values, int64_t n, double factor);
void fg_clip_grad_range_f32(float *grads, int64_t n, double min_value, double max_value);
void fg_clip_grad_range_f64(double *grads, int64_t n, double min_value, double max_value);
void fg_axpy_f32(float *y, const float *x, int64_t n, double alpha);
void fg_axpy_f64(double *y, const double *x, int64_t n, double alpha);
void fg_grad_window_mean_f32(float *total, float *grad, int64_t n, double weight,
                             double factor);
void fg_grad_window_mean_f64(double *total, double *grad, int64_t n, double weight,
                             double factor);
/* per-segment norms: offsets has segments + 1 non-decreasing entries in [0, n]; out has
 * `segments` entries; *total receives the norm of the whole arena */
int fg_segment_norms_f32(const float *values, int64_t n, const int64_t *offsets,
                         int64_t segments, double norm_type, double *out, double *total);
int fg_segment_norms_f64(const double *values, int64_t n, const int64_t *offsets,
                         int64_t segments, double norm_type, double *out, double *total);
/* segment_norms, then grads *= max_norm / (total + 1e-6) when that is below 1 or NaN (not
 * when error_if_nonfinite meets a non-finite total); *total: the norm before clipping */
int fg_clip_grad_norm_f32(float *grads, int64_t n, const int64_t *offsets, int64_t segments,
                          double max_norm, double norm_type, int error_if_nonfinite,
                          double *per_param_out, double *total);
int fg_clip_grad_norm_f64(double *grads, int64_t n, const int64_t *offsets, int64_t segments,
                          double max_norm, double norm_type, int error_if_nonfinite,
                          double *per_param_out, double *total);
/* per-segment L2 norms of grads (row 0, left as it is when grads is NULL), of values (row 1)
 * and of values - prev (row 2, NaN without have_prev) into out (3, segments), then
 * prev = values over all n elements */
int fg_monitor_norms_f32(const float *grads, const float *values, float *prev, int64_t n,
                         const int64_t *offsets, int64_t segments, int have_prev, double *out);
int fg_monitor_norms_f64(const double *grads, const double *values, double *prev, int64_t n,
                         const int64_t *offsets, int64_t segments, int have_prev, double *out);

/* ---- optimisers: one step over n parameters (PyTorch's formulations) ---- */
void fg_sgd_step_f32(float *param, const float *grad, float *momentum_buffer, int64_t n,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize, int first_step);
void fg_sgd_step_f64(double *param, const double *grad, double *momentum_buffer, int64_t n,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize, int first_step);
/* max_exp_avg_sq NULL: no AMSGrad; step >= 1 counts this step (a double, as PyTorch's) */
void fg_adam_step_f32(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                      float *max_exp_avg_sq, int64_t n, double step, double lr, double beta1,
                      double beta2, double eps, double weight_decay,
                      int decoupled_weight_decay, int maximize);
void fg_adam_step_f64(double *param, const double *grad, double *exp_avg, double *exp_avg_sq,
                      double *max_exp_avg_sq, int64_t n, double step, double lr,
                      double beta1, double beta2, double eps, double weight_decay,
                      int decoupled_weight_decay, int maximize);
/* grad_avg NULL: not centred; momentum_buffer NULL: no momentum */
void fg_rmsprop_step_f32(float *param, const float *grad, float *square_avg, float *grad_avg,
                         float *momentum_buffer, int64_t n, double lr, double alpha,
                         double eps, double weight_decay, double momentum, int maximize);
void fg_rmsprop_step_f64(double *param, const double *grad, double *square_avg,
                         double *grad_avg, double *momentum_buffer, int64_t n, double lr,
                         double alpha, double eps, double weight_decay, double momentum,
                         int maximize);
void fg_adagrad_step_f32(float *param, const float *grad, float *state_sum, int64_t n,
                         double step, double lr, double lr_decay, double weight_decay,
                         double eps, int maximize);
void fg_adagrad_step_f64(double *param, const double *grad, double *state_sum, int64_t n,
                         double step, double lr, double lr_decay, double weight_decay,
                         double eps, int maximize);

/* ---- activations and linear epilogues (the GEMMs are the caller's) ---- */
void fg_activation_fwd_f32(const float *x, float *out, int64_t n, int activation);
void fg_activation_fwd_f64(const double *x, double *out, int64_t n, int activation);
void fg_activation_bwd_f32(const float *grad_out, const float *out, float *grad_in, int64_t n,
                           int activation);
void fg_activation_bwd_f64(const double *grad_out, const double *out, double *grad_in,
                           int64_t n, int activation);
/* out (rows, cols) = act(out + bias), in place; bias (cols,) or NULL */
void fg_linear_epilogue_f32(float *out, int64_t rows, int64_t cols, const float *bias,
                            int activation);
void fg_linear_epilogue_f64(double *out, int64_t rows, int64_t cols, const double *bias,
                            int activation);
/* g = grad_out * act'(out) (g may be NULL for FG_NONE: grad_out is then g), and
 * grad_bias (cols,) = g.sum(0) when grad_bias is not NULL; returns FG_OK or FG_ERR_MEMORY */
int fg_linear_grad_f32(const float *grad_out, const float *out, int64_t rows, int64_t cols,
                       int activation, float *g, float *grad_bias);
int fg_linear_grad_f64(const double *grad_out, const double *out, int64_t rows, int64_t cols,
                       int activation, double *g, double *grad_bias);

/* ---- cross-entropy: logits (rows, classes); returns how many targets were out of range
 * (such a row gets a NaN loss; its gradient row lacks the -1 at the target) ---- */
int64_t fg_cross_entropy_fwd_f32(const float *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, int64_t ignore_index, float *loss,
                                 double *lse);
int64_t fg_cross_entropy_fwd_f64(const double *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, int64_t ignore_index, double *loss,
                                 double *lse);
int64_t fg_cross_entropy_bwd_f32(const float *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, const double *lse,
                                 int64_t ignore_index, const float *grad_loss,
                                 float *grad_logits);
int64_t fg_cross_entropy_bwd_f64(const double *logits, int64_t rows, int64_t classes,
                                 const int64_t *target, const double *lse,
                                 int64_t ignore_index, const double *grad_loss,
                                 double *grad_logits);

/* ---- batchnorm (training mode): x (n, channels, spatial), n * spatial >= 1; weight, bias
 * NULL for 1 and 0; both return FG_OK or FG_ERR_MEMORY ---- */
int fg_batchnorm_fwd_f32(const float *x, int64_t n, int64_t channels, int64_t spatial,
                         const float *weight, const float *bias, double eps, double *mean,
                         double *var, double *invstd, float *out);
int fg_batchnorm_fwd_f64(const double *x, int64_t n, int64_t channels, int64_t spatial,
                         const double *weight, const double *bias, double eps, double *mean,
                         double *var, double *invstd, double *out);
/* grad_x, grad_weight, grad_bias may each be NULL to skip them */
int fg_batchnorm_bwd_f32(const float *grad_out, const float *x, int64_t n, int64_t channels,
                         int64_t spatial, const float *weight, const double *mean,
                         const double *invstd, float *grad_x, float *grad_weight,
                         float *grad_bias);
int fg_batchnorm_bwd_f64(const double *grad_out, const double *x, int64_t n,
                         int64_t channels, int64_t spatial, const double *weight,
                         const double *mean, const double *invstd, double *grad_x,
                         double *grad_weight, double *grad_bias);

/* ---- LSTM cell, pointwise: gates (rows, 4 hidden) in the order i, f, g, o ---- */
void fg_lstm_cell_fwd_f32(const float *gates, const float *c_prev, int64_t rows,
                          int64_t hidden, float *gates_act, float *h, float *c);
void fg_lstm_cell_fwd_f64(const double *gates, const double *c_prev, int64_t rows,
                          int64_t hidden, double *gates_act, double *h, double *c);
/* grad_c_prev may be NULL */
void fg_lstm_cell_bwd_f32(const float *grad_h, const float *grad_c, const float *c_prev,
                          const float *c, const float *gates_act, int64_t rows, int64_t hidden,
                          float *grad_gates, float *grad_c_prev);
void fg_lstm_cell_bwd_f64(const double *grad_h, const double *grad_c, const double *c_prev,
                          const double *c, const double *gates_act, int64_t rows,
                          int64_t hidden, double *grad_gates, double *grad_c_prev);
/* cffi-end */

#ifdef __cplusplus
}
#endif

#endif /* FASTGRAD_H */
