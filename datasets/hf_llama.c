/* hf_llama.c - Hugging Face llama checkpoint folder -> GGUF model (qf_hf_llama.h).
 *
 * Everything here mirrors what llama.cpp's convert_hf_to_gguf.py does for LlamaForCausalLM,
 * because llama.cpp is the consumer: the metadata keys and their types are gguf-py's, the
 * tensor names llama-arch.cpp's, q_proj/k_proj are permuted as LlamaModel.permute does, the
 * vocabulary is laid out as get_vocab_base() lays it out (ids without a token become
 * "[PAD<id>]" UNUSED tokens, added special tokens are CONTROL, other added ones USER_DEFINED),
 * and special ids are found the way gguf.SpecialVocab finds them (tokenizer_config.json's
 * *_token strings looked up in the vocabulary, then config.json's *_token_id).
 * Two choices differ and say so where made: byte-fallback (SentencePiece-style) tokenizers get
 * scores from their merge ranks instead of convert's flat -1000, and the pre-tokenizer name is
 * recognised from tokenizer.json's pre_tokenizer rather than by hashing a tokenization.
 *
 * Opening reads the JSON files whole (they are small next to the weights) and keeps only what
 * the GGUF needs; the weights stay mapped by qf_safetensors until destroy. Not hot.
 */
#include "qf_hf_llama.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_err.h"

/* gguf-py's TokenType values, as llama.cpp reads tokenizer.ggml.token_type. */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5,
       TOK_BYTE = 6 };

#define MAX_DIM  (INT64_C(1) << 24)  /* any hyperparameter above this is a broken config */
#define MAX_TENSORS_PER_LAYER 16
/* Sort keys of the GGUF order (map_name): embeddings, rope_freqs, blocks, then the head. */
enum { ORDER_EMBD = 0, ORDER_ROPE = 1, ORDER_BLOCK0 = 100, ORDER_NORM = 1 << 29,
       ORDER_OUTPUT = (1 << 29) + 1 };

/* HF names of a block's tensors (after "model.layers.N.") and their GGUF names (after
 * "blk.N."), in the order the GGUF lists them. */
static const struct {
    const char *hf;
    const char *gguf;
} k_layer_names[] = {
    { "input_layernorm",          "attn_norm" },
    { "self_attn.q_proj",         "attn_q" },
    { "self_attn.k_proj",         "attn_k" },
    { "self_attn.v_proj",         "attn_v" },
    { "self_attn.o_proj",         "attn_output" },
    { "post_attention_layernorm", "ffn_norm" },
    { "mlp.gate_proj",            "ffn_gate" },
    { "mlp.up_proj",              "ffn_up" },
    { "mlp.down_proj",            "ffn_down" },
};
#define N_LAYER_NAMES (sizeof k_layer_names / sizeof k_layer_names[0])

typedef struct special_ids {
    int64_t bos, eos, unk, pad;      /* -1 if none */
    int     add_bos, add_eos;        /* -1 if unset, else 0/1 */
} special_ids;

struct qf_hf_llama {
    char                *dir;
    char                *name;          /* general.name: the folder's base name */
    qf_hf_llama_hparams  hp;
    /* RoPE scaling */
    char                *rope_scaling;  /* "linear" or NULL */
    double               rope_factor;
    float               *rope_freqs;    /* llama3 scaling: head_dim / 2 factors, or NULL */
    /* tokenizer */
    char                *tok_model;     /* "gpt2" or "llama" */
    char                *tok_pre;       /* "llama-bpe", "smollm", "gpt-2", "default"; gpt2 only */
    char               **tokens;        /* n_vocab strings */
    int32_t             *tok_types;
    float               *tok_scores;    /* "llama" only */
    char               **merges;
    size_t               n_merges;
    special_ids          special;
    char                *chat_template;
    /* tensors */
    qf_safetensors      *st;
    qf_hf_tensor        *tensors;
    size_t               n_tensors;
};

/* --- small helpers ----------------------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

bool qf_hf_llama_is_checkpoint(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return false;
    char *p = join(dir, "config.json");
    bool ok = p && file_exists(p);
    free(p);
    return ok;
}

/* Loads dir/name as JSON. optional: a missing file gives *out = NULL and 0. */
static int load_json(const char *dir, const char *name, bool optional, json_t **out)
{
    *out = NULL;
    char *p = join(dir, name);
    if (!p)
        return QF_ENOMEM;
    if (!file_exists(p)) {
        int err = optional ? 0 : qf_errorf(QF_ENOENT, "%s: no such file (a Hugging Face "
                                           "checkpoint folder needs it)", p);
        free(p);
        return err;
    }
    json_error_t jerr;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        int err = j ? qf_errorf(QF_EPARSE, "%s: not a JSON object", p)
                    : qf_errorf(QF_EPARSE, "%s: line %d column %d: %s", p, jerr.line,
                                jerr.column, jerr.text);
        json_decref(j);
        free(p);
        return err;
    }
    free(p);
    *out = j;
    return 0;
}

/* An integer field of config.json in [lo, MAX_DIM]; def < 0 means required. */
static int cfg_int(const json_t *cfg, const char *key, int64_t def, int64_t lo, int64_t *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (def < 0)
            return qf_errorf(QF_EPARSE, "config.json: '%s' is missing", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > MAX_DIM)
        return qf_errorf(QF_EPARSE, "config.json: '%s' is not an integer in [%" PRId64 ", %"
                         PRId64 "]", key, lo, MAX_DIM);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int cfg_real(const json_t *cfg, const char *key, double def, double *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
        return qf_errorf(QF_EPARSE, "config.json: '%s' is not a positive number", key);
    *out = json_number_value(v);
    return 0;
}

/* --- config.json ------------------------------------------------------------------------------- */

static bool is_llama_family(const json_t *cfg)
{
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt && (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0))
        return true;
    const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
    return arch && (strcmp(arch, "LlamaForCausalLM") == 0 || strcmp(arch, "LlamaModel") == 0 ||
                    strcmp(arch, "MistralForCausalLM") == 0);
}

/* convert_hf_to_gguf.py LlamaModel: rope_type "llama3" becomes a rope_freqs tensor of
 * per-dimension factors, "linear" becomes two keys; other kinds are not llama's. */
static int read_rope_scaling(qf_hf_llama *m, const json_t *cfg)
{
    json_t *rs = json_object_get(cfg, "rope_scaling");
    if (!rs || json_is_null(rs))
        return 0;
    if (!json_is_object(rs))
        return qf_errorf(QF_EPARSE, "config.json: 'rope_scaling' is not an object");
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type)
        type = json_string_value(json_object_get(rs, "type"));
    if (!type)
        return qf_errorf(QF_EPARSE, "config.json: 'rope_scaling' has no 'rope_type'");
    double factor;
    if (strcmp(type, "linear") == 0) {
        int err = cfg_real(rs, "factor", 1.0, &factor);
        if (err)
            return err;
        m->rope_factor = factor;
        return (m->rope_scaling = strdup("linear")) ? 0 : QF_ENOMEM;
    }
    if (strcmp(type, "llama3") != 0) {
        fprintf(stderr, "qfleet: warning: config.json: rope_scaling type '%s' is not written "
                "to the GGUF (llama.cpp's llama converter ignores it too)\n", type);
        return 0;
    }
    double lo_f, hi_f, old_ctx;
    int err = cfg_real(rs, "factor", 8.0, &factor);
    if (!err)
        err = cfg_real(rs, "low_freq_factor", 1.0, &lo_f);
    if (!err)
        err = cfg_real(rs, "high_freq_factor", 4.0, &hi_f);
    if (!err)
        err = cfg_real(rs, "original_max_position_embeddings", 8192.0, &old_ctx);
    if (err)
        return err;
    int64_t dim = m->hp.head_dim;
    m->rope_freqs = malloc((size_t)(dim / 2) * sizeof *m->rope_freqs);
    if (!m->rope_freqs)
        return QF_ENOMEM;
    double lo_wavelen = old_ctx / lo_f, hi_wavelen = old_ctx / hi_f;
    for (int64_t i = 0; i < dim / 2; i++) {
        double freq = 1.0 / pow(m->hp.rope_theta, (double)(2 * i) / (double)dim);
        double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < hi_wavelen) {
            f = 1.0;
        } else if (wavelen > lo_wavelen) {
            f = factor;
        } else {
            double smooth = (old_ctx / wavelen - lo_f) / (hi_f - lo_f);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        m->rope_freqs[i] = (float)f;
    }
    return 0;
}

static int read_config(qf_hf_llama *m, const json_t *cfg)
{
    if (!is_llama_family(cfg))
        return qf_errorf(QF_EUNSUP, "%s/config.json: not a llama-family model (model_type "
                         "'%s'; llama and mistral are converted)", m->dir,
                         json_string_value(json_object_get(cfg, "model_type")) ?
                         json_string_value(json_object_get(cfg, "model_type")) : "?");
    qf_hf_llama_hparams *h = &m->hp;
    int err;
    if ((err = cfg_int(cfg, "hidden_size", -1, 1, &h->n_embd)) ||
        (err = cfg_int(cfg, "intermediate_size", -1, 1, &h->n_ff)) ||
        (err = cfg_int(cfg, "num_hidden_layers", -1, 1, &h->n_layer)) ||
        (err = cfg_int(cfg, "num_attention_heads", -1, 1, &h->n_head)) ||
        (err = cfg_int(cfg, "num_key_value_heads", h->n_head, 1, &h->n_head_kv)) ||
        (err = cfg_int(cfg, "vocab_size", 32000, 1, &h->n_vocab)) ||
        (err = cfg_int(cfg, "max_position_embeddings", 2048, 1, &h->n_ctx_train)) ||
        (err = cfg_real(cfg, "rms_norm_eps", 1e-6, &h->rms_eps)) ||
        (err = cfg_real(cfg, "rope_theta", 10000.0, &h->rope_theta)))
        return err;
    if (h->n_embd % h->n_head != 0 && !json_object_get(cfg, "head_dim"))
        return qf_errorf(QF_EPARSE, "config.json: hidden_size %" PRId64 " is not a multiple "
                         "of num_attention_heads %" PRId64, h->n_embd, h->n_head);
    if ((err = cfg_int(cfg, "head_dim", h->n_embd / h->n_head, 2, &h->head_dim)))
        return err;
    if (h->head_dim % 2 != 0)
        return qf_errorf(QF_EPARSE, "config.json: head_dim %" PRId64 " is odd (RoPE rotates "
                         "pairs)", h->head_dim);
    if (h->n_head % h->n_head_kv != 0)
        return qf_errorf(QF_EPARSE, "config.json: num_attention_heads %" PRId64 " is not a "
                         "multiple of num_key_value_heads %" PRId64, h->n_head, h->n_head_kv);
    json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie))
        return qf_errorf(QF_EPARSE, "config.json: 'tie_word_embeddings' is not a boolean");
    h->tied_embeddings = tie && json_is_true(tie);
    return read_rope_scaling(m, cfg);
}

/* --- tokenizer.json ---------------------------------------------------------------------------- */

/* A token id from config.json: an integer, or the first of an array (llama 3 lists several
 * eos ids; gguf.SpecialVocab keeps the first too). */
static int64_t cfg_token_id(const json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int64_t find_token(const qf_hf_llama *m, const char *text)
{
    for (int64_t i = 0; i < m->hp.n_vocab; i++)
        if (m->tokens[i] && strcmp(m->tokens[i], text) == 0)
            return i;
    return -1;
}

/* convert's does_token_look_special: added tokens some models forget to mark special. */
static bool looks_special(const char *t)
{
    size_t n = strlen(t);
    if (strcmp(t, "<pad>") == 0 || strcmp(t, "<mask>") == 0)
        return true;
    return n >= 4 && strncmp(t, "<|", 2) == 0 && strcmp(t + n - 2, "|>") == 0;
}

static bool is_byte_token(const char *t)
{
    unsigned v;
    char tail;
    return strlen(t) == 6 && sscanf(t, "<0x%2x%c", &v, &tail) == 2 && tail == '>';
}

/* Sets tokens[id] = text (owned copy); a second token for one id is an error. */
static int put_token(qf_hf_llama *m, int64_t id, const char *text, const char *where)
{
    if (id < 0 || id >= m->hp.n_vocab)
        return qf_errorf(QF_EPARSE, "tokenizer.json: %s: token '%s' has id %" PRId64 ", outside "
                         "vocab_size %" PRId64 " of config.json", where, text, id, m->hp.n_vocab);
    if (m->tokens[id]) {
        if (strcmp(m->tokens[id], text) == 0)
            return 0;   /* added tokens usually repeat a vocabulary entry */
        return qf_errorf(QF_EPARSE, "tokenizer.json: %s: id %" PRId64 " is both '%s' and '%s'",
                         where, id, m->tokens[id], text);
    }
    return (m->tokens[id] = strdup(text)) ? 0 : QF_ENOMEM;
}

static int read_merges(qf_hf_llama *m, const json_t *model)
{
    json_t *mg = json_object_get(model, "merges");
    if (!mg || json_is_null(mg))
        return 0;
    if (!json_is_array(mg))
        return qf_errorf(QF_EPARSE, "tokenizer.json: 'model.merges' is not an array");
    size_t n = json_array_size(mg);
    m->merges = calloc(n ? n : 1, sizeof *m->merges);
    if (!m->merges)
        return QF_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(mg, i);
        char *s = NULL;
        if (json_is_string(e) && strchr(json_string_value(e), ' ')) {
            s = strdup(json_string_value(e));
        } else if (json_is_array(e) && json_array_size(e) == 2 &&
                   json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
            /* newer tokenizers write ["a", "b"]; GGUF wants "a b" */
            const char *a = json_string_value(json_array_get(e, 0));
            const char *b = json_string_value(json_array_get(e, 1));
            size_t len = strlen(a) + strlen(b) + 2;
            if ((s = malloc(len)))
                snprintf(s, len, "%s %s", a, b);
        } else {
            return qf_errorf(QF_EPARSE, "tokenizer.json: 'model.merges'[%zu] is neither \"a b\" "
                             "nor [\"a\", \"b\"]", i);
        }
        if (!s)
            return QF_ENOMEM;
        m->merges[m->n_merges++] = s;
    }
    return 0;
}

/* llama.cpp's name of the pre-tokenizer, recognised from tokenizer.json's description of it.
 * (convert_hf_to_gguf.py hashes a test tokenization instead, which needs the tokenizer.) */
static const char *pre_tokenizer_name(const json_t *tok)
{
    static const char llama3_regex[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
        "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    json_t *pre = json_object_get(tok, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(pre, "type"));
    if (!type)
        return NULL;
    if (strcmp(type, "ByteLevel") == 0)
        return "gpt-2";
    if (strcmp(type, "Sequence") != 0)
        return NULL;
    json_t *seq = json_object_get(pre, "pretokenizers");
    const char *t0 = json_string_value(json_object_get(json_array_get(seq, 0), "type"));
    const char *t1 = json_string_value(json_object_get(json_array_get(seq, 1), "type"));
    if (json_array_size(seq) != 2 || !t0 || !t1 || strcmp(t1, "ByteLevel") != 0)
        return NULL;
    if (strcmp(t0, "Split") == 0) {
        json_t *pat = json_object_get(json_array_get(seq, 0), "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        if (re && strcmp(re, llama3_regex) == 0)
            return "llama-bpe";
    }
    if (strcmp(t0, "Digits") == 0 &&
        json_is_true(json_object_get(json_array_get(seq, 0), "individual_digits")))
        return "smollm";
    return NULL;
}

/* The id of a special token named in tokenizer_config.json ("bos_token": "<s>" or
 * {"content": "<s>"}), else config.json's id key; -1 if neither. */
static int64_t special_id(const qf_hf_llama *m, const json_t *tcfg, const json_t *cfg,
                          const char *tok_key, const char *id_key)
{
    json_t *v = json_object_get(tcfg, tok_key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (json_is_string(v)) {
        int64_t id = find_token(m, json_string_value(v));
        if (id >= 0)
            return id;
    }
    int64_t id = cfg_token_id(cfg, id_key);
    return id < m->hp.n_vocab ? id : -1;
}

static int read_tokenizer(qf_hf_llama *m, const json_t *tok, const json_t *tcfg,
                          const json_t *cfg)
{
    json_t *model = json_object_get(tok, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type && json_is_object(json_object_get(model, "vocab")) &&
        json_object_get(model, "merges"))
        type = "BPE";   /* older files leave the type out */
    if (!type || strcmp(type, "BPE") != 0)
        return qf_errorf(QF_EUNSUP, "%s/tokenizer.json: model type '%s' (only BPE tokenizers "
                         "are converted)", m->dir, type ? type : "?");
    bool spm = json_is_true(json_object_get(model, "byte_fallback"));
    int64_t n = m->hp.n_vocab;
    m->tokens = calloc((size_t)n, sizeof *m->tokens);
    m->tok_types = calloc((size_t)n, sizeof *m->tok_types);
    if (!m->tokens || !m->tok_types)
        return QF_ENOMEM;

    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return qf_errorf(QF_EPARSE, "%s/tokenizer.json: 'model.vocab' is not an object", m->dir);
    const char *text;
    json_t *idv;
    int err;
    json_object_foreach(vocab, text, idv) {
        if (!json_is_integer(idv))
            return qf_errorf(QF_EPARSE, "tokenizer.json: 'model.vocab'.'%s' is not an integer",
                             text);
        if ((err = put_token(m, (int64_t)json_integer_value(idv), text, "model.vocab")))
            return err;
        m->tok_types[json_integer_value(idv)] = TOK_NORMAL;
    }
    json_t *added = json_object_get(tok, "added_tokens");
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        const char *content = json_string_value(json_object_get(a, "content"));
        json_t *id = json_object_get(a, "id");
        if (!content || !json_is_integer(id))
            return qf_errorf(QF_EPARSE, "tokenizer.json: 'added_tokens'[%zu] lacks 'id' or "
                             "'content'", i);
        if ((err = put_token(m, (int64_t)json_integer_value(id), content, "added_tokens")))
            return err;
        bool special = json_is_true(json_object_get(a, "special")) || looks_special(content);
        m->tok_types[json_integer_value(id)] = special ? TOK_CONTROL : TOK_USER_DEFINED;
    }
    int64_t holes = 0;
    for (int64_t id = 0; id < n; id++) {
        if (m->tokens[id]) {
            if (spm && m->tok_types[id] == TOK_NORMAL && is_byte_token(m->tokens[id]))
                m->tok_types[id] = TOK_BYTE;
            continue;
        }
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%" PRId64 "]", id);
        if (!(m->tokens[id] = strdup(pad)))
            return QF_ENOMEM;
        m->tok_types[id] = TOK_UNUSED;
        holes++;
    }
    if (holes == n)
        return qf_errorf(QF_EPARSE, "%s/tokenizer.json: the vocabulary is empty", m->dir);
    if ((err = read_merges(m, model)))
        return err;

    if (spm) {
        /* SentencePiece BPE: a piece's score is its merge priority, so llama.cpp's SPM
         * tokenizer merges in the order the merges list gives (convert writes -1000 for all,
         * which loses that order). */
        m->tok_model = strdup("llama");
        m->tok_scores = calloc((size_t)n, sizeof *m->tok_scores);
        if (!m->tok_model || !m->tok_scores)
            return QF_ENOMEM;
        for (int64_t id = 0; id < n; id++)
            m->tok_scores[id] = m->tok_types[id] == TOK_NORMAL ? -1000.0f : 0.0f;
        for (size_t r = 0; r < m->n_merges; r++) {
            char *sp = strchr(m->merges[r], ' ');
            size_t la = (size_t)(sp - m->merges[r]);
            char buf[1024];
            if (la + strlen(sp + 1) >= sizeof buf)
                continue;
            memcpy(buf, m->merges[r], la);
            strcpy(buf + la, sp + 1);
            json_t *idj = json_object_get(vocab, buf);
            if (json_is_integer(idj) && m->tok_scores[json_integer_value(idj)] == -1000.0f)
                m->tok_scores[json_integer_value(idj)] = -(float)r;
        }
    } else {
        m->tok_model = strdup("gpt2");
        const char *pre = pre_tokenizer_name(tok);
        if (!pre) {
            fprintf(stderr, "qfleet: warning: %s/tokenizer.json: pre-tokenizer not recognised; "
                    "writing tokenizer.ggml.pre = \"default\"\n", m->dir);
            pre = "default";
        }
        m->tok_pre = strdup(pre);
        if (!m->tok_model || !m->tok_pre)
            return QF_ENOMEM;
        if (m->n_merges == 0)
            return qf_errorf(QF_EPARSE, "%s/tokenizer.json: 'model.merges' is empty (llama.cpp "
                             "needs the merges of a BPE vocabulary)", m->dir);
    }

    special_ids *s = &m->special;
    s->bos = special_id(m, tcfg, cfg, "bos_token", "bos_token_id");
    s->eos = special_id(m, tcfg, cfg, "eos_token", "eos_token_id");
    s->unk = special_id(m, tcfg, cfg, "unk_token", "unk_token_id");
    s->pad = special_id(m, tcfg, cfg, "pad_token", "pad_token_id");
    json_t *ab = json_object_get(tcfg, "add_bos_token");
    json_t *ae = json_object_get(tcfg, "add_eos_token");
    s->add_bos = json_is_boolean(ab) ? json_is_true(ab) : -1;
    s->add_eos = json_is_boolean(ae) ? json_is_true(ae) : -1;
    const char *tmpl = json_string_value(json_object_get(tcfg, "chat_template"));
    if (tmpl && !(m->chat_template = strdup(tmpl)))
        return QF_ENOMEM;
    return 0;
}

/* --- tensors ----------------------------------------------------------------------------------- */

/* Maps an HF tensor name to its GGUF name and the HF shape llama expects (out, in). Returns
 * 0 and fills gguf/rows/cols/permute; 1 for a tensor to skip; QF_EPARSE for an unknown name. */
static int map_name(const qf_hf_llama *m, const char *hf, char *gguf, size_t gguf_len,
                    int64_t *rows, int64_t *cols, int64_t *permute, int *order)
{
    const qf_hf_llama_hparams *h = &m->hp;
    int64_t q_dim = h->n_head * h->head_dim, kv_dim = h->n_head_kv * h->head_dim;
    *permute = 0;
    *cols = 1;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(gguf, gguf_len, "token_embd.weight");
        *rows = h->n_vocab, *cols = h->n_embd, *order = ORDER_EMBD;
        return 0;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(gguf, gguf_len, "output_norm.weight");
        *rows = h->n_embd, *order = ORDER_NORM;
        return 0;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        snprintf(gguf, gguf_len, "output.weight");
        *rows = h->n_vocab, *cols = h->n_embd, *order = ORDER_OUTPUT;
        return 0;
    }
    const char *pfx = "model.layers.";
    if (strncmp(hf, pfx, strlen(pfx)) != 0)
        return QF_EPARSE;
    const char *p = hf + strlen(pfx);
    char *end;
    errno = 0;
    long blk = strtol(p, &end, 10);
    /* plain decimal only: "00", " 0" or "+0" would name block 0 a second time */
    if (end == p || *end != '.' || errno || blk < 0 || blk >= h->n_layer || *p < '0' ||
        *p > '9' || (*p == '0' && end - p > 1))
        return QF_EPARSE;
    p = end + 1;
    if (strcmp(p, "self_attn.rotary_emb.inv_freq") == 0)
        return 1;  /* recomputed by llama.cpp from rope_theta; convert drops it too */
    for (size_t i = 0; i < N_LAYER_NAMES; i++) {
        size_t n = strlen(k_layer_names[i].hf);
        if (strncmp(p, k_layer_names[i].hf, n) != 0 || p[n] != '.')
            continue;
        const char *kind = p + n + 1;
        bool bias = strcmp(kind, "bias") == 0;
        if (!bias && strcmp(kind, "weight") != 0)
            return QF_EPARSE;
        snprintf(gguf, gguf_len, "blk.%ld.%s.%s", blk, k_layer_names[i].gguf, kind);
        *order = ORDER_BLOCK0 + (int)blk * MAX_TENSORS_PER_LAYER + (int)i * 2 + bias;
        const char *g = k_layer_names[i].gguf;
        if (strcmp(g, "attn_norm") == 0 || strcmp(g, "ffn_norm") == 0) {
            if (bias)
                return QF_EPARSE;
            *rows = h->n_embd;
            return 0;
        }
        if (strcmp(g, "attn_q") == 0)
            *rows = q_dim, *cols = h->n_embd, *permute = h->n_head;
        else if (strcmp(g, "attn_k") == 0)
            *rows = kv_dim, *cols = h->n_embd, *permute = h->n_head_kv;
        else if (strcmp(g, "attn_v") == 0)
            *rows = kv_dim, *cols = h->n_embd;
        else if (strcmp(g, "attn_output") == 0)
            *rows = h->n_embd, *cols = q_dim;
        else if (strcmp(g, "ffn_down") == 0)
            *rows = h->n_embd, *cols = h->n_ff;
        else /* ffn_gate, ffn_up */
            *rows = h->n_ff, *cols = h->n_embd;
        if (bias)
            *cols = 1;
        return 0;
    }
    return QF_EPARSE;
}

typedef struct pending {
    qf_hf_tensor t;
    int order;
} pending;

static int cmp_pending(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static int collect_tensors(qf_hf_llama *m)
{
    const qf_hf_llama_hparams *h = &m->hp;
    size_t n_src = qf_safetensors_count(m->st);
    pending *pend = calloc(n_src + 1, sizeof *pend);
    if (!pend)
        return QF_ENOMEM;
    size_t n = 0;
    int err = 0;
    bool have_embd = false, have_out = false, have_norm = false;
    for (size_t i = 0; i < n_src; i++) {
        const qf_st_tensor *src = qf_safetensors_at(m->st, i);
        pending *p = &pend[n];
        int64_t rows, cols;
        int rc = map_name(m, src->name, p->t.name, sizeof p->t.name, &rows, &cols,
                          &p->t.permute_heads, &p->order);
        if (rc == 1)
            continue;
        if (rc != 0) {
            err = qf_errorf(QF_EPARSE, "%s: tensor '%s' has no name in llama.cpp's llama "
                            "architecture", src->file, src->name);
            break;
        }
        bool is_1d = cols == 1;
        bool ok = is_1d ? (src->n_dims == 1 && src->shape[0] == rows)
                        : (src->n_dims == 2 && src->shape[0] == rows && src->shape[1] == cols);
        if (!ok) {
            char got[64] = "";
            for (int d = 0; d < src->n_dims && strlen(got) < 40; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%" PRId64,
                         d ? ", " : "", src->shape[d]);
            if (is_1d)
                err = qf_errorf(QF_EPARSE, "%s: tensor '%s' has shape [%s]; config.json says "
                                "[%" PRId64 "]", src->file, src->name, got, rows);
            else
                err = qf_errorf(QF_EPARSE, "%s: tensor '%s' has shape [%s]; config.json says "
                                "[%" PRId64 ", %" PRId64 "]", src->file, src->name, got, rows,
                                cols);
            break;
        }
        p->t.src = src;
        p->t.n_dims = is_1d ? 1 : 2;
        p->t.dims[0] = is_1d ? rows : cols;
        p->t.dims[1] = is_1d ? 1 : rows;
        p->t.dims[2] = p->t.dims[3] = 1;
        p->t.nelem = rows * cols;
        have_embd |= p->order == ORDER_EMBD;
        have_norm |= p->order == ORDER_NORM;
        have_out |= p->order == ORDER_OUTPUT;
        n++;
    }
    if (!err && !have_embd)
        err = qf_errorf(QF_EPARSE, "%s: no model.embed_tokens.weight in the checkpoint", m->dir);
    if (!err && !have_norm)
        err = qf_errorf(QF_EPARSE, "%s: no model.norm.weight in the checkpoint", m->dir);
    if (!err && !have_out && !h->tied_embeddings)
        err = qf_errorf(QF_EPARSE, "%s: no lm_head.weight and config.json does not tie the "
                        "embeddings", m->dir);
    /* Every block needs its nine weights: llama.cpp refuses a file missing one. */
    for (int64_t b = 0; !err && b < h->n_layer; b++) {
        for (size_t k = 0; !err && k < N_LAYER_NAMES; k++) {
            int want = ORDER_BLOCK0 + (int)b * MAX_TENSORS_PER_LAYER + (int)k * 2;
            bool found = false;
            for (size_t j = 0; j < n && !found; j++)
                found = pend[j].order == want;
            if (!found)
                err = qf_errorf(QF_EPARSE, "%s: no model.layers.%" PRId64 ".%s.weight in the "
                                "checkpoint", m->dir, b, k_layer_names[k].hf);
        }
    }
    if (!err && m->rope_freqs) {
        pending *p = &pend[n++];
        memset(p, 0, sizeof *p);
        snprintf(p->t.name, sizeof p->t.name, "rope_freqs.weight");
        p->t.n_dims = 1;
        p->t.dims[0] = h->head_dim / 2;
        p->t.dims[1] = p->t.dims[2] = p->t.dims[3] = 1;
        p->t.nelem = h->head_dim / 2;
        p->order = ORDER_ROPE;
    }
    if (err) {
        free(pend);
        return err;
    }
    qsort(pend, n, sizeof *pend, cmp_pending);
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    if (!m->tensors) {
        free(pend);
        return QF_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        m->tensors[i] = pend[i].t;
    m->n_tensors = n;
    free(pend);
    if (!have_out)
        m->hp.tied_embeddings = true;
    return 0;
}

/* --- public ------------------------------------------------------------------------------------ */

int qf_hf_llama_open(const char *dir, qf_hf_llama **out)
{
    assert(dir && out);
    *out = NULL;
    qf_hf_llama *m = calloc(1, sizeof *m);
    if (!m)
        return QF_ENOMEM;
    json_t *cfg = NULL, *tok = NULL, *tcfg = NULL;
    int err = QF_ENOMEM;
    if (!(m->dir = strdup(dir)))
        goto fail;
    size_t len = strlen(m->dir);
    while (len > 1 && m->dir[len - 1] == '/')
        m->dir[--len] = '\0';
    const char *base = strrchr(m->dir, '/');
    if (!(m->name = strdup(base ? base + 1 : m->dir)))
        goto fail;
    m->special = (special_ids){ -1, -1, -1, -1, -1, -1 };

    if ((err = load_json(dir, "config.json", false, &cfg)) ||
        (err = read_config(m, cfg)) ||
        (err = load_json(dir, "tokenizer.json", false, &tok)) ||
        (err = load_json(dir, "tokenizer_config.json", true, &tcfg)) ||
        (err = read_tokenizer(m, tok, tcfg, cfg)) ||
        (err = qf_safetensors_open(dir, &m->st)) ||
        (err = collect_tensors(m)))
        goto fail;
    json_decref(cfg);
    json_decref(tok);
    json_decref(tcfg);
    *out = m;
    return 0;
fail:
    json_decref(cfg);
    json_decref(tok);
    json_decref(tcfg);
    qf_hf_llama_destroy(&m);
    return err;
}

void qf_hf_llama_destroy(qf_hf_llama **pm)
{
    if (!pm || !*pm)
        return;
    qf_hf_llama *m = *pm;
    if (m->tokens)
        for (int64_t i = 0; i < m->hp.n_vocab; i++)
            free(m->tokens[i]);
    for (size_t i = 0; i < m->n_merges; i++)
        free(m->merges[i]);
    free(m->tokens);
    free(m->tok_types);
    free(m->tok_scores);
    free(m->merges);
    free(m->tok_model);
    free(m->tok_pre);
    free(m->chat_template);
    free(m->rope_scaling);
    free(m->rope_freqs);
    free(m->tensors);
    qf_safetensors_destroy(&m->st);
    free(m->dir);
    free(m->name);
    free(m);
    *pm = NULL;
}

const qf_hf_llama_hparams *qf_hf_llama_hparams_get(const qf_hf_llama *m)
{
    assert(m);
    return &m->hp;
}

int qf_hf_llama_set_metadata(const qf_hf_llama *m, qf_gguf_writer *w)
{
    const qf_hf_llama_hparams *h = &m->hp;
    /* The writer remembers the first error and finish reports it; checking each call here
     * would only repeat that. */
    qf_gguf_writer_set_str(w, "general.architecture", "llama");
    qf_gguf_writer_set_str(w, "general.name", m->name);
    qf_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)h->n_layer);
    qf_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)h->n_ctx_train);
    qf_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)h->n_embd);
    qf_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)h->n_ff);
    qf_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)h->n_head);
    qf_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)h->n_head_kv);
    qf_gguf_writer_set_f32(w, "llama.rope.freq_base", (float)h->rope_theta);
    qf_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)h->rms_eps);
    if (h->head_dim != h->n_embd / h->n_head || h->n_embd % h->n_head != 0) {
        qf_gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)h->head_dim);
        qf_gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)h->head_dim);
    }
    qf_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)h->n_vocab);
    qf_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)h->head_dim);
    if (m->rope_scaling) {
        qf_gguf_writer_set_str(w, "llama.rope.scaling.type", m->rope_scaling);
        qf_gguf_writer_set_f32(w, "llama.rope.scaling.factor", (float)m->rope_factor);
    }

    qf_gguf_writer_set_str(w, "tokenizer.ggml.model", m->tok_model);
    if (m->tok_pre)
        qf_gguf_writer_set_str(w, "tokenizer.ggml.pre", m->tok_pre);
    qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)m->tokens,
                               (uint64_t)h->n_vocab);
    if (m->tok_scores)
        qf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QF_GGUF_F32, m->tok_scores,
                               (uint64_t)h->n_vocab);
    qf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QF_GGUF_I32, m->tok_types,
                           (uint64_t)h->n_vocab);
    if (!m->tok_scores)   /* llama.cpp's SPM tokenizer uses the scores, not merges */
        qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)m->merges,
                                   (uint64_t)m->n_merges);
    const special_ids *s = &m->special;
    if (s->bos >= 0)
        qf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)s->bos);
    if (s->eos >= 0)
        qf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)s->eos);
    if (s->unk >= 0)
        qf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)s->unk);
    if (s->pad >= 0)
        qf_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)s->pad);
    if (s->add_bos >= 0)
        qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", s->add_bos);
    if (s->add_eos >= 0)
        qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", s->add_eos);
    if (m->chat_template)
        qf_gguf_writer_set_str(w, "tokenizer.chat_template", m->chat_template);
    const char *why = qf_gguf_writer_why(w);
    return why[0] ? qf_errorf(QF_EINVAL, "GGUF metadata: %s", why) : 0;
}

size_t qf_hf_llama_tensor_count(const qf_hf_llama *m)
{
    assert(m);
    return m->n_tensors;
}

const qf_hf_tensor *qf_hf_llama_tensor_at(const qf_hf_llama *m, size_t i)
{
    assert(m && i < m->n_tensors);
    return &m->tensors[i];
}

void qf_hf_llama_permute(const float *src, float *dst, int64_t rows, int64_t cols,
                         int64_t n_head)
{
    assert(n_head > 0 && rows % (2 * n_head) == 0);
    int64_t hd = rows / n_head, half = hd / 2;
    /* (n_head, 2, half, cols) -> (n_head, half, 2, cols): row h*hd + j*half + i moves to
     * h*hd + 2*i + j, so each head's first and second halves end up interleaved. */
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++)
                memcpy(dst + (h * hd + 2 * i + j) * cols, src + (h * hd + j * half + i) * cols,
                       (size_t)cols * sizeof *dst);
}

int qf_hf_llama_tensor_to_float(const qf_hf_llama *m, size_t i, float *dst)
{
    const qf_hf_tensor *t = qf_hf_llama_tensor_at(m, i);
    if (!t->src) {
        memcpy(dst, m->rope_freqs, (size_t)t->nelem * sizeof *dst);
        return 0;
    }
    if (!t->permute_heads)
        return qf_safetensors_to_float(t->src, dst);
    float *tmp = malloc((size_t)t->nelem * sizeof *tmp);
    if (!tmp)
        return QF_ENOMEM;
    int err = qf_safetensors_to_float(t->src, tmp);
    if (!err) {
        int64_t rows = t->n_dims == 1 ? t->dims[0] : t->dims[1];
        int64_t cols = t->n_dims == 1 ? 1 : t->dims[0];
        qf_hf_llama_permute(tmp, dst, rows, cols, t->permute_heads);
    }
    free(tmp);
    return err;
}
