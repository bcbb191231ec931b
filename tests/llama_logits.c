/* llama_logits.c - llama.cpp's logits for a token sequence, as a small program the tests run.
 *
 *   llama_logits LIBDIR MODEL.gguf ID,ID,... OUT.bin
 *   llama_logits LIBDIR MODEL.gguf --tokenize TEXT.txt OUT.bin
 *
 * Loads libllama from LIBDIR (the npm package @node-llama-cpp/linux-x64, scripts/fetch-ggml.sh)
 * with dlopen, evaluates the tokens one at a time (so every position's logits are the last
 * position's of one llama_decode call: no batch layout to build) in a context with llama.cpp's
 * default parameters (n_ctx 512, f16 KV cache, flash_attn "auto", which the CPU backend turns
 * on: model/llama.c's attention follows that path), and writes n x n_vocab raw
 * floats to OUT.bin; --tokenize writes llama_tokenize's ids of the text (int32, no BOS, special
 * tokens not parsed) instead. A separate process because llama.cpp prints to stderr and may abort on a
 * bad file: the test reads the exit status. Exit codes: 0 ok, 2 usage, 3 library, 4 model.
 *
 * libllama is loaded and its entry points looked up by agent/llama_peer.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama_peer.h"

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
    qf_llama_peer a;
    char why[1400];
    if (qf_llama_peer_open(&a, argv[1], false, why, sizeof why) != 0) {
        fprintf(stderr, "llama_logits: %s\n", why);
        return 3;
    }
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
