/* eval.c - perplexity, KL divergence, top-1 agreement and speed of a llama model (qf_eval.h).
 *
 * Per chunk: one forward of n_ctx tokens with all logits (the model, and the baseline model if
 * any), then per scored position a log-softmax in double and the statistics. Everything per
 * position is kept (KLD and dp arrays) for the percentiles; that is 16 bytes a scored token.
 * The top-k file is a little-endian stream: an 24-byte header ("QFTOPK01", k, n_vocab, n_ctx,
 * 0) and per scored position the baseline's log-sum-exp (f32), the log-probability of the next
 * token (f32), and k (id i32, logit f32) pairs, highest logit first.
 * Hot: the forward passes (model/llama.c); the statistics are O(vocab) per position.
 */
#include "qf_eval.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_err.h"
#include "qf_stats.h"

const double qf_eval_pcts[QF_EVAL_NPCT] = { 99.9, 99, 95, 90, 50, 10, 5, 1 };

static const char k_magic[8] = { 'Q', 'F', 'T', 'O', 'P', 'K', '0', '1' };
#define MAX_TOPK 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* log(sum exp(l_i)) over a row, in double; *argmax gets the index of the largest logit. */
static double logsumexp(const float *l, int64_t n, int64_t *argmax)
{
    int64_t am = 0;
    for (int64_t i = 1; i < n; i++)
        if (l[i] > l[am])
            am = i;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += exp((double)l[i] - l[am]);
    *argmax = am;
    return (double)l[am] + log(s);
}

/* The k largest logits of a row, highest first (ties: lower id first). */
static void top_k(const float *l, int64_t n, int k, int32_t *ids)
{
    int have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have == k && l[i] <= l[ids[k - 1]])
            continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && l[ids[j - 1]] < l[i]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = (int32_t)i;
    }
}

/* The baseline of one position: exact (full logits) or from its top-k record. */
typedef struct base_pos {
    const float *logits;      /* full row, or NULL */
    double       lse, logp_tok;
    int          k;
    int32_t      ids[MAX_TOPK];
    float        vals[MAX_TOPK];
} base_pos;

/* KL(P || Q) restricted to P's top-k, plus the tail term (see qf_eval.h). */
static double kld_topk(const base_pos *b, const float *q, double lse_q)
{
    double kl = 0, mass_p = 0, mass_q = 0;
    for (int i = 0; i < b->k; i++) {
        const double lp = (double)b->vals[i] - b->lse, lq = (double)q[b->ids[i]] - lse_q;
        const double p = exp(lp);
        kl += p * (lp - lq);
        mass_p += p;
        mass_q += exp(lq);
    }
    const double tp = 1.0 - mass_p, tq = 1.0 - mass_q;
    if (tp > 1e-12 && tq > 1e-12)
        kl += tp * log(tp / tq);
    return kl;
}

static int read_header(FILE *f, const qf_eval_opts *o, int64_t n_vocab, int *k, char *why,
                       size_t why_len)
{
    char magic[8];
    uint32_t h[4];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, k_magic, 8) != 0 ||
        fread(h, sizeof h[0], 4, f) != 4)
        return qf_whyf(QF_EPARSE, why, why_len, "the baseline file is not a quantfleet top-k "
                    "logits file (no QFTOPK01 header)");
    if (h[0] < 1 || h[0] > MAX_TOPK || (int64_t)h[1] != n_vocab || (int64_t)h[2] != o->n_ctx)
        return qf_whyf(QF_EPARSE, why, why_len, "the baseline file holds k = %u over a vocabulary "
                    "of %u with a context of %u; this run has a vocabulary of %" PRId64 " and "
                    "a context of %" PRId64, h[0], h[1], h[2], n_vocab, o->n_ctx);
    *k = (int)h[0];
    return 0;
}

static int read_record(FILE *f, base_pos *b, int64_t n_vocab, char *why, size_t why_len)
{
    float head[2];
    if (fread(head, sizeof head[0], 2, f) != 2)
        return qf_whyf(QF_EPARSE, why, why_len, "the baseline file ends before this run's last "
                    "position (was it made from another text or --chunks?)");
    b->lse = head[0];
    b->logp_tok = head[1];
    for (int i = 0; i < b->k; i++) {
        if (fread(&b->ids[i], 4, 1, f) != 1 || fread(&b->vals[i], 4, 1, f) != 1)
            return qf_whyf(QF_EPARSE, why, why_len, "the baseline file is truncated");
        if (b->ids[i] < 0 || b->ids[i] >= n_vocab || !isfinite(b->vals[i]))
            return qf_whyf(QF_EPARSE, why, why_len, "the baseline file has token id %" PRId32
                        " or a non-finite logit", b->ids[i]);
    }
    if (!isfinite(b->lse) || !(b->logp_tok <= 0))
        return qf_whyf(QF_EPARSE, why, why_len, "the baseline file has a non-finite log-sum-exp "
                    "or a positive log-probability");
    return 0;
}

static int write_record(FILE *f, const float *l, int64_t n_vocab, double lse, double logp_tok,
                        int k, int32_t *ids)
{
    top_k(l, n_vocab, k, ids);
    float head[2] = { (float)lse, (float)logp_tok };
    if (fwrite(head, sizeof head[0], 2, f) != 2)
        return QF_EIO;
    for (int i = 0; i < k; i++)
        if (fwrite(&ids[i], 4, 1, f) != 1 || fwrite(&l[ids[i]], 4, 1, f) != 1)
            return QF_EIO;
    return 0;
}

static void mean_se(const double *x, int64_t n, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0;
}

int qf_eval_run(qf_llama *m, qf_llama *base, FILE *base_topk, FILE *save_topk,
                const int32_t *tokens, int64_t n, const qf_eval_opts *o, qf_eval_result *out,
                char *why, size_t why_len)
{
    assert(m && tokens && o && out && !(base && base_topk));
    memset(out, 0, sizeof *out);
    const int64_t V = qf_llama_hparams_of(m)->n_vocab, C = o->n_ctx;
    if (C < 8)
        return qf_whyf(QF_ERANGE, why, why_len, "a context of %" PRId64 " (at least 8)", C);
    if (base && qf_llama_hparams_of(base)->n_vocab != V)
        return qf_whyf(QF_EPARSE, why, why_len, "the baseline's vocabulary has %" PRId64
                    " tokens, the model's %" PRId64, qf_llama_hparams_of(base)->n_vocab, V);
    int64_t nchunks = n / C;
    if (o->chunks > 0 && o->chunks < nchunks)
        nchunks = o->chunks;
    if (nchunks < 1)
        return qf_whyf(QF_ERANGE, why, why_len, "the text has %" PRId64 " tokens, fewer than one "
                    "chunk of %" PRId64 " (lower --ctx or give a longer text)", n, C);
    const int64_t first = C / 2, per_chunk = C - 1 - first;
    const int64_t total = nchunks * per_chunk;
    base_pos *bp = calloc(1, sizeof *bp);
    int32_t *chunk = malloc((size_t)C * sizeof *chunk), *ids = malloc(MAX_TOPK * sizeof *ids);
    float *lq = malloc((size_t)(C * V) * sizeof *lq);
    float *lp = base ? malloc((size_t)(C * V) * sizeof *lp) : NULL;
    double *nll = malloc((size_t)total * sizeof *nll), *nll_b = malloc((size_t)total * sizeof *nll_b);
    double *kld = malloc((size_t)total * sizeof *kld), *dp = malloc((size_t)total * sizeof *dp);
    double *top = malloc((size_t)total * sizeof *top);
    int err = 0;
    if (!bp || !chunk || !ids || !lq || (base && !lp) || !nll || !nll_b || !kld || !dp || !top)
        err = qf_whyf(QF_ENOMEM, why, why_len, "out of memory for %" PRId64 " x %" PRId64
                   " logits", C, V);
    if (!err && base_topk)
        err = read_header(base_topk, o, V, &bp->k, why, why_len);
    if (!err && save_topk) {
        uint32_t h[4] = { (uint32_t)o->topk, (uint32_t)V, (uint32_t)C, 0 };
        if (o->topk < 1 || o->topk > MAX_TOPK)
            err = qf_whyf(QF_ERANGE, why, why_len, "top-k of %d (1..%d)", o->topk, MAX_TOPK);
        else if (fwrite(k_magic, 1, 8, save_topk) != 8 || fwrite(h, 4, 4, save_topk) != 4)
            err = qf_whyf(QF_EIO, why, why_len, "cannot write the top-k file");
    }
    const bool has_base = base || base_topk;
    int64_t ns = 0;
    double gap_sum = 0;
    for (int64_t c = 0; c < nchunks && !err; c++) {
        memcpy(chunk, tokens + c * C, (size_t)C * sizeof *chunk);
        if (o->add_bos && o->bos >= 0)
            chunk[0] = o->bos;
        double t0 = now_s();
        qf_llama_reset(m);
        err = qf_llama_forward(m, chunk, C, true, lq, why, why_len);
        if (!err && base) {
            qf_llama_reset(base);
            err = qf_llama_forward(base, chunk, C, true, lp, why, why_len);
        }
        out->eval_s += now_s() - t0;
        for (int64_t j = first; j < C - 1 && !err; j++, ns++) {
            const float *q = lq + j * V;
            const int32_t tok = chunk[j + 1];
            int64_t am_q, am_p = -1;
            const double lse_q = logsumexp(q, V, &am_q);
            const double logq = (double)q[tok] - lse_q;
            nll[ns] = -logq;
            if (save_topk && write_record(save_topk, q, V, lse_q, logq, o->topk, ids) != 0)
                err = qf_whyf(QF_EIO, why, why_len, "cannot write the top-k file");
            if (!has_base || err)
                continue;
            if (base) {
                const float *p = lp + j * V;
                bp->lse = logsumexp(p, V, &am_p);
                bp->logp_tok = (double)p[tok] - bp->lse;
                double kl = 0;
                for (int64_t i = 0; i < V; i++) {
                    const double lpi = (double)p[i] - bp->lse;
                    kl += exp(lpi) * (lpi - ((double)q[i] - lse_q));
                }
                kld[ns] = kl;
                if (o->topk > 0) {     /* how close the compact baseline would have come */
                    bp->k = o->topk;
                    top_k(p, V, bp->k, bp->ids);
                    for (int i = 0; i < bp->k; i++)
                        bp->vals[i] = p[bp->ids[i]];
                    const double gap = kl - kld_topk(bp, q, lse_q);
                    gap_sum += gap;
                    if (gap > out->topk_gap_max)
                        out->topk_gap_max = gap;
                }
            } else {
                if ((err = read_record(base_topk, bp, V, why, why_len)) != 0)
                    break;
                am_p = bp->ids[0];
                kld[ns] = kld_topk(bp, q, lse_q);
            }
            nll_b[ns] = -bp->logp_tok;
            top[ns] = am_p == am_q;
            dp[ns] = exp(logq) - exp(bp->logp_tok);
        }
    }
    if (!err) {
        double mean, se;
        out->n_tokens = n;
        out->n_chunks = nchunks;
        out->n_scored = ns;
        mean_se(nll, ns, &mean, &se);
        out->ppl = exp(mean);
        out->ppl_err = out->ppl * se;
        out->has_base = has_base;
        out->base_from_topk = base_topk != NULL;
        if (has_base) {
            mean_se(nll_b, ns, &mean, &se);
            out->ppl_base = exp(mean);
            out->ppl_base_err = out->ppl_base * se;
            mean_se(kld, ns, &out->kld_mean, &out->kld_err);
            mean_se(top, ns, &out->same_top, &se);
            out->same_top_err = sqrt(out->same_top * (1 - out->same_top) / (double)ns);
            double ss = 0;
            for (int64_t i = 0; i < ns; i++)
                ss += dp[i] * dp[i];
            out->dp_rms = sqrt(ss / (double)ns);
            for (int i = 0; i < QF_EVAL_NPCT; i++) {
                out->kld_pct[i] = qf_stats_percentile(kld, (size_t)ns, qf_eval_pcts[i]);
                out->dp_pct[i] = qf_stats_percentile(dp, (size_t)ns, qf_eval_pcts[i]);
            }
            if (base && o->topk > 0)
                out->topk_gap_mean = gap_sum / (double)ns;
        }
    }
    free(bp);
    free(chunk);
    free(ids);
    free(lq);
    free(lp);
    free(nll);
    free(nll_b);
    free(kld);
    free(dp);
    free(top);
    return err;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int qf_eval_speed(qf_llama *m, int64_t n_pp, int64_t n_tg, int reps, double *pp_tps,
                  double *tg_tps, char *why, size_t why_len)
{
    assert(m && reps >= 1 && n_pp >= 1 && n_tg >= 0);
    const int64_t V = qf_llama_hparams_of(m)->n_vocab;
    int32_t *toks = malloc((size_t)n_pp * sizeof *toks);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    int err = toks && logits && pp && tg ? 0 : qf_whyf(QF_ENOMEM, why, why_len, "out of memory");
    for (int64_t i = 0; i < n_pp && !err; i++)
        toks[i] = (int32_t)((i * 7919 + 13) % V);     /* any valid ids: speed is content-free */
    for (int r = 0; r < reps && !err; r++) {
        qf_llama_reset(m);
        double t0 = now_s();
        err = qf_llama_forward(m, toks, n_pp, false, logits, why, why_len);
        double t1 = now_s();
        for (int64_t i = 0; i < n_tg && !err; i++)
            err = qf_llama_forward(m, &toks[i % n_pp], 1, false, logits, why, why_len);
        double t2 = now_s();
        pp[r] = (double)n_pp / (t1 - t0);
        tg[r] = n_tg ? (double)n_tg / (t2 - t1) : 0;
    }
    if (!err) {
        qsort(pp, (size_t)reps, sizeof *pp, cmp_double);
        qsort(tg, (size_t)reps, sizeof *tg, cmp_double);
        *pp_tps = pp[reps / 2];
        *tg_tps = tg[reps / 2];
    }
    free(toks);
    free(logits);
    free(pp);
    free(tg);
    return err;
}

int qf_eval_read_text(const char *path, char **out, size_t *len, char *why, size_t why_len)
{
    assert(path && out && len);
    FILE *f = fopen(path, "rb");
    if (!f)
        return qf_whyf(QF_ENOENT, why, why_len, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap)
            continue;
        char *nb = cap < ((size_t)1 << 30) ? realloc(buf, 2 * cap + 1) : NULL;
        if (!nb)
            free(buf);          /* over 1 GiB, or no memory: refused below */
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return qf_whyf(bad ? QF_EIO : QF_ETOOBIG, why, why_len, "%s: %s", path,
                       bad ? "read error" : "over 1 GiB or out of memory");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
