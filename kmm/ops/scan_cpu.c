/* CPU inference kernels of the Mamba block, forward only, channels-last, float32 — see kmm/ops/cpu_kernel.py.
 *
 * Built on first use with the system C compiler (plain C, no torch headers, about a second) and loaded with
 * ctypes. Channels come in G groups of Dg channels (G = 2: a bidirectional block's forward and backward
 * Mamba side by side). A group with reverse = 1 runs backward in time over each sequence's valid part
 * [0, len_b): exactly what the reference computes by reversing the valid part, scanning forward and
 * reversing back (kmm.model.mamba.reverse_valid), without the two copies. Its outputs at padding
 * positions t >= len_b are 0 (the reference leaves unrelated values there; no valid output reads them).
 *
 * Selective scan, per batch b, channel d, state n (same recurrence as kmm.ops.scan.selective_scan_ref):
 *     dt_t = softplus(delta_t + bias)            (when softplus; else delta_t + bias)
 *     h_t  = exp(dt_t A[d, n]) h_{t-1} + dt_t B_t[n] u_t
 *     y_t  = (sum_n C_t[n] h_t + Dskip[d] u_t) * silu(z_t)
 * Depthwise causal convolution + SiLU, kernel K: y_t = silu(bias + sum_k w[k] x_{t-K+1+k}), zeros before 0.
 *
 * Layouts (element strides; channels always unit stride, so the inner loops over d vectorise):
 *     a tensor "X" of shape (batch, L, G groups of Dg) is passed as (ptr, s_b, s_t, s_g): element
 *     (b, t, g, d) sits at ptr[b s_b + t s_t + g s_g + d]; B and C add s_n for the state index.
 *     A_t (N, G Dg), Dskip and bias (G Dg) contiguous; outputs (batch, L, G Dg) contiguous.
 * Groups run on up to `threads` threads (a pthread per extra part; threads = 1 runs in the caller).
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int kmm_abi_version(void) { return 2; }

/* exp(x), Cephes' expf polynomial (about 1 ulp), written so that gcc vectorises the loops that call it
 * (libmvec's expf is a function call per 8 lanes and slower). Here x = Δ·A <= 0 (Δ > 0, A < 0). */
static inline float exp_neg(float x)
{
    x = fminf(fmaxf(x, -87.0f), 88.0f);                    /* below -87: 2^-126 instead of a denormal */
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

typedef struct { const float *p; int64_t sb, st, sg, sn; } view_t;

typedef struct {
    int64_t batch, L, G, Dg, N;
    view_t u, delta, B, C, z;
    const float *A_t, *Dskip, *bias;
    const int64_t *lengths;
    const int *reverse;
    int softplus;
    float *y;
    int64_t g0, g1;
    int rc;
} scan_args;

static void *scan_groups(void *arg)
{
    scan_args *a = (scan_args *)arg;
    const int64_t W = a->Dg, N = a->N, D = a->G * a->Dg;
    float *work = (float *)malloc(sizeof(float) * (size_t)(N * W + 3 * W));
    if (!work) { a->rc = 1; return NULL; }
    float *h = work, *dt = work + N * W, *dtu = dt + W, *acc = dtu + W;
    for (int64_t g = a->g0; g < a->g1; g++) {
        const int64_t c0 = g * W;
        const float *bias = a->bias ? a->bias + c0 : NULL, *Dskip = a->Dskip ? a->Dskip + c0 : NULL;
        for (int64_t b = 0; b < a->batch; b++) {
            const int64_t len = a->lengths ? a->lengths[b] : a->L;
            const int rev = a->reverse ? a->reverse[g] : 0;
            memset(h, 0, sizeof(float) * (size_t)(N * W));
            if (rev) /* padding of a backward group: zeros */
                for (int64_t t = len; t < a->L; t++) memset(a->y + (b * a->L + t) * D + c0, 0, sizeof(float) * W);
            const int64_t steps = rev ? len : a->L;
            for (int64_t s = 0; s < steps; s++) {
                const int64_t t = rev ? len - 1 - s : s;
                const float *ut = a->u.p + b * a->u.sb + t * a->u.st + g * a->u.sg;
                const float *dl = a->delta.p + b * a->delta.sb + t * a->delta.st + g * a->delta.sg;
                const float *Bt = a->B.p + b * a->B.sb + t * a->B.st + g * a->B.sg;
                const float *Ct = a->C.p + b * a->C.sb + t * a->C.st + g * a->C.sg;
                /* 1. step size (stable branch-free softplus), its input term, the skip connection */
                for (int64_t i = 0; i < W; i++) {
                    float v = dl[i] + (bias ? bias[i] : 0.0f);
                    if (a->softplus) v = fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v)));
                    dt[i] = v;
                    dtu[i] = v * ut[i];
                    acc[i] = Dskip ? Dskip[i] * ut[i] : 0.0f;
                }
                /* 2. the recurrence, one state row at a time (contiguous over channels) */
                for (int64_t n = 0; n < N; n++) {
                    const float bn = Bt[n * a->B.sn], cn = Ct[n * a->C.sn];
                    const float *An = a->A_t + n * D + c0;
                    float *hn = h + n * W;
                    for (int64_t i = 0; i < W; i++) {
                        float v = exp_neg(dt[i] * An[i]) * hn[i] + dtu[i] * bn;
                        hn[i] = v;
                        acc[i] += v * cn;
                    }
                }
                /* 3. gate */
                float *yt = a->y + (b * a->L + t) * D + c0;
                if (a->z.p) {
                    const float *zt = a->z.p + b * a->z.sb + t * a->z.st + g * a->z.sg;
                    for (int64_t i = 0; i < W; i++) yt[i] = acc[i] * (zt[i] / (1.0f + expf(-zt[i])));
                } else {
                    for (int64_t i = 0; i < W; i++) yt[i] = acc[i];
                }
            }
        }
    }
    free(work);
    return NULL;
}

enum { MAX_THREADS = 8 };

/* Runs fn on args[0..n) (each `size` bytes), args[k > 0] on their own pthreads; fn records failures itself. */
static void run_parallel(void *(*fn)(void *), char *args, size_t size, int n)
{
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int k = 1; k < n; k++) {
        started[k] = pthread_create(&tid[k], NULL, fn, args + k * size) == 0;
        if (!started[k]) fn(args + k * size);   /* no thread: run it here */
    }
    fn(args);
    for (int k = 1; k < n; k++)
        if (started[k]) pthread_join(tid[k], NULL);
}

static int n_parts(int64_t G, int threads)
{
    int n = threads < 1 ? 1 : threads;
    if (n > G) n = (int)G;
    return n > MAX_THREADS ? MAX_THREADS : n;
}

int kmm_scan_fwd(int64_t batch, int64_t L, int64_t G, int64_t Dg, int64_t N,
                 const float *u, int64_t su_b, int64_t su_t, int64_t su_g,
                 const float *delta, int64_t sd_b, int64_t sd_t, int64_t sd_g,
                 const float *A_t,
                 const float *Bm, int64_t sB_b, int64_t sB_t, int64_t sB_g, int64_t sB_n,
                 const float *Cm, int64_t sC_b, int64_t sC_t, int64_t sC_g, int64_t sC_n,
                 const float *Dskip, const float *z, int64_t sz_b, int64_t sz_t, int64_t sz_g,
                 const float *bias, int softplus, const int64_t *lengths, const int *reverse,
                 float *y, int threads)
{
    scan_args a[MAX_THREADS];
    const int n = n_parts(G, threads);
    int rc = 0;
    for (int k = 0; k < n; k++)
        a[k] = (scan_args){batch, L, G, Dg, N,
                           {u, su_b, su_t, su_g, 0}, {delta, sd_b, sd_t, sd_g, 0},
                           {Bm, sB_b, sB_t, sB_g, sB_n}, {Cm, sC_b, sC_t, sC_g, sC_n}, {z, sz_b, sz_t, sz_g, 0},
                           A_t, Dskip, bias, lengths, reverse, softplus, y, G * k / n, G * (k + 1) / n, 0};
    run_parallel(scan_groups, (char *)a, sizeof a[0], n);
    for (int k = 0; k < n; k++) rc |= a[k].rc;
    return rc;
}

typedef struct {
    int64_t batch, L, G, Dg, K;
    view_t x;
    const float *w_t, *bias;   /* w_t: (K, G Dg), the weight transposed */
    const int64_t *lengths;
    const int *reverse;
    float *y;
    int64_t g0, g1;
    int rc;
} conv_args;

static void *conv_groups(void *arg)
{
    conv_args *a = (conv_args *)arg;
    const int64_t W = a->Dg, K = a->K, D = a->G * a->Dg;
    float *acc = (float *)malloc(sizeof(float) * (size_t)W);
    if (!acc) { a->rc = 1; return NULL; }
    for (int64_t g = a->g0; g < a->g1; g++) {
        const int64_t c0 = g * W;
        const int rev = a->reverse ? a->reverse[g] : 0;
        for (int64_t b = 0; b < a->batch; b++) {
            const int64_t len = a->lengths ? a->lengths[b] : a->L;
            for (int64_t t = 0; t < a->L; t++) {
                float *yt = a->y + (b * a->L + t) * D + c0;
                if (rev && t >= len) { memset(yt, 0, sizeof(float) * W); continue; }
                for (int64_t i = 0; i < W; i++) acc[i] = a->bias ? a->bias[c0 + i] : 0.0f;
                for (int64_t k = 0; k < K; k++) {
                    /* forward: reads t-K+1+k >= 0; backward (in reversed time): reads t+K-1-k < len */
                    const int64_t src = rev ? t + K - 1 - k : t - K + 1 + k;
                    if (src < 0 || src >= (rev ? len : a->L)) continue;
                    const float *xs = a->x.p + b * a->x.sb + src * a->x.st + g * a->x.sg;
                    const float *wk = a->w_t + k * D + c0;
                    for (int64_t i = 0; i < W; i++) acc[i] += wk[i] * xs[i];
                }
                for (int64_t i = 0; i < W; i++) yt[i] = acc[i] / (1.0f + expf(-acc[i]));
            }
        }
    }
    free(acc);
    return NULL;
}

int kmm_conv_silu(int64_t batch, int64_t L, int64_t G, int64_t Dg, int64_t K,
                  const float *x, int64_t sx_b, int64_t sx_t, int64_t sx_g,
                  const float *w_t, const float *bias, const int64_t *lengths, const int *reverse,
                  float *y, int threads)
{
    conv_args a[MAX_THREADS];
    const int n = n_parts(G, threads);
    int rc = 0;
    for (int k = 0; k < n; k++)
        a[k] = (conv_args){batch, L, G, Dg, K, {x, sx_b, sx_t, sx_g, 0}, w_t, bias, lengths, reverse, y,
                           G * k / n, G * (k + 1) / n, 0};
    run_parallel(conv_groups, (char *)a, sizeof a[0], n);
    for (int k = 0; k < n; k++) rc |= a[k].rc;
    return rc;
}
