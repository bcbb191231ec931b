/* test_llama.c - the llama engine (model/llama.c) against Hugging Face and llama.cpp.
 *
 * A tiny llama checkpoint (tests/make_tiny_llama.py: random weights, 2 layers, hidden 256,
 * 4 heads, 2 KV heads, vocabulary 300) is converted by the real `qfleet quantize` to GGUF in
 * f32, f16, q8_0 and q4_0. Then:
 *   - on f32, our last-position logits equal a float64 Hugging Face forward pass of the
 *     checkpoint (make_tiny_llama.py --forward) within 5e-3 of the largest logit (room for the
 *     f16 KV cache and f16 attention accumulator, as in llama.cpp);
 *   - on each type, our logits at every position equal llama.cpp's (libllama from the npm
 *     package, run by tests/llama_logits in a child process) within a per-type tolerance;
 *   - a prompt run in one batch gives bit-identical logits to the same prompt run token by
 *     token through the KV cache, and a reset starts over;
 *   - bad input is refused with a reason: a missing file, a token outside the vocabulary,
 *     a context overflow.
 * Without python3, or without the library (scripts/fetch-ggml.sh), the llama.cpp parts print
 * SKIPPED; with QF_REQUIRE_GGML=1 (CI) a missing library fails.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qf_err.h"
#include "qf_kernels.h"
#include "qf_llama.h"

#define VOCAB 300
static const int32_t k_prompt[] = { 296, 116, 256, 264, 40, 101, 268, 32, 257, 119, 111, 114,
                                    108, 100, 33, 10 };
#define NPROMPT ((int64_t)(sizeof k_prompt / sizeof k_prompt[0]))

static char g_dir[256];
static char g_model[320];

static int run(char *const argv[], const char *log)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

static const char *gguf_of(const char *type)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/tiny-%s.gguf", g_dir, type);
    struct stat sb;
    if (stat(path, &sb) == 0)
        return path;
    char log[400];
    snprintf(log, sizeof log, "%s/quantize.log", g_dir);
    char *argv[] = { QF_BINARY, "quantize", g_model, path, "--type", (char *)type, NULL };
    int rc = run(argv, log);
    if (rc != 0) {
        print_file(log);
        fail_msg("qfleet quantize --type %s: exit %d", type, rc);
    }
    return path;
}

static qf_llama *load(const char *path, int64_t n_ctx)
{
    qf_llama_opts o = { .n_ctx = n_ctx, .threads = 2 };
    qf_llama *m = NULL;
    char why[512];
    int err = qf_llama_load(path, &o, &m, why, sizeof why);
    if (err)
        fail_msg("qf_llama_load(%s): %s: %s", path, qf_err_name(err), why);
    return m;
}

static float *our_logits(const char *path, int64_t n)
{
    qf_llama *m = load(path, 64);
    float *lg = malloc((size_t)(n * VOCAB) * sizeof(float));
    assert_non_null(lg);
    char why[256];
    assert_int_equal(qf_llama_forward(m, k_prompt, n, true, lg, why, sizeof why), 0);
    qf_llama_destroy(&m);
    return lg;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-test-llama-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_model, sizeof g_model, "%s/tiny", g_dir);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s'", QF_SOURCE_DIR,
             g_model);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_matches_hf(void **state)
{
    (void)state;
    char ref[400], cmd[1200];
    snprintf(ref, sizeof ref, "%s/hf-logits.json", g_dir);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s' --forward "
             "296,116,256,264 > '%s'", QF_SOURCE_DIR, g_model, ref);
    assert_int_equal(system(cmd), 0);
    float *lg = our_logits(gguf_of("f32"), 4);
    json_error_t jerr;
    json_t *want = json_load_file(ref, 0, &jerr);
    if (!json_is_array(want) || json_array_size(want) != VOCAB)
        fail_msg("%s: not %d logits (%s)", ref, VOCAB, jerr.text);
    double max_ref = 0, max_diff = 0;
    int worst = 0;
    for (int i = 0; i < VOCAB; i++) {
        double r = json_number_value(json_array_get(want, (size_t)i));
        double d = fabs(r - lg[3 * VOCAB + i]);
        max_ref = fmax(max_ref, fabs(r));
        if (d > max_diff) {
            max_diff = d;
            worst = i;
        }
    }
    printf("ours (f32) vs HF float64: max |logit| %.4f, max difference %.2e (token %d)\n",
           max_ref, max_diff, worst);
    if (!(max_diff <= 5e-3 * fmax(1.0, max_ref)))
        fail_msg("our logit %d is %.6f, HF's %.6f (max |logit| %.4f)", worst,
                 (double)lg[3 * VOCAB + worst],
                 json_number_value(json_array_get(want, (size_t)worst)), max_ref);
    json_decref(want);
    free(lg);
}

static bool llama_cpp_or_skip(void)
{
    const char *dir = getenv("QF_GGML_DIR");
    char lib[600];
    snprintf(lib, sizeof lib, "%s/libllama.v0.5.0.so", dir ? dir : "");
    struct stat sb;
    if (dir && stat(lib, &sb) == 0)
        return true;
    const char *req = getenv("QF_REQUIRE_GGML");
    if (req && strcmp(req, "1") == 0)
        fail_msg("QF_REQUIRE_GGML=1 but there is no %s (make ggml)", lib);
    printf("*** SKIPPED: no %s (scripts/fetch-ggml.sh)\n", lib);
    return false;
}

static void test_matches_llama_cpp(void **state)
{
    (void)state;
    if (!llama_cpp_or_skip())
        return;
    /* llama.cpp's default context uses flash attention on the CPU (flash_attn "auto"); our
     * engine computes attention as that does for one query row (Q and the value accumulator in
     * f16, online softmax, ggml's K.Q summation order on this ISA) and RoPE with ggml's float
     * angles. Measured on an AVX-512 host (ggml's zen4 CPU variant): q8_0 agrees to 9e-8 of the
     * largest logit, q4_0 to 6e-5 (one rounding flip that does not spread); f32 to 1.2e-4 and
     * f16 to 4e-4, the float matrix products' summation order (1.7e-5 and 3.9e-4 already at the
     * first position) amplified by the f16 roundings. A single flipped rounding in a quantized
     * model moves logits by ~1% (docs/metrics.md), so the quantized types agree this closely
     * only where our matrix products are bit-identical to ggml's: our AVX-512 kernels are;
     * our AVX2 q8_0/q4_0 products differ from ggml's (whose AVX2 and AVX-512 variants agree
     * bit for bit) in the last bit, which flips a rounding at the second position (1.1e-2 and
     * 1.3e-2), so elsewhere they keep the old bound. Top-1 agrees everywhere. Relative to the
     * largest logit: */
    const bool avx512 = qf_isa_best() == QF_ISA_AVX512;
    const struct { const char *type; double tol; } k_types[] = {
        { "f32", 5e-4 }, { "f16", 1e-3 }, { "q8_0", avx512 ? 1e-3 : 2.5e-2 },
        { "q4_0", avx512 ? 1e-3 : 2.5e-2 },
    };
    char ids[256] = "";
    for (int64_t i = 0; i < NPROMPT; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "",
                 k_prompt[i]);
    for (size_t t = 0; t < sizeof k_types / sizeof k_types[0]; t++) {
        const char *path = gguf_of(k_types[t].type);
        char out[400], log[400];
        snprintf(out, sizeof out, "%s/llama-%s.bin", g_dir, k_types[t].type);
        snprintf(log, sizeof log, "%s/llama-%s.log", g_dir, k_types[t].type);
        char *argv[] = { QF_LLAMA_LOGITS, getenv("QF_GGML_DIR"), (char *)path, ids, out, NULL };
        int rc = run(argv, log);
        if (rc != 0) {
            print_file(log);
            fail_msg("llama_logits on %s: exit %d", path, rc);
        }
        FILE *f = fopen(out, "rb");
        assert_non_null(f);
        float *theirs = malloc((size_t)(NPROMPT * VOCAB) * sizeof(float));
        assert_non_null(theirs);
        size_t got = fread(theirs, sizeof(float), (size_t)(NPROMPT * VOCAB), f);
        fclose(f);
        assert_int_equal(got, (size_t)(NPROMPT * VOCAB));
        float *ours = our_logits(path, NPROMPT);
        double max_ref = 0, max_diff = 0;
        int64_t worst = 0;
        int same_top = 0;
        for (int64_t p = 0; p < NPROMPT; p++) {
            int64_t a = 0, b = 0;
            for (int64_t i = 0; i < VOCAB; i++) {
                const int64_t k = p * VOCAB + i;
                max_ref = fmax(max_ref, fabs(theirs[k]));
                if (fabs((double)ours[k] - theirs[k]) > max_diff) {
                    max_diff = fabs((double)ours[k] - theirs[k]);
                    worst = k;
                }
                if (ours[k] > ours[p * VOCAB + a])
                    a = i;
                if (theirs[k] > theirs[p * VOCAB + b])
                    b = i;
            }
            same_top += a == b;
        }
        printf("ours vs llama.cpp, %-5s %lld positions: max |logit| %.4f, max difference %.2e "
               "(%.2e of it), same top-1 at %d/%lld\n", k_types[t].type, (long long)NPROMPT,
               max_ref, max_diff, max_diff / max_ref, same_top, (long long)NPROMPT);
        if (!(max_diff <= k_types[t].tol * max_ref))
            fail_msg("%s: logit %lld of position %lld is %.6f here, %.6f in llama.cpp (limit "
                     "%.1e of max |logit| %.4f)", k_types[t].type, (long long)(worst % VOCAB),
                     (long long)(worst / VOCAB), (double)ours[worst], (double)theirs[worst],
                     k_types[t].tol, max_ref);
        free(ours);
        free(theirs);
    }
}

static void test_cache_and_batch(void **state)
{
    (void)state;
    qf_llama *m = load(gguf_of("q4_0"), NPROMPT);
    float *batch = malloc((size_t)(NPROMPT * VOCAB) * sizeof(float));
    float *one = malloc(VOCAB * sizeof(float));
    assert_non_null(batch);
    assert_non_null(one);
    char why[256];
    assert_int_equal(qf_llama_forward(m, k_prompt, NPROMPT, true, batch, why, sizeof why), 0);
    assert_int_equal(qf_llama_pos(m), NPROMPT);
    /* the cache is full: one more token overflows, with a reason */
    assert_int_equal(qf_llama_forward(m, k_prompt, 1, false, one, why, sizeof why), QF_ERANGE);
    assert_non_null(strstr(why, "overflow"));
    qf_llama_reset(m);
    for (int64_t p = 0; p < NPROMPT; p++) {
        assert_int_equal(qf_llama_forward(m, &k_prompt[p], 1, false, one, why, sizeof why), 0);
        if (memcmp(one, batch + p * VOCAB, VOCAB * sizeof(float)) != 0)
            fail_msg("position %lld: token-by-token logits differ from the batch's",
                     (long long)p);
    }
    const int32_t bad = VOCAB;
    qf_llama_reset(m);
    assert_int_equal(qf_llama_forward(m, &bad, 1, false, one, why, sizeof why), QF_ERANGE);
    assert_non_null(strstr(why, "vocabulary"));
    const qf_llama_hparams *h = qf_llama_hparams_of(m);
    assert_int_equal(h->n_vocab, VOCAB);
    assert_int_equal(h->n_layer, 2);
    assert_int_equal(h->n_head_kv, 2);
    assert_true(qf_llama_weight_bytes(m) > 0);
    free(batch);
    free(one);
    qf_llama_destroy(&m);
    assert_null(m);
    qf_llama_destroy(NULL);
}

static void test_refusals(void **state)
{
    (void)state;
    qf_llama_opts o = { .n_ctx = 16, .threads = 1 };
    qf_llama *m = NULL;
    char why[512], path[400];
    snprintf(path, sizeof path, "%s/missing.gguf", g_dir);
    assert_int_not_equal(qf_llama_load(path, &o, &m, why, sizeof why), 0);
    assert_null(m);
    assert_non_null(strstr(why, "missing.gguf"));
    o.n_ctx = 0;
    assert_int_equal(qf_llama_load(gguf_of("f32"), &o, &m, why, sizeof why), QF_ERANGE);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_hf),
        cmocka_unit_test(test_matches_llama_cpp),
        cmocka_unit_test(test_cache_and_batch),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
