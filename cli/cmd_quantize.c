/* cmd_quantize.c - `qfleet quantize IN OUT --type TYPE`: llama-quantize for quantfleet's formats.
 *
 * IN is a GGUF model (F32/F16/BF16 tensors; quantized ones are requantized from their decoded
 * values) or a Hugging Face llama checkpoint folder (datasets/hf_llama.c converts it the way
 * convert_hf_to_gguf.py does). OUT is a GGUF that llama.cpp loads. The rules are
 * llama-quantize's with --pure: every 2-D+ weight (name ending in "weight", not a norm) gets
 * TYPE, or when its rows do not split into TYPE's blocks, llama.cpp's fallback for that type
 * (and f16 when even that does not fit), which the summary lists; 1-D tensors become F32
 * (or --keep's type); anything else is copied. Metadata is copied (GGUF in) or generated (HF
 * in), with general.file_type and general.quantization_version set.
 *
 * With --imatrix FILE (llama-imatrix's legacy .dat or GGUF output, datasets/qf_imatrix_file.h)
 * the quantized weights that have an entry are quantized with their columns' importance
 * (qf_imatrix.h), byte for byte as llama-quantize --imatrix does; as there, a tensor without an
 * entry is quantized plainly, and an entry whose size is not the tensor's row length (times its
 * experts) is an error, except for token_embd.weight, which then goes unweighted. The output
 * carries llama-quantize's quantize.imatrix.* keys.
 *
 * One tensor at a time: decode to float, quantize with --threads workers over row ranges
 * (each worker also decodes its rows back, for the tensor's SNR against the float source),
 * stream the bytes to the writer, free. The writer renames OUT into place only when every
 * tensor is written, so a failure at any point leaves no OUT. Progress goes to stderr on a
 * TTY; the summary (per-tensor types, bytes, SNR; totals and bpw) to stdout at the end.
 */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_gguf.h"
#include "qf_hf_llama.h"
#include "qf_imatrix.h"
#include "qf_imatrix_file.h"
#include "qf_metrics.h"
#include "qf_time.h"

#define MAX_THREADS 512
#define QUANT_VERSION 2u     /* general.quantization_version: ggml's GGML_QNT_VERSION */

/* llama_ftype of a file whose weights are all TYPE (llama.h), for general.file_type; the K
 * types map to their _S variants, the closest to a pure file. */
static const struct {
    const char *type;
    uint32_t    ftype;
} k_ftypes[] = {
    { "f32", 0 },  { "f16", 1 },   { "q4_0", 2 },  { "q4_1", 3 },  { "q8_0", 7 },
    { "q5_0", 8 }, { "q5_1", 9 },  { "q2_K", 10 }, { "q3_K", 11 }, { "q4_K", 14 },
    { "q5_K", 16 }, { "q6_K", 18 }, { "iq4_nl", 25 }, { "bf16", 32 },
};

/* llama.cpp's fallback when a row does not split into TYPE's blocks (llama_tensor_get_type:
 * "convert_incompatible_tensor"); f16 when the fallback does not fit either. */
static const struct {
    const char *type;
    const char *fallback;
} k_fallbacks[] = {
    { "q2_K", "iq4_nl" }, { "q3_K", "iq4_nl" }, { "q4_K", "q5_0" }, { "q5_K", "q5_1" },
    { "q6_K", "q8_0" },
};

typedef enum action { ACT_QUANTIZE, ACT_COPY } action;

/* One output tensor and what happens to it. */
typedef struct plan {
    const char *name;
    uint32_t    n_dims;
    int64_t     dims[QF_GGUF_MAX_DIMS];
    int64_t     nelem, nrows, ncols;
    const char *in_type;            /* "bf16", "f32", "q4_0", ... */
    uint64_t    in_bytes;
    action      act;
    qf_format   out_fmt;            /* ACT_QUANTIZE */
    uint32_t    out_type;           /* GGUF type id written */
    uint64_t    out_bytes;
    bool        fell_back;
    const qf_gguf_tensor *g;        /* GGUF input, or NULL */
    size_t      hf_index;           /* HF input */
    qf_tensor_metrics met;
    bool        has_met;
    /* --imatrix: the entry's importances (ncols per matrix), or NULL */
    const float *importance;
    int64_t     rows_per_mat;       /* rows sharing one matrix's importances (experts: ne[1]) */
    bool        no_entry;           /* a quantized weight the imatrix has no entry for */
} plan;

typedef struct job {
    /* inputs */
    const char *in_path, *out_path, *imatrix_path;
    qf_format   type, keep;
    int         threads;
    bool        tty;
    /* input model: exactly one of these */
    qf_gguf     *gguf;
    qf_hf_llama *hf;
    qf_imatrix_file *im;            /* --imatrix, or NULL */
    /* plan */
    plan        *p;
    size_t       n;
} job;

static void usage(FILE *out)
{
    fputs("usage: qfleet quantize IN OUT --type TYPE [--imatrix FILE] [--threads N]\n"
          "                       [--keep TYPE_FOR_1D]\n"
          "\n"
          "Quantize a model to a GGUF file that llama.cpp loads, like llama-quantize --pure.\n"
          "IN is a GGUF model (F32/F16/BF16 tensors; quantized ones are requantized) or a\n"
          "Hugging Face llama checkpoint folder (config.json, tokenizer.json, safetensors),\n"
          "converted as llama.cpp's convert_hf_to_gguf.py would. Every 2-D weight gets TYPE\n"
          "(or llama.cpp's fallback where its rows do not split into TYPE's blocks), 1-D\n"
          "tensors stay F32. OUT appears only when complete. The summary lists each tensor's\n"
          "types, bytes and SNR against the float source, and the totals in bits per weight.\n"
          "\n"
          "Options:\n"
          "  --type TYPE       q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K,\n"
          "                    iq4_nl, f16, bf16 or f32 (see qfleet formats)\n"
          "  --imatrix FILE    importance matrix from llama-imatrix (GGUF or legacy .dat):\n"
          "                    weights with an entry are quantized weighted by it, as\n"
          "                    llama-quantize --imatrix does (q4_0, q4_1, q5_0, q5_1, the\n"
          "                    K-quants and iq4_nl use it; q8_0 and float types ignore it)\n"
          "  --threads N       quantize with N threads (default: the online CPUs)\n"
          "  --keep TYPE       type of 1-D tensors (norms, biases): f32 (default), f16, bf16\n"
          "  -h, --help        this help\n"
          "\n"
          "Exit status: 0 written, 1 the input could not be read or converted, 2 usage.\n", out);
}

static const char *find_fallback(const char *type)
{
    for (size_t i = 0; i < sizeof k_fallbacks / sizeof k_fallbacks[0]; i++)
        if (strcmp(k_fallbacks[i].type, type) == 0)
            return k_fallbacks[i].fallback;
    return NULL;
}

static uint32_t ftype_of(qf_format fmt)
{
    const char *name = qf_format_get(fmt)->name;
    for (size_t i = 0; i < sizeof k_ftypes / sizeof k_ftypes[0]; i++)
        if (strcmp(k_ftypes[i].type, name) == 0)
            return k_ftypes[i].ftype;
    return 0;
}

/* A weight format with a GGUF type, by name: the only types --type and --keep accept. */
static int parse_type(const char *opt, const char *text, bool float_only, qf_format *out)
{
    qf_format f;
    uint32_t gt;
    if (qf_format_from_name(text, &f) == 0 && qf_format_get(f)->weight &&
        qf_gguf_type_from_format(f, &gt) == 0 &&
        (!float_only || strcmp(qf_format_get(f)->family, "float") == 0)) {
        *out = f;
        return 0;
    }
    char list[512] = "";
    for (int i = 0; i < QF_FMT_COUNT; i++) {
        const qf_format_traits *t = qf_format_get((qf_format)i);
        if (!t->weight || qf_gguf_type_from_format(i, &gt) != 0 ||
            (float_only && strcmp(t->family, "float") != 0))
            continue;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", t->name);
    }
    return qf_errorf(QF_EUSAGE, "quantize: %s '%s' is not one of: %s", opt, text, list);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* llama-quantize quantizes n_dims >= 2 weights, never norms or the MoE router. */
static bool is_quantizable(const char *name, uint32_t n_dims)
{
    return n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, "ffn_gate_inp.weight");
}

/* --- planning ---------------------------------------------------------------------------------- */

static bool fits(qf_format fmt, int64_t ncols)
{
    int64_t b = qf_format_get(fmt)->blck;
    return b > 0 && ncols % b == 0;
}

/* Chooses the output of a tensor that decodes to floats; same is its input format where that
 * is a float format a non-weight tensor may keep (else F32). */
static void choose(const job *j, plan *p, qf_format same)
{
    p->act = ACT_QUANTIZE;
    if (!is_quantizable(p->name, p->n_dims)) {
        p->out_fmt = p->n_dims == 1 ? j->keep : same;
    } else if (fits(j->type, p->ncols)) {
        p->out_fmt = j->type;
    } else {
        const char *fb = find_fallback(qf_format_get(j->type)->name);
        qf_format f;
        p->fell_back = true;
        if (fb && qf_format_from_name(fb, &f) == 0 && fits(f, p->ncols))
            p->out_fmt = f;
        else
            p->out_fmt = QF_FMT_F16;
    }
    int rc = qf_gguf_type_from_format(p->out_fmt, &p->out_type);
    assert(rc == 0);   /* --type and --keep were checked to have one; fallbacks all do */
    (void)rc;
    p->out_bytes = (uint64_t)p->nrows * qf_format_row_size(p->out_fmt, p->ncols);
}

static void set_shape(plan *p, uint32_t n_dims, const int64_t *dims)
{
    p->n_dims = n_dims;
    p->nelem = 1;
    for (uint32_t d = 0; d < QF_GGUF_MAX_DIMS; d++) {
        p->dims[d] = d < n_dims ? dims[d] : 1;
        p->nelem *= p->dims[d];
    }
    p->ncols = p->dims[0];
    p->nrows = p->nelem / p->ncols;
}

static int plan_gguf(job *j)
{
    size_t n = qf_gguf_tensor_count(j->gguf);
    if (n == 0)
        return qf_errorf(QF_EPARSE, "%s: the GGUF holds no tensors", j->in_path);
    j->p = calloc(n, sizeof *j->p);
    if (!j->p)
        return QF_ENOMEM;
    j->n = n;
    bool warned = false;
    for (size_t i = 0; i < n; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(j->gguf, i);
        plan *p = &j->p[i];
        p->name = t->name;
        p->g = t;
        p->in_type = qf_gguf_type_get(t->type)->name;
        p->in_bytes = t->size;
        set_shape(p, t->n_dims, t->dims);
        if (t->format < 0) {
            /* ggml types we have no decoder for (i32, the IQ quants...) go through as they are */
            p->act = ACT_COPY;
            p->out_type = t->type;
            p->out_bytes = t->size;
            continue;
        }
        if (!warned && strcmp(qf_format_get((qf_format)t->format)->family, "float") != 0 &&
            is_quantizable(t->name, t->n_dims)) {
            fprintf(stderr, "qfleet: warning: %s holds quantized tensors (%s): requantizing "
                    "them, the result is no better than the source\n", j->in_path, p->in_type);
            warned = true;
        }
        bool is_float = strcmp(qf_format_get((qf_format)t->format)->family, "float") == 0;
        choose(j, p, is_float ? (qf_format)t->format : QF_FMT_F32);
    }
    return 0;
}

static int plan_hf(job *j)
{
    size_t n = qf_hf_llama_tensor_count(j->hf);
    j->p = calloc(n ? n : 1, sizeof *j->p);
    if (!j->p)
        return QF_ENOMEM;
    j->n = n;
    for (size_t i = 0; i < n; i++) {
        const qf_hf_tensor *t = qf_hf_llama_tensor_at(j->hf, i);
        plan *p = &j->p[i];
        p->name = t->name;
        p->hf_index = i;
        set_shape(p, t->n_dims, t->dims);
        if (t->src) {
            qf_st_dtype dt = t->src->dtype;
            if (dt != QF_ST_F32 && dt != QF_ST_F16 && dt != QF_ST_BF16)
                return qf_errorf(QF_EUNSUP, "%s: tensor '%s': dtype %s cannot be quantized "
                                 "(F32, F16 and BF16 weights can)", t->src->file, t->src->name,
                                 qf_st_dtype_name(dt));
            p->in_type = qf_st_dtype_name(dt);
            p->in_bytes = t->src->nbytes;
        } else {
            p->in_type = "(computed)";
            p->in_bytes = (uint64_t)t->nelem * sizeof(float);
        }
        choose(j, p, QF_FMT_F32);
    }
    return 0;
}

/* Gives each quantized weight its --imatrix entry, with llama-quantize's rules: no entry, no
 * weighting; an entry must hold ne[0] x ne[2] values (a row's columns, per expert), else the
 * file is for another model and we stop, except for token_embd.weight, which llama.cpp then
 * quantizes unweighted (llama-imatrix does not collect it; a mismatch there is common). */
static int attach_imatrix(job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        plan *p = &j->p[i];
        if (p->act != ACT_QUANTIZE || !is_quantizable(p->name, p->n_dims))
            continue;
        const qf_imatrix_entry *e = qf_imatrix_file_find(j->im, p->name);
        if (!e) {
            p->no_entry = true;
            continue;
        }
        const int64_t nmat = p->dims[2] * p->dims[3];
        if (e->nval != p->ncols * nmat) {
            if (strcmp(p->name, "token_embd.weight") == 0) {
                fprintf(stderr, "qfleet: note: %s: the entry for token_embd.weight has %" PRId64
                        " values, the tensor needs %" PRId64 ": quantizing it unweighted, as "
                        "llama.cpp does\n", j->imatrix_path, e->nval, p->ncols * nmat);
                continue;
            }
            return qf_errorf(QF_EINVAL, "quantize: %s: entry '%s' has %" PRId64 " values, the "
                             "tensor needs %" PRId64 " (%" PRId64 " columns x %" PRId64
                             " matrices): an imatrix of another model?", j->imatrix_path,
                             p->name, e->nval, p->ncols * nmat, p->ncols, nmat);
        }
        p->importance = e->values;
        p->rows_per_mat = p->nrows / nmat;
    }
    return 0;
}

/* Whether plan p is quantized with importance weights. */
static bool weighted(const plan *p)
{
    return p->importance && qf_quantize_uses_importance(p->out_fmt);
}

/* --- quantizing one tensor --------------------------------------------------------------------- */

typedef struct slice {
    qf_format   fmt;
    const float *importance;    /* per matrix of rows_per_mat rows, or NULL */
    int64_t      rows_per_mat;
    const float *src;
    void        *dst;
    float       *back;      /* decoded rows, for the SNR */
    int64_t      r0, r1, ncols;
    size_t       row_size;
} slice;

static void *run_slice(void *arg)
{
    const slice *s = arg;
    const qf_format_traits *t = qf_format_get(s->fmt);
    for (int64_t r = s->r0; r < s->r1; r++) {
        const float *x = s->src + r * s->ncols;
        char *y = (char *)s->dst + (size_t)r * s->row_size;
        if (s->importance) {
            /* the reader checked the importances: finite and >= 0, so this cannot fail */
            int rc = qf_quantize_weighted(s->fmt, x, y, 1, s->ncols,
                                          s->importance + r / s->rows_per_mat * s->ncols);
            assert(rc == 0);
            (void)rc;
        } else {
            t->quantize_ref(x, y, s->ncols);
        }
        t->dequantize(y, s->back + r * s->ncols, s->ncols);
    }
    return NULL;
}

/* Quantizes plan p's nrows x ncols floats into dst (weighted if p has importances), decoding
 * into back, on up to n threads. Slice 0 runs on this thread; a worker that will not start
 * has its slice done here too. */
static void quantize_rows(const plan *p, const float *src, void *dst, float *back, int n)
{
    const qf_format fmt = p->out_fmt;
    const int64_t nrows = p->nrows, ncols = p->ncols;
    if (n > nrows)
        n = (int)nrows;
    if (n < 1)
        n = 1;
    slice sl[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = { false };
    size_t rs = qf_format_row_size(fmt, ncols);
    for (int i = 0; i < n; i++)
        sl[i] = (slice){ .fmt = fmt, .src = src, .dst = dst, .back = back, .ncols = ncols,
                         .row_size = rs, .r0 = nrows * i / n, .r1 = nrows * (i + 1) / n,
                         .importance = weighted(p) ? p->importance : NULL,
                         .rows_per_mat = p->rows_per_mat };
    for (int i = 1; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, run_slice, &sl[i]) == 0;
    run_slice(&sl[0]);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            run_slice(&sl[i]);
    }
}

/* Decodes plan p's source to floats in x. */
static int source_floats(const job *j, const plan *p, float *x)
{
    if (j->hf)
        return qf_hf_llama_tensor_to_float(j->hf, p->hf_index, x);
    return qf_dequantize((qf_format)p->g->format, p->g->data, x, p->nrows, p->ncols);
}

static int do_tensor(const job *j, plan *p, qf_gguf_writer *w, size_t index)
{
    if (p->act == ACT_COPY)
        return qf_gguf_writer_write_tensor(w, index, p->g->data);
    float *x = malloc((size_t)p->nelem * sizeof *x);
    float *back = malloc((size_t)p->nelem * sizeof *back);
    void *q = malloc(p->out_bytes ? p->out_bytes : 1);
    int err = QF_ENOMEM;
    if (!x || !back || !q || (err = source_floats(j, p, x)))
        goto out;
    quantize_rows(p, x, q, back, p->nelem < 65536 ? 1 : j->threads);
    qf_metrics_compute(x, back, p->nelem, (size_t)p->out_bytes, &p->met);
    p->has_met = true;
    err = qf_gguf_writer_write_tensor(w, index, q);
out:
    free(x);
    free(back);
    free(q);
    return err;
}

/* --- output ------------------------------------------------------------------------------------ */

static const char *out_type_name(const plan *p)
{
    return qf_gguf_type_get(p->out_type)->name;
}

static void shape_text(const plan *p, char *buf, size_t len)
{
    buf[0] = '\0';
    for (uint32_t d = 0; d < p->n_dims; d++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%" PRId64, d ? " x " : "", p->dims[d]);
    }
}

static void human_bytes(double b, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", b, units[u]);
}

static void progress(const job *j, size_t i, const plan *p, double t0)
{
    if (!j->tty)
        return;
    fprintf(stderr, "\r\033[K[%zu/%zu] %-32s %-6s -> %-6s %.1f s", i + 1, j->n, p->name,
            p->in_type, p->act == ACT_COPY ? "copy" : out_type_name(p), qf_time_mono() - t0);
    fflush(stderr);
}

/* How many quantized weights the imatrix weighted, and which it had no entry for. */
static void imatrix_summary(const job *j)
{
    size_t n_weighted = 0, n_quantized = 0, n_missing = 0;
    for (size_t i = 0; i < j->n; i++) {
        const plan *p = &j->p[i];
        if (p->act != ACT_QUANTIZE || !is_quantizable(p->name, p->n_dims))
            continue;
        n_quantized++;
        n_weighted += weighted(&j->p[i]);
        n_missing += p->no_entry;
    }
    const qf_imatrix_file *m = j->im;
    printf("imatrix %s (%s, %zu entries", j->imatrix_path, qf_imatrix_file_kind(m),
           qf_imatrix_file_count(m));
    if (qf_imatrix_file_chunks(m) >= 0)
        printf(", %" PRId64 " chunks", qf_imatrix_file_chunks(m));
    if (qf_imatrix_file_dataset(m)[0])
        printf(" of %s", qf_imatrix_file_dataset(m));
    printf("): %zu of %zu quantized tensors weighted\n", n_weighted, n_quantized);
    if (n_missing) {
        printf("no imatrix entry (quantized unweighted):");
        for (size_t i = 0; i < j->n; i++)
            if (j->p[i].no_entry)
                printf(" %s", j->p[i].name);
        printf("\n");
    }
    if (!qf_quantize_uses_importance(j->type))
        printf("note: %s does not use importance weights (ggml ignores the imatrix for it)\n",
               qf_format_get(j->type)->name);
}

static void summary(const job *j, double seconds)
{
    printf("%-34s %-16s %-8s %-8s %12s %12s %9s\n", "tensor", "shape", "in", "out", "bytes in",
           "bytes out", "SNR dB");
    uint64_t in = 0, out = 0, q_out = 0;
    int64_t elems = 0, q_elems = 0;
    size_t fell = 0;
    double worst = INFINITY;
    const char *worst_name = NULL;
    for (size_t i = 0; i < j->n; i++) {
        const plan *p = &j->p[i];
        char shape[64], snr[32];
        shape_text(p, shape, sizeof shape);
        if (!p->has_met)
            snprintf(snr, sizeof snr, "-");
        else if (isinf(p->met.snr_db) && p->met.snr_db > 0)
            snprintf(snr, sizeof snr, "inf");
        else
            snprintf(snr, sizeof snr, "%.2f", p->met.snr_db);
        printf("%-34s %-16s %-8s %-8s %12" PRIu64 " %12" PRIu64 " %9s%s%s\n", p->name, shape,
               p->in_type, p->act == ACT_COPY ? "(copy)" : out_type_name(p), p->in_bytes,
               p->out_bytes, snr, p->fell_back ? "  (fallback)" : "",
               weighted(p) ? "  (imatrix)" : "");
        in += p->in_bytes;
        out += p->out_bytes;
        elems += p->nelem;
        if (p->act == ACT_QUANTIZE && is_quantizable(p->name, p->n_dims)) {
            q_out += p->out_bytes;
            q_elems += p->nelem;
            if (p->has_met && p->met.snr_db < worst) {
                worst = p->met.snr_db;
                worst_name = p->name;
            }
        }
        fell += p->fell_back;
    }
    char hin[32], hout[32];
    human_bytes((double)in, hin, sizeof hin);
    human_bytes((double)out, hout, sizeof hout);
    printf("\n%zu tensors, %" PRId64 " weights: %s -> %s (%.2fx smaller), %.3f bpw overall",
           j->n, elems, hin, hout, out ? (double)in / (double)out : 0.0,
           elems ? 8.0 * (double)out / (double)elems : 0.0);
    if (q_elems)
        printf(", %.3f bpw over the quantized weights", 8.0 * (double)q_out / (double)q_elems);
    printf("\n");
    if (worst_name)
        printf("lowest SNR: %.2f dB (%s)\n", worst, worst_name);
    if (fell) {
        printf("%zu tensor%s fell back from %s (rows not a multiple of its %" PRId64
               "-weight blocks):", fell, fell == 1 ? "" : "s", qf_format_get(j->type)->name,
               qf_format_get(j->type)->blck);
        for (size_t i = 0; i < j->n; i++)
            if (j->p[i].fell_back)
                printf(" %s -> %s;", j->p[i].name, out_type_name(&j->p[i]));
        printf("\n");
    }
    if (j->im)
        imatrix_summary(j);
    printf("wrote %s in %.1f s\n", j->out_path, seconds);
}

/* --- the command ------------------------------------------------------------------------------- */

static int open_input(job *j)
{
    struct stat sb;
    if (stat(j->in_path, &sb) != 0)
        return qf_errorf(QF_ENOENT, "quantize: %s: cannot read: no such file or folder",
                         j->in_path);
    if (S_ISDIR(sb.st_mode)) {
        if (!qf_hf_llama_is_checkpoint(j->in_path))
            return qf_errorf(QF_ENOENT, "quantize: %s: a folder without config.json is not a "
                             "Hugging Face checkpoint", j->in_path);
        return qf_hf_llama_open(j->in_path, &j->hf);
    }
    if (ends_with(j->in_path, ".safetensors"))
        return qf_errorf(QF_EUNSUP, "quantize: %s: a safetensors file alone lacks config.json "
                         "and the tokenizer; give its checkpoint folder", j->in_path);
    char why[512];
    int err = qf_gguf_open(j->in_path, &j->gguf, why, sizeof why);
    if (err)
        return qf_errorf(err, "quantize: %s", why);
    return 0;
}

static int set_metadata(const job *j, qf_gguf_writer *w)
{
    if (j->hf) {
        int err = qf_hf_llama_set_metadata(j->hf, w);
        if (err)
            return err;
    } else {
        for (size_t i = 0; i < qf_gguf_kv_count(j->gguf); i++)
            qf_gguf_writer_set_kv(w, qf_gguf_kv_at(j->gguf, i));
    }
    qf_gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION);
    qf_gguf_writer_set_u32(w, "general.file_type", ftype_of(j->type));
    if (j->im) {            /* llama-quantize's record of the imatrix used (llama-quant.cpp) */
        qf_gguf_writer_set_str(w, "quantize.imatrix.file", j->imatrix_path);
        if (qf_imatrix_file_dataset(j->im)[0])
            qf_gguf_writer_set_str(w, "quantize.imatrix.dataset", qf_imatrix_file_dataset(j->im));
        qf_gguf_writer_set_i32(w, "quantize.imatrix.entries_count",
                               (int32_t)qf_imatrix_file_count(j->im));
        if (qf_imatrix_file_chunks(j->im) >= 0)
            qf_gguf_writer_set_i32(w, "quantize.imatrix.chunks_count",
                                   (int32_t)qf_imatrix_file_chunks(j->im));
    }
    const char *why = qf_gguf_writer_why(w);
    return why[0] ? qf_errorf(QF_EINVAL, "quantize: %s", why) : 0;
}

static int run(job *j)
{
    int err = 0;
    if (j->imatrix_path) {
        char iwhy[512];
        if ((err = qf_imatrix_file_open(j->imatrix_path, &j->im, iwhy, sizeof iwhy)))
            return qf_errorf(err, "quantize: --imatrix %s", iwhy);
    }
    err = open_input(j);
    if (!err)
        err = j->hf ? plan_hf(j) : plan_gguf(j);
    if (!err && j->im)
        err = attach_imatrix(j);
    if (err)
        return err;
    char why[512];
    qf_gguf_writer *w = NULL;
    if ((err = qf_gguf_writer_new(j->out_path, &w, why, sizeof why)))
        return qf_errorf(err, "quantize: %s", why);
    if ((err = set_metadata(j, w)))
        goto fail;
    for (size_t i = 0; i < j->n; i++) {
        const plan *p = &j->p[i];
        if ((err = qf_gguf_writer_add_tensor(w, p->name, p->out_type, p->n_dims, p->dims, NULL,
                                             NULL))) {
            qf_errorf(err, "quantize: %s", qf_gguf_writer_why(w));
            goto fail;
        }
    }
    double t0 = qf_time_mono();
    for (size_t i = 0; i < j->n; i++) {
        progress(j, i, &j->p[i], t0);
        if ((err = do_tensor(j, &j->p[i], w, i))) {
            if (qf_gguf_writer_why(w)[0])
                qf_errorf(err, "quantize: %s", qf_gguf_writer_why(w));
            goto fail;
        }
    }
    if (j->tty)
        fputs("\r\033[K", stderr);
    if ((err = qf_gguf_writer_finish(&w, why, sizeof why)))
        return qf_errorf(err, "quantize: %s", why);
    summary(j, qf_time_mono() - t0);
    return 0;
fail:
    if (j->tty)
        fputc('\n', stderr);
    qf_gguf_writer_destroy(&w);
    return err;
}

int qf_cmd_quantize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "type", required_argument, NULL, 't' },
        { "threads", required_argument, NULL, 'j' },
        { "keep", required_argument, NULL, 'k' },
        { "imatrix", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    job j = { .keep = QF_FMT_F32, .threads = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu,
              .tty = isatty(STDERR_FILENO) };
    bool have_type = false;
    int64_t v;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (parse_type("--type", optarg, false, &j.type))
                return QF_EXIT_USAGE;
            have_type = true;
            break;
        case 'k':
            if (parse_type("--keep", optarg, true, &j.keep))
                return QF_EXIT_USAGE;
            break;
        case 'i':
            j.imatrix_path = optarg;
            break;
        case 'j':
            if (qf_cli_parse_int("quantize", "--threads", optarg, 1, MAX_THREADS, &v))
                return QF_EXIT_USAGE;
            j.threads = (int)v;
            break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("quantize", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind != argc - 2) {
        qf_errorf(QF_EUSAGE, "quantize: expected IN and OUT (see qfleet quantize --help)");
        return QF_EXIT_USAGE;
    }
    if (!have_type) {
        qf_errorf(QF_EUSAGE, "quantize: --type is required (see qfleet quantize --help)");
        return QF_EXIT_USAGE;
    }
    j.in_path = argv[optind];
    j.out_path = argv[optind + 1];
    int err = run(&j);
    free(j.p);
    qf_gguf_close(&j.gguf);
    qf_hf_llama_destroy(&j.hf);
    qf_imatrix_file_destroy(&j.im);
    if (err == QF_ENOMEM)
        qf_errorf(err, "quantize: out of memory");
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
