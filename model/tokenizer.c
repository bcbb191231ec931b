/* tokenizer.c - GGUF tokenizers: byte-level BPE and SentencePiece BPE (see qf_tokenizer.h).
 *
 * One string -> id hash table over the vocabulary (and for BPE one over the merges, "a b" ->
 * rank), both pointing into the GGUF mapping. Encoding works word by word on a small symbol
 * list: symbols are contiguous byte ranges of a working buffer, so a merge only widens the left
 * symbol. Each word is O(symbols^2), and words are short: BPE words come from the
 * pre-tokenizer, SentencePiece words are cut before each U+2581 that follows another
 * character (pieces of llama vocabularies start at a U+2581, never span one in the middle).
 * Runs once per evaluation text: not hot.
 */
#include "qf_tokenizer.h"

#include <assert.h>
#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"

typedef struct entry {
    const char *s;
    size_t      len;
    int32_t     val;
} entry;

typedef struct table {
    entry  *slots;
    size_t  mask;
} table;

enum tok_model { TOK_GPT2, TOK_SPM };

struct qf_tokenizer {
    enum tok_model model;
    bool          llama3_split;   /* digits 1..3 at a time, case-insensitive contractions */
    table         vocab, merges;
    const float  *scores;         /* SPM: per id */
    int64_t       n_vocab;
    int32_t       bos;
    bool          add_bos;
    char          byte_sym[256][4];   /* GPT-2: the printable stand-in of each byte, UTF-8 */
};

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603u;      /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211u;
    return h;
}

static int table_init(table *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    return t->slots ? 0 : QF_ENOMEM;
}

/* Keeps the first value for a key (duplicate tokens: the lowest id wins, as in llama.cpp). */
static void table_put(table *t, const char *s, size_t len, int32_t val)
{
    for (size_t i = hash(s, len) & t->mask;; i = (i + 1) & t->mask) {
        entry *e = &t->slots[i];
        if (!e->s) {
            *e = (entry){ s, len, val };
            return;
        }
        if (e->len == len && memcmp(e->s, s, len) == 0)
            return;
    }
}

static int32_t table_get(const table *t, const char *s, size_t len)
{
    for (size_t i = hash(s, len) & t->mask;; i = (i + 1) & t->mask) {
        const entry *e = &t->slots[i];
        if (!e->s)
            return -1;
        if (e->len == len && memcmp(e->s, s, len) == 0)
            return e->val;
    }
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* GPT-2's reversible byte -> printable character map. */
static void byte_map(qf_tokenizer *t)
{
    unsigned extra = 0;
    for (unsigned b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? b : 256 + extra++;
        size_t n = put_utf8(t->byte_sym[b], cp);
        t->byte_sym[b][n] = '\0';
    }
}

int qf_tokenizer_new(const qf_gguf *g, qf_tokenizer **out, char *why, size_t why_len)
{
    *out = NULL;
    const char *model = NULL, *pre = NULL;
    if (qf_gguf_get_str(g, "tokenizer.ggml.model", &model) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: no 'tokenizer.ggml.model'", qf_gguf_path(g));
    enum tok_model kind;
    if (strcmp(model, "gpt2") == 0)
        kind = TOK_GPT2;
    else if (strcmp(model, "llama") == 0)
        kind = TOK_SPM;
    else
        return qf_whyf(QF_EUNSUP, why, why_len, "%s: tokenizer model '%s' (gpt2 and llama are "
                    "supported)", qf_gguf_path(g), model);
    const void *tokens = NULL, *merges = NULL, *scores = NULL;
    uint64_t ntok = 0, nmerge = 0, nscore = 0;
    if (qf_gguf_get_arr(g, "tokenizer.ggml.tokens", QF_GGUF_STRING, &tokens, &ntok) != 0 ||
        ntok == 0 || ntok > (1u << 24))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: 'tokenizer.ggml.tokens' is not a string "
                    "array of 1..2^24 tokens", qf_gguf_path(g));
    if (kind == TOK_GPT2 &&
        qf_gguf_get_arr(g, "tokenizer.ggml.merges", QF_GGUF_STRING, &merges, &nmerge) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: a gpt2 tokenizer without "
                    "'tokenizer.ggml.merges'", qf_gguf_path(g));
    if (kind == TOK_SPM &&
        (qf_gguf_get_arr(g, "tokenizer.ggml.scores", QF_GGUF_F32, &scores, &nscore) != 0 ||
         nscore != ntok))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: a llama tokenizer needs "
                    "'tokenizer.ggml.scores', one per token", qf_gguf_path(g));
    qf_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory");
    t->model = kind;
    t->n_vocab = (int64_t)ntok;
    t->scores = scores;
    if (qf_gguf_get_str(g, "tokenizer.ggml.pre", &pre) == 0)
        t->llama3_split = strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0 ||
                          strcmp(pre, "qwen2") == 0 || strcmp(pre, "smollm") == 0;
    int64_t bos;
    t->bos = qf_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos) == 0 && bos >= 0 &&
             bos < t->n_vocab ? (int32_t)bos : -1;
    bool add_bos;
    t->add_bos = qf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) == 0
               ? add_bos : t->bos >= 0;
    byte_map(t);
    if (table_init(&t->vocab, ntok) != 0 || table_init(&t->merges, nmerge) != 0) {
        qf_tokenizer_destroy(&t);
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for %llu tokens",
                    (unsigned long long)ntok);
    }
    const qf_gguf_str *ts = tokens, *ms = merges;
    for (uint64_t i = 0; i < ntok; i++)
        table_put(&t->vocab, ts[i].s, ts[i].len, (int32_t)i);
    for (uint64_t i = 0; i < nmerge; i++)
        table_put(&t->merges, ms[i].s, ms[i].len, (int32_t)i);
    *out = t;
    return 0;
}

void qf_tokenizer_destroy(qf_tokenizer **tp)
{
    if (!tp || !*tp)
        return;
    free((*tp)->vocab.slots);
    free((*tp)->merges.slots);
    free(*tp);
    *tp = NULL;
}

int32_t qf_tokenizer_bos(const qf_tokenizer *t) { return t->bos; }
bool qf_tokenizer_adds_bos(const qf_tokenizer *t) { return t->add_bos && t->bos >= 0; }

/* ---- output ids ------------------------------------------------------------------------- */

typedef struct idvec {
    int32_t *v;
    int64_t  n, cap;
} idvec;

static int push(idvec *o, int32_t id)
{
    if (o->n == o->cap) {
        int64_t cap = o->cap ? 2 * o->cap : 256;
        int32_t *v = realloc(o->v, (size_t)cap * sizeof *v);
        if (!v)
            return QF_ENOMEM;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

/* ---- BPE over one word -------------------------------------------------------------------- */

typedef struct sym {
    size_t off, len;
} sym;

/* Merges the symbols of buf (each a range) pairwise until no pair is allowed. GPT-2: the pair
 * of lowest merge rank; SPM: the concatenation in the vocabulary with the highest score. */
static void merge_word(const qf_tokenizer *t, const char *buf, sym *s, size_t *ns, char *key)
{
    for (;;) {
        size_t best = SIZE_MAX;
        float best_score = 0;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < *ns; i++) {
            if (t->model == TOK_GPT2) {
                memcpy(key, buf + s[i].off, s[i].len);
                key[s[i].len] = ' ';
                memcpy(key + s[i].len + 1, buf + s[i + 1].off, s[i + 1].len);
                int32_t r = table_get(&t->merges, key, s[i].len + 1 + s[i + 1].len);
                if (r >= 0 && r < best_rank) {
                    best_rank = r;
                    best = i;
                }
            } else {
                int32_t id = table_get(&t->vocab, buf + s[i].off, s[i].len + s[i + 1].len);
                if (id >= 0 && (best == SIZE_MAX || t->scores[id] > best_score)) {
                    best_score = t->scores[id];
                    best = i;
                }
            }
        }
        if (best == SIZE_MAX)
            return;
        s[best].len += s[best + 1].len;
        memmove(&s[best + 1], &s[best + 2], (*ns - best - 2) * sizeof *s);
        (*ns)--;
    }
}

/* Merges one word's symbols (units: one per UTF-8 character, or per mapped byte, contiguous
 * ranges of buf) and appends their ids; SPM falls back to byte tokens for what the vocabulary
 * lacks. */
static int encode_word(const qf_tokenizer *t, const char *buf, const sym *units, size_t nunits,
                       idvec *out)
{
    if (nunits == 0)
        return 0;
    const size_t len = units[nunits - 1].off + units[nunits - 1].len - units[0].off;
    sym *s = malloc(nunits * sizeof *s);
    char *key = malloc(2 * len + 2);
    if (!s || !key) {
        free(s);
        free(key);
        return QF_ENOMEM;
    }
    memcpy(s, units, nunits * sizeof *s);
    size_t ns = nunits;
    merge_word(t, buf, s, &ns, key);
    int err = 0;
    for (size_t i = 0; i < ns && !err; i++) {
        int32_t id = table_get(&t->vocab, buf + s[i].off, s[i].len);
        if (id >= 0) {
            err = push(out, id);
            continue;
        }
        for (size_t b = 0; b < s[i].len && !err; b++) {   /* byte fallback */
            char bt[8];
            snprintf(bt, sizeof bt, "<0x%02X>", (uint8_t)buf[s[i].off + b]);
            id = table_get(&t->vocab, bt, strlen(bt));
            err = id >= 0 ? push(out, id) : QF_EPARSE;
        }
    }
    free(s);
    free(key);
    return err;
}

/* ---- pre-tokenizers ------------------------------------------------------------------------ */

static bool is_letter(uint8_t c) { return isalpha(c) || c >= 0x80; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Length of the GPT-2 pre-tokenizer's next word at p (n > 0 bytes left). */
static size_t gpt2_word(const qf_tokenizer *t, const uint8_t *p, size_t n)
{
    static const char *const contractions[] = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };
    if (p[0] == '\'')
        for (size_t i = 0; i < sizeof contractions / sizeof contractions[0]; i++) {
            size_t cl = strlen(contractions[i]);
            if (cl <= n && (t->llama3_split ? strncasecmp((const char *)p, contractions[i], cl)
                                            : strncmp((const char *)p, contractions[i], cl)) == 0)
                return cl;
        }
    size_t i = p[0] == ' ' && n > 1 && !is_space(p[1]) ? 1 : 0;   /* optional leading space */
    if (is_letter(p[i])) {
        while (i < n && is_letter(p[i]))
            i++;
        return i;
    }
    if (is_digit(p[i])) {
        if (t->llama3_split && i == 1)   /* Llama 3: digits stand alone, 1..3 of them */
            return 1;
        size_t start = i;
        while (i < n && is_digit(p[i]) && (!t->llama3_split || i - start < 3))
            i++;
        return i;
    }
    if (!is_space(p[i])) {
        while (i < n && !is_space(p[i]) && !is_letter(p[i]) && !is_digit(p[i]))
            i++;
        return i;
    }
    /* whitespace: a run, leaving its last space to the word that follows it */
    while (i < n && is_space(p[i]))
        i++;
    if (i < n && i > 1 && p[i - 1] == ' ')
        i--;
    return i;
}

static int encode_gpt2(const qf_tokenizer *t, const uint8_t *text, size_t len, idvec *out)
{
    char *buf = malloc(4 * len + 1);
    sym *units = malloc((len + 1) * sizeof *units);
    int err = buf && units ? 0 : QF_ENOMEM;
    for (size_t pos = 0; pos < len && !err;) {
        size_t wl = gpt2_word(t, text + pos, len - pos), bl = 0;
        for (size_t i = 0; i < wl; i++) {
            const char *m = t->byte_sym[text[pos + i]];
            units[i] = (sym){ bl, strlen(m) };
            memcpy(buf + bl, m, units[i].len);
            bl += units[i].len;
        }
        err = encode_word(t, buf, units, wl, out);
        pos += wl;
    }
    free(buf);
    free(units);
    return err;
}

static size_t utf8_len(uint8_t c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

static bool is_sp(const char *buf, sym u)
{
    return u.len == 3 && memcmp(buf + u.off, "\xE2\x96\x81", 3) == 0;
}

static int encode_spm(const qf_tokenizer *t, const uint8_t *text, size_t len, idvec *out)
{
    static const char sp[] = "\xE2\x96\x81";    /* U+2581, SentencePiece's space */
    char *buf = malloc(3 * len + 4);
    sym *units = malloc((len + 1) * sizeof *units);
    if (!buf || !units) {
        free(buf);
        free(units);
        return QF_ENOMEM;
    }
    size_t bl = 0, nu = 0;
    memcpy(buf, sp, 3);                          /* the prefixed space */
    units[nu++] = (sym){ 0, 3 };
    bl = 3;
    for (size_t i = 0; i < len;) {
        size_t cl = text[i] == ' ' ? 1 : utf8_len(text[i]);
        if (i + cl > len)
            cl = len - i;
        if (text[i] == ' ') {
            memcpy(buf + bl, sp, 3);
            units[nu++] = (sym){ bl, 3 };
            bl += 3;
        } else {
            memcpy(buf + bl, text + i, cl);
            units[nu++] = (sym){ bl, cl };
            bl += cl;
        }
        i += cl;
    }
    int err = 0;
    size_t w0 = 0;   /* words: cut before a U+2581 that follows something else */
    for (size_t u = 1; u <= nu && !err; u++) {
        if (u < nu && !(is_sp(buf, units[u]) && !is_sp(buf, units[u - 1])))
            continue;
        err = encode_word(t, buf, units + w0, u - w0, out);
        w0 = u;
    }
    free(buf);
    free(units);
    return err;
}

int qf_tokenizer_encode(const qf_tokenizer *t, const char *text, size_t len, bool add_bos,
                        int32_t **ids, int64_t *n)
{
    assert(t && ids && n && (text || len == 0));
    idvec out = {0};
    int err = add_bos && t->bos >= 0 ? push(&out, t->bos) : 0;
    if (!err && len)
        err = t->model == TOK_GPT2 ? encode_gpt2(t, (const uint8_t *)text, len, &out)
                                   : encode_spm(t, (const uint8_t *)text, len, &out);
    if (err) {
        free(out.v);
        *ids = NULL;
        *n = 0;
        return err;
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}
