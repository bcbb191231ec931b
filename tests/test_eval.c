/* test_eval.c - perplexity, KL divergence and the top-k baseline file (model/eval.c).
 *
 * On the tiny generated llama (f32 and q4_0 GGUFs from `qfleet quantize`) and seeded random
 * token ids:
 *   - a model against itself: KLD 0, same top token everywhere, no probability shift, the
 *     baseline's PPL equal to the model's;
 *   - perplexity by hand: exp of the mean NLL recomputed here from the model's own logits;
 *   - the top-k file: with k = the whole vocabulary it gives the exact KLD of the model
 *     baseline; with a small k it never exceeds the exact KLD (the documented lower bound);
 *   - refusals: a text shorter than one chunk, a file of another context, a truncated file,
 *     a file that is not one;
 *   - the agent's eval job (agent/jobs.c) end to end: the f32 model named by a manifest whose
 *     file is already in the cache (QF_CACHE_DIR), the shipped text, quantized in memory to
 *     q4_0 (a real gap to the baseline) and to f32 (none), and a missing text refused by name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_eval.h"
#include "qf_job.h"
#include "qf_jobs.h"
#include "qf_rng.h"

#define CTX 32
#define NTOK (4 * CTX)
#define VOCAB 300

static char g_dir[256], g_f32[400], g_q4[400];
static int32_t g_tokens[NTOK];

static qf_llama *load(const char *path)
{
    qf_llama_opts o = { .n_ctx = CTX, .threads = 2 };
    qf_llama *m = NULL;
    char why[512];
    if (qf_llama_load(path, &o, &m, why, sizeof why) != 0)
        fail_msg("%s: %s", path, why);
    return m;
}

static qf_eval_opts opts(int topk)
{
    return (qf_eval_opts){ .n_ctx = CTX, .topk = topk, .add_bos = true, .bos = 296 };
}

static void run(qf_llama *m, qf_llama *base, FILE *in, FILE *save, const qf_eval_opts *o,
                qf_eval_result *r)
{
    char why[512];
    int err = qf_eval_run(m, base, in, save, g_tokens, NTOK, o, r, why, sizeof why);
    if (err)
        fail_msg("qf_eval_run: %s: %s", qf_err_name(err), why);
}

static void test_self_and_by_hand(void **state)
{
    (void)state;
    qf_llama *m = load(g_f32), *b = load(g_f32);
    qf_eval_opts o = opts(0);
    qf_eval_result r;
    run(m, b, NULL, NULL, &o, &r);
    assert_int_equal(r.n_chunks, 4);
    assert_int_equal(r.n_scored, 4 * (CTX - 1 - CTX / 2));
    assert_true(r.has_base && !r.base_from_topk);
    if (!(fabs(r.kld_mean) < 1e-9 && r.same_top == 1.0 && r.dp_rms < 1e-9))
        fail_msg("self: KLD %g, same top %g, dp RMS %g", r.kld_mean, r.same_top, r.dp_rms);
    assert_float_equal(r.ppl, r.ppl_base, 1e-9 * r.ppl);

    /* by hand: NLL of each scored next token from the model's logits */
    float *lg = malloc((size_t)CTX * VOCAB * sizeof *lg);
    assert_non_null(lg);
    double nll = 0;
    int64_t ns = 0;
    char why[256];
    for (int c = 0; c < 4; c++) {
        int32_t chunk[CTX];
        memcpy(chunk, g_tokens + c * CTX, sizeof chunk);
        chunk[0] = 296;
        qf_llama_reset(m);
        assert_int_equal(qf_llama_forward(m, chunk, CTX, true, lg, why, sizeof why), 0);
        for (int j = CTX / 2; j < CTX - 1; j++, ns++) {
            double mx = -INFINITY, s = 0;
            for (int i = 0; i < VOCAB; i++)     /* not fmax: gcc 12 for aarch64 ICEs on it */
                if (lg[j * VOCAB + i] > mx)
                    mx = lg[j * VOCAB + i];
            for (int i = 0; i < VOCAB; i++)
                s += exp(lg[j * VOCAB + i] - mx);
            nll -= lg[j * VOCAB + chunk[j + 1]] - mx - log(s);
        }
    }
    assert_int_equal(ns, r.n_scored);
    double ppl = exp(nll / (double)ns);
    if (!(fabs(ppl - r.ppl) <= 1e-9 * ppl))
        fail_msg("PPL %.12g, by hand %.12g", r.ppl, ppl);
    printf("tiny f32 on random tokens: PPL %.4f +/- %.4f over %lld positions\n", r.ppl,
           r.ppl_err, (long long)r.n_scored);
    free(lg);
    qf_llama_destroy(&m);
    qf_llama_destroy(&b);
}

static FILE *saved(qf_llama *base, int k, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w+b");
    assert_non_null(f);
    qf_eval_opts o = opts(k);
    qf_eval_result r;
    run(base, NULL, NULL, f, &o, &r);
    rewind(f);
    return f;
}

static void test_topk_file(void **state)
{
    (void)state;
    qf_llama *q = load(g_q4), *b = load(g_f32);
    qf_eval_opts o = opts(8);
    qf_eval_result exact, full, small;
    run(q, b, NULL, NULL, &o, &exact);      /* also measures the top-8 estimate's gap */
    FILE *f = saved(b, VOCAB, "full.topk");
    o = opts(0);
    run(q, NULL, f, NULL, &o, &full);
    fclose(f);
    f = saved(b, 8, "small.topk");
    run(q, NULL, f, NULL, &o, &small);
    fclose(f);
    assert_true(full.base_from_topk);
    printf("KLD exact %.6g, from all %d logits %.6g, from the top 8 %.6g (gap: mean %.3g, max "
           "%.3g)\n", exact.kld_mean, VOCAB, full.kld_mean, small.kld_mean, exact.topk_gap_mean,
           exact.topk_gap_max);
    if (!(fabs(full.kld_mean - exact.kld_mean) <= 1e-6 * exact.kld_mean + 1e-9))
        fail_msg("KLD from the full file %.9g, exact %.9g", full.kld_mean, exact.kld_mean);
    if (!(small.kld_mean <= exact.kld_mean + 1e-9))
        fail_msg("the top-8 KLD %.9g exceeds the exact %.9g: not a lower bound",
                 small.kld_mean, exact.kld_mean);
    assert_float_equal(full.ppl_base, exact.ppl_base, 1e-5 * exact.ppl_base);
    assert_float_equal(full.same_top, exact.same_top, 0.0);
    qf_llama_destroy(&q);
    qf_llama_destroy(&b);
}

static void test_refusals(void **state)
{
    (void)state;
    qf_llama *q = load(g_q4);
    qf_eval_opts o = opts(0);
    qf_eval_result r;
    char why[512];
    assert_int_equal(qf_eval_run(q, NULL, NULL, NULL, g_tokens, CTX - 1, &o, &r, why,
                                 sizeof why), QF_ERANGE);
    assert_non_null(strstr(why, "fewer than one chunk"));

    FILE *f = saved(q, 4, "ctx.topk");        /* a file of context 32 read at context 16 */
    o.n_ctx = 16;
    assert_int_equal(qf_eval_run(q, NULL, f, NULL, g_tokens, NTOK, &o, &r, why, sizeof why),
                     QF_EPARSE);
    assert_non_null(strstr(why, "context"));
    fclose(f);

    o.n_ctx = CTX;
    f = tmpfile();
    assert_non_null(f);
    fputs("not a top-k file at all, just text", f);
    rewind(f);
    assert_int_equal(qf_eval_run(q, NULL, f, NULL, g_tokens, NTOK, &o, &r, why, sizeof why),
                     QF_EPARSE);
    assert_non_null(strstr(why, "QFTOPK01"));
    fclose(f);

    FILE *whole = saved(q, 4, "trunc.topk"); /* cut the file short: fewer positions */
    f = tmpfile();
    char buf[600];
    size_t got = fread(buf, 1, sizeof buf, whole);
    assert_true(got == sizeof buf);
    fwrite(buf, 1, got, f);
    rewind(f);
    assert_int_equal(qf_eval_run(q, NULL, f, NULL, g_tokens, NTOK, &o, &r, why, sizeof why),
                     QF_EPARSE);
    fclose(f);
    fclose(whole);
    qf_llama_destroy(&q);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-test-eval-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_f32, sizeof g_f32, "%s/f32.gguf", g_dir);
    snprintf(g_q4, sizeof g_q4, "%s/q4_0.gguf", g_dir);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s/tiny' >/dev/null && "
             "'%s' quantize '%s/tiny' '%s' --type f32 >/dev/null 2>&1 && "
             "'%s' quantize '%s/tiny' '%s' --type q4_0 >/dev/null 2>&1", QF_SOURCE_DIR, g_dir,
             QF_BINARY, g_dir, g_f32, QF_BINARY, g_dir, g_q4);
    if (system(cmd) != 0)
        return -1;
    qf_rng r;
    qf_rng_seed(&r, 0xe7a1);
    for (int i = 0; i < NTOK; i++)
        g_tokens[i] = (int32_t)(qf_rng_u64(&r) % 256);
    return 0;
}

/* A manifest folder with tiny.yaml and the shipped texts, and a cache holding its file. */
static void stage_manifest(void)
{
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/manifests' '%s/cache/tiny' && "
             "cp -r '%s/datasets/texts' '%s/manifests/' && cp '%s' '%s/cache/tiny/tiny-f32.gguf' && "
             "printf 'name: tiny\nkind: model\nformat: gguf\n"
             "url: https://example.invalid/tiny-f32.gguf\nmax_size: 100000000\n"
             "unverified: true\nlicense: none\ndescription: the tests tiny llama\n' "
             "> '%s/manifests/tiny.yaml'", g_dir, g_dir, QF_SOURCE_DIR, g_dir, g_f32, g_dir,
             g_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/manifests", g_dir);
    setenv("QF_MANIFEST_DIR", cmd, 1);
    snprintf(cmd, sizeof cmd, "%s/cache", g_dir);
    setenv("QF_CACHE_DIR", cmd, 1);
}

static void run_eval_job(const char *format, const char *dataset, qf_job_result *r)
{
    qf_job_spec s = { .rows = CTX, .cols = 3, .reps = 2, .warmup = 0, .threads = 2,
                      .timeout_ms = 60000 };
    snprintf(s.kind, sizeof s.kind, "eval");
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "%s", dataset);
    assert_int_equal(qf_jobs_run(&s, r), 0);
}

static void test_eval_job(void **state)
{
    (void)state;
    stage_manifest();
    const char *ds = "manifest:tiny@text:alice-chapter1-opening";
    qf_job_result r;
    run_eval_job("q4_0", ds, &r);
    if (r.status != QF_JOB_OK)
        fail_msg("eval q4_0: %s", r.error);
    assert_true(r.has_model);
    assert_false(r.has_metrics);
    assert_int_equal(r.n_samples, 2);
    for (uint32_t i = 0; i < r.n_samples; i++)
        assert_true(r.samples[i] > 0);
    const qf_job_model *m = &r.model;
    printf("eval job q4_0: PPL %.3f (base %.3f), KLD %.5f, same top %.3f, pp %.0f t/s, "
           "tg %.0f t/s, %lld scored\n", m->ppl, m->ppl_base, m->kld, m->same_top, m->pp_tps,
           m->tg_tps, (long long)m->n_scored);
    assert_true(m->ppl > 1 && m->ppl_base > 1 && m->ppl != m->ppl_base);
    assert_true(m->kld > 0 && m->same_top > 0 && m->same_top <= 1);
    assert_true(m->pp_tps > 0 && m->tg_tps > 0);
    assert_int_equal(m->n_scored, 3 * (CTX / 2 - 1));   /* the last position has no next */
    assert_true(r.bytes > 0 && r.bpw == 4.5);
    qf_job_result_clear(&r);

    run_eval_job("f32", ds, &r);           /* the model against itself */
    if (r.status != QF_JOB_OK)
        fail_msg("eval f32: %s", r.error);
    assert_true(r.model.kld < 1e-9 && r.model.same_top == 1.0);
    assert_true(fabs(r.model.ppl - r.model.ppl_base) < 1e-9 * r.model.ppl_base);
    qf_job_result_clear(&r);

    run_eval_job("q4_0", "manifest:tiny@text:no-such-text", &r);
    assert_int_equal(r.status, QF_JOB_FAILED);
    if (!strstr(r.error, "no-such-text.txt"))
        fail_msg("the reason does not name the text: %s", r.error);
    qf_job_result_clear(&r);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_and_by_hand),
        cmocka_unit_test(test_topk_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_eval_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
