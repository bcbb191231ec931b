/* llama_logits.c - llama.cpp's logits for a token sequence, as a small program the tests run.
 *
 *   llama_logits LIBDIR MODEL.gguf ID,ID,... OUT.bin
 *   llama_logits LIBDIR MODEL.gguf --tokenize TEXT.txt OUT.bin
 *
 * Loads libllama from LIBDIR (the npm package @node-llama-cpp/linux-x64, scripts/fetch-ggml.sh)
 * with dlopen, evaluates the tokens one at a time (so every position's logits are the last
 * position's of one llama_decode call: no batch layout to build), and writes n x n_vocab raw
 * floats to OUT.bin; --tokenize writes llama_tokenize's ids of the text (int32, no BOS, special
 * tokens not parsed) instead. A separate process because llama.cpp prints to stderr and may abort on a
 * bad file: the test reads the exit status. Exit codes: 0 ok, 2 usage, 3 library, 4 model.
 *
 * llama.h's parameter structs are passed and returned by value and change between releases;
 * we only take them from llama_*_default_params() and hand them back unchanged, so an opaque
 * buffer larger than any release's struct stands in for them (on the x86-64 and AArch64 ABIs a
 * struct this size travels through memory, and the callee reads its own fields from the
 * front). llama_batch from llama_batch_get_one travels the same way.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opaque {
    uint64_t words[128];
} opaque;

typedef struct api {
    void (*load_all_from_path)(const char *dir);
    void (*backend_init)(void);
    opaque (*model_default_params)(void);
    opaque (*context_default_params)(void);
    void *(*model_load_from_file)(const char *path, opaque params);
    void *(*init_from_model)(void *model, opaque params);
    const void *(*model_get_vocab)(const void *model);
    int32_t (*vocab_n_tokens)(const void *vocab);
    opaque (*batch_get_one)(int32_t *tokens, int32_t n_tokens);
    int32_t (*tokenize)(const void *vocab, const char *text, int32_t text_len, int32_t *tokens,
                        int32_t n_tokens_max, bool add_special, bool parse_special);
    int32_t (*decode)(void *ctx, opaque batch);
    float *(*get_logits_ith)(void *ctx, int32_t i);
    void (*free_ctx)(void *ctx);
    void (*model_free)(void *model);
} api;

#define MAX_TOKENS 4096

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: llama_logits LIBDIR MODEL.gguf ID,ID,... OUT.bin\n");
        return 2;
    }
    static int32_t tokens[MAX_TOKENS];
    int n = 0;
    const bool tokenize = strcmp(argv[3], "--tokenize") == 0;
    if (tokenize && argc != 6) {
        fprintf(stderr, "usage: llama_logits LIBDIR MODEL.gguf --tokenize TEXT.txt OUT.bin\n");
        return 2;
    }
    for (char *p = argv[3]; !tokenize && *p && n < MAX_TOKENS;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "llama_logits: bad token list '%s'\n", argv[3]);
            return 2;
        }
        tokens[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/libllama.v0.5.0.so", argv[1]);
    char ggml_path[2048];
    snprintf(ggml_path, sizeof ggml_path, "%s/libggml.v0.5.0.so", argv[1]);
    void *ggml = dlopen(ggml_path, RTLD_NOW | RTLD_GLOBAL);
    void *lib = ggml ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (!lib) {
        fprintf(stderr, "llama_logits: cannot load %s: %s\n", ggml ? path : ggml_path,
                dlerror());
        return 3;
    }
    api a;
    const struct { void *slot; const char *name; } syms[] = {
        { &a.load_all_from_path, "ggml_backend_load_all_from_path" },
        { &a.backend_init, "llama_backend_init" },
        { &a.model_default_params, "llama_model_default_params" },
        { &a.context_default_params, "llama_context_default_params" },
        { &a.model_load_from_file, "llama_model_load_from_file" },
        { &a.init_from_model, "llama_init_from_model" },
        { &a.model_get_vocab, "llama_model_get_vocab" },
        { &a.vocab_n_tokens, "llama_vocab_n_tokens" },
        { &a.batch_get_one, "llama_batch_get_one" },
        { &a.tokenize, "llama_tokenize" },
        { &a.decode, "llama_decode" },
        { &a.get_logits_ith, "llama_get_logits_ith" },
        { &a.free_ctx, "llama_free" },
        { &a.model_free, "llama_model_free" },
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = dlsym(lib, syms[i].name);
        if (!p)
            p = dlsym(ggml, syms[i].name);
        if (!p) {
            fprintf(stderr, "llama_logits: no symbol %s in %s\n", syms[i].name, path);
            return 3;
        }
        memcpy(syms[i].slot, &p, sizeof p);
    }
    /* the package builds ggml with dynamically loaded backends: the CPU one must be loaded */
    a.load_all_from_path(argv[1]);
    a.backend_init();
    void *model = a.model_load_from_file(argv[2], a.model_default_params());
    if (!model) {
        fprintf(stderr, "llama_logits: cannot load %s\n", argv[2]);
        return 4;
    }
    int32_t vocab = a.vocab_n_tokens(a.model_get_vocab(model));
    if (tokenize) {
        static char text[1 << 16];
        FILE *tf = fopen(argv[4], "rb");
        size_t len = tf ? fread(text, 1, sizeof text, tf) : 0;
        int32_t nt = tf ? a.tokenize(a.model_get_vocab(model), text, (int32_t)len, tokens,
                                     MAX_TOKENS, false, false) : -1;
        FILE *of = fopen(argv[5], "wb");
        if (!tf || nt < 0 || !of || fwrite(tokens, sizeof *tokens, (size_t)nt, of) != (size_t)nt ||
            fclose(of) != 0) {
            fprintf(stderr, "llama_logits: tokenizing %s into %s failed (%d)\n", argv[4],
                    argv[5], nt);
            return 4;
        }
        fclose(tf);
        a.model_free(model);
        return 0;
    }
    void *ctx = a.init_from_model(model, a.context_default_params());
    FILE *f = fopen(argv[4], "wb");
    if (!ctx || !f) {
        fprintf(stderr, "llama_logits: cannot create a context or %s\n", argv[4]);
        return 4;
    }
    for (int i = 0; i < n; i++) {
        if (a.decode(ctx, a.batch_get_one(&tokens[i], 1)) != 0) {
            fprintf(stderr, "llama_logits: llama_decode failed at token %d\n", i);
            return 4;
        }
        const float *lg = a.get_logits_ith(ctx, -1);
        if (!lg || fwrite(lg, sizeof *lg, (size_t)vocab, f) != (size_t)vocab) {
            fprintf(stderr, "llama_logits: no logits or cannot write at token %d\n", i);
            return 4;
        }
    }
    if (fclose(f) != 0)
        return 4;
    a.free_ctx(ctx);
    a.model_free(model);
    return 0;
}
