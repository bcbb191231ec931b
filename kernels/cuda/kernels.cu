/* kernels.cu - the CUDA backend's kernels and their launchers: dequantize, the activation
 * quantizers (q8_0, q8_1, q8_K) and matvec, for every format in formats.cuh.
 *
 * Matvec (n = 1, decode-like) is bound by reading the weights once, so its kernel is built to
 * keep DRAM busy: one warp per row, eight rows per block. A warp walks its row in tiles of
 * 32 * U groups of 32 weights (whole format blocks, about 2 KiB): it loads the tile with 16-byte
 * coalesced loads (streaming, so the weights do not evict the activations from the caches),
 * stages it in shared memory, and while it decodes that tile from shared memory the loads of
 * the next tile are already in flight (register double buffering). Lane l takes groups l,
 * l + 32, ... of the tile, so the lanes' activation reads are coalesced too; blocks of any byte
 * alignment are read from shared memory with aligned words and funnel shifts (formats.cuh).
 * The row's float partial sums are added with warp shuffles. The activations are quantized once
 * per matvec by a small kernel into the layout of qfc::act_view (int8 values, 16-byte aligned,
 * plus per-32 scales and sums), bit for bit what the C reference quantizers produce.
 * Dequantize is one thread per group of 32, reading the blocks straight from global memory; it
 * is a correctness tool and a building block, not a timed target.
 *
 * Which format runs which kernel is one table (k_ops) built from the format structs; nothing
 * else here switches on the format. All launches go to the legacy default stream.
 */
#include "cuda_util.h"

#include <stdlib.h>

#include "formats.cuh"
#include "qf_err.h"

namespace qfc {

constexpr int MV_WARPS = 8;          /* rows (warps) per matvec block */

/* ---- dequantize ---------------------------------------------------------------------------- */

template <class F>
__global__ void __launch_bounds__(256) dequant_kernel(const uint8_t *__restrict__ w,
                                                      size_t row_bytes, int ngroups,
                                                      int64_t total, float *__restrict__ out)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= total)
        return;
    constexpr int GPB = F::QK / 32;
    const int64_t row = i / ngroups;
    const int g = (int)(i % ngroups);
    const uint8_t *rowp = w + row * row_bytes;
    float y[32];
    F::dequant(rowp + F::HDR + (size_t)(g / GPB) * F::B, g % GPB, F::row_scale(rowp), y);
    float4 *o = reinterpret_cast<float4 *>(out + i * 32);
#pragma unroll
    for (int j = 0; j < 8; j++)
        o[j] = make_float4(y[4 * j], y[4 * j + 1], y[4 * j + 2], y[4 * j + 3]);
}

/* ---- activations --------------------------------------------------------------------------- */

/* Where a quantizer writes: the mutable twin of act_view. */
struct act_out {
    int8_t *q;
    float  *d, *s;
    int2   *sum;
};

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
                                                     act_out a)
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
    a.q[32 * (size_t)blk + lane] = (int8_t)q;
    const int hs = half_sum(q);
    const int hs_hi = __shfl_sync(0xffffffffu, hs, 16);
    if (lane == 0) {
        a.d[blk] = f16_round(d);
        a.s[blk] = Q81 ? f16_round(__fmul_rn((float)(hs + hs_hi), d)) : 0.0f;
        a.sum[blk] = make_int2(hs, hs_hi);
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
                                                       act_out a)
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
        a.q[256 * (size_t)sb + lane + 32 * k] = (int8_t)q;
        const int hs = half_sum(q);
        const int hs_hi = __shfl_sync(0xffffffffu, hs, 16);
        if (lane == 0) {
            a.d[8 * sb + k] = d;
            a.s[8 * sb + k] = 0.0f;
            a.sum[8 * sb + k] = make_int2(hs, hs_hi);
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

/* The tile geometry of format F with U groups per lane. */
template <class F, int U>
struct tile {
    static constexpr int GPB = F::QK / 32;            /* groups per block */
    static_assert((32 * U) % GPB == 0, "a tile holds whole blocks");
    static constexpr int BLOCKS = 32 * U / GPB;
    static constexpr int BYTES = BLOCKS * F::B;
    static constexpr int CHUNKS = (BYTES + 15 + 15) / 16;   /* 16-byte chunks it can touch */
    static constexpr int PER_LANE = (CHUNKS + 31) / 32;
    static constexpr int SMEM = (CHUNKS + 1) * 16;          /* + a chunk for ldw's overrun */
};

/* Issues the 16-byte loads of tile t of a row (data = the row's first block). */
template <class F, int U>
__device__ __forceinline__ void tile_load(const uint8_t *data, int t, int nblocks, int lane,
                                          uint4 (&buf)[tile<F, U>::PER_LANE])
{
    using T = tile<F, U>;
    const int nb = min(T::BLOCKS, nblocks - t * T::BLOCKS);
    const uint8_t *p0 = data + (size_t)t * T::BYTES;
    const uintptr_t a0 = reinterpret_cast<uintptr_t>(p0) & ~uintptr_t(15);
    const int nch = (int)((reinterpret_cast<uintptr_t>(p0) - a0 + (uintptr_t)nb * F::B + 15) >> 4);
    const uint4 *src = reinterpret_cast<const uint4 *>(a0);
#pragma unroll
    for (int j = 0; j < T::PER_LANE; j++) {
        const int c = lane + 32 * j;
        if (c < nch)
            buf[j] = __ldcs(src + c);
    }
}

template <class F, int U>
__global__ void __launch_bounds__(32 * MV_WARPS) matvec_kernel(const uint8_t *__restrict__ w,
                                                               size_t row_bytes, int nrows,
                                                               int ncols, act_view act,
                                                               float *__restrict__ y)
{
    using T = tile<F, U>;
    __shared__ __align__(16) uint8_t smem[MV_WARPS][T::SMEM];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row = blockIdx.x * MV_WARPS + warp;
    if (row >= nrows)
        return;                     /* whole warps only: nothing below syncs the block */
    const uint8_t *rowp = w + (size_t)row * row_bytes;
    const uint8_t *data = rowp + F::HDR;
    const int nblocks = ncols / F::QK, ngroups = ncols / 32;
    const int ntiles = (nblocks + T::BLOCKS - 1) / T::BLOCKS;
    uint4 *stage = reinterpret_cast<uint4 *>(smem[warp]);

    uint4 buf[T::PER_LANE];
#pragma unroll
    for (int j = 0; j < T::PER_LANE; j++)
        buf[j] = make_uint4(0, 0, 0, 0);
    tile_load<F, U>(data, 0, nblocks, lane, buf);

    float acc = 0.0f;
    for (int t = 0; t < ntiles; t++) {
        __syncwarp();               /* the previous tile's readers are done */
#pragma unroll
        for (int j = 0; j < T::PER_LANE; j++)
            if (lane + 32 * j < T::CHUNKS)
                stage[lane + 32 * j] = buf[j];
        __syncwarp();
        if (t + 1 < ntiles)
            tile_load<F, U>(data, t + 1, nblocks, lane, buf);
        const int off = (int)(reinterpret_cast<uintptr_t>(data + (size_t)t * T::BYTES) & 15);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int gi = lane + 32 * u;
            const int g = t * 32 * U + gi;
            if (g < ngroups) {
                act_group a;
                act_load(act, g, a);
                acc += F::dot(smem[warp] + off + (gi / T::GPB) * F::B, gi % T::GPB, a);
            }
        }
    }
    acc = warp_sum(acc);
    if (lane == 0)
        y[row] = acc * F::row_scale(rowp);
}

/* ---- the table ----------------------------------------------------------------------------- */

struct fmt_ops {
    qf_format fmt;
    void (*dequant)(const uint8_t *w, size_t row_bytes, int64_t nrows, int64_t ncols, float *out);
    void (*matvec)(const uint8_t *w, size_t row_bytes, int64_t nrows, int64_t ncols,
                   const act_view &a, float *y);
};

template <class F>
void launch_dequant(const uint8_t *w, size_t row_bytes, int64_t nrows, int64_t ncols, float *out)
{
    const int64_t total = nrows * (ncols / 32);
    dequant_kernel<F><<<(unsigned)((total + 255) / 256), 256>>>(w, row_bytes, (int)(ncols / 32),
                                                                total, out);
}

template <class F, int U>
void launch_matvec(const uint8_t *w, size_t row_bytes, int64_t nrows, int64_t ncols,
                   const act_view &a, float *y)
{
    matvec_kernel<F, U><<<(unsigned)((nrows + MV_WARPS - 1) / MV_WARPS), 32 * MV_WARPS>>>(
        w, row_bytes, (int)nrows, (int)ncols, a, y);
}

/* U, the groups per lane per tile, makes each tile about 2 KiB: enough bytes in flight per
 * warp to cover DRAM latency with ~32 warps per SM, little enough to keep registers low. */
#define QFC_OPS(fmt, F, U) { fmt, launch_dequant<F>, launch_matvec<F, U> }
static const fmt_ops k_ops[] = {
    QFC_OPS(QF_FMT_Q8_0, f_q8_0, 2),
    QFC_OPS(QF_FMT_Q4_0, f_q4_0, 4),
    QFC_OPS(QF_FMT_Q4_1, f_q4_1, 4),
    QFC_OPS(QF_FMT_Q5_0, f_q5_0, 3),
    QFC_OPS(QF_FMT_Q5_1, f_q5_1, 3),
    QFC_OPS(QF_FMT_Q2_K, f_q2_K, 6),
    QFC_OPS(QF_FMT_Q3_K, f_q3_K, 5),
    QFC_OPS(QF_FMT_Q4_K, f_q4_K, 4),
    QFC_OPS(QF_FMT_Q5_K, f_q5_K, 3),
    QFC_OPS(QF_FMT_Q6_K, f_q6_K, 3),
    QFC_OPS(QF_FMT_INT8_PC, f_int8_pc, 2),
    QFC_OPS(QF_FMT_INT4_G32, f_int4<32>, 4),
    QFC_OPS(QF_FMT_INT4_G64, f_int4<64>, 4),
    QFC_OPS(QF_FMT_INT4_G128, f_int4<128>, 4),
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
    const int64_t mult = t->blck > 0 ? t->blck : 32;
    if (nrows < 1 || nrows > (INT64_C(1) << 30) || ncols < mult || ncols % mult != 0 ||
        ncols > (INT64_C(1) << 30))
        return fail_msg(QF_EINVAL, "%s: %s cannot hold a %lld x %lld matrix (cols a multiple "
                        "of %lld)", op, t->name, (long long)nrows, (long long)ncols,
                        (long long)mult);
    return need_device();
}

} /* namespace qfc */

using namespace qfc;

struct qf_cuda_act {
    int64_t   max_cols;
    int64_t   cols;        /* of the row quantized last, 0 before */
    qf_format fmt;         /* the activation format it was quantized to */
    void     *mem;         /* one allocation: q, d, s, sum */
    act_out   out;
};

extern "C" {

bool qf_cuda_supports(qf_format fmt)
{
    return ops_of(fmt) != nullptr;
}

int qf_cuda_dequantize(qf_format fmt, const void *d_w, float *d_out, int64_t nrows,
                       int64_t ncols)
{
    const fmt_ops *ops = nullptr;
    int err = check_op("qf_cuda_dequantize", fmt, nrows, ncols, &ops);
    if (err)
        return err;
    ops->dequant((const uint8_t *)d_w, qf_format_row_size(fmt, ncols), nrows, ncols, d_out);
    return check_launch("dequant_kernel launch");
}

void qf_cuda_act_destroy(qf_cuda_act **ap)
{
    if (!ap || !*ap)
        return;
    qf_cuda_free(&(*ap)->mem);
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
    const size_t ng = (size_t)max_cols / 32;
    /* q, then d and s (floats per group), then sum (int2 per group): each 16-byte aligned */
    const size_t q_bytes = ((size_t)max_cols + 15) & ~(size_t)15;
    const size_t f_bytes = (ng * sizeof(float) + 15) & ~(size_t)15;
    int err = qf_cuda_alloc(q_bytes + 2 * f_bytes + ng * sizeof(int2), &a->mem);
    if (err) {
        free(a);
        return err;
    }
    uint8_t *base = (uint8_t *)a->mem;
    a->max_cols = max_cols;
    a->out.q = (int8_t *)base;
    a->out.d = (float *)(base + q_bytes);
    a->out.s = (float *)(base + q_bytes + f_bytes);
    a->out.sum = (int2 *)(base + q_bytes + 2 * f_bytes);
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
    case QF_FMT_Q8_0: act_q8_kernel<false><<<grid, 256>>>(d_x, (int)warps, a->out); break;
    case QF_FMT_Q8_1: act_q8_kernel<true><<<grid, 256>>>(d_x, (int)warps, a->out); break;
    case QF_FMT_Q8_K: act_q8_K_kernel<<<grid, 256>>>(d_x, (int)warps, a->out); break;
    default:
        return fail_msg(QF_EINVAL, "qf_cuda_act_quantize: no quantizer for activation "
                        "format %s", qf_format_get(act)->name);
    }
    a->cols = ncols;
    a->fmt = act;
    return check_launch("activation quantizer launch");
}

int qf_cuda_matvec_q(qf_format fmt, const void *d_w, const qf_cuda_act *a, float *d_y,
                     int64_t nrows, int64_t ncols)
{
    const fmt_ops *ops = nullptr;
    int err = check_op("qf_cuda_matvec_q", fmt, nrows, ncols, &ops);
    if (err)
        return err;
    if (a->cols != ncols || a->fmt != qf_format_get(fmt)->act)
        return fail_msg(QF_EINVAL, "qf_cuda_matvec_q: the activations hold %lld columns of "
                        "%s, the weights want %lld of %s", (long long)a->cols,
                        qf_format_get(a->fmt)->name, (long long)ncols,
                        qf_format_get(qf_format_get(fmt)->act)->name);
    const act_view v = { a->out.q, a->out.d, a->out.s, a->out.sum };
    ops->matvec((const uint8_t *)d_w, qf_format_row_size(fmt, ncols), nrows, ncols, v, d_y);
    return check_launch("matvec_kernel launch");
}

int qf_cuda_matvec(qf_format fmt, const void *d_w, const float *d_x, qf_cuda_act *scratch,
                   float *d_y, int64_t nrows, int64_t ncols)
{
    int err = qf_cuda_act_quantize(scratch, fmt, d_x, ncols);
    return err ? err : qf_cuda_matvec_q(fmt, d_w, scratch, d_y, nrows, ncols);
}

} /* extern "C" */
