/* cmd_formats.c - `qfleet formats [--json]`: the format table as users and scripts see it.
 *
 * Every column is read from the traits table (qf_format_get), never typed here, so a format
 * added to kernels/formats.c shows up without touching this file. The kernels column asks the
 * ISA tables (qf_kernels_own) and the GPU backends which of them have the format.
 * Per-row formats (block size 0 in the table) have no block: their size is K weights plus a
 * header, so "block" reads "row" and bits per weight read "8 + 32/K". Activation-only formats
 * (q8_1, q8_K) are listed with role "act-only". Text and JSON carry the same fields.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_kernels.h"
#include "qf_measure.h"

/* A kernel set and the formats it has kernels for: the reference, each CPU instruction set
 * with at least one kernel of its own for the format (qf_kernels_own; the others fall back),
 * and the GPU backends of this build. */
typedef struct backend {
    const char *name;
    qf_isa      isa;            /* CPU sets; QF_ISA_COUNT for a GPU backend */
    qf_measure_backend gpu;
} backend;

static const backend k_backends[] = {
    { "ref", QF_ISA_REF, QF_BACKEND_REF },
    { "avx2", QF_ISA_AVX2, QF_BACKEND_REF },
    { "avx512", QF_ISA_AVX512, QF_BACKEND_REF },
    { "neon", QF_ISA_NEON, QF_BACKEND_REF },
    { "cuda", QF_ISA_COUNT, QF_BACKEND_CUDA },
};

#define N_BACKENDS (sizeof k_backends / sizeof k_backends[0])

static bool covers(const backend *b, qf_format fmt)
{
    if (b->isa == QF_ISA_REF)
        return qf_format_get(fmt)->quantize_ref != NULL;
    if (b->isa < QF_ISA_COUNT) {
        const qf_isa_kernels *k = qf_kernels_own(b->isa, fmt);
        return k->quantize || k->dequantize || k->vec_dot;
    }
    return qf_measure_backend_built(b->gpu) &&
           qf_measure_backend_supports(b->gpu, fmt, QF_OP_MATVEC);
}

/* One format's columns as text, in table order. */
typedef struct row_text {
    char name[32], role[16], family[16], block[24], bytes[48], bpw[64], act[32], kernels[128];
    const char *summary;
} row_text;

enum { COL_NAME, COL_ROLE, COL_FAMILY, COL_BLOCK, COL_BYTES, COL_BPW, COL_ACT, COL_KERNELS,
       N_COLS };

static const char *const k_headers[N_COLS] = {
    "name", "role", "family", "block", "bytes", "bpw", "act", "kernels",
};

static void print_usage(FILE *out)
{
    fputs("usage: qfleet formats [--json]\n"
          "\n"
          "Lists every format quantfleet knows, from its traits table:\n"
          "  name     what --format and suites accept\n"
          "  role     weight, or act-only for formats that only hold activations\n"
          "  family   float, gguf (llama.cpp's layouts), int (quantfleet's own), or the\n"
          "           framework whose native scheme it is: onnxruntime, openvino, mlx, qnn\n"
          "  block    weights per block, or 'row' for one scale per output row\n"
          "  bytes    bytes per block (per-row formats: K weights plus the row header)\n"
          "  bpw      nominal bits per weight (per-row formats: value bits + header bits/K)\n"
          "  act      the format activations are quantized to for a dot product\n"
          "  kernels  kernel sets with an implementation of the format: ref (every format),\n"
          "           the CPU instruction sets with kernels of their own for it (the best\n"
          "           one the host runs is used; missing kernels fall back), GPU backends\n"
          "\n"
          "Options:\n"
          "  --json      print a JSON array with the same fields\n"
          "  -h, --help  show this help\n", out);
}

/* "%.6f" without the trailing zeros, keeping one decimal: 4.5, 5.0, 3.4375, 32.0. */
static void format_decimal(char *buf, size_t size, double v)
{
    snprintf(buf, size, "%.6f", v);
    char *dot = strchr(buf, '.');
    if (!dot)
        return;
    char *end = buf + strlen(buf) - 1;
    while (end > dot + 1 && *end == '0')
        *end-- = '\0';
}

/* Like format_decimal, but whole numbers lose the ".0": the "8 + 32/K" of per-row formats. */
static void format_bits(char *buf, size_t size, double v)
{
    format_decimal(buf, size, v);
    size_t n = strlen(buf);
    if (n > 2 && strcmp(buf + n - 2, ".0") == 0)
        buf[n - 2] = '\0';
}

/* Comma-separated names of the kernel sets that cover fmt. */
static void kernels_text(qf_format fmt, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_BACKENDS; i++) {
        if (!covers(&k_backends[i], fmt))
            continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", used ? "," : "", k_backends[i].name);
    }
    if (!buf[0])
        snprintf(buf, size, "-");
}

static void row_fill(qf_format fmt, row_text *r)
{
    const qf_format_traits *t = qf_format_get(fmt);
    snprintf(r->name, sizeof r->name, "%s", t->name);
    snprintf(r->role, sizeof r->role, "%s", t->weight ? "weight" : "act-only");
    snprintf(r->family, sizeof r->family, "%s", t->family);
    if (t->blck == 0) {
        snprintf(r->block, sizeof r->block, "row");
        if (t->type_size == 1)
            snprintf(r->bytes, sizeof r->bytes, "K+%zu", t->row_header);
        else
            snprintf(r->bytes, sizeof r->bytes, "%zuK+%zu", t->type_size, t->row_header);
        char value[24], head[24];
        format_bits(value, sizeof value, qf_format_bpw_nominal(fmt));
        format_bits(head, sizeof head, 8.0 * (double)t->row_header);
        snprintf(r->bpw, sizeof r->bpw, "%s + %s/K", value, head);
    } else {
        snprintf(r->block, sizeof r->block, "%lld", (long long)t->blck);
        snprintf(r->bytes, sizeof r->bytes, "%zu", t->type_size);
        format_decimal(r->bpw, sizeof r->bpw, qf_format_bpw_nominal(fmt));
    }
    snprintf(r->act, sizeof r->act, "%s",
             t->vec_dot_ref ? qf_format_get(t->act)->name : "-");
    kernels_text(fmt, r->kernels, sizeof r->kernels);
    r->summary = t->summary;
}

static const char *row_col(const row_text *r, int col)
{
    switch (col) {
    case COL_NAME: return r->name;
    case COL_ROLE: return r->role;
    case COL_FAMILY: return r->family;
    case COL_BLOCK: return r->block;
    case COL_BYTES: return r->bytes;
    case COL_BPW: return r->bpw;
    case COL_ACT: return r->act;
    default: return r->kernels;
    }
}

static void print_table(void)
{
    row_text rows[QF_FMT_COUNT];
    int width[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        width[c] = (int)strlen(k_headers[c]);
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        row_fill((qf_format)f, &rows[f]);
        for (int c = 0; c < N_COLS; c++) {
            int w = (int)strlen(row_col(&rows[f], c));
            if (w > width[c])
                width[c] = w;
        }
    }
    for (int c = 0; c < N_COLS; c++)
        printf("%-*s  ", width[c], k_headers[c]);
    printf("summary\n");
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        for (int c = 0; c < N_COLS; c++)
            printf("%-*s  ", width[c], row_col(&rows[f], c));
        printf("%s\n", rows[f].summary ? rows[f].summary : "");
    }
}

/* The JSON object of one format. NULL if jansson ran out of memory. */
static json_t *format_json(qf_format fmt)
{
    const qf_format_traits *t = qf_format_get(fmt);
    row_text r;
    row_fill(fmt, &r);
    json_t *o = json_object();
    json_t *kernels = json_array();
    if (!o || !kernels) {
        json_decref(o);
        json_decref(kernels);
        return NULL;
    }
    int bad = 0;
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (covers(&k_backends[i], fmt))
            bad |= json_array_append_new(kernels, json_string(k_backends[i].name));
    bool per_row = t->blck == 0;
    /* json_object_set_new consumes the value even when it fails (NULL included), so one
     * flag collects every allocation failure without leaking. */
    bad |= json_object_set_new(o, "name", json_string(t->name));
    bad |= json_object_set_new(o, "weight", json_boolean(t->weight));
    bad |= json_object_set_new(o, "family", json_string(t->family));
    bad |= json_object_set_new(o, "per_row", json_boolean(per_row));
    bad |= json_object_set_new(o, "block_size", per_row ? json_null() : json_integer(t->blck));
    bad |= json_object_set_new(o, "bytes_per_block",
                               per_row ? json_null() : json_integer((json_int_t)t->type_size));
    bad |= json_object_set_new(o, "bytes_per_weight",
                               per_row ? json_integer((json_int_t)t->type_size) : json_null());
    bad |= json_object_set_new(o, "row_header_bytes", json_integer((json_int_t)t->row_header));
    bad |= json_object_set_new(o, "bpw", json_real(qf_format_bpw_nominal(fmt)));
    bad |= json_object_set_new(o, "bpw_text", json_string(r.bpw));
    bad |= json_object_set_new(o, "activation",
                               t->vec_dot_ref ? json_string(qf_format_get(t->act)->name)
                                              : json_null());
    bad |= json_object_set_new(o, "gguf_type",
                               t->gguf_type >= 0 ? json_integer(t->gguf_type) : json_null());
    bad |= json_object_set_new(o, "kernels", kernels);
    bad |= json_object_set_new(o, "summary", json_string(t->summary ? t->summary : ""));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int print_json(void)
{
    json_t *arr = json_array();
    if (!arr)
        return qf_errorf(QF_ENOMEM, "formats: out of memory building JSON");
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        if (json_array_append_new(arr, format_json((qf_format)f)) != 0) {
            json_decref(arr);
            return qf_errorf(QF_ENOMEM, "formats: out of memory building JSON");
        }
    }
    int rc = json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(arr);
    if (rc != 0)
        return qf_errorf(QF_EIO, "formats: cannot write JSON to standard output");
    putchar('\n');
    return 0;
}

int qf_cmd_formats(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false;
    opterr = 0;
    optind = 0;   /* full reset, also of a half-read "-ab" cluster: glibc, musl and BSD */
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': print_usage(stdout); return QF_EXIT_OK;
        default:
            qf_cli_reject_option("formats", c, argc, argv);
            return QF_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        qf_errorf(QF_EUSAGE, "formats: unexpected argument '%s' (see 'qfleet formats --help')",
                  argv[optind]);
        return QF_EXIT_USAGE;
    }
    if (json)
        return print_json() == 0 ? QF_EXIT_OK : QF_EXIT_FAILURE;
    print_table();
    return QF_EXIT_OK;
}
