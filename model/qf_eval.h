/* qf_eval.h - model-level quality and speed: perplexity, KL divergence against a baseline,
 * top-1 agreement, probability shifts, and prompt/generation tokens per second.
 *
 * Perplexity follows llama.cpp's perplexity tool: the text's tokens are cut into chunks of
 * n_ctx, each chunk evaluated from an empty cache with its first token replaced by BOS (when
 * the model adds one), and only the second half of each chunk is scored (every scored token
 * then has at least n_ctx/2 tokens of context). PPL = exp(mean NLL); its uncertainty is the
 * standard error of the mean NLL carried through exp (PPL * se).
 *
 * Against a baseline, per scored position: KL(P_base || P_model), whether both put the
 * highest probability on the same token, and dp = p_model(next) - p_base(next). The baseline is
 * either a second model run on the same chunks, or a compact file of its top-k logits per
 * position (written by an earlier run with save_topk): k (id, logit) pairs, the log-sum-exp of
 * all logits and the log-probability of the actual next token. From the file, KLD is
 *     sum_{i in top-k} p_i (log p_i - log q_i) + T_p log(T_p / T_q),
 * T_p and T_q being the probability both models leave outside the baseline's top k. By the
 * log-sum inequality this never exceeds the exact KLD; the gap is the divergence inside the
 * tail, at most T_p times the largest |log(p_i/q_i)| there (docs/metrics.md has measurements).
 */
#ifndef QF_EVAL_H
#define QF_EVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qf_llama.h"

#define QF_EVAL_NPCT 8
/* The percentiles reported, in this order (llama.cpp's perplexity tool's). */
extern const double qf_eval_pcts[QF_EVAL_NPCT];   /* 99.9 99 95 90 50 10 5 1 */

typedef struct qf_eval_opts {
    int64_t n_ctx;          /* tokens per chunk, >= 8; the models' n_ctx must hold it */
    int64_t chunks;         /* at most this many chunks; 0: as many as the text has */
    bool    add_bos;        /* replace each chunk's first token by BOS */
    int32_t bos;
    int     topk;           /* save_topk: pairs per position (1..1024) */
} qf_eval_opts;

typedef struct qf_eval_result {
    int64_t  n_tokens, n_chunks, n_scored;
    double   ppl, ppl_err;
    bool     has_base;
    bool     base_from_topk;       /* the baseline came from a top-k file (KLD a lower bound) */
    double   ppl_base, ppl_base_err;
    double   kld_mean, kld_err, kld_pct[QF_EVAL_NPCT];
    double   same_top, same_top_err;    /* fraction of scored positions */
    double   dp_rms, dp_pct[QF_EVAL_NPCT];
    double   topk_gap_max, topk_gap_mean;  /* with a model baseline and topk > 0: how far the
                                               top-k estimate fell below the exact KLD */
    double   eval_s;               /* seconds in forward passes */
} qf_eval_result;

/* Runs the evaluation of m over tokens[0..n). base (a second model) or base_topk (a file
 * opened for reading, from save_topk) give the baseline, or neither; save_topk (open for
 * writing) receives m's own top-k per scored position, to be a later run's baseline. QF_ERANGE
 * if the text is shorter than one chunk; QF_EPARSE for a top-k file that does not fit (why
 * says what); QF_EIO on a read or write error. */
int qf_eval_run(qf_llama *m, qf_llama *base, FILE *base_topk, FILE *save_topk,
                const int32_t *tokens, int64_t n, const qf_eval_opts *o, qf_eval_result *out,
                char *why, size_t why_len);

/* The whole text file at path, NUL-terminated, into *out (caller frees; *len bytes before the
 * NUL). QF_ENOENT (cannot open), QF_EIO (read error), QF_ETOOBIG (over 1 GiB or out of
 * memory), with the path and the reason in why. Used by `qfleet eval` and the eval job. */
int qf_eval_read_text(const char *path, char **out, size_t *len, char *why, size_t why_len);

/* Speed as llama-bench measures it: pp = tokens/s of one forward of n_pp tokens from an empty
 * cache; tg = tokens/s of n_tg single-token forwards after it. reps >= 1 repetitions; the
 * medians. */
int qf_eval_speed(qf_llama *m, int64_t n_pp, int64_t n_tg, int reps, double *pp_tps,
                  double *tg_tps, char *why, size_t why_len);

#endif
