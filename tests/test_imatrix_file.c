/* test_imatrix_file.c - the imatrix file reader (datasets/imatrix_file.c) on files written here.
 *
 * Good files of both formats (legacy .dat with and without its trailer, GGUF with a dense and
 * an expert entry) read back to the values llama-quantize would use: sums divided by ncall or
 * counts, importance 1 for an expert with count 0. Then every way a file can be wrong is
 * refused with a message naming the file and the entry: each truncation of a .dat file,
 * negative and oversized counts and lengths, a NUL in a name, non-finite and negative values,
 * duplicates, trailing garbage; in GGUF files, sums without counts, a wrong tensor type, a
 * count/matrix mismatch, bad values, missing keys. Files live in a mkdtemp folder, removed.
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
#include <unistd.h>

#include "qf_err.h"
#include "qf_gguf.h"
#include "qf_imatrix_file.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-imatrix-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_path, sizeof g_path, "%s/imatrix", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

/* --- writing legacy files byte by byte ------------------------------------------------------- */

typedef struct buf {
    uint8_t b[4096];
    size_t  n;
} buf;

static void put(buf *w, const void *p, size_t n)
{
    assert_true(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put_i32(buf *w, int32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    put(w, b, 4);
}

static void put_f32(buf *w, float v)
{
    int32_t bits;
    memcpy(&bits, &v, 4);
    put_i32(w, bits);
}

static void put_entry(buf *w, const char *name, int32_t ncall, int32_t nval, const float *v)
{
    put_i32(w, (int32_t)strlen(name));
    put(w, name, strlen(name));
    put_i32(w, ncall);
    put_i32(w, nval);
    for (int32_t i = 0; i < nval; i++)
        put_f32(w, v[i]);
}

static void write_file(const void *p, size_t n)
{
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static const float k_a[4] = { 10.0f, 20.0f, 0.0f, 5.0f };
static const float k_b[2] = { 3.0f, 6.0f };

/* The llama-imatrix layout: two entries (ncall 10 and 0), then chunk count and dataset. */
static size_t good_dat(buf *w, bool trailer, bool dataset)
{
    w->n = 0;
    put_i32(w, 2);
    put_entry(w, "blk.0.attn_q.weight", 10, 4, k_a);
    put_entry(w, "blk.0.ffn_up.weight", 0, 2, k_b);
    size_t entries_end = w->n;
    if (trailer) {
        put_i32(w, 42);
        if (dataset) {
            put_i32(w, 9);
            put(w, "wiki.raw!", 9);
        }
    }
    return entries_end;
}

/* Opens g_path expecting failure with code err and a message holding every given string. */
static void expect_refused(int err, const char *must1, const char *must2)
{
    qf_imatrix_file *m = (qf_imatrix_file *)1;
    char why[512] = "";
    int rc = qf_imatrix_file_open(g_path, &m, why, sizeof why);
    if (rc != err)
        fail_msg("expected %s, got %s (%s)", qf_err_name(err), qf_err_name(rc), why);
    assert_null(m);
    if (!strstr(why, g_path) || (must1 && !strstr(why, must1)) || (must2 && !strstr(why, must2)))
        fail_msg("message '%s' should name '%s', '%s' and '%s'", why, g_path,
                 must1 ? must1 : "", must2 ? must2 : "");
    printf("refused: %s\n", why + strlen(g_dir) + 1);
}

/* --- good files ------------------------------------------------------------------------------- */

static void test_dat_good(void **state)
{
    (void)state;
    buf w;
    for (int variant = 0; variant < 3; variant++) {
        good_dat(&w, variant > 0, variant > 1);
        write_file(w.b, w.n);
        qf_imatrix_file *m = NULL;
        char why[512];
        int rc = qf_imatrix_file_open(g_path, &m, why, sizeof why);
        if (rc)
            fail_msg("variant %d: %s", variant, why);
        assert_string_equal(qf_imatrix_file_kind(m), "dat");
        assert_int_equal(qf_imatrix_file_count(m), 2);
        assert_int_equal(qf_imatrix_file_chunks(m), variant > 0 ? 42 : -1);
        assert_string_equal(qf_imatrix_file_dataset(m), variant > 1 ? "wiki.raw!" : "");
        const qf_imatrix_entry *a = qf_imatrix_file_find(m, "blk.0.attn_q.weight");
        assert_non_null(a);
        assert_int_equal(a->nval, 4);
        assert_int_equal(a->nmat, 1);
        for (int i = 0; i < 4; i++)          /* stored as mean * ncall: divided back */
            assert_true(a->values[i] == k_a[i] / 10.0f);
        const qf_imatrix_entry *b = qf_imatrix_file_at(m, 1);
        assert_string_equal(b->name, "blk.0.ffn_up.weight");
        assert_true(b->values[0] == 3.0f && b->values[1] == 6.0f);   /* ncall 0: as stored */
        assert_null(qf_imatrix_file_find(m, "output.weight"));
        qf_imatrix_file_destroy(&m);
        assert_null(m);
        qf_imatrix_file_destroy(&m);
    }
}

/* A GGUF imatrix as llama-imatrix writes it; the callers' knobs break one thing at a time. */
typedef struct gguf_spec {
    bool  keys;            /* the three imatrix.* keys */
    bool  counts_b;        /* b.counts present */
    uint32_t sums_type;    /* type id of a.in_sum2 (0 = F32) */
    int64_t counts_b_n;    /* b.counts elements (2 is right) */
    float sum_a0;          /* a.in_sum2[0] */
    float count_b0;        /* b.counts[0] */
} gguf_spec;

static const gguf_spec k_good_gguf = { true, true, 0, 2, 8.0f, 4.0f };

static void write_gguf(const gguf_spec *s)
{
    qf_gguf_writer *w = NULL;
    char why[512];
    assert_int_equal(qf_gguf_writer_new(g_path, &w, why, sizeof why), 0);
    qf_gguf_writer_set_str(w, "general.type", "imatrix");
    if (s->keys) {
        const char *sets[] = { "first.txt", "calib.txt" };
        qf_gguf_writer_set_arr_str(w, "imatrix.datasets", sets, 2);
        qf_gguf_writer_set_u32(w, "imatrix.chunk_count", 7);
        qf_gguf_writer_set_u32(w, "imatrix.chunk_size", 512);
    }
    /* b (experts, 2 x 3 columns) before a, to check the name order; b's second expert has
     * count 0; a carries an in_sum that is ignored; "other" is not imatrix data at all */
    static float b_sums[6] = { 1, 2, 3, 4, 5, 6 }, b_counts[3] = { 4, 0, 0 };
    static float a_sums[4], a_counts[1] = { 2 }, a_act[4] = { -1, 1, -1, 1 }, other[2];
    static uint16_t a_sums_f16[4];
    b_counts[0] = s->count_b0;
    a_sums[0] = s->sum_a0;
    a_sums[1] = 4;
    a_sums[2] = 0;
    a_sums[3] = 1;
    const int64_t b_dims[2] = { 3, 2 }, bc_dims[2] = { 1, s->counts_b_n };
    const int64_t a_dims[2] = { 4, 1 }, ac_dims[2] = { 1, 1 }, o_dims[1] = { 2 };
    qf_gguf_writer_add_tensor(w, "blk.1.ffn_down_exps.weight.in_sum2", 0, 2, b_dims, b_sums,
                              NULL);
    if (s->counts_b)
        qf_gguf_writer_add_tensor(w, "blk.1.ffn_down_exps.weight.counts", 0, 2, bc_dims,
                                  b_counts, NULL);
    qf_gguf_writer_add_tensor(w, "blk.0.attn_k.weight.in_sum2", s->sums_type, 2, a_dims,
                              s->sums_type ? (const void *)a_sums_f16 : a_sums, NULL);
    qf_gguf_writer_add_tensor(w, "blk.0.attn_k.weight.in_sum", 0, 2, a_dims, a_act, NULL);
    qf_gguf_writer_add_tensor(w, "blk.0.attn_k.weight.counts", 0, 2, ac_dims, a_counts, NULL);
    qf_gguf_writer_add_tensor(w, "other", 0, 1, o_dims, other, NULL);
    if (qf_gguf_writer_finish(&w, why, sizeof why) != 0)
        fail_msg("writing the test imatrix: %s", why);
}

static void test_gguf_good(void **state)
{
    (void)state;
    write_gguf(&k_good_gguf);
    qf_imatrix_file *m = NULL;
    char why[512];
    if (qf_imatrix_file_open(g_path, &m, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_string_equal(qf_imatrix_file_kind(m), "gguf");
    assert_int_equal(qf_imatrix_file_chunks(m), 7);
    assert_string_equal(qf_imatrix_file_dataset(m), "calib.txt");
    assert_int_equal(qf_imatrix_file_count(m), 2);
    const qf_imatrix_entry *a = qf_imatrix_file_at(m, 0), *b = qf_imatrix_file_at(m, 1);
    assert_string_equal(a->name, "blk.0.attn_k.weight");           /* name order */
    assert_string_equal(b->name, "blk.1.ffn_down_exps.weight");
    assert_int_equal(a->nval, 4);
    assert_int_equal(a->nmat, 1);
    const float a_want[4] = { 4.0f, 2.0f, 0.0f, 0.5f };
    for (int i = 0; i < 4; i++)
        assert_true(a->values[i] == a_want[i]);
    assert_int_equal(b->nval, 6);
    assert_int_equal(b->nmat, 2);
    const float b_want[6] = { 0.25f, 0.5f, 0.75f, 1.0f, 1.0f, 1.0f };   /* expert 2: count 0 */
    for (int i = 0; i < 6; i++)
        if (b->values[i] != b_want[i])
            fail_msg("expert value %d: %g, want %g", i, (double)b->values[i], (double)b_want[i]);
    assert_ptr_equal(qf_imatrix_file_find(m, "blk.1.ffn_down_exps.weight"), b);
    assert_null(qf_imatrix_file_find(m, "other"));
    qf_imatrix_file_destroy(&m);
}

/* --- bad files -------------------------------------------------------------------------------- */

/* Every prefix of a good .dat file is refused, except the three that end where an optional
 * part of the trailer starts; none crashes or reads past the end (ASan build). */
static void test_dat_truncated(void **state)
{
    (void)state;
    buf w;
    const size_t entries_end = good_dat(&w, true, true);
    const size_t full = w.n;
    int accepted = 0;
    for (size_t n = 0; n <= full; n++) {
        write_file(w.b, n);
        qf_imatrix_file *m = NULL;
        char why[512] = "";
        int rc = qf_imatrix_file_open(g_path, &m, why, sizeof why);
        const bool whole = n == entries_end || n == entries_end + 4 || n == full;
        if (whole != (rc == 0))
            fail_msg("prefix of %zu of %zu bytes: %s (%s)", n, full,
                     rc ? qf_err_name(rc) : "accepted", why);
        if (rc) {
            assert_int_equal(rc, QF_EPARSE);
            assert_null(m);
            assert_non_null(strstr(why, g_path));
        }
        accepted += rc == 0;
        qf_imatrix_file_destroy(&m);
    }
    assert_int_equal(accepted, 3);
}

static void test_dat_bad_fields(void **state)
{
    (void)state;
    const float one[1] = { 1.0f }, nan1[2] = { 1.0f, NAN }, neg[2] = { 1.0f, -2.0f };
    const float inf1[1] = { INFINITY };
    buf w;

    w.n = 0;
    put_i32(&w, 0);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry count 0", NULL);

    w.n = 0;
    put_i32(&w, -5);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry count -5", NULL);

    w.n = 0;
    put_i32(&w, 1000000);
    put_entry(&w, "x", 1, 1, one);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry count 1000000", NULL);

    w.n = 0;
    put_i32(&w, 1);
    put_i32(&w, -3);
    put(&w, "abcdefghijklmnop", 16);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry 0", "name length -3");

    w.n = 0;
    put_i32(&w, 1);
    put_i32(&w, 0x7fffffff);
    put(&w, "abcdefghijklmnop", 16);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry 0", "name length 2147483647");

    w.n = 0;
    put_i32(&w, 1);
    put_entry(&w, "a.weight", -1, 1, one);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "'a.weight'", "call count -1");

    w.n = 0;
    put_i32(&w, 1);
    put_entry(&w, "a.weight", 1, 0, one);
    put_f32(&w, 1.0f);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "'a.weight'", "0 values");

    w.n = 0;
    put_i32(&w, 1);
    put_i32(&w, 8);
    put(&w, "a.weight", 8);
    put_i32(&w, 1);
    put_i32(&w, 1 << 28);                   /* values: far more than the file holds */
    put_f32(&w, 1.0f);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "'a.weight'", "268435456 values");

    w.n = 0;
    put_i32(&w, 2);
    put_entry(&w, "a.weight", 1, 1, one);
    put_entry(&w, "b.weight", 2, 2, nan1);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry 1 ('b.weight')", "value 1 is nan");

    w.n = 0;
    put_i32(&w, 1);
    put_entry(&w, "b.weight", 2, 2, neg);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "'b.weight'", "value 1 is -1");

    w.n = 0;
    put_i32(&w, 1);
    put_entry(&w, "c.weight", 0, 1, inf1);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "'c.weight'", "inf");

    w.n = 0;
    put_i32(&w, 2);
    put_entry(&w, "a.weight", 1, 1, one);
    put_entry(&w, "a.weight", 1, 1, one);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entries 0 and 1", "'a.weight'");

    w.n = 0;
    put_i32(&w, 1);
    put_entry(&w, "a.weight", 1, 1, one);
    w.b[9] = '\0';                          /* the 2nd byte of the name */
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "entry 0", "NUL");

    good_dat(&w, true, true);
    put(&w, "xyz", 3);                      /* garbage after the dataset name */
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "dataset name", NULL);

    good_dat(&w, true, false);
    put(&w, "xy", 2);                       /* neither a dataset length nor nothing */
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "after the chunk count", NULL);

    good_dat(&w, false, false);
    put_i32(&w, -7);
    write_file(w.b, w.n);
    expect_refused(QF_EPARSE, "not a chunk count", NULL);

    unlink(g_path);
    expect_refused(QF_ENOENT, "cannot open", NULL);
}

static void test_gguf_bad(void **state)
{
    (void)state;
    gguf_spec s = k_good_gguf;
    s.counts_b = false;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "'blk.1.ffn_down_exps.weight'", "no counts");

    s = k_good_gguf;
    s.sums_type = 1;                        /* F16 */
    write_gguf(&s);
    expect_refused(QF_EPARSE, "blk.0.attn_k.weight.in_sum2", "F32");

    s = k_good_gguf;
    s.counts_b_n = 3;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "'blk.1.ffn_down_exps.weight'", "3 counts for 2 matrices");

    s = k_good_gguf;
    s.sum_a0 = NAN;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "'blk.0.attn_k.weight'", "in_sum2 value 0 is nan");

    s = k_good_gguf;
    s.sum_a0 = -1.0f;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "'blk.0.attn_k.weight'", "in_sum2 value 0 is -1");

    s = k_good_gguf;
    s.count_b0 = -4.0f;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "'blk.1.ffn_down_exps.weight'", "count 0 is -4");

    s = k_good_gguf;
    s.keys = false;
    write_gguf(&s);
    expect_refused(QF_EPARSE, "imatrix.chunk_count", "not an imatrix file");

    /* a GGUF that is not an imatrix (its tensors are not sums and counts) */
    qf_gguf_writer *w = NULL;
    char why[512];
    assert_int_equal(qf_gguf_writer_new(g_path, &w, why, sizeof why), 0);
    const char *sets[] = { "x" };
    qf_gguf_writer_set_arr_str(w, "imatrix.datasets", sets, 1);
    qf_gguf_writer_set_u32(w, "imatrix.chunk_count", 1);
    qf_gguf_writer_set_u32(w, "imatrix.chunk_size", 1);
    const float v[2] = { 1, 2 };
    const int64_t dims[1] = { 2 };
    qf_gguf_writer_add_tensor(w, "token_embd.weight", 0, 1, dims, v, NULL);
    assert_int_equal(qf_gguf_writer_finish(&w, why, sizeof why), 0);
    expect_refused(QF_EPARSE, "no <name>.in_sum2", NULL);

    /* a broken GGUF: the GGUF reader's message comes through */
    write_file("GGUF\x03\0\0\0", 8);
    expect_refused(QF_EPARSE, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dat_good),
        cmocka_unit_test(test_gguf_good),
        cmocka_unit_test(test_dat_truncated),
        cmocka_unit_test(test_dat_bad_fields),
        cmocka_unit_test(test_gguf_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
