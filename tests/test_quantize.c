/* test_quantize.c - `qfleet quantize` against llama.cpp's own code, end to end.
 *
 * A tiny llama checkpoint (tests/make_tiny_llama.py: 2 layers, hidden 256, 4 heads, 2 KV heads,
 * FFN 512, vocab 300, BF16 weights, a byte-level BPE tokenizer) is converted and quantized by
 * the real qfleet binary (QF_BINARY) to each GGUF type, and the output is checked with ggml's
 * prebuilt libraries (agent/ggml_peer.c), not with our reader:
 *   - ggml's gguf_init_from_file parses it; the llama metadata and tokenizer keys are there
 *     with llama.cpp's names, types and values;
 *   - every tensor's bytes equal ggml_quantize_chunk of the same floats: the checkpoint's values
 *     decoded here from BF16, q_proj/k_proj rows permuted as convert_hf_to_gguf.py does (written
 *     again here, independently of datasets/hf_llama.c), 1-D tensors as F32;
 *   - where the package ships libllama, llama.cpp loads each file, reports the hyperparameters,
 *     tokenizes "the the" with our merges, and evaluates tokens to finite logits (in a child
 *     process, so a crash in there is a failure with a message, not a dead test);
 *   - llama.cpp's logits on the F32 conversion equal a float64 Hugging Face forward pass of the
 *     checkpoint (make_tiny_llama.py --forward), which only holds if the rotary permutation,
 *     norms, GQA and FFN wiring are all right;
 *   - a SentencePiece-style tokenizer.json becomes a "llama" vocabulary llama.cpp tokenizes.
 * Also: sharded checkpoints give the same file, GGUF -> GGUF requantization, the fallback for
 * rows that do not split into blocks, and the refusals (bad type, unreadable input, a dtype
 * that cannot be quantized), each leaving no OUT behind.
 * Without ggml the comparisons are skipped loudly (fail with QF_REQUIRE_GGML=1); without
 * python3 the whole test is skipped loudly the same way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ggml_peer.h"
#include "llama_peer.h"
#include "qf_formats.h"
#include "qf_gguf.h"
#include "qf_safetensors.h"

#define HIDDEN 256
#define FFN 512
#define LAYERS 2
#define HEADS 4
#define KV_HEADS 2
#define VOCAB 300
#define HEAD_DIM (HIDDEN / HEADS)
#define N_TENSORS (3 + 9 * LAYERS)

static const char *const k_types[] = {
    "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
};
/* llama_ftype of each (general.file_type), as cmd_quantize writes it. */
static const uint32_t k_ftypes[] = { 7, 2, 3, 8, 9, 10, 11, 14, 16, 18 };
#define N_TYPES (sizeof k_types / sizeof k_types[0])

static char g_dir[256];            /* temporary folder */
static char g_model[320];          /* DIR/a/tiny: single-file checkpoint */
static char g_sharded[320];        /* DIR/b/tiny: the same weights in two shards */
static qf_ggml g_ggml;
static bool g_have_ggml;
static char g_ggml_why[1400];

/* --- ggml's gguf API, declared by its C signatures (gguf.h), looked up with dlsym --------------- */

struct gguf_init_params_ {
    bool    no_alloc;
    void  **ctx;
};

static struct {
    void   *(*init_from_file)(const char *fname, struct gguf_init_params_ params);
    void    (*free_)(void *ctx);
    size_t  (*data_offset)(const void *ctx);
    int64_t (*n_tensors)(const void *ctx);
    int64_t (*find_tensor)(const void *ctx, const char *name);
    size_t  (*tensor_offset)(const void *ctx, int64_t id);
    int     (*tensor_type)(const void *ctx, int64_t id);
    size_t  (*tensor_size)(const void *ctx, int64_t id);
    int64_t (*find_key)(const void *ctx, const char *key);
    int     (*kv_type)(const void *ctx, int64_t id);
    int     (*arr_type)(const void *ctx, int64_t id);
    uint32_t (*get_u32)(const void *ctx, int64_t id);
    float   (*get_f32)(const void *ctx, int64_t id);
    const char *(*get_str)(const void *ctx, int64_t id);
    size_t  (*arr_n)(const void *ctx, int64_t id);
    const void *(*arr_data)(const void *ctx, int64_t id);
    const char *(*arr_str)(const void *ctx, int64_t id, size_t i);
} gg;

static bool load_gguf_api(void)
{
    struct { void **slot; const char *name; } syms[] = {
        { (void **)&gg.init_from_file, "gguf_init_from_file" },
        { (void **)&gg.free_, "gguf_free" },
        { (void **)&gg.data_offset, "gguf_get_data_offset" },
        { (void **)&gg.n_tensors, "gguf_get_n_tensors" },
        { (void **)&gg.find_tensor, "gguf_find_tensor" },
        { (void **)&gg.tensor_offset, "gguf_get_tensor_offset" },
        { (void **)&gg.tensor_type, "gguf_get_tensor_type" },
        { (void **)&gg.tensor_size, "gguf_get_tensor_size" },
        { (void **)&gg.find_key, "gguf_find_key" },
        { (void **)&gg.kv_type, "gguf_get_kv_type" },
        { (void **)&gg.arr_type, "gguf_get_arr_type" },
        { (void **)&gg.get_u32, "gguf_get_val_u32" },
        { (void **)&gg.get_f32, "gguf_get_val_f32" },
        { (void **)&gg.get_str, "gguf_get_val_str" },
        { (void **)&gg.arr_n, "gguf_get_arr_n" },
        { (void **)&gg.arr_data, "gguf_get_arr_data" },
        { (void **)&gg.arr_str, "gguf_get_arr_str" },
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = qf_ggml_sym(&g_ggml, syms[i].name);
        if (!p) {
            snprintf(g_ggml_why, sizeof g_ggml_why, "%s: no symbol %s", g_ggml.dir,
                     syms[i].name);
            return false;
        }
        memcpy(syms[i].slot, &p, sizeof p);
    }
    return true;
}

static bool ggml_or_skip(void)
{
    if (g_have_ggml)
        return true;
    const char *req = getenv("QF_REQUIRE_GGML");
    if (req && strcmp(req, "1") == 0)
        fail_msg("ggml reference required (QF_REQUIRE_GGML=1) but unavailable: %s", g_ggml_why);
    fprintf(stderr, "\n*** SKIPPED: ggml reference not available: %s\n"
                    "*** run `make test` (it fetches @node-llama-cpp/linux-x64 with npm)\n\n",
            g_ggml_why);
    return false;
}

/* --- processes and files ----------------------------------------------------------------------- */

/* Runs argv (argv[0] is the program) with stdout and stderr into log; its exit status, or
 * 128 + signal. */
static int run_cmd(char *const argv[], const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static void print_log(const char *log)
{
    char *s = slurp(log, NULL);
    fprintf(stderr, "--- %s ---\n%s--- end ---\n", log, s ? s : "(none)\n");
    free(s);
}

/* qfleet quantize IN OUT --type TYPE [extra...]; the exit status (log printed if not want). */
static int quantize(const char *in, const char *out, const char *type, const char *extra1,
                    const char *extra2, int want)
{
    char log[400];
    snprintf(log, sizeof log, "%s/quantize.log", g_dir);
    char *argv[] = { QF_BINARY, "quantize", (char *)in, (char *)out, "--type", (char *)type,
                     (char *)extra1, (char *)extra2, NULL };
    int rc = run_cmd(argv, log);
    if (rc != want) {
        print_log(log);
        fail_msg("qfleet quantize %s %s --type %s: exit %d, expected %d", in, out, type, rc,
                 want);
    }
    return rc;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Number of entries in dir whose name contains part (leftover temporary files). */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part))
            n++;
    closedir(d);
    return n;
}

/* --- the expected tensors ---------------------------------------------------------------------- */

typedef struct expect {
    char    gguf[64];
    char    hf[64];
    int64_t rows, cols;   /* HF [rows, cols]; cols == 1 for 1-D */
    int     permute;      /* heads to un-permute with, or 0 */
} expect;

static int expected_tensors(expect *e)
{
    int n = 0;
    e[n++] = (expect){ "token_embd.weight", "model.embed_tokens.weight", VOCAB, HIDDEN, 0 };
    e[n++] = (expect){ "output_norm.weight", "model.norm.weight", HIDDEN, 1, 0 };
    e[n++] = (expect){ "output.weight", "lm_head.weight", VOCAB, HIDDEN, 0 };
    static const struct { const char *g, *h; int64_t rows, cols; int perm; } blk[] = {
        { "attn_norm", "input_layernorm", HIDDEN, 1, 0 },
        { "attn_q", "self_attn.q_proj", HEADS * HEAD_DIM, HIDDEN, HEADS },
        { "attn_k", "self_attn.k_proj", KV_HEADS * HEAD_DIM, HIDDEN, KV_HEADS },
        { "attn_v", "self_attn.v_proj", KV_HEADS * HEAD_DIM, HIDDEN, 0 },
        { "attn_output", "self_attn.o_proj", HIDDEN, HEADS * HEAD_DIM, 0 },
        { "ffn_norm", "post_attention_layernorm", HIDDEN, 1, 0 },
        { "ffn_gate", "mlp.gate_proj", FFN, HIDDEN, 0 },
        { "ffn_up", "mlp.up_proj", FFN, HIDDEN, 0 },
        { "ffn_down", "mlp.down_proj", HIDDEN, FFN, 0 },
    };
    for (int l = 0; l < LAYERS; l++) {
        for (size_t k = 0; k < sizeof blk / sizeof blk[0]; k++) {
            expect *x = &e[n++];
            snprintf(x->gguf, sizeof x->gguf, "blk.%d.%s.weight", l, blk[k].g);
            snprintf(x->hf, sizeof x->hf, "model.layers.%d.%s.weight", l, blk[k].h);
            x->rows = blk[k].rows;
            x->cols = blk[k].cols;
            x->permute = blk[k].perm;
        }
    }
    assert_int_equal(n, N_TENSORS);
    return n;
}

/* The GGUF float rows of an HF tensor: decoded, and for q/k each output row r taken from the
 * HF row that convert_hf_to_gguf.py's reshape(n_head, 2, hd/2, in).swapaxes(1, 2) puts there. */
static float *reference_floats(const qf_safetensors *st, const expect *x)
{
    const qf_st_tensor *t = qf_safetensors_find(st, x->hf);
    if (!t)
        fail_msg("checkpoint has no tensor %s", x->hf);
    assert_int_equal(t->nelem, x->rows * x->cols);
    float *raw = malloc((size_t)t->nelem * sizeof *raw);
    float *out = malloc((size_t)t->nelem * sizeof *out);
    assert_true(raw && out);
    assert_int_equal(qf_safetensors_to_float(t, raw), 0);
    if (!x->permute) {
        memcpy(out, raw, (size_t)t->nelem * sizeof *out);
    } else {
        int64_t hd = x->rows / x->permute, half = hd / 2;
        for (int64_t r = 0; r < x->rows; r++) {
            int64_t h = r / hd, w = r % hd, i = w / 2, j = w % 2;
            int64_t from = h * hd + j * half + i;
            memcpy(out + r * x->cols, raw + from * x->cols, (size_t)x->cols * sizeof *out);
        }
    }
    free(raw);
    return out;
}

/* --- checking a file with ggml ----------------------------------------------------------------- */

static int64_t key_of(void *ctx, const char *key, int type)
{
    int64_t id = gg.find_key(ctx, key);
    if (id < 0)
        fail_msg("ggml finds no key %s", key);
    if (gg.kv_type(ctx, id) != type)
        fail_msg("key %s has GGUF type %d, expected %d", key, gg.kv_type(ctx, id), type);
    return id;
}

static void expect_u32(void *ctx, const char *key, uint32_t want)
{
    uint32_t got = gg.get_u32(ctx, key_of(ctx, key, QF_GGUF_U32));
    if (got != want)
        fail_msg("%s = %u, expected %u", key, got, want);
}

static void check_metadata(void *ctx, uint32_t ftype)
{
    assert_string_equal(gg.get_str(ctx, key_of(ctx, "general.architecture", QF_GGUF_STRING)),
                        "llama");
    expect_u32(ctx, "llama.block_count", LAYERS);
    expect_u32(ctx, "llama.context_length", 2048);
    expect_u32(ctx, "llama.embedding_length", HIDDEN);
    expect_u32(ctx, "llama.feed_forward_length", FFN);
    expect_u32(ctx, "llama.attention.head_count", HEADS);
    expect_u32(ctx, "llama.attention.head_count_kv", KV_HEADS);
    expect_u32(ctx, "llama.rope.dimension_count", HEAD_DIM);
    expect_u32(ctx, "general.file_type", ftype);
    expect_u32(ctx, "general.quantization_version", 2);
    float eps = gg.get_f32(ctx, key_of(ctx, "llama.attention.layer_norm_rms_epsilon",
                                       QF_GGUF_F32));
    assert_true(eps == 1e-5f);
    float base = gg.get_f32(ctx, key_of(ctx, "llama.rope.freq_base", QF_GGUF_F32));
    assert_true(base == 10000.0f);

    assert_string_equal(gg.get_str(ctx, key_of(ctx, "tokenizer.ggml.model", QF_GGUF_STRING)),
                        "gpt2");
    assert_string_equal(gg.get_str(ctx, key_of(ctx, "tokenizer.ggml.pre", QF_GGUF_STRING)),
                        "gpt-2");
    int64_t tok = key_of(ctx, "tokenizer.ggml.tokens", QF_GGUF_ARRAY);
    assert_int_equal(gg.arr_n(ctx, tok), VOCAB);
    assert_string_equal(gg.arr_str(ctx, tok, 'a'), "a");
    assert_string_equal(gg.arr_str(ctx, tok, 256), "he");
    assert_string_equal(gg.arr_str(ctx, tok, 264), "\xc4\xa0the");   /* "Ġthe" */
    assert_string_equal(gg.arr_str(ctx, tok, 296), "<|begin_of_text|>");
    assert_string_equal(gg.arr_str(ctx, tok, 298), "[PAD298]");
    int64_t tt = key_of(ctx, "tokenizer.ggml.token_type", QF_GGUF_ARRAY);
    assert_int_equal(gg.arr_type(ctx, tt), QF_GGUF_I32);
    assert_int_equal(gg.arr_n(ctx, tt), VOCAB);
    const int32_t *types = gg.arr_data(ctx, tt);
    assert_int_equal(types[0], 1);    /* NORMAL */
    assert_int_equal(types[296], 3);  /* CONTROL */
    assert_int_equal(types[299], 5);  /* UNUSED */
    int64_t mg = key_of(ctx, "tokenizer.ggml.merges", QF_GGUF_ARRAY);
    assert_int_equal(gg.arr_n(ctx, mg), 40);
    assert_string_equal(gg.arr_str(ctx, mg, 0), "h e");
    expect_u32(ctx, "tokenizer.ggml.bos_token_id", 296);
    expect_u32(ctx, "tokenizer.ggml.eos_token_id", 297);
}

/* Checks the tensor's bytes in file (ggml's offsets) against ggml_quantize_chunk(type, x),
 * with importance imp (NULL: none) of ncols values per matrix for nmat matrices (experts) of
 * nrows / nmat rows each, as llama-quantize calls it, one chunk per expert. */
static void check_tensor_weighted(void *ctx, const char *file_bytes, size_t file_len,
                                  const char *name, int want_type, const float *x, int64_t nrows,
                                  int64_t ncols, const float *imp, int64_t nmat)
{
    int64_t id = gg.find_tensor(ctx, name);
    if (id < 0)
        fail_msg("ggml finds no tensor %s", name);
    int type = gg.tensor_type(ctx, id);
    if (type != want_type)
        fail_msg("%s: type %s, expected %s", name, g_ggml.type_name(type),
                 g_ggml.type_name(want_type));
    size_t row = g_ggml.type_size(type) * (size_t)(ncols / g_ggml.blck_size(type));
    size_t size = gg.tensor_size(ctx, id);
    assert_int_equal(size, row * (size_t)nrows);
    size_t off = gg.data_offset(ctx) + gg.tensor_offset(ctx, id);
    assert_true(off + size <= file_len);
    char *ref = malloc(size);
    assert_non_null(ref);
    const int64_t rpm = nrows / nmat;
    size_t n = 0;
    for (int64_t e = 0; e < nmat; e++)
        n += g_ggml.quantize_chunk(type, x + e * rpm * ncols, ref + (size_t)(e * rpm) * row, 0,
                                   rpm, ncols, imp ? imp + e * ncols : NULL);
    assert_int_equal(n, size);
    if (memcmp(ref, file_bytes + off, size) != 0) {
        size_t k = 0;
        while (ref[k] == file_bytes[off + k])
            k++;
        fail_msg("%s (%s): bytes differ from ggml_quantize_chunk at byte %zu of %zu (row %zu)",
                 name, g_ggml.type_name(type), k, size, k / row);
    }
    free(ref);
}

static void check_tensor(void *ctx, const char *file_bytes, size_t file_len, const char *name,
                         int want_type, const float *x, int64_t nrows, int64_t ncols)
{
    check_tensor_weighted(ctx, file_bytes, file_len, name, want_type, x, nrows, ncols, NULL, 1);
}

/* Opens out with ggml and checks metadata and every tensor against the checkpoint. */
static void check_against_ggml(const char *out, const char *type, uint32_t ftype)
{
    struct gguf_init_params_ ip = { .no_alloc = true, .ctx = NULL };
    void *ctx = gg.init_from_file(out, ip);
    if (!ctx)
        fail_msg("ggml's gguf_init_from_file refuses %s", out);
    check_metadata(ctx, ftype);
    assert_int_equal(gg.n_tensors(ctx), N_TENSORS);
    size_t len;
    char *bytes = slurp(out, &len);
    assert_non_null(bytes);
    qf_safetensors *st = NULL;
    assert_int_equal(qf_safetensors_open(g_model, &st), 0);
    expect e[N_TENSORS];
    expected_tensors(e);
    int qtype = qf_ggml_type_by_name(&g_ggml, type);
    assert_true(qtype >= 0);
    for (int i = 0; i < N_TENSORS; i++) {
        float *x = reference_floats(st, &e[i]);
        bool one_d = e[i].cols == 1;
        check_tensor(ctx, bytes, len, e[i].gguf, one_d ? 0 /* F32 */ : qtype, x,
                     one_d ? 1 : e[i].rows, one_d ? e[i].rows : e[i].cols);
        free(x);
    }
    qf_safetensors_destroy(&st);
    free(bytes);
    gg.free_(ctx);
}

/* --- llama.cpp ------------------------------------------------------------------------------- */

static char g_llama_path[1200];

/* Whether the ggml folder has libllama (loaded only in the children, agent/llama_peer.c). */
static bool have_llama(void)
{
    char why[1400];
    return g_have_ggml &&
           qf_llama_peer_path(g_ggml.dir, g_llama_path, sizeof g_llama_path, why,
                              sizeof why) == 0;
}

#define CHILD_FAIL(code, ...) do { fprintf(stderr, "llama check: " __VA_ARGS__); \
                                   fputc('\n', stderr); _exit(code); } while (0)

/* What llama.cpp must make of "the the" with the file's tokenizer, and its BOS id. */
typedef struct tok_expect {
    int32_t n, ids[4], bos;
} tok_expect;

/* Byte-level BPE with the generator's merges: "the" is t + he (h e ranks before t h), " the"
 * is Ġthe. */
static const tok_expect k_bpe = { 3, { 't', 256, 264 }, 296 };
/* SentencePiece-style: a space is prefixed, both words are \u2581the. */
static const tok_expect k_spm = { 2, { 268, 268 }, 1 };

/* In a child: load path with llama.cpp, check it, evaluate [bos, "the the"]; exits 0 when all
 * is well. logits_out (if not NULL) receives the last position's VOCAB logits, raw floats. */
static void llama_child(const char *path, const tok_expect *te, const char *logits_out)
{
    qf_llama_peer a;
    char why[1400];
    if (qf_llama_peer_open(&a, g_ggml.dir, false, why, sizeof why) != 0)
        CHILD_FAIL(20, "%s", why);
    void *model = a.model_load_from_file(path, a.model_default_params());
    if (!model)
        CHILD_FAIL(10, "llama_model_load_from_file(%s) failed", path);
    const void *vocab = a.model_get_vocab(model);
    if (a.n_embd(model) != HIDDEN || a.n_layer(model) != LAYERS || a.n_head(model) != HEADS ||
        a.n_head_kv(model) != KV_HEADS || a.vocab_n_tokens(vocab) != VOCAB)
        CHILD_FAIL(14, "llama.cpp reads n_embd %d n_layer %d n_head %d n_head_kv %d n_vocab %d",
                   a.n_embd(model), a.n_layer(model), a.n_head(model), a.n_head_kv(model),
                   a.vocab_n_tokens(vocab));
    int32_t prompt[8] = { te->bos };
    int32_t *toks = prompt + 1;
    int32_t nt = a.tokenize(vocab, "the the", 7, toks, 7, false, false);
    bool same = nt == te->n;
    for (int i = 0; same && i < nt; i++)
        same = toks[i] == te->ids[i];
    if (!same)
        CHILD_FAIL(15, "llama_tokenize(\"the the\") gave %d tokens [%d %d %d], expected %d "
                   "[%d %d %d]", nt, nt > 0 ? toks[0] : -1, nt > 1 ? toks[1] : -1,
                   nt > 2 ? toks[2] : -1, te->n, te->ids[0], te->ids[1],
                   te->n > 2 ? te->ids[2] : -1);
    void *ctx = a.init_from_model(model, a.context_default_params());
    if (!ctx)
        CHILD_FAIL(11, "llama_init_from_model failed");
    int32_t rc = a.decode(ctx, a.batch_get_one(prompt, 1 + nt));
    if (rc != 0)
        CHILD_FAIL(12, "llama_decode returned %d", rc);
    const float *logits = a.get_logits_ith(ctx, -1);
    if (!logits)
        CHILD_FAIL(13, "no logits");
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) {
        if (!isfinite(logits[i]))
            CHILD_FAIL(13, "logit %d is %f", i, logits[i]);
        sum += fabs(logits[i]);
    }
    if (!(sum > 0))
        CHILD_FAIL(13, "all logits are zero");
    if (logits_out) {
        FILE *f = fopen(logits_out, "wb");
        if (!f || fwrite(logits, sizeof *logits, VOCAB, f) != VOCAB || fclose(f) != 0)
            CHILD_FAIL(16, "cannot write %s", logits_out);
    }
    a.free_ctx(ctx);
    a.model_free(model);
    _exit(0);
}

static void check_with_llama(const char *path, const tok_expect *te, const char *logits_out)
{
    char log[400];
    snprintf(log, sizeof log, "%s/llama.log", g_dir);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        llama_child(path, te, logits_out);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_log(log);
        fail_msg("llama.cpp on %s: %s %d", path, WIFEXITED(st) ? "exit" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
}

/* --- tests ------------------------------------------------------------------------------------- */

static void test_each_type(void **state)
{
    (void)state;
    bool ggml = ggml_or_skip();
    bool llama = have_llama();
    if (ggml && !llama)
        fprintf(stderr, "*** llama.cpp evaluation SKIPPED: no %s\n", g_llama_path);
    for (size_t i = 0; i < N_TYPES; i++) {
        char out[400];
        snprintf(out, sizeof out, "%s/tiny-%s.gguf", g_dir, k_types[i]);
        quantize(g_model, out, k_types[i], "--threads", "3", 0);
        assert_true(exists(out));
        if (ggml)
            check_against_ggml(out, k_types[i], k_ftypes[i]);
        if (llama)
            check_with_llama(out, &k_bpe, NULL);
    }
    if (llama)
        fprintf(stderr, "llama.cpp loaded and evaluated all %zu files\n", N_TYPES);
}

/* The converted model computes what the checkpoint computes: llama.cpp's logits on the F32
 * GGUF equal those of Hugging Face's LlamaForCausalLM forward pass on the checkpoint
 * (make_tiny_llama.py --forward, float64). Rotary pairs taken from the wrong rows, a missing
 * or mis-scaled norm, a swapped gate/up or wrong GQA grouping all break this; the tolerance
 * leaves room for llama.cpp's F16 KV cache only. */
static void test_llama_matches_hf(void **state)
{
    (void)state;
    if (!ggml_or_skip())
        return;
    if (!have_llama()) {
        fprintf(stderr, "*** SKIPPED: no %s\n", g_llama_path);
        return;
    }
    char out[400], ref[400], got[400], cmd[1400];
    snprintf(out, sizeof out, "%s/tiny-f32.gguf", g_dir);
    snprintf(ref, sizeof ref, "%s/hf-logits.json", g_dir);
    snprintf(got, sizeof got, "%s/llama-logits.bin", g_dir);
    quantize(g_model, out, "f32", NULL, NULL, 0);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s' --forward "
             "296,116,256,264 > '%s'", QF_SOURCE_DIR, g_model, ref);
    assert_int_equal(system(cmd), 0);
    check_with_llama(out, &k_bpe, got);
    json_error_t jerr;
    json_t *want = json_load_file(ref, 0, &jerr);
    if (!json_is_array(want) || json_array_size(want) != VOCAB)
        fail_msg("%s: not %d logits (%s)", ref, VOCAB, jerr.text);
    size_t len;
    char *bytes = slurp(got, &len);
    assert_int_equal(len, VOCAB * sizeof(float));
    float logits[VOCAB];
    memcpy(logits, bytes, sizeof logits);
    double max_ref = 0, max_diff = 0;
    int worst = 0;
    for (int i = 0; i < VOCAB; i++) {
        double r = json_number_value(json_array_get(want, (size_t)i));
        max_ref = fmax(max_ref, fabs(r));
        if (fabs(r - logits[i]) > max_diff) {
            max_diff = fabs(r - logits[i]);
            worst = i;
        }
    }
    fprintf(stderr, "llama.cpp vs HF forward: max |logit| %.4f, max difference %.2e (token "
            "%d)\n", max_ref, max_diff, worst);
    if (!(max_diff <= 5e-3 * fmax(1.0, max_ref)))
        fail_msg("llama.cpp's logit %d is %.6f, HF's %.6f (max |logit| %.4f)", worst,
                 logits[worst], json_number_value(json_array_get(want, (size_t)worst)), max_ref);
    json_decref(want);
    free(bytes);
}

/* A SentencePiece-style tokenizer.json (BPE with byte_fallback) becomes tokenizer.ggml.model
 * "llama": byte tokens typed BYTE, specials CONTROL, scores ordering the merges, and
 * llama.cpp's SPM tokenizer splits "the the" into two \u2581the. */
static void test_spm_tokenizer(void **state)
{
    (void)state;
    char dir[400], out[400], cmd[1200];
    snprintf(dir, sizeof dir, "%s/spm/tiny", g_dir);
    snprintf(out, sizeof out, "%s/tiny-spm-q8_0.gguf", g_dir);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s' --spm", QF_SOURCE_DIR,
             dir);
    assert_int_equal(system(cmd), 0);
    quantize(dir, out, "q8_0", NULL, NULL, 0);
    if (!ggml_or_skip())
        return;
    struct gguf_init_params_ ip = { .no_alloc = true, .ctx = NULL };
    void *ctx = gg.init_from_file(out, ip);
    assert_non_null(ctx);
    assert_string_equal(gg.get_str(ctx, key_of(ctx, "tokenizer.ggml.model", QF_GGUF_STRING)),
                        "llama");
    assert_true(gg.find_key(ctx, "tokenizer.ggml.pre") < 0);
    int64_t tok = key_of(ctx, "tokenizer.ggml.tokens", QF_GGUF_ARRAY);
    assert_string_equal(gg.arr_str(ctx, tok, 3), "<0x00>");
    assert_string_equal(gg.arr_str(ctx, tok, 268), "\xe2\x96\x81the");
    const int32_t *types = gg.arr_data(ctx, key_of(ctx, "tokenizer.ggml.token_type",
                                                  QF_GGUF_ARRAY));
    assert_int_equal(types[0], 3);    /* <unk>: CONTROL (special) */
    assert_int_equal(types[3], 6);    /* <0x00>: BYTE */
    assert_int_equal(types[260], 1);  /* t: NORMAL */
    assert_int_equal(types[299], 5);  /* padding: UNUSED */
    int64_t sc = key_of(ctx, "tokenizer.ggml.scores", QF_GGUF_ARRAY);
    assert_int_equal(gg.arr_type(ctx, sc), QF_GGUF_F32);
    const float *scores = gg.arr_data(ctx, sc);
    assert_true(scores[266] > scores[267] && scores[267] > scores[268]);   /* merge order */
    expect_u32(ctx, "tokenizer.ggml.bos_token_id", 1);
    expect_u32(ctx, "tokenizer.ggml.eos_token_id", 2);
    expect_u32(ctx, "tokenizer.ggml.unknown_token_id", 0);
    gg.free_(ctx);
    if (have_llama())
        check_with_llama(out, &k_spm, NULL);
}

/* Two shards and one file of the same weights make the same GGUF, byte for byte. */
static void test_sharded_same_bytes(void **state)
{
    (void)state;
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/single.gguf", g_dir);
    snprintf(b, sizeof b, "%s/sharded.gguf", g_dir);
    quantize(g_model, a, "q8_0", NULL, NULL, 0);
    quantize(g_sharded, b, "q8_0", "--threads", "1", 0);
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    assert_true(x && y);
    assert_int_equal(la, lb);
    assert_true(memcmp(x, y, la) == 0);
    free(x);
    free(y);
}

/* HF -> f16 GGUF -> q4_0: the second step quantizes the f16 values, metadata carried over. */
static void test_requantize(void **state)
{
    (void)state;
    char f16[400], q[400];
    snprintf(f16, sizeof f16, "%s/tiny-f16.gguf", g_dir);
    snprintf(q, sizeof q, "%s/tiny-f16-q4_0.gguf", g_dir);
    quantize(g_model, f16, "f16", NULL, NULL, 0);
    quantize(f16, q, "q4_0", NULL, NULL, 0);
    if (!ggml_or_skip())
        return;
    struct gguf_init_params_ ip = { .no_alloc = true, .ctx = NULL };
    void *ctx = gg.init_from_file(q, ip);
    assert_non_null(ctx);
    check_metadata(ctx, 2);
    size_t len;
    char *bytes = slurp(q, &len);
    qf_gguf *src = NULL;
    char why[256];
    assert_int_equal(qf_gguf_open(f16, &src, why, sizeof why), 0);
    int q4 = qf_ggml_type_by_name(&g_ggml, "q4_0");
    for (size_t i = 0; i < qf_gguf_tensor_count(src); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(src, i);
        int64_t n = t->dims[0] * t->dims[1];
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        assert_int_equal(qf_dequantize((qf_format)t->format, t->data, x, n / t->dims[0],
                                       t->dims[0]), 0);
        check_tensor(ctx, bytes, len, t->name, t->n_dims == 1 ? 0 : q4, x,
                     t->n_dims == 1 ? 1 : t->dims[1], t->dims[0]);
        free(x);
    }
    qf_gguf_close(&src);
    free(bytes);
    gg.free_(ctx);
}

/* Rows that q4_K's 256-blocks do not divide fall back like llama.cpp: q5_0 where 32 divides
 * them, f16 otherwise; --keep sets the 1-D type; other metadata is copied. */
static void test_fallback(void **state)
{
    (void)state;
    char in[400], out[400], why[256];
    snprintf(in, sizeof in, "%s/odd.gguf", g_dir);
    snprintf(out, sizeof out, "%s/odd-q4_K.gguf", g_dir);
    static const struct { const char *name; int64_t ncols, nrows; } shapes[] = {
        { "blk.0.attn_q.weight", 256, 3 },
        { "blk.0.ffn_up.weight", 96, 4 },
        { "blk.0.ffn_down.weight", 100, 2 },
        { "blk.0.attn_norm.weight", 100, 1 },
    };
    float data[4][768];
    qf_gguf_writer *w = NULL;
    assert_int_equal(qf_gguf_writer_new(in, &w, why, sizeof why), 0);
    qf_gguf_writer_set_str(w, "general.architecture", "llama");
    qf_gguf_writer_set_str(w, "test.carried", "yes");
    for (int i = 0; i < 4; i++) {
        int64_t n = shapes[i].ncols * shapes[i].nrows;
        for (int64_t k = 0; k < n; k++)
            data[i][k] = (float)sin((double)(k * 7 + i)) * 0.1f;
        int64_t dims[2] = { shapes[i].ncols, shapes[i].nrows };
        assert_int_equal(qf_gguf_writer_add_tensor(w, shapes[i].name, 0, i == 3 ? 1 : 2, dims,
                                                   data[i], NULL), 0);
    }
    assert_int_equal(qf_gguf_writer_finish(&w, why, sizeof why), 0);

    quantize(in, out, "q4_K", "--keep", "f16", 0);
    char log[400];
    snprintf(log, sizeof log, "%s/quantize.log", g_dir);
    char *text = slurp(log, NULL);
    assert_non_null(text);
    if (!strstr(text, "2 tensors fell back from q4_K") ||
        !strstr(text, "blk.0.ffn_up.weight -> q5_0") ||
        !strstr(text, "blk.0.ffn_down.weight -> f16"))
        fail_msg("the summary does not report the fallbacks:\n%s", text);
    free(text);
    if (!ggml_or_skip())
        return;
    struct gguf_init_params_ ip = { .no_alloc = true, .ctx = NULL };
    void *ctx = gg.init_from_file(out, ip);
    assert_non_null(ctx);
    assert_string_equal(gg.get_str(ctx, key_of(ctx, "test.carried", QF_GGUF_STRING)), "yes");
    expect_u32(ctx, "general.file_type", 14);
    size_t len;
    char *bytes = slurp(out, &len);
    const char *types[4] = { "q4_K", "q5_0", "f16", "f16" };
    for (int i = 0; i < 4; i++)
        check_tensor(ctx, bytes, len, shapes[i].name, qf_ggml_type_by_name(&g_ggml, types[i]),
                     data[i], shapes[i].nrows, shapes[i].ncols);
    free(bytes);
    gg.free_(ctx);
}

/* --imatrix: a GGUF of F32 weights quantized with an importance matrix (GGUF and legacy .dat,
 * written here with the same means): the weights with an entry are ggml_quantize_chunk's
 * weighted bytes (a fallback type and the experts of a 3-D tensor included), the others its
 * plain bytes (no entry; token_embd with a wrong-sized entry), the summary counts them, the
 * quantize.imatrix.* keys are set; an entry of the wrong size or a broken file is refused. */
#define IM_N 6
static const struct { const char *name; int64_t ncols, nrows, nmat, nval; } k_im[IM_N] = {
    { "token_embd.weight", 256, 4, 1, 128 },           /* wrong size: unweighted, a note */
    { "blk.0.attn_q.weight", 256, 3, 1, 256 },
    { "blk.0.ffn_up.weight", 96, 4, 1, 96 },           /* falls back to q5_0, weighted */
    { "blk.0.ffn_down.weight", 256, 2, 1, 0 },         /* no entry */
    { "blk.0.ffn_down_exps.weight", 256, 4, 2, 512 },  /* 2 experts of 2 rows */
    { "blk.0.attn_norm.weight", 256, 1, 1, 0 },        /* 1-D */
};

static float im_value(int t, int64_t k)
{
    return (float)((k * 37 + t * 11) % 23) * 0.125f + 0.0625f;   /* exact in binary */
}

static void write_im_gguf(const char *path, int64_t bad_attn_q)
{
    char why[256];
    static float sums[IM_N][512], counts[IM_N][2];
    qf_gguf_writer *w = NULL;
    assert_int_equal(qf_gguf_writer_new(path, &w, why, sizeof why), 0);
    const char *sets[] = { "calib.txt" };
    qf_gguf_writer_set_arr_str(w, "imatrix.datasets", sets, 1);
    qf_gguf_writer_set_u32(w, "imatrix.chunk_count", 7);
    qf_gguf_writer_set_u32(w, "imatrix.chunk_size", 512);
    for (int t = 0; t < IM_N; t++) {
        int64_t nval = t == 1 && bad_attn_q ? bad_attn_q : k_im[t].nval;
        if (!nval)
            continue;
        for (int64_t k = 0; k < nval; k++)
            sums[t][k] = 4.0f * im_value(t, k);
        counts[t][0] = counts[t][1] = 4.0f;
        char name[96];
        int64_t dims[2] = { nval / k_im[t].nmat, k_im[t].nmat }, cdims[2] = { 1, k_im[t].nmat };
        snprintf(name, sizeof name, "%s.in_sum2", k_im[t].name);
        qf_gguf_writer_add_tensor(w, name, 0, 2, dims, sums[t], NULL);
        snprintf(name, sizeof name, "%s.counts", k_im[t].name);
        qf_gguf_writer_add_tensor(w, name, 0, 2, cdims, counts[t], NULL);
    }
    assert_int_equal(qf_gguf_writer_finish(&w, why, sizeof why), 0);
}

/* The legacy format of the same means: values stored as mean * ncall, ncall 4. */
static void write_im_dat(const char *path)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t n = 0;
    for (int t = 0; t < IM_N; t++)
        n += k_im[t].nval > 0;
    fwrite(&n, 4, 1, f);                    /* little-endian host, as llama-imatrix writes */
    for (int t = 0; t < IM_N; t++) {
        if (!k_im[t].nval)
            continue;
        int32_t len = (int32_t)strlen(k_im[t].name), ncall = 4, nval = (int32_t)k_im[t].nval;
        fwrite(&len, 4, 1, f);
        fwrite(k_im[t].name, 1, (size_t)len, f);
        fwrite(&ncall, 4, 1, f);
        fwrite(&nval, 4, 1, f);
        for (int32_t k = 0; k < nval; k++) {
            float v = 4.0f * im_value(t, k);
            fwrite(&v, 4, 1, f);
        }
    }
    int32_t chunks = 7, dlen = 9;
    fwrite(&chunks, 4, 1, f);
    fwrite(&dlen, 4, 1, f);
    fwrite("calib.txt", 1, 9, f);
    assert_int_equal(fclose(f), 0);
}

static void check_imatrix_output(const char *out, float (*data)[1024])
{
    struct gguf_init_params_ ip = { .no_alloc = true, .ctx = NULL };
    void *ctx = gg.init_from_file(out, ip);
    assert_non_null(ctx);
    size_t len;
    char *bytes = slurp(out, &len);
    static const char *const types[IM_N] = { "q4_K", "q4_K", "q5_0", "q4_K", "q4_K", "f32" };
    for (int t = 0; t < IM_N; t++) {
        float imp[512];
        bool use = t == 1 || t == 2 || t == 4;
        for (int64_t k = 0; k < k_im[t].nval; k++)
            imp[k] = im_value(t, k);
        check_tensor_weighted(ctx, bytes, len, k_im[t].name,
                              qf_ggml_type_by_name(&g_ggml, types[t]), data[t],
                              k_im[t].nrows, k_im[t].ncols, use ? imp : NULL,
                              use ? k_im[t].nmat : 1);
    }
    free(bytes);
    gg.free_(ctx);
}

static void test_imatrix(void **state)
{
    (void)state;
    char in[400], im[400], dat[400], out[400], out_dat[400], plain[400], why[256], log[400];
    snprintf(in, sizeof in, "%s/im-model.gguf", g_dir);
    snprintf(im, sizeof im, "%s/imatrix.gguf", g_dir);
    snprintf(dat, sizeof dat, "%s/imatrix.dat", g_dir);
    snprintf(out, sizeof out, "%s/im-q4_K.gguf", g_dir);
    snprintf(out_dat, sizeof out_dat, "%s/im-dat-q4_K.gguf", g_dir);
    snprintf(plain, sizeof plain, "%s/im-plain-q4_K.gguf", g_dir);
    snprintf(log, sizeof log, "%s/quantize.log", g_dir);
    static float data[IM_N][1024];
    qf_gguf_writer *w = NULL;
    assert_int_equal(qf_gguf_writer_new(in, &w, why, sizeof why), 0);
    qf_gguf_writer_set_str(w, "general.architecture", "llama");
    for (int t = 0; t < IM_N; t++) {
        int64_t n = k_im[t].ncols * k_im[t].nrows;
        for (int64_t k = 0; k < n; k++)
            data[t][k] = (float)sin((double)(k * 13 + t * 5)) * 0.05f;
        int64_t dims[3] = { k_im[t].ncols, k_im[t].nrows / k_im[t].nmat, k_im[t].nmat };
        uint32_t nd = t == 5 ? 1 : k_im[t].nmat > 1 ? 3 : 2;
        assert_int_equal(qf_gguf_writer_add_tensor(w, k_im[t].name, 0, nd, dims, data[t], NULL),
                         0);
    }
    assert_int_equal(qf_gguf_writer_finish(&w, why, sizeof why), 0);
    write_im_gguf(im, 0);
    write_im_dat(dat);

    quantize(in, out, "q4_K", "--imatrix", im, 0);
    char *text = slurp(log, NULL);
    if (!strstr(text, "(gguf, 4 entries, 7 chunks of calib.txt): 3 of 5 quantized tensors "
                      "weighted") ||
        !strstr(text, "no imatrix entry (quantized unweighted): blk.0.ffn_down.weight\n") ||
        !strstr(text, "token_embd.weight has 128 values") ||
        !strstr(text, "(imatrix)"))
        fail_msg("the summary does not report the imatrix use:\n%s", text);
    free(text);
    quantize(in, out_dat, "q4_K", "--imatrix", dat, 0);
    quantize(in, plain, "q4_K", NULL, NULL, 0);

    qf_gguf *g = NULL;
    assert_int_equal(qf_gguf_open(out, &g, why, sizeof why), 0);
    const char *s = NULL;
    int32_t v = 0;
    assert_int_equal(qf_gguf_get_str(g, "quantize.imatrix.file", &s), 0);
    assert_string_equal(s, im);
    assert_int_equal(qf_gguf_get_str(g, "quantize.imatrix.dataset", &s), 0);
    assert_string_equal(s, "calib.txt");
    assert_int_equal(qf_gguf_get_i32(g, "quantize.imatrix.entries_count", &v), 0);
    assert_int_equal(v, 4);
    assert_int_equal(qf_gguf_get_i32(g, "quantize.imatrix.chunks_count", &v), 0);
    assert_int_equal(v, 7);
    const qf_gguf_tensor *wq = qf_gguf_find_tensor(g, "blk.0.attn_q.weight");
    qf_gguf *gp = NULL;
    assert_int_equal(qf_gguf_open(plain, &gp, why, sizeof why), 0);
    const qf_gguf_tensor *pq = qf_gguf_find_tensor(gp, "blk.0.attn_q.weight");
    assert_true(wq && pq && wq->size == pq->size);
    if (memcmp(wq->data, pq->data, wq->size) == 0)
        fail_msg("--imatrix changed no byte of blk.0.attn_q.weight");
    qf_gguf_close(&g);
    qf_gguf_close(&gp);

    /* an entry of the wrong size is another model's: refused, naming it; a broken file too */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/imatrix-bad.gguf", g_dir);
    write_im_gguf(bad, 128);
    unlink(out);
    quantize(in, out, "q4_K", "--imatrix", bad, 1);
    text = slurp(log, NULL);
    if (!strstr(text, "'blk.0.attn_q.weight' has 128 values, the tensor needs 256"))
        fail_msg("the wrong-sized entry is not named:\n%s", text);
    free(text);
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    fputs("\x02", f);
    fclose(f);
    quantize(in, out, "q4_K", "--imatrix", bad, 1);
    text = slurp(log, NULL);
    if (!strstr(text, "imatrix-bad.gguf"))
        fail_msg("the broken imatrix file is not named:\n%s", text);
    free(text);
    assert_false(exists(out));

    if (!ggml_or_skip())
        return;
    quantize(in, out, "q4_K", "--imatrix", im, 0);
    check_imatrix_output(out, data);
    check_imatrix_output(out_dat, data);
}

/* Refusals: one clear line, the documented exit status, and no OUT (nor a temporary file). */
static void test_refusals(void **state)
{
    (void)state;
    char sub[400], out[500], bad[400], garbage[400], log[400];
    snprintf(sub, sizeof sub, "%s/refusals", g_dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(out, sizeof out, "%s/out.gguf", sub);
    snprintf(log, sizeof log, "%s/quantize.log", g_dir);

    quantize(g_model, out, "q9_9", NULL, NULL, 2);          /* not a format */
    quantize(g_model, out, "int4_g32", NULL, NULL, 2);      /* a format GGUF has no type for */
    quantize(g_model, out, "q4_K", "--threads", "0", 2);
    quantize(g_model, out, "q4_K", "--keep", "q4_0", 2);    /* 1-D tensors stay float */
    char *argv_notype[] = { QF_BINARY, "quantize", g_model, out, NULL };
    assert_int_equal(run_cmd(argv_notype, log), 2);

    snprintf(bad, sizeof bad, "%s/no-such-model", g_dir);
    quantize(bad, out, "q4_K", NULL, NULL, 1);
    char *text = slurp(log, NULL);
    if (!strstr(text, "no-such-model"))
        fail_msg("the error does not name the input:\n%s", text);
    free(text);

    snprintf(garbage, sizeof garbage, "%s/garbage.gguf", g_dir);
    FILE *f = fopen(garbage, "wb");
    assert_non_null(f);
    fputs("this is not a GGUF file, only text", f);
    fclose(f);
    quantize(garbage, out, "q4_K", NULL, NULL, 1);

    /* A checkpoint with an F64 norm: refused before anything is written. */
    char f64dir[400], cmd[1200];
    snprintf(f64dir, sizeof f64dir, "%s/f64/tiny", g_dir);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s' --f64-norm",
             QF_SOURCE_DIR, f64dir);
    assert_int_equal(system(cmd), 0);
    quantize(f64dir, out, "q4_K", NULL, NULL, 1);
    text = slurp(log, NULL);
    if (!strstr(text, "model.norm.weight") || !strstr(text, "F64"))
        fail_msg("the error does not name the tensor and its dtype:\n%s", text);
    free(text);

    /* A bare safetensors file: the converter needs the folder around it. */
    char bare[400];
    snprintf(bare, sizeof bare, "%s/model.safetensors", g_model);
    quantize(bare, out, "q4_K", NULL, NULL, 1);
    text = slurp(log, NULL);
    if (!strstr(text, "checkpoint folder"))
        fail_msg("a bare safetensors file is not explained:\n%s", text);
    free(text);

    /* A folder that is not a checkpoint, and an output folder that does not exist. */
    quantize(sub, out, "q4_K", NULL, NULL, 1);
    char nodir[500];
    snprintf(nodir, sizeof nodir, "%s/missing/out.gguf", sub);
    quantize(g_model, nodir, "q4_K", NULL, NULL, 1);

    assert_false(exists(out));
    assert_int_equal(count_entries(sub, "out.gguf"), 0);
}

/* --- setup --------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-test-quantize-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_model, sizeof g_model, "%s/a/tiny", g_dir);
    snprintf(g_sharded, sizeof g_sharded, "%s/b/tiny", g_dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s' && "
             "python3 '%s/tests/make_tiny_llama.py' '%s' --shards 2", QF_SOURCE_DIR, g_model,
             QF_SOURCE_DIR, g_sharded);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot generate the tiny checkpoint: %s\n", cmd);
        return -1;
    }
    g_have_ggml = qf_ggml_open(&g_ggml, NULL, QF_GGML_CPU_BASELINE, g_ggml_why,
                               sizeof g_ggml_why) == 0 && load_gguf_api();
    return 0;
}

/* QF_KEEP_TEMP=1 keeps the folder (files and logs) for a look after a failure. */
static int teardown(void **state)
{
    (void)state;
    const char *keep = getenv("QF_KEEP_TEMP");
    if (keep && strcmp(keep, "1") == 0) {
        fprintf(stderr, "kept %s\n", g_dir);
        return 0;
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (system("python3 -c 'import json, struct, array' 2>/dev/null") != 0) {
        const char *req = getenv("QF_REQUIRE_GGML");
        fprintf(stderr, "\n*** SKIPPED: test_quantize needs python3 to write its checkpoint\n\n");
        return req && strcmp(req, "1") == 0 ? 1 : 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_type),
        cmocka_unit_test(test_llama_matches_hf),
        cmocka_unit_test(test_spm_tokenizer),
        cmocka_unit_test(test_sharded_same_bytes),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_imatrix),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
