/* llama.c - the llama forward pass on our kernels (see qf_llama.h).
 *
 * Data flow of one forward over n tokens, all row-major f32 with one row per token:
 *   x = embed(tokens)                                  n x n_embd
 *   per layer: xn = rmsnorm(x) * attn_norm
 *              q, k, v = xn Wq^T, xn Wk^T, xn Wv^T      (qf_matmul, the tensor's format)
 *              rope(q, k); k, v -> cache (f16-rounded)
 *              att = causal softmax(q k^T / sqrt(head_dim)) v, per head, grouped-query,
 *                    computed as ggml's CPU flash attention does (see attention())
 *              x += att Wo^T
 *              xn = rmsnorm(x) * ffn_norm
 *              x += (silu(xn Wg^T) * (xn Wu^T)) Wd^T
 *   logits = (rmsnorm(x) * output_norm) Wout^T
 * The conventions are llama.cpp's for its "llama" architecture: Q and K weights stored permuted
 * by the converter so that RoPE rotates adjacent pairs (x[2i], x[2i+1]) by pos * base^(-2i/n_rot)
 * (divided by rope_freqs[i] when the file has that tensor), with ggml's float angles, RMSNorm's
 * mean of squares summed in double. Where llama.cpp rounds (the f16 KV cache, Q to f16, the f16
 * attention accumulator) we round the same way, in the same order: a difference in one rounding
 * of the attention or of an activation's quantization changes quantized models' logits by ~1%
 * (docs/metrics.md), so only the same arithmetic makes the tests' comparison with llama.cpp tight.
 * Hot: the matrix products (kernels) and the attention loops; everything else is O(n d).
 */
#include "qf_llama.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_matmul.h"

/* A weight matrix: nrows outputs of ncols inputs, in the file's format, in the mapping. */
typedef struct mat {
    qf_kernel_set ks;
    const void   *data;
    int64_t       nrows, ncols;
} mat;

typedef struct layer {
    const float *attn_norm, *ffn_norm;
    mat wq, wk, wv, wo, wg, wu, wd;
} layer;

struct qf_llama {
    qf_gguf         *g;
    qf_llama_hparams hp;
    qf_llama_opts    opts;
    mat              embd, out;       /* out may be the embedding itself (tied) */
    const float     *out_norm;
    const float     *rope_freqs;      /* n_rot / 2 factors, or NULL */
    layer           *layers;
    uint64_t         weight_bytes, state_bytes;
    qf_pool         *pool;
    int64_t          pos;             /* positions in the cache */
    int              kq_lanes;        /* the K.Q dot's SIMD width in ggml on this ISA (kq_dot) */
    /* state: the cache and one batch of activations (n_ctx rows at most) */
    float *k_cache, *v_cache;         /* n_layer x n_ctx x n_embd_kv */
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *head_tmp;   /* head_tmp: 2 x head_dim */
    void  *scratch;                   /* qf_matmul's quantized activations */
    void **owned;                     /* requantized matrices (opts.requant), n_owned of them */
    size_t n_owned;
};

/* ---- loading ------------------------------------------------------------------------------ */

static int get_dim(const qf_gguf *g, const char *key, int64_t *out, bool required,
                   int64_t dflt, char *why, size_t why_len)
{
    int64_t v;
    if (qf_gguf_get_int(g, key, &v) != 0) {
        if (required)
            return qf_whyf(QF_EPARSE, why, why_len, "%s: no integer '%s'", qf_gguf_path(g), key);
        v = dflt;
    }
    if (v < 1 || v > (INT64_C(1) << 24))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: '%s' is %" PRId64 " (1..2^24)",
                    qf_gguf_path(g), key, v);
    *out = v;
    return 0;
}

static int get_float(const qf_gguf *g, const char *key, float dflt, float *out)
{
    float v;
    *out = qf_gguf_get_f32(g, key, &v) == 0 ? v : dflt;
    return 0;
}

/* Whether rows of ncols split into fmt's blocks and its activation format's (without the
 * message qf_format_check_cols prints: here a misfit only means "keep the file's format"). */
static bool fits(qf_format fmt, int64_t ncols)
{
    const qf_format_traits *t = qf_format_get(fmt);
    int64_t b = t->blck ? t->blck : 1, a = qf_format_get(t->act)->blck;
    return t->weight && ncols % b == 0 && (a == 0 || ncols % a == 0);
}

/* Decodes nrows rows of src (format from) and quantizes them to opts.requant_fmt into a buffer
 * the model owns. QF_ENOMEM. */
static int requantize(qf_llama *m, qf_format from, const void *src, int64_t nrows,
                      int64_t ncols, const void **data, size_t *size)
{
    qf_format to = m->opts.requant_fmt;
    size_t rs_from = qf_format_row_size(from, ncols), rs_to = qf_format_row_size(to, ncols);
    void **owned = realloc(m->owned, (m->n_owned + 1) * sizeof *owned);
    if (!owned)
        return QF_ENOMEM;
    m->owned = owned;
    uint8_t *dst = malloc(rs_to * (size_t)nrows);
    float *row = malloc((size_t)ncols * sizeof *row);
    if (!dst || !row) {
        free(dst);
        free(row);
        return QF_ENOMEM;
    }
    int err = 0;
    for (int64_t r = 0; !err && r < nrows; r++) {
        err = qf_dequantize(from, (const uint8_t *)src + (size_t)r * rs_from, row, 1, ncols);
        if (!err)
            err = qf_quantize(to, row, dst + (size_t)r * rs_to, 1, ncols);
    }
    free(row);
    if (err) {
        free(dst);
        return err;
    }
    m->owned[m->n_owned++] = dst;
    *data = dst;
    *size = rs_to * (size_t)nrows;
    return 0;
}

/* A tensor of exactly the shape asked (ncols innermost), in a weight format we have. */
static int find_mat(qf_llama *m, const char *name, int64_t ncols, int64_t nrows, mat *out,
                    char *why, size_t why_len)
{
    const qf_gguf_tensor *t = qf_gguf_find_tensor(m->g, name);
    if (!t)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: no tensor '%s'", qf_gguf_path(m->g), name);
    if (t->n_dims != 2 || t->dims[0] != ncols || t->dims[1] != nrows)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: tensor '%s' is %" PRId64 " x %" PRId64
                    " (%u dims), expected %" PRId64 " x %" PRId64, qf_gguf_path(m->g), name,
                    t->dims[0], t->dims[1], t->n_dims, ncols, nrows);
    if (t->format < 0 || !qf_format_get((qf_format)t->format)->weight)
        return qf_whyf(QF_EUNSUP, why, why_len, "%s: tensor '%s' has GGUF type %s, which "
                    "quantfleet has no kernels for", qf_gguf_path(m->g), name,
                    qf_gguf_type_get(t->type) ? qf_gguf_type_get(t->type)->name : "?");
    qf_format fmt = (qf_format)t->format;
    if (qf_format_check_cols(fmt, ncols) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: tensor '%s': rows of %" PRId64 " do not fit "
                    "%s", qf_gguf_path(m->g), name, ncols, qf_format_get(fmt)->name);
    const void *data = t->data;
    size_t size = t->size;
    if (m->opts.requant && fmt != m->opts.requant_fmt && fits(m->opts.requant_fmt, ncols)) {
        int err = requantize(m, fmt, t->data, nrows, ncols, &data, &size);
        if (err)
            return qf_whyf(err, why, why_len, "%s: tensor '%s': out of memory requantizing it "
                        "to %s", qf_gguf_path(m->g), name,
                        qf_format_get(m->opts.requant_fmt)->name);
        fmt = m->opts.requant_fmt;
    }
    qf_isa isa = m->opts.force_isa ? m->opts.isa : qf_isa_best();
    if (qf_kernels_get(isa, fmt, &out->ks) != 0)
        return qf_whyf(QF_EUNSUP, why, why_len, "the %s kernels do not run here", qf_isa_name(isa));
    out->data = data;
    out->nrows = nrows;
    out->ncols = ncols;
    m->weight_bytes += size;
    return 0;
}

static int find_vec(qf_llama *m, const char *name, int64_t n, const float **out, bool required,
                    char *why, size_t why_len)
{
    const qf_gguf_tensor *t = qf_gguf_find_tensor(m->g, name);
    *out = NULL;
    if (!t)
        return required ? qf_whyf(QF_EPARSE, why, why_len, "%s: no tensor '%s'",
                               qf_gguf_path(m->g), name) : 0;
    if (t->format != QF_FMT_F32 || t->n_dims != 1 || t->dims[0] != n)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: tensor '%s' must be f32 of %" PRId64
                    " values", qf_gguf_path(m->g), name, n);
    *out = t->data;
    m->weight_bytes += t->size;
    return 0;
}

static int read_hparams(qf_llama *m, char *why, size_t why_len)
{
    const qf_gguf *g = m->g;
    const char *arch = NULL;
    if (qf_gguf_get_str(g, "general.architecture", &arch) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: no 'general.architecture'", qf_gguf_path(g));
    if (strcmp(arch, "llama") != 0)
        return qf_whyf(QF_EUNSUP, why, why_len, "%s: architecture '%s' (this engine runs 'llama')",
                    qf_gguf_path(g), arch);
    qf_llama_hparams *h = &m->hp;
    int err;
    if ((err = get_dim(g, "llama.embedding_length", &h->n_embd, true, 0, why, why_len)) ||
        (err = get_dim(g, "llama.block_count", &h->n_layer, true, 0, why, why_len)) ||
        (err = get_dim(g, "llama.feed_forward_length", &h->n_ff, true, 0, why, why_len)) ||
        (err = get_dim(g, "llama.attention.head_count", &h->n_head, true, 0, why, why_len)) ||
        (err = get_dim(g, "llama.attention.head_count_kv", &h->n_head_kv, false, h->n_head,
                       why, why_len)) ||
        (err = get_dim(g, "llama.context_length", &h->n_ctx_train, false, 2048, why, why_len)))
        return err;
    if (h->n_embd % h->n_head != 0 || h->n_head % h->n_head_kv != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: %" PRId64 " heads over an embedding of %"
                    PRId64 " and %" PRId64 " KV heads do not divide", qf_gguf_path(g),
                    h->n_head, h->n_embd, h->n_head_kv);
    h->head_dim = h->n_embd / h->n_head;
    if ((err = get_dim(g, "llama.rope.dimension_count", &h->n_rot, false, h->head_dim, why,
                       why_len)))
        return err;
    if (h->n_rot > h->head_dim || h->n_rot % 2 != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: rope dimension %" PRId64 " (even, at most "
                    "the head size %" PRId64 ")", qf_gguf_path(g), h->n_rot, h->head_dim);
    get_float(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &h->rms_eps);
    get_float(g, "llama.rope.freq_base", 10000.0f, &h->rope_base);
    const qf_gguf_tensor *emb = qf_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: no 2-D tensor 'token_embd.weight'",
                    qf_gguf_path(g));
    h->n_vocab = emb->dims[1];
    return 0;
}

static int load_tensors(qf_llama *m, char *why, size_t why_len)
{
    const qf_llama_hparams *h = &m->hp;
    const int64_t d = h->n_embd, dkv = h->head_dim * h->n_head_kv;
    int err;
    if ((err = find_mat(m, "token_embd.weight", d, h->n_vocab, &m->embd, why, why_len)) ||
        (err = find_vec(m, "output_norm.weight", d, &m->out_norm, true, why, why_len)) ||
        (err = find_vec(m, "rope_freqs.weight", h->n_rot / 2, &m->rope_freqs, false, why,
                        why_len)))
        return err;
    if (qf_gguf_find_tensor(m->g, "output.weight")) {
        if ((err = find_mat(m, "output.weight", d, h->n_vocab, &m->out, why, why_len)))
            return err;
    } else {
        m->out = m->embd;      /* tied embeddings */
    }
    m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->layers)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for %" PRId64 " layers", h->n_layer);
    for (int64_t i = 0; i < h->n_layer; i++) {
        layer *l = &m->layers[i];
        char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blk.%" PRId64 "." s, i), n)
        if ((err = find_vec(m, NAME("attn_norm.weight"), d, &l->attn_norm, true, why, why_len)) ||
            (err = find_vec(m, NAME("ffn_norm.weight"), d, &l->ffn_norm, true, why, why_len)) ||
            (err = find_mat(m, NAME("attn_q.weight"), d, d, &l->wq, why, why_len)) ||
            (err = find_mat(m, NAME("attn_k.weight"), d, dkv, &l->wk, why, why_len)) ||
            (err = find_mat(m, NAME("attn_v.weight"), d, dkv, &l->wv, why, why_len)) ||
            (err = find_mat(m, NAME("attn_output.weight"), d, d, &l->wo, why, why_len)) ||
            (err = find_mat(m, NAME("ffn_gate.weight"), d, h->n_ff, &l->wg, why, why_len)) ||
            (err = find_mat(m, NAME("ffn_up.weight"), d, h->n_ff, &l->wu, why, why_len)) ||
            (err = find_mat(m, NAME("ffn_down.weight"), h->n_ff, d, &l->wd, why, why_len)))
            return err;
#undef NAME
    }
    return 0;
}

static size_t scratch_for(const mat *w, int64_t n)
{
    return qf_matmul_scratch_bytes(&w->ks, n, w->ncols);
}

static int alloc_state(qf_llama *m, char *why, size_t why_len)
{
    const qf_llama_hparams *h = &m->hp;
    const size_t n = (size_t)m->opts.n_ctx, d = (size_t)h->n_embd;
    const size_t dkv = (size_t)(h->head_dim * h->n_head_kv), ff = (size_t)h->n_ff;
    size_t scratch = scratch_for(&m->out, (int64_t)n);
    for (int64_t i = 0; i < h->n_layer; i++) {
        const layer *l = &m->layers[i];
        const mat *all[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->wg, &l->wu, &l->wd };
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
            if (scratch_for(all[j], (int64_t)n) > scratch)
                scratch = scratch_for(all[j], (int64_t)n);
    }
    struct { float **p; size_t count; } bufs[] = {
        { &m->k_cache, (size_t)h->n_layer * n * dkv }, { &m->v_cache, (size_t)h->n_layer * n * dkv },
        { &m->x, n * d }, { &m->xn, n * d }, { &m->q, n * d }, { &m->k, n * dkv },
        { &m->v, n * dkv }, { &m->att, n * d }, { &m->gate, n * ff }, { &m->up, n * ff },
        { &m->head_tmp, 2 * (size_t)h->head_dim },
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = malloc(bufs[i].count * sizeof(float));
        if (!*bufs[i].p)
            return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for the model's state (%zu "
                        "floats; lower --ctx)", bufs[i].count);
        m->state_bytes += bufs[i].count * sizeof(float);
    }
    if (!(m->scratch = malloc(scratch)))
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for %zu bytes of scratch", scratch);
    m->state_bytes += scratch;
    return 0;
}

int qf_llama_load(const char *path, const qf_llama_opts *opts, qf_llama **out, char *why,
                  size_t why_len)
{
    assert(path && opts && out && opts->threads >= 1);
    *out = NULL;
    if (opts->n_ctx < 1 || opts->n_ctx > (1 << 20))
        return qf_whyf(QF_ERANGE, why, why_len, "a context of %" PRId64 " positions (1..2^20)",
                    opts->n_ctx);
    qf_llama *m = calloc(1, sizeof *m);
    if (!m)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory");
    m->opts = *opts;
    switch (opts->force_isa ? opts->isa : qf_isa_best()) {
    case QF_ISA_AVX512: m->kq_lanes = 16; break;
    case QF_ISA_AVX2:   m->kq_lanes = 8; break;
    default:            m->kq_lanes = 0; break;
    }
    int err = qf_gguf_open(path, &m->g, why, why_len);
    if (!err)
        err = read_hparams(m, why, why_len);
    if (!err)
        err = load_tensors(m, why, why_len);
    if (!err)
        err = alloc_state(m, why, why_len);
    if (!err && (err = qf_pool_new(opts->threads, true, &m->pool)) != 0)
        qf_whyf(err, why, why_len, "cannot start %d threads", opts->threads);
    if (err) {
        qf_llama_destroy(&m);
        return err;
    }
    *out = m;
    return 0;
}

void qf_llama_destroy(qf_llama **mp)
{
    if (!mp || !*mp)
        return;
    qf_llama *m = *mp;
    float **bufs[] = { &m->k_cache, &m->v_cache, &m->x, &m->xn, &m->q, &m->k, &m->v, &m->att,
                       &m->gate, &m->up, &m->head_tmp };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(*bufs[i]);
    free(m->scratch);
    free(m->layers);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    qf_pool_destroy(&m->pool);
    qf_gguf_close(&m->g);
    free(m);
    *mp = NULL;
}

const qf_llama_hparams *qf_llama_hparams_of(const qf_llama *m) { return &m->hp; }
const qf_gguf *qf_llama_gguf(const qf_llama *m) { return m->g; }
uint64_t qf_llama_weight_bytes(const qf_llama *m) { return m->weight_bytes; }
uint64_t qf_llama_state_bytes(const qf_llama *m) { return m->state_bytes; }
int64_t qf_llama_pos(const qf_llama *m) { return m->pos; }
void qf_llama_reset(qf_llama *m) { m->pos = 0; }

/* ---- the forward pass --------------------------------------------------------------------- */

/* out = x / rms(x) * w over n rows of d; the mean of squares in double, as ggml's rms_norm. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, int64_t d, float eps)
{
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * d;
        double ss = 0;
        for (int64_t i = 0; i < d; i++)
            ss += (double)xr[i] * xr[i];
        const float scale = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (int64_t i = 0; i < d; i++)
            out[t * d + i] = xr[i] * scale * w[i];
    }
}

/* Rotates adjacent pairs of the first n_rot values of each head of n rows at positions
 * pos0.. (llama.cpp's "normal" RoPE), with ggml's angles: theta_i = pos * base^(-2/n_rot) ^ i
 * by repeated float multiplication, cosf and sinf. */
static void rope(const qf_llama *m, float *v, int64_t n, int64_t nheads, int64_t pos0)
{
    const qf_llama_hparams *h = &m->hp;
    const float theta_scale = powf(h->rope_base, -2.0f / (float)h->n_rot);
    for (int64_t t = 0; t < n; t++) {
        for (int64_t hd = 0; hd < nheads; hd++) {
            float *r = v + (t * nheads + hd) * h->head_dim;
            float theta = (float)(pos0 + t);
            for (int64_t i = 0; i < h->n_rot / 2; i++) {
                const float th = m->rope_freqs ? theta / m->rope_freqs[i] : theta;
                const float c = cosf(th), s = sinf(th);
                const float x0 = r[2 * i], x1 = r[2 * i + 1];
                r[2 * i] = x0 * c - x1 * s;
                r[2 * i + 1] = x0 * s + x1 * c;
                theta *= theta_scale;
            }
        }
    }
}

/* v rounded to the nearest binary16 (ties to even), as a float: qf_fp16_to_fp32(qf_fp32_to_fp16(
 * v)), with the common case, a normal half (2^-14 <= |v| < 65520), done on the bits: the
 * attention rounds every accumulator element at every cached position. */
static inline float f16_round(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) - 0x38800000u < 0x477ff000u - 0x38800000u) {
        u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
        memcpy(&v, &u, sizeof v);
        return v;
    }
    return qf_fp16_to_fp32(qf_fp32_to_fp16(v));
}

/* q . k of f16 values (exact float products) summed as ggml_vec_dot_f16 sums them on the
 * CPU variant llama.cpp loads here: four accumulators of `lanes` floats over steps of 4 x lanes,
 * folded pairwise, then across lanes (AVX-512: halving down to one; AVX2: halving to four,
 * then two horizontal adds); the tail, and everything when lanes is 0 (ggml's generic code),
 * in double. Only the rounding of the score's last bit depends on this, but see attention(). */
static float kq_dot(const float *q, const float *k, int64_t n, int lanes)
{
    int64_t i = 0;
    double sum = 0;
    if (lanes) {
        float acc[4][16] = { { 0 } };
        for (; i + 4 * lanes <= n; i += 4 * lanes)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < lanes; l++)
                    acc[j][l] += q[i + j * lanes + l] * k[i + j * lanes + l];
        float *a = acc[0];
        for (int l = 0; l < lanes; l++)
            a[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        for (int w = lanes / 2; w >= (lanes == 8 ? 4 : 1); w /= 2)
            for (int l = 0; l < w; l++)
                a[l] += a[l + w];
        sum = lanes == 8 ? (a[0] + a[1]) + (a[2] + a[3]) : a[0];
    }
    for (; i < n; i++)
        sum += (double)(q[i] * k[i]);
    return (float)sum;
}

/* Causal grouped-query attention of the n new rows (positions pos0..) against the cache, as
 * llama.cpp's default context computes it on the CPU (flash attention, ggml's
 * flash_attn_ext_f16 for one query row, what every single-token decode runs): Q rounded to
 * f16; per cached position j in order, s = (q.k_j) * scale; an online softmax in float (a new
 * maximum rescales the sum and the accumulator by expf(old - new)); the accumulator of the
 * weighted values kept in f16, rounded after every step (acc = f16(v_j * p + acc), fused);
 * at the end acc * (1 / sum). The f16 accumulator is the larger effect (2^-11 per step); the
 * float summation order of the score decides single roundings, which the quantized activations
 * after it amplify (docs/metrics.md). llama.cpp's batches of many query rows take a tiled f32
 * path instead, so its prompt-batch logits differ from its own decode's by about as much. */
static void attention(qf_llama *m, int64_t il, int64_t n, int64_t pos0)
{
    const qf_llama_hparams *h = &m->hp;
    const int64_t hd = h->head_dim, dkv = hd * h->n_head_kv, group = h->n_head / h->n_head_kv;
    const float *kc = m->k_cache + il * m->opts.n_ctx * dkv;
    const float *vc = m->v_cache + il * m->opts.n_ctx * dkv;
    const float scale = 1.0f / sqrtf((float)hd);
    float *q16 = m->head_tmp, *acc = m->head_tmp + hd;
    for (int64_t t = 0; t < n; t++) {
        const int64_t last = pos0 + t;        /* attends to positions 0..last */
        for (int64_t head = 0; head < h->n_head; head++) {
            const float *q = m->q + (t * h->n_head + head) * hd;
            const int64_t kvh = head / group;
            for (int64_t i = 0; i < hd; i++) {
                q16[i] = f16_round(q[i]);
                acc[i] = 0;
            }
            float sum = 0, mx = -INFINITY;
            for (int64_t j = 0; j <= last; j++) {
                const float *v = vc + j * dkv + kvh * hd;
                const float s = kq_dot(q16, kc + j * dkv + kvh * hd, hd, m->kq_lanes) * scale;
                float ms = 1.0f, p = 1.0f;
                if (s > mx) {
                    ms = expf(mx - s);
                    mx = s;
                    for (int64_t i = 0; i < hd; i++)
                        acc[i] = f16_round(acc[i] * ms);
                } else {
                    p = expf(s - mx);
                }
                for (int64_t i = 0; i < hd; i++)   /* v * p is exact in double: a fused FMA */
                    acc[i] = f16_round((float)((double)v[i] * p + acc[i]));
                sum = sum * ms + p;
            }
            float *o = m->att + (t * h->n_head + head) * hd;
            const float inv = 1.0f / sum;
            for (int64_t i = 0; i < hd; i++)
                o[i] = acc[i] * inv;
        }
    }
}

static void matmul(qf_llama *m, const mat *w, const float *x, int64_t n, float *y)
{
    qf_matmul(&w->ks, w->data, w->nrows, w->ncols, x, n, y, m->scratch, m->pool);
}

int qf_llama_forward(qf_llama *m, const int32_t *tokens, int64_t n, bool all_logits,
                     float *logits, char *why, size_t why_len)
{
    assert(m && tokens && logits && n >= 1);
    const qf_llama_hparams *h = &m->hp;
    const int64_t d = h->n_embd, dkv = h->head_dim * h->n_head_kv, ff = h->n_ff;
    const int64_t pos0 = m->pos;
    if (n > m->opts.n_ctx - pos0)
        return qf_whyf(QF_ERANGE, why, why_len, "%" PRId64 " tokens at position %" PRId64
                    " overflow the context of %" PRId64, n, pos0, m->opts.n_ctx);
    for (int64_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= h->n_vocab)
            return qf_whyf(QF_ERANGE, why, why_len, "token %" PRId64 " is id %" PRId32 ", outside "
                        "the vocabulary of %" PRId64, t, tokens[t], h->n_vocab);
        const size_t rs = qf_format_row_size(m->embd.ks.fmt, d);
        m->embd.ks.dequantize((const char *)m->embd.data + (size_t)tokens[t] * rs, m->x + t * d,
                              d);
    }
    for (int64_t il = 0; il < h->n_layer; il++) {
        const layer *l = &m->layers[il];
        rmsnorm(m->xn, m->x, l->attn_norm, n, d, h->rms_eps);
        matmul(m, &l->wq, m->xn, n, m->q);
        matmul(m, &l->wk, m->xn, n, m->k);
        matmul(m, &l->wv, m->xn, n, m->v);
        rope(m, m->q, n, h->n_head, pos0);
        rope(m, m->k, n, h->n_head_kv, pos0);
        float *kc = m->k_cache + (il * m->opts.n_ctx + pos0) * dkv;
        float *vc = m->v_cache + (il * m->opts.n_ctx + pos0) * dkv;
        for (int64_t i = 0; i < n * dkv; i++) {
            kc[i] = f16_round(m->k[i]);
            vc[i] = f16_round(m->v[i]);
        }
        attention(m, il, n, pos0);
        matmul(m, &l->wo, m->att, n, m->xn);
        for (int64_t i = 0; i < n * d; i++)
            m->x[i] += m->xn[i];
        rmsnorm(m->xn, m->x, l->ffn_norm, n, d, h->rms_eps);
        matmul(m, &l->wg, m->xn, n, m->gate);
        matmul(m, &l->wu, m->xn, n, m->up);
        for (int64_t i = 0; i < n * ff; i++) {
            const float g = m->gate[i];
            m->gate[i] = g / (1.0f + expf(-g)) * m->up[i];
        }
        matmul(m, &l->wd, m->gate, n, m->xn);
        for (int64_t i = 0; i < n * d; i++)
            m->x[i] += m->xn[i];
    }
    m->pos = pos0 + n;
    if (all_logits) {
        rmsnorm(m->xn, m->x, m->out_norm, n, d, h->rms_eps);
        matmul(m, &m->out, m->xn, n, logits);
    } else {
        rmsnorm(m->xn, m->x + (n - 1) * d, m->out_norm, 1, d, h->rms_eps);
        matmul(m, &m->out, m->xn, 1, logits);
    }
    return 0;
}
