/* cmd_eval.c - `qfleet eval MODEL.gguf --text FILE [...]`: model-level quality and speed.
 *
 * Loads the model (and a baseline model, if given) with the llama engine, tokenizes the text
 * with the model's own tokenizer, runs the perplexity / KL-divergence evaluation (model/eval.c)
 * and, unless --no-speed, llama-bench-style prompt and generation speed. Prints a report like
 * llama.cpp's perplexity tool, or one JSON object with --json. --save-logits writes the model's
 * top-k logits per scored position so a later run can use it as --baseline-logits (the file is
 * written to a temporary name and renamed when complete). Exit codes: 0, 1 (the evaluation
 * failed), 2 (usage).
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_eval.h"
#include "qf_tokenizer.h"

typedef struct eval_opts {
    const char *model, *text, *baseline, *baseline_logits, *save_logits;
    int64_t ctx, chunks, threads, topk, pp, tg, reps;
    bool json, speed, force_isa;
    qf_isa isa;
} eval_opts;

static void usage(FILE *out)
{
    fputs("usage: qfleet eval MODEL.gguf --text FILE [options]\n"
          "\n"
          "Runs a llama-architecture GGUF model on quantfleet's kernels (any format of\n"
          "'qfleet formats') and reports, as llama.cpp's perplexity tool does: perplexity with\n"
          "its uncertainty; against a baseline: mean KL divergence and its percentiles, how\n"
          "often both pick the same top token, and the shift of the next token's probability;\n"
          "then prompt (pp) and generation (tg) tokens per second and peak memory.\n"
          "\n"
          "Options:\n"
          "  --text FILE            the evaluation text (UTF-8), tokenized by the model\n"
          "  --baseline BASE.gguf   the unquantized model, run on the same chunks\n"
          "  --baseline-logits F    a baseline's top-k logits saved by --save-logits\n"
          "  --save-logits F        save this model's top-k logits per scored position\n"
          "  --topk K               pairs per position for --save-logits, 1..1024 (default 32)\n"
          "  --ctx N                tokens per chunk, 8..65536 (default 512)\n"
          "  --chunks N             at most N chunks (default: all the text holds)\n"
          "  --threads N            threads for the matrix products (default: all cores)\n"
          "  --isa I                CPU kernels: ref, avx2, avx512, neon (default: the best)\n"
          "  --pp N, --tg N         speed test sizes (default 512 and 128); --no-speed skips it\n"
          "  --reps N               speed repetitions, median reported (default 3)\n"
          "  --json                 one JSON object instead of the report\n"
          "  -h, --help             this help\n", out);
}

enum { O_TEXT = 256, O_BASE, O_BASE_LOGITS, O_SAVE, O_TOPK, O_CTX, O_CHUNKS, O_THREADS, O_ISA,
       O_PP, O_TG, O_NOSPEED, O_REPS, O_JSON };

static int parse(int argc, char **argv, eval_opts *o)
{
    static const struct option opts[] = {
        { "text", required_argument, NULL, O_TEXT },
        { "baseline", required_argument, NULL, O_BASE },
        { "baseline-logits", required_argument, NULL, O_BASE_LOGITS },
        { "save-logits", required_argument, NULL, O_SAVE },
        { "topk", required_argument, NULL, O_TOPK },
        { "ctx", required_argument, NULL, O_CTX },
        { "chunks", required_argument, NULL, O_CHUNKS },
        { "threads", required_argument, NULL, O_THREADS },
        { "isa", required_argument, NULL, O_ISA },
        { "pp", required_argument, NULL, O_PP },
        { "tg", required_argument, NULL, O_TG },
        { "no-speed", no_argument, NULL, O_NOSPEED },
        { "reps", required_argument, NULL, O_REPS },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (eval_opts){ .ctx = 512, .threads = cores > 0 ? cores : 1, .topk = 32, .pp = 512,
                      .tg = 128, .reps = 3, .speed = true };
    opterr = 0;
    optind = 0;
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_TEXT: o->text = optarg; break;
        case O_BASE: o->baseline = optarg; break;
        case O_BASE_LOGITS: o->baseline_logits = optarg; break;
        case O_SAVE: o->save_logits = optarg; break;
        case O_TOPK: rc = qf_cli_parse_int("eval", "--topk", optarg, 1, 1024, &o->topk); break;
        case O_CTX: rc = qf_cli_parse_int("eval", "--ctx", optarg, 8, 65536, &o->ctx); break;
        case O_CHUNKS: rc = qf_cli_parse_int("eval", "--chunks", optarg, 1, INT32_MAX,
                                             &o->chunks); break;
        case O_THREADS: rc = qf_cli_parse_int("eval", "--threads", optarg, 1, 512, &o->threads);
            break;
        case O_ISA:
            rc = qf_isa_from_name(optarg, &o->isa);
            if (!rc && !qf_isa_host_supports(o->isa))
                rc = qf_errorf(QF_EUSAGE, "eval: --isa %s: this host cannot run it (CPU "
                               "features: %s)", optarg, qf_isa_host_features());
            o->force_isa = true;
            break;
        case O_PP: rc = qf_cli_parse_int("eval", "--pp", optarg, 1, 65536, &o->pp); break;
        case O_TG: rc = qf_cli_parse_int("eval", "--tg", optarg, 0, 65536, &o->tg); break;
        case O_NOSPEED: o->speed = false; break;
        case O_REPS: rc = qf_cli_parse_int("eval", "--reps", optarg, 1, 1000, &o->reps); break;
        case O_JSON: o->json = true; break;
        case 'h': usage(stdout); return 1;
        default: return qf_cli_reject_option("eval", c, argc, argv);
        }
    }
    if (rc)
        return QF_EUSAGE;
    if (optind != argc - 1)
        return qf_errorf(QF_EUSAGE, "eval: give exactly one MODEL.gguf (see 'qfleet eval "
                         "--help')");
    o->model = argv[optind];
    if (!o->text)
        return qf_errorf(QF_EUSAGE, "eval: --text FILE is required");
    if (o->baseline && o->baseline_logits)
        return qf_errorf(QF_EUSAGE, "eval: --baseline and --baseline-logits exclude each other");
    return 0;
}

static void print_pcts(const char *what, const double *v)
{
    printf("%s:", what);
    for (int i = 0; i < QF_EVAL_NPCT; i++)
        printf(" p%g %.6g", qf_eval_pcts[i], v[i]);
    printf("\n");
}

static void report_text(const eval_opts *o, const qf_llama *m, const qf_eval_result *r,
                        double pp, double tg, long rss_kb)
{
    const qf_llama_hparams *h = qf_llama_hparams_of(m);
    printf("model     %s: %" PRId64 " layers, embedding %" PRId64 ", %" PRId64 " heads (%"
           PRId64 " KV), vocabulary %" PRId64 ", %.1f MiB of weights\n", o->model, h->n_layer,
           h->n_embd, h->n_head, h->n_head_kv, h->n_vocab,
           (double)qf_llama_weight_bytes(m) / 1048576.0);
    printf("text      %s: %" PRId64 " tokens, %" PRId64 " chunks of %" PRId64 ", %" PRId64
           " positions scored (the second half of each chunk)\n", o->text, r->n_tokens,
           r->n_chunks, o->ctx, r->n_scored);
    printf("PPL       %.4f +/- %.4f\n", r->ppl, r->ppl_err);
    if (r->has_base) {
        printf("base PPL  %.4f +/- %.4f   (%s)\n", r->ppl_base, r->ppl_base_err,
               o->baseline ? o->baseline : o->baseline_logits);
        printf("PPL ratio %.5f   (quality retention: base PPL / PPL = %.2f%%)\n",
               r->ppl / r->ppl_base, 100.0 * r->ppl_base / r->ppl);
        printf("KLD       %.6f +/- %.6f%s\n", r->kld_mean, r->kld_err,
               r->base_from_topk ? "   (from top-k logits: a lower bound, see docs/metrics.md)"
                                 : "");
        print_pcts("KLD pct  ", r->kld_pct);
        printf("same top  %.3f +/- %.3f %%\n", 100.0 * r->same_top, 100.0 * r->same_top_err);
        printf("dp RMS    %.4f %%\n", 100.0 * r->dp_rms);
        print_pcts("dp pct   ", r->dp_pct);
        if (o->baseline && r->topk_gap_max > 0)
            printf("top-%" PRId64 " KLD estimate below the exact: mean %.3g, max %.3g\n",
                   o->topk, r->topk_gap_mean, r->topk_gap_max);
    }
    if (o->speed)
        printf("speed     pp%" PRId64 " %.2f t/s, tg%" PRId64 " %.2f t/s (%" PRId64 " threads, "
               "median of %" PRId64 ")\n", o->pp, pp, o->tg, tg, o->threads, o->reps);
    printf("memory    peak RSS %.1f MiB (engine state %.1f MiB)\n", (double)rss_kb / 1024.0,
           (double)qf_llama_state_bytes(m) / 1048576.0);
}

static json_t *pcts_json(const double *v)
{
    json_t *a = json_object();
    for (int i = 0; a && i < QF_EVAL_NPCT; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%g", qf_eval_pcts[i]);
        json_object_set_new(a, k, json_real(v[i]));
    }
    return a;
}

static int report_json(const eval_opts *o, const qf_llama *m, const qf_eval_result *r,
                       double pp, double tg, long rss_kb)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I}",
                          "model", o->model, "text", o->text, "tokens", (json_int_t)r->n_tokens,
                          "chunks", (json_int_t)r->n_chunks, "ctx", (json_int_t)o->ctx,
                          "scored", (json_int_t)r->n_scored, "ppl", r->ppl,
                          "ppl_err", r->ppl_err,
                          "weight_bytes", (json_int_t)qf_llama_weight_bytes(m),
                          "state_bytes", (json_int_t)qf_llama_state_bytes(m),
                          "peak_rss_kb", (json_int_t)rss_kb);
    if (!j)
        return QF_ENOMEM;
    if (r->has_base) {
        json_object_set_new(j, "baseline", json_pack("{s:s, s:b, s:f, s:f, s:f, s:f, s:o, s:f, "
                                                     "s:f, s:f, s:o, s:f}",
            "source", o->baseline ? o->baseline : o->baseline_logits,
            "from_topk", r->base_from_topk, "ppl", r->ppl_base, "ppl_err", r->ppl_base_err,
            "kld", r->kld_mean, "kld_err", r->kld_err, "kld_pct", pcts_json(r->kld_pct),
            "same_top", r->same_top, "same_top_err", r->same_top_err, "dp_rms", r->dp_rms,
            "dp_pct", pcts_json(r->dp_pct), "quality_retention", r->ppl_base / r->ppl));
    }
    if (o->speed)
        json_object_set_new(j, "speed", json_pack("{s:I, s:f, s:I, s:f, s:I}",
                            "pp", (json_int_t)o->pp, "pp_tps", pp, "tg", (json_int_t)o->tg,
                            "tg_tps", tg, "threads", (json_int_t)o->threads));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (!s)
        return QF_ENOMEM;
    puts(s);
    free(s);
    return 0;
}

int qf_cmd_eval(int argc, char **argv)
{
    eval_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? QF_EXIT_OK : QF_EXIT_USAGE;
    qf_llama_opts lo = { .n_ctx = o.ctx > o.pp ? o.ctx : o.pp, .threads = (int)o.threads,
                         .force_isa = o.force_isa, .isa = o.isa };
    if (o.speed && o.pp + o.tg > lo.n_ctx)
        lo.n_ctx = o.pp + o.tg;
    qf_llama *m = NULL, *base = NULL;
    qf_tokenizer *tok = NULL;
    char why[1024], *text = NULL, tmp[4096] = "";
    int32_t *ids = NULL;
    int64_t n = 0;
    FILE *base_f = NULL, *save_f = NULL;
    double pp = 0, tg = 0;
    qf_eval_result r;
    int err = qf_llama_load(o.model, &lo, &m, why, sizeof why);
    if (err)
        qf_errorf(err, "eval: %s", why);
    if (!err && o.baseline && (err = qf_llama_load(o.baseline, &lo, &base, why, sizeof why)))
        qf_errorf(err, "eval: baseline: %s", why);
    if (!err && (err = qf_tokenizer_new(qf_llama_gguf(m), &tok, why, sizeof why)))
        qf_errorf(err, "eval: %s", why);
    size_t len = 0;
    if (!err)
        if ((err = qf_eval_read_text(o.text, &text, &len, why, sizeof why)))
            qf_errorf(err, "eval: --text %s", why);
    if (!err && (err = qf_tokenizer_encode(tok, text, len, false, &ids, &n)))
        qf_errorf(err, "eval: tokenizing %s failed (%s)", o.text, qf_strerror(err));
    if (!err && o.baseline_logits && !(base_f = fopen(o.baseline_logits, "rb")))
        err = qf_errorf(QF_ENOENT, "eval: cannot open --baseline-logits %s", o.baseline_logits);
    if (!err && o.save_logits) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o.save_logits, (long)getpid());
        if (!(save_f = fopen(tmp, "wb")))
            err = qf_errorf(QF_EIO, "eval: cannot create %s", tmp);
    }
    if (!err) {
        qf_eval_opts eo = { .n_ctx = o.ctx, .chunks = o.chunks, .topk = (int)o.topk,
                            .add_bos = qf_tokenizer_adds_bos(tok),
                            .bos = qf_tokenizer_bos(tok) };
        if ((err = qf_eval_run(m, base, base_f, save_f, ids, n, &eo, &r, why, sizeof why)))
            qf_errorf(err, "eval: %s", why);
    }
    if (save_f) {
        bool ok = !err && fclose(save_f) == 0;
        if (!err && !ok)
            err = qf_errorf(QF_EIO, "eval: writing %s failed", tmp);
        if (!ok || rename(tmp, o.save_logits) != 0) {
            if (!err)
                err = qf_errorf(QF_EIO, "eval: cannot rename %s to %s", tmp, o.save_logits);
            unlink(tmp);
        }
    }
    if (base_f)
        fclose(base_f);
    qf_llama_destroy(&base);    /* the speed test is of the model alone */
    if (!err && o.speed &&
        (err = qf_eval_speed(m, o.pp, o.tg, (int)o.reps, &pp, &tg, why, sizeof why)))
        qf_errorf(err, "eval: speed: %s", why);
    if (!err) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        if (o.json)
            err = report_json(&o, m, &r, pp, tg, ru.ru_maxrss);
        else
            report_text(&o, m, &r, pp, tg, ru.ru_maxrss);
    }
    free(text);
    free(ids);
    qf_tokenizer_destroy(&tok);
    qf_llama_destroy(&m);
    if (err == QF_EUSAGE)
        return QF_EXIT_USAGE;
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
