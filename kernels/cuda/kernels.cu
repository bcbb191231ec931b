/* kernels.cu - the CUDA backend's kernels and their launchers: the upload repack, dequantize,
 * the activation quantizers (q8_0, q8_1, q8_K) and matvec, for every format in formats.cuh.
 *
 * Upload (qf_cuda_weights_new) copies the C quantizers' bytes to the device and rearranges them
 * once into one array per block field (formats.cuh says why), the same bytes in all.
 * Matvec (n = 1, decode-like) is bound by reading the weights once, so its kernel keeps DRAM
 * busy with little else: one warp per row, eight rows per block, lane l taking the row's
 * groups of 32 weights l, l + 32, ...; each lane first issues the aligned 16-byte loads of its U
 * next groups (weights streamed past the caches, activations through the read-only path, both
 * coalesced across the warp since neighbouring lanes read neighbouring blocks), then decodes
 * them with dp4a, and the row's float partial sums are added with warp shuffles at the end.
 * The activations are quantized once per matvec by a small kernel into 48-byte records per 32
 * values (formats.cuh: act_rec), bit for bit what the C reference quantizers produce.
 * Dequantize is one thread per group; a correctness tool and a building block, not timed.
 * Matmul (n activation rows, prefill-like) is bound by arithmetic, not by the weight read, so it
 * runs on the tensor cores: the weights are decoded into an f16 scratch matrix (the same decode
 * as dequantize, rounded to f16) and the activations rounded to f16, then cuBLAS's GEMM with f32
 * accumulation. The decode is redone on every call, so the time includes reading the quantized
 * weights; the scratch costs 2 bytes per weight of device memory (qf_cuda_gemm_bytes).
 *
 * Which format runs which kernels is one table (k_ops) built from the format structs; nothing
 * else here switches on the weight format. All launches go to the legacy default stream.
 */
#include "cuda_util.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

#include "formats.cuh"
#include "qf_err.h"

namespace qfc {

constexpr int MV_WARPS = 8;          /* rows (warps) per matvec block */

/* Where the repack writes: the mutable twin of soa. */
struct soa_out {
    uint8_t *f[MAX_FIELDS];
    uint8_t *rowhdr;
};

/* A format's field table as a kernel parameter (device code cannot index a host constexpr
 * array at run time). */
struct field_table {
    int n;
    field f[MAX_FIELDS];
};

/* ---- repack, dequantize ---------------------------------------------------------------------- */

/* One thread per (block, field): copies the field's bytes from the C layout to its array. */
template <class F>
__global__ void __launch_bounds__(256) repack_kernel(const uint8_t *__restrict__ aos,
                                                     size_t row_bytes, int64_t blocks_per_row,
                                                     int64_t nblocks, field_table ft,
                                                     soa_out out)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= nblocks * ft.n)
        return;
    const int64_t bi = i / ft.n;
    const int f = (int)(i % ft.n);
    const int64_t row = bi / blocks_per_row, k = bi % blocks_per_row;
    const uint8_t *src = aos + row * row_bytes + F::HDR + k * F::B + ft.f[f].off;
    uint8_t *dst = out.f[f] + bi * ft.f[f].size;
    for (int b = 0; b < ft.f[f].size; b++)
        dst[b] = src[b];
}

/* int8_pc's per-row scale, the 4 bytes before each C row, to an array of its own. */
__global__ void rowhdr_kernel(const uint8_t *__restrict__ aos, size_t row_bytes, int64_t nrows,
                              uint8_t *out)
{
    const int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (row < nrows)
        for (int b = 0; b < 4; b++)
            out[row * 4 + b] = aos[row * row_bytes + b];
}

/* Group i (of 32 weights; ngroups per row) decoded as the C reference decodes it. */
template <class F>
__device__ __forceinline__ void decode_group(const soa &s, int ngroups, int64_t i, float y[32])
{
    constexpr int GPB = F::QK / 32;
    const int64_t row = i / ngroups;
    const int g = (int)(i % ngroups);
    typename F::raw r;
    F::load(s, row * (ngroups / GPB) + g / GPB, g % GPB, r);
    F::dequant(r, g % GPB, F::row_scale(s, row), y);
}

template <class F>
__global__ void __launch_bounds__(256) dequant_kernel(soa s, int ngroups, int64_t total,
                                                      float *__restrict__ out)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= total)
        return;
    float y[32];
    decode_group<F>(s, ngroups, i, y);
    float4 *o = reinterpret_cast<float4 *>(out + i * 32);
#pragma unroll
    for (int j = 0; j < 8; j++)
        o[j] = make_float4(y[4 * j], y[4 * j + 1], y[4 * j + 2], y[4 * j + 3]);
}

/* ---- activations --------------------------------------------------------------------------- */

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sums over each half-warp (lanes 0..15 and 16..31 separately). */
__device__ __forceinline__ int half_sum(int v)
{
#pragma unroll
    for (int o = 8; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float f16_round(float v)
{
    return __half2float(__float2half_rn(v));
}

/* q8_0 (and with Q81, q8_1) of one block of 32 per warp, as quantize_block_q8 in legacy.c:
 * d = amax / 127, q = roundf(x / d) via x * (1 / d), d stored as f16, q8_1's s = f16(sum * d)
 * from the unrounded d. */
template <bool Q81>
__global__ void __launch_bounds__(256) act_q8_kernel(const float *__restrict__ x, int nblocks,
                                                     act_rec *out)
{
    const int blk = (int)((blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32);
    const int lane = threadIdx.x % 32;
    if (blk >= nblocks)
        return;
    const float v = x[32 * (size_t)blk + lane];
    const float amax = warp_max(fabsf(v));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    const int q = (int)roundf(__fmul_rn(v, id));
    out[blk].q[lane] = (int8_t)q;
    const int hs = half_sum(q);
    const int hs_hi = __shfl_sync(0xffffffffu, hs, 16);
    if (lane == 0) {
        out[blk].d = f16_round(d);
        out[blk].s = Q81 ? f16_round(__fmul_rn((float)(hs + hs_hi), d)) : 0.0f;
        out[blk].s0 = hs;
        out[blk].s1 = hs_hi;
    }
}

/* ggml's nearest_int: round half to even through the float adder. */
__device__ __forceinline__ int nearest(float v)
{
    return (int)(__float_as_uint(__fadd_rn(v, 12582912.0f)) & 0x007fffffu) - 0x00400000;
}

/* q8_K of one super-block of 256 per warp, as qf_quantize_row_q8_K_ref: the value of largest
 * magnitude (the first one on ties) maps to -127, d = 1 / iscale in float, 16-sums. Lane l
 * holds values l + 32 k, so group k of the super-block is the warp's k-th register. */
__global__ void __launch_bounds__(256) act_q8_K_kernel(const float *__restrict__ x, int nsuper,
                                                       act_rec *out)
{
    const int sb = (int)((blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32);
    const int lane = threadIdx.x % 32;
    if (sb >= nsuper)
        return;
    const float *xs = x + 256 * (size_t)sb;
    float v[8];
    float amax = 0.0f, max = 0.0f;
    int idx = 0x7fffffff;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        v[k] = xs[lane + 32 * k];
        const float ax = fabsf(v[k]);
        if (ax > amax) {
            amax = ax;
            max = v[k];
            idx = lane + 32 * k;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float oa = __shfl_xor_sync(0xffffffffu, amax, o);
        const float om = __shfl_xor_sync(0xffffffffu, max, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (oa > amax || (oa == amax && oi < idx)) {
            amax = oa;
            max = om;
            idx = oi;
        }
    }
    const float iscale = amax != 0.0f ? __fdiv_rn(-127.0f, max) : 0.0f;
    const float d = amax != 0.0f ? __fdiv_rn(1.0f, iscale) : 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const int q = amax != 0.0f ? min(nearest(__fmul_rn(iscale, v[k])), 127) : 0;
        act_rec *rec = out + 8 * (size_t)sb + k;
        rec->q[lane] = (int8_t)q;
        const int hs = half_sum(q);
        const int hs_hi = __shfl_sync(0xffffffffu, hs, 16);
        if (lane == 0) {
            rec->d = d;
            rec->s = 0.0f;
            rec->s0 = hs;
            rec->s1 = hs_hi;
        }
    }
}

/* ---- matvec -------------------------------------------------------------------------------- */

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* 4 blocks of 256 threads per SM at most 64 registers each: 4096 rows (512 blocks) fit in one
 * wave on a 132-SM H100, so no SM waits for a second wave at the end. */
template <class F, int U>
__global__ void __launch_bounds__(32 * MV_WARPS, 4) matvec_kernel(soa s, int nrows, int ncols,
                                                                  const act_rec *__restrict__ act,
                                                                  float *__restrict__ y)
{
    constexpr int GPB = F::QK / 32;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row = blockIdx.x * MV_WARPS + warp;
    if (row >= nrows)
        return;                     /* whole warps only: nothing below syncs the block */
    const int ngroups = ncols / 32;
    const int64_t b0 = (int64_t)row * (ngroups / GPB);     /* the row's first block */
    float acc = 0.0f;
    for (int g0 = 0; g0 < ngroups; g0 += 32 * U) {
        typename F::raw r[U];
#pragma unroll
        for (int u = 0; u < U; u++) {           /* the weights' loads first: U groups in flight */
            const int g = g0 + lane + 32 * u;
            if (g < ngroups)
                F::load(s, b0 + g / GPB, g % GPB, r[u]);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {           /* the activations hit L1: load as used */
            const int g = g0 + lane + 32 * u;
            if (g < ngroups) {
                act_group a;
                act_load(act, g, a);
                acc += F::dot(r[u], g % GPB, a);
            }
        }
    }
    acc = warp_sum(acc);
    if (lane == 0)
        y[row] = acc * F::row_scale(s, row);
}

/* ---- the table ----------------------------------------------------------------------------- */

struct fmt_ops {
    qf_format   fmt;
    int         qk, b, hdr;          /* the format struct's QK, B, HDR */
    field_table fields;
    void (*repack)(const uint8_t *aos, size_t row_bytes, int64_t nrows, int64_t ncols,
                   const field_table &ft, const soa_out &out);
    void (*dequant)(const soa &s, int64_t nrows, int64_t ncols, float *out);
    void (*matvec)(const soa &s, int64_t nrows, int64_t ncols, const act_rec *a, float *y);
    void (*dequant_h)(const soa &s, int64_t nrows, int64_t ncols, __half *out);
};

template <class F>
void launch_repack(const uint8_t *aos, size_t row_bytes, int64_t nrows, int64_t ncols,
                   const field_table &ft, const soa_out &out)
{
    const int64_t bpr = ncols / F::QK, n = nrows * bpr * ft.n;
    repack_kernel<F><<<(unsigned)((n + 255) / 256), 256>>>(aos, row_bytes, bpr, nrows * bpr,
                                                            ft, out);
    if (F::HDR > 0)
        rowhdr_kernel<<<(unsigned)((nrows + 255) / 256), 256>>>(aos, row_bytes, nrows,
                                                                out.rowhdr);
}

/* The same decode into f16, for the matmul's tensor-core GEMM: each float of the reference
 * decode rounded to nearest f16 (values beyond 65504 become inf; weights never are). */
template <class F>
__global__ void __launch_bounds__(256) dequant_h_kernel(soa s, int ngroups, int64_t total,
                                                        __half *__restrict__ out)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= total)
        return;
    float y[32];
    decode_group<F>(s, ngroups, i, y);
    __align__(16) __half h[32];
#pragma unroll
    for (int j = 0; j < 32; j++)
        h[j] = __float2half_rn(y[j]);
    uint4 *o = reinterpret_cast<uint4 *>(out + i * 32);
    const uint4 *src = reinterpret_cast<const uint4 *>(h);
#pragma unroll
    for (int j = 0; j < 4; j++)
        o[j] = src[j];
}

__global__ void __launch_bounds__(256) to_half_kernel(const float4 *__restrict__ x, int64_t n4,
                                                      __half2 *__restrict__ out)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n4)
        return;
    const float4 v = x[i];
    out[2 * i] = __floats2half2_rn(v.x, v.y);
    out[2 * i + 1] = __floats2half2_rn(v.z, v.w);
}

template <class F>
void launch_dequant_h(const soa &s, int64_t nrows, int64_t ncols, __half *out)
{
    const int64_t total = nrows * (ncols / 32);
    dequant_h_kernel<F><<<(unsigned)((total + 255) / 256), 256>>>(s, (int)(ncols / 32), total,
                                                                  out);
}

template <class F>
void launch_dequant(const soa &s, int64_t nrows, int64_t ncols, float *out)
{
    const int64_t total = nrows * (ncols / 32);
    dequant_kernel<F><<<(unsigned)((total + 255) / 256), 256>>>(s, (int)(ncols / 32), total,
                                                                out);
}

template <class F, int U>
void launch_matvec(const soa &s, int64_t nrows, int64_t ncols, const act_rec *a, float *y)
{
    matvec_kernel<F, U><<<(unsigned)((nrows + MV_WARPS - 1) / MV_WARPS), 32 * MV_WARPS>>>(
        s, (int)nrows, (int)ncols, a, y);
}

template <class F>
constexpr field_table fields_of()
{
    field_table t = {};
    t.n = F::NF;
    for (int i = 0; i < F::NF; i++)
        t.f[i] = F::FIELDS[i];
    return t;
}

/* U, the groups per lane in flight: ~2 KiB of weights per warp for the small-group formats,
 * fewer for the K-quants, whose groups need more registers (4 blocks per SM cap them at 64). */
#define QFC_OPS(fmt, F, U) \
    { fmt, F::QK, F::B, F::HDR, fields_of<F>(), launch_repack<F>, launch_dequant<F>, \
      launch_matvec<F, U>, launch_dequant_h<F> }
static const fmt_ops k_ops[] = {
    QFC_OPS(QF_FMT_Q8_0, f_q8_0, 2),
    QFC_OPS(QF_FMT_Q4_0, f_q4_0, 4),
    QFC_OPS(QF_FMT_Q4_1, f_q4_1, 4),
    QFC_OPS(QF_FMT_Q5_0, f_q5_0, 3),
    QFC_OPS(QF_FMT_Q5_1, f_q5_1, 3),
    QFC_OPS(QF_FMT_Q2_K, f_q2_K, 4),
    QFC_OPS(QF_FMT_Q3_K, f_q3_K, 2),
    QFC_OPS(QF_FMT_Q4_K, f_q4_K, 3),
    QFC_OPS(QF_FMT_Q5_K, f_q5_K, 2),
    QFC_OPS(QF_FMT_Q6_K, f_q6_K, 2),
    QFC_OPS(QF_FMT_INT8_PC, f_int8_pc, 2),
    QFC_OPS(QF_FMT_INT4_G32, f_int4<32>, 4),
    QFC_OPS(QF_FMT_INT4_G64, f_int4<64>, 3),
    QFC_OPS(QF_FMT_INT4_G128, f_int4<128>, 3),
};
#undef QFC_OPS

static const fmt_ops *ops_of(qf_format fmt)
{
    for (const fmt_ops &o : k_ops)
        if (o.fmt == fmt)
            return &o;
    return nullptr;
}

/* The checks every kernel entry shares: a format we have, a shape it holds. */
static int check_op(const char *op, qf_format fmt, int64_t nrows, int64_t ncols,
                    const fmt_ops **ops)
{
    if ((unsigned)fmt >= QF_FMT_COUNT || !(*ops = ops_of(fmt)))
        return fail_msg(QF_EINVAL, "%s: the CUDA backend has no format %s", op,
                        (unsigned)fmt < QF_FMT_COUNT ? qf_format_get(fmt)->name : "(invalid)");
    const qf_format_traits *t = qf_format_get(fmt);
    const int64_t mult = (*ops)->qk;
    if (nrows < 1 || nrows > (INT64_C(1) << 30) || ncols < mult || ncols % mult != 0 ||
        ncols > (INT64_C(1) << 30))
        return fail_msg(QF_EINVAL, "%s: %s cannot hold a %lld x %lld matrix (cols a multiple "
                        "of %lld)", op, t->name, (long long)nrows, (long long)ncols,
                        (long long)mult);
    return need_device();
}

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

} /* namespace qfc */

using namespace qfc;

struct qf_cuda_weights {
    qf_format      fmt;
    int64_t        rows, cols;
    uint64_t       bytes;      /* of the C layout: what a pass reads */
    void          *mem;        /* the field arrays, one allocation */
    soa            s;
    const fmt_ops *ops;
};

struct qf_cuda_act {
    int64_t   max_cols;
    int64_t   cols;        /* of the row quantized last, 0 before */
    qf_format fmt;         /* the activation format it was quantized to */
    act_rec  *rec;         /* max_cols / 32 records */
};

extern "C" {

bool qf_cuda_supports(qf_format fmt)
{
    return ops_of(fmt) != nullptr;
}

void qf_cuda_weights_destroy(qf_cuda_weights **wp)
{
    if (!wp || !*wp)
        return;
    qf_cuda_free(&(*wp)->mem);
    free(*wp);
    *wp = NULL;
}

int qf_cuda_weights_new(qf_format fmt, const void *w, int64_t nrows, int64_t ncols,
                        qf_cuda_weights **out)
{
    *out = NULL;
    const fmt_ops *ops = nullptr;
    int err = check_op("qf_cuda_weights_new", fmt, nrows, ncols, &ops);
    if (err)
        return err;
    qf_cuda_weights *m = (qf_cuda_weights *)calloc(1, sizeof *m);
    if (!m)
        return fail_msg(QF_ENOMEM, "qf_cuda_weights_new: out of host memory");
    m->fmt = fmt;
    m->rows = nrows;
    m->cols = ncols;
    m->ops = ops;
    const size_t row_bytes = qf_format_row_size(fmt, ncols);
    m->bytes = (uint64_t)row_bytes * (uint64_t)nrows;
    const size_t nblocks = (size_t)nrows * (size_t)(ncols / ops->qk);
    size_t total = ops->hdr > 0 ? align256((size_t)nrows * (size_t)ops->hdr) : 0;
    for (int f = 0; f < ops->fields.n; f++)
        total += align256(nblocks * (size_t)ops->fields.f[f].size);
    void *aos = NULL;
    if ((err = qf_cuda_alloc(total, &m->mem)) != 0 ||
        (err = qf_cuda_alloc((size_t)m->bytes, &aos)) != 0 ||
        (err = qf_cuda_upload(aos, w, (size_t)m->bytes)) != 0) {
        qf_cuda_free(&aos);
        qf_cuda_weights_destroy(&m);
        return err;
    }
    soa_out o = {};
    uint8_t *p = (uint8_t *)m->mem;
    if (ops->hdr > 0) {
        o.rowhdr = p;
        p += align256((size_t)nrows * (size_t)ops->hdr);
    }
    for (int f = 0; f < ops->fields.n; f++) {
        o.f[f] = p;
        p += align256(nblocks * (size_t)ops->fields.f[f].size);
    }
    for (int f = 0; f < MAX_FIELDS; f++)
        m->s.f[f] = o.f[f];
    m->s.rowhdr = o.rowhdr;
    ops->repack((const uint8_t *)aos, row_bytes, nrows, ncols, ops->fields, o);
    err = check_launch("repack_kernel launch");
    if (!err)
        err = qf_cuda_sync();       /* before the C-layout copy goes */
    qf_cuda_free(&aos);
    if (err)
        qf_cuda_weights_destroy(&m);
    *out = m;
    return err;
}

uint64_t qf_cuda_weights_bytes(const qf_cuda_weights *w)
{
    return w->bytes;
}

int qf_cuda_dequantize(const qf_cuda_weights *w, float *d_out)
{
    int err = need_device();
    if (err)
        return err;
    w->ops->dequant(w->s, w->rows, w->cols, d_out);
    return check_launch("dequant_kernel launch");
}

void qf_cuda_act_destroy(qf_cuda_act **ap)
{
    if (!ap || !*ap)
        return;
    qf_cuda_free((void **)&(*ap)->rec);
    free(*ap);
    *ap = NULL;
}

int qf_cuda_act_new(int64_t max_cols, qf_cuda_act **out)
{
    *out = NULL;
    if (max_cols < 32 || max_cols % 32 != 0 || max_cols > (INT64_C(1) << 30))
        return fail_msg(QF_EINVAL, "qf_cuda_act_new: %lld columns (a positive multiple of 32)",
                        (long long)max_cols);
    qf_cuda_act *a = (qf_cuda_act *)calloc(1, sizeof *a);
    if (!a)
        return fail_msg(QF_ENOMEM, "qf_cuda_act_new: out of host memory");
    int err = qf_cuda_alloc((size_t)max_cols / 32 * sizeof(act_rec), (void **)&a->rec);
    if (err) {
        free(a);
        return err;
    }
    a->max_cols = max_cols;
    *out = a;
    return 0;
}

int qf_cuda_act_quantize(qf_cuda_act *a, qf_format fmt, const float *d_x, int64_t ncols)
{
    const fmt_ops *ops = nullptr;
    int err = check_op("qf_cuda_act_quantize", fmt, 1, ncols, &ops);
    if (err)
        return err;
    if (ncols > a->max_cols)
        return fail_msg(QF_EINVAL, "qf_cuda_act_quantize: %lld columns, room for %lld",
                        (long long)ncols, (long long)a->max_cols);
    const qf_format act = qf_format_get(fmt)->act;
    const int64_t warps = act == QF_FMT_Q8_K ? ncols / 256 : ncols / 32;
    const unsigned grid = (unsigned)((warps + 7) / 8);
    switch (act) {          /* the three activation formats, not the weight formats */
    case QF_FMT_Q8_0: act_q8_kernel<false><<<grid, 256>>>(d_x, (int)warps, a->rec); break;
    case QF_FMT_Q8_1: act_q8_kernel<true><<<grid, 256>>>(d_x, (int)warps, a->rec); break;
    case QF_FMT_Q8_K: act_q8_K_kernel<<<grid, 256>>>(d_x, (int)warps, a->rec); break;
    default:
        return fail_msg(QF_EINVAL, "qf_cuda_act_quantize: no quantizer for activation "
                        "format %s", qf_format_get(act)->name);
    }
    a->cols = ncols;
    a->fmt = act;
    return check_launch("activation quantizer launch");
}

int qf_cuda_matvec_q(const qf_cuda_weights *w, const qf_cuda_act *a, float *d_y)
{
    int err = need_device();
    if (err)
        return err;
    if (a->cols != w->cols || a->fmt != qf_format_get(w->fmt)->act)
        return fail_msg(QF_EINVAL, "qf_cuda_matvec_q: the activations hold %lld columns of "
                        "%s, the %s weights want %lld of %s", (long long)a->cols,
                        qf_format_get(a->fmt)->name, qf_format_get(w->fmt)->name,
                        (long long)w->cols, qf_format_get(qf_format_get(w->fmt)->act)->name);
    w->ops->matvec(w->s, w->rows, w->cols, a->rec, d_y);
    return check_launch("matvec_kernel launch");
}

int qf_cuda_matvec(const qf_cuda_weights *w, const float *d_x, qf_cuda_act *scratch, float *d_y)
{
    int err = qf_cuda_act_quantize(scratch, w->fmt, d_x, w->cols);
    return err ? err : qf_cuda_matvec_q(w, scratch, d_y);
}

/* ---- matmul: dequantize into f16, then a tensor-core GEMM ---------------------------------- */

/* cuBLAS, loaded on the first matmul: linked in, its libraries' static initializers cost every
 * qfleet start ~0.8 s of CPU (measured: `qfleet --help` 0.7 s wall against 0.2 s), and most runs
 * never multiply a batch. The four entry points we call, by their exported (_v2) names; the
 * types come from cublas_v2.h. */
struct blas_api {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                              int, const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    const char *(*status_string)(cublasStatus_t);
};

static int load_blas(const blas_api **out)
{
    static blas_api api;
    static int state;          /* 0 not tried, 1 loaded, < 0 the failure */
    static char reason[512];
    if (state == 0) {
        /* the loader's path first, then the toolkit this was built with (not always on it) */
        const char *names[] = { "libcublas.so.13", "libcublas.so.12", "libcublas.so",
                                QF_CUBLAS_DIR "/libcublas.so" };
        void *h = nullptr;
        for (const char *n : names)
            if ((h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) != nullptr)
                break;
        if (!h) {
            snprintf(reason, sizeof reason, "cannot load cuBLAS (libcublas.so.13): %s", dlerror());
            state = QF_EUNSUP;
        } else {
            const struct { void *slot; const char *name; } syms[] = {
                { &api.create, "cublasCreate_v2" }, { &api.destroy, "cublasDestroy_v2" },
                { &api.gemm_ex, "cublasGemmEx" }, { &api.status_string, "cublasGetStatusString" },
            };
            state = 1;
            for (const auto &sy : syms) {
                void *f = dlsym(h, sy.name);
                if (!f) {
                    snprintf(reason, sizeof reason, "cuBLAS has no %s", sy.name);
                    state = QF_EUNSUP;
                    break;
                }
                memcpy(sy.slot, &f, sizeof f);
            }
        }
    }
    if (state < 0)
        return fail_msg(state, "%s", reason);
    *out = &api;
    return 0;
}

struct qf_cuda_gemm {
    const qf_cuda_weights *w;
    int64_t        max_n;
    __half        *wh;        /* rows x cols, the weights decoded, rewritten by every call */
    __half        *xh;        /* max_n x cols, the activations rounded to f16 */
    cublasHandle_t blas;
    const blas_api *api;
};

void qf_cuda_gemm_destroy(qf_cuda_gemm **gp)
{
    if (!gp || !*gp)
        return;
    qf_cuda_gemm *g = *gp;
    if (g->blas)
        g->api->destroy(g->blas);
    qf_cuda_free((void **)&g->wh);
    qf_cuda_free((void **)&g->xh);
    free(g);
    *gp = NULL;
}

int qf_cuda_gemm_new(const qf_cuda_weights *w, int64_t max_n, qf_cuda_gemm **out)
{
    *out = NULL;
    if (max_n < 1 || max_n > 65536)
        return fail_msg(QF_EINVAL, "qf_cuda_gemm_new: %lld activation rows (1..65536)",
                        (long long)max_n);
    int err = need_device();
    if (err)
        return err;
    qf_cuda_gemm *g = (qf_cuda_gemm *)calloc(1, sizeof *g);
    if (!g)
        return fail_msg(QF_ENOMEM, "qf_cuda_gemm_new: out of host memory");
    g->w = w;
    g->max_n = max_n;
    err = qf_cuda_alloc((size_t)w->rows * (size_t)w->cols * sizeof(__half), (void **)&g->wh);
    if (!err)
        err = qf_cuda_alloc((size_t)max_n * (size_t)w->cols * sizeof(__half), (void **)&g->xh);
    if (!err)
        err = load_blas(&g->api);
    if (!err) {
        cublasStatus_t st = g->api->create(&g->blas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            g->blas = nullptr;
            err = fail_msg(st == CUBLAS_STATUS_ALLOC_FAILED ? QF_ENOMEM : QF_EIO,
                           "cublasCreate: %s", g->api->status_string(st));
        }
    }
    if (err) {
        qf_cuda_gemm_destroy(&g);
        return err;
    }
    *out = g;
    return 0;
}

uint64_t qf_cuda_gemm_bytes(const qf_cuda_gemm *g)
{
    return ((uint64_t)g->w->rows + (uint64_t)g->max_n) * (uint64_t)g->w->cols * sizeof(__half);
}

int qf_cuda_matmul(qf_cuda_gemm *g, const float *d_x, int64_t n, float *d_y)
{
    int err = need_device();
    if (err)
        return err;
    const qf_cuda_weights *w = g->w;
    if (n < 1 || n > g->max_n)
        return fail_msg(QF_EINVAL, "qf_cuda_matmul: %lld activation rows, room for 1..%lld",
                        (long long)n, (long long)g->max_n);
    w->ops->dequant_h(w->s, w->rows, w->cols, g->wh);
    if ((err = check_launch("dequant_h_kernel launch")) != 0)
        return err;
    const int64_t n4 = n * w->cols / 4;
    to_half_kernel<<<(unsigned)((n4 + 255) / 256), 256>>>(
        reinterpret_cast<const float4 *>(d_x), n4, reinterpret_cast<__half2 *>(g->xh));
    if ((err = check_launch("to_half_kernel launch")) != 0)
        return err;
    /* Column-major view: W (rows x cols, row-major) is a cols x rows matrix, taken transposed;
     * X (n x cols) is cols x n; Y (n x rows, row-major) is the rows x n result. */
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = g->api->gemm_ex(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->rows, (int)n,
                                     (int)w->cols, &alpha, g->wh, CUDA_R_16F, (int)w->cols,
                                     g->xh, CUDA_R_16F, (int)w->cols, &beta, d_y, CUDA_R_32F,
                                     (int)w->rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return fail_msg(QF_EIO, "cublasGemmEx (%lld x %lld x %lld): %s", (long long)w->rows,
                        (long long)n, (long long)w->cols, g->api->status_string(st));
    return 0;
}

} /* extern "C" */
