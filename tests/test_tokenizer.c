/* test_tokenizer.c - GGUF tokenizers (model/tokenizer.c) against llama.cpp's.
 *
 * Tiny checkpoints from tests/make_tiny_llama.py (a byte-level BPE vocabulary with a few
 * merges, and a SentencePiece-style one with byte fallback) are converted by `qfleet quantize`;
 * then our ids must equal llama_tokenize's (tests/llama_logits --tokenize, libllama from the
 * npm package) on a text with contractions, digits, runs of spaces, tabs, newlines and a
 * non-ASCII word; "the the" must give the ids the generator built the merges for; BOS is
 * prepended only when asked. Without libllama the llama.cpp comparison prints SKIPPED (fails
 * under QF_REQUIRE_GGML=1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_err.h"
#include "qf_tokenizer.h"

static char g_dir[256];
static const char k_text[] = "The quick brown fox's 12345 tests: it's   done!\nNew line\tand  "
                             "the end. Caf\xc3\xa9 2024\n";

static void make_model(const char *name, const char *flag, char *gguf, size_t size)
{
    char cmd[1600];
    snprintf(gguf, size, "%s/%s.gguf", g_dir, name);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s/%s' %s >/dev/null && "
             "'%s' quantize '%s/%s' '%s' --type q8_0 >/dev/null 2>&1", QF_SOURCE_DIR, g_dir,
             name, flag, QF_BINARY, g_dir, name, gguf);
    assert_int_equal(system(cmd), 0);
}

static qf_tokenizer *open_tok(const char *gguf, qf_gguf **g)
{
    char why[512];
    int err = qf_gguf_open(gguf, g, why, sizeof why);
    if (err)
        fail_msg("%s: %s", gguf, why);
    qf_tokenizer *t = NULL;
    if ((err = qf_tokenizer_new(*g, &t, why, sizeof why)) != 0)
        fail_msg("qf_tokenizer_new(%s): %s", gguf, why);
    return t;
}

static void encode(const qf_tokenizer *t, const char *text, bool bos, int32_t **ids, int64_t *n)
{
    assert_int_equal(qf_tokenizer_encode(t, text, strlen(text), bos, ids, n), 0);
}

/* Our ids for k_text against llama.cpp's, or SKIPPED without libllama. */
static void check_llama_cpp(const qf_tokenizer *t, const char *gguf, const char *name)
{
    const char *dir = getenv("QF_GGML_DIR");
    char lib[600], txt[400], out[400], cmd[2000];
    snprintf(lib, sizeof lib, "%s/libllama.v0.5.0.so", dir ? dir : "");
    struct stat sb;
    if (!dir || stat(lib, &sb) != 0) {
        const char *req = getenv("QF_REQUIRE_GGML");
        if (req && strcmp(req, "1") == 0)
            fail_msg("QF_REQUIRE_GGML=1 but there is no %s", lib);
        printf("*** SKIPPED llama.cpp comparison: no %s\n", lib);
        return;
    }
    snprintf(txt, sizeof txt, "%s/text.txt", g_dir);
    snprintf(out, sizeof out, "%s/%s.ids", g_dir, name);
    FILE *f = fopen(txt, "wb");
    assert_non_null(f);
    fputs(k_text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' --tokenize '%s' '%s' 2>/dev/null", QF_LLAMA_LOGITS,
             dir, gguf, txt, out);
    assert_int_equal(system(cmd), 0);
    int32_t theirs[512];
    f = fopen(out, "rb");
    assert_non_null(f);
    size_t nt = fread(theirs, sizeof theirs[0], 512, f);
    fclose(f);
    int32_t *ours;
    int64_t n;
    encode(t, k_text, false, &ours, &n);
    for (size_t i = 0; i < nt && i < (size_t)n; i++)
        if (ours[i] != theirs[i])
            fail_msg("%s: token %zu is %d here, %d in llama.cpp", name, i, ours[i], theirs[i]);
    assert_int_equal(n, (int64_t)nt);
    printf("%s: %lld tokens, the same as llama.cpp's\n", name, (long long)n);
    free(ours);
}

static void test_bpe(void **state)
{
    (void)state;
    char gguf[400];
    make_model("bpe", "", gguf, sizeof gguf);
    qf_gguf *g = NULL;
    qf_tokenizer *t = open_tok(gguf, &g);
    int32_t *ids;
    int64_t n;
    encode(t, "the the", false, &ids, &n);     /* t + he, then " the" (the generator's merges) */
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 't');
    assert_int_equal(ids[1], 256);
    assert_int_equal(ids[2], 264);
    free(ids);
    encode(t, "", true, &ids, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], qf_tokenizer_bos(t));
    free(ids);
    check_llama_cpp(t, gguf, "bpe");
    qf_tokenizer_destroy(&t);
    assert_null(t);
    qf_gguf_close(&g);
}

static void test_spm(void **state)
{
    (void)state;
    char gguf[400];
    make_model("spm", "--spm", gguf, sizeof gguf);
    qf_gguf *g = NULL;
    qf_tokenizer *t = open_tok(gguf, &g);
    int32_t *ids;
    int64_t n;
    encode(t, "the the", true, &ids, &n);       /* BOS, then two \u2581the */
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 268);
    assert_int_equal(ids[2], 268);
    free(ids);
    assert_true(qf_tokenizer_adds_bos(t));
    check_llama_cpp(t, gguf, "spm");
    qf_tokenizer_destroy(&t);
    qf_gguf_close(&g);
    qf_tokenizer_destroy(NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-test-tok-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
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
        cmocka_unit_test(test_bpe),
        cmocka_unit_test(test_spm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
