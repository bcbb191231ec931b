/* cmd_gptq.c - `qfleet gptq`: GPTQ on one layer against round-to-nearest, on the same data.
 *
 * The layer is synthetic by default (qf_synth Gaussian weights with outlier columns, --rows x
 * --cols) or one 2-D tensor of a GGUF file (--gguf FILE --tensor NAME, decoded to floats).
 * The calibration activations are synthetic (qf_gptq_synth_calib, --samples x cols) or a raw
 * little-endian f32 file of n x cols values (--calib FILE, n from its size). The command runs
 * qf_gptq_quantize once and prints both output errors ||W X^T - Ŵ X^T||^2, their ratio and the
 * run times, as text or one JSON object (--json); nothing is written to disk. GPTQ fits its
 * calibration set, and with fewer samples than columns it can hide error in directions the set
 * never visits, so --holdout N also measures both on N fresh synthetic samples.
 * Exit status: 0, 1 for a failure while running, 2 for a bad command line or input shape.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_gguf.h"
#include "qf_gptq.h"
#include "qf_synth.h"

#define MAX_DIM     (INT64_C(1) << 20)
#define MAX_THREADS 256

typedef struct gptq_opts {
    qf_format fmt;
    int64_t   rows, cols, samples, holdout;
    uint64_t  seed;
    qf_gptq_params p;
    bool      json;
    const char *gguf, *tensor, *calib;
} gptq_opts;

static void usage(FILE *out)
{
    fputs("usage: qfleet gptq [--format FMT] [--rows N] [--cols N] [--samples N] [--seed N]\n"
          "                   [--damp F] [--act-order] [--threads N] [--holdout N] [--json]\n"
          "                   [--gguf FILE --tensor NAME] [--calib FILE]\n"
          "\n"
          "Quantizes one linear layer W (rows = outputs, cols = inputs) with GPTQ on calibration\n"
          "activations X and prints ||W X^T - Ŵ X^T||^2 for GPTQ and for round-to-nearest in the\n"
          "same format, their ratio, and the run times (docs/formats.md, \"GPTQ\").\n"
          "  --format FMT   a 4-bit block format (default int4_g128; q4_0, q4_K, ort_int4_b32,\n"
          "                 ...)\n"
          "  --rows N       output channels of the synthetic layer (default 1024)\n"
          "  --cols N       input channels (default 1024; a multiple of the format's block)\n"
          "  --samples N    synthetic calibration rows (default 512)\n"
          "  --seed N       seed of the synthetic weights and activations (default 1)\n"
          "  --damp F       dampening, a fraction of mean(diag H) (default 0.01)\n"
          "  --act-order    visit columns by decreasing diag H (static groups)\n"
          "  --threads N    BLAS and column-loop threads (default: OpenBLAS's choice)\n"
          "  --holdout N    also measure both on N fresh samples of the synthetic distribution\n"
          "  --json         one JSON object instead of text\n"
          "  --gguf FILE --tensor NAME   W from a 2-D tensor of a GGUF file instead\n"
          "  --calib FILE   X from a raw little-endian f32 file (n x cols values) instead\n",
          out);
}

/* A dampening: the whole text a finite number in [0, 1e6). */
static int parse_damp(const char *text, double *out)
{
    char *end = NULL;
    double v = *text ? strtod(text, &end) : NAN;
    if (!end || *end || !(v >= 0 && v < 1e6))
        return qf_errorf(QF_EUSAGE, "gptq: --damp '%s' is not a number in [0, 1e6)", text);
    *out = v;
    return 0;
}

/* 0, 1 after --help, or QF_EUSAGE (the message printed). */
static int parse_args(int argc, char **argv, gptq_opts *o)
{
    static const struct option opts[] = {
        { "format", required_argument, NULL, 'f' },
        { "rows", required_argument, NULL, 'r' },
        { "cols", required_argument, NULL, 'c' },
        { "samples", required_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 's' },
        { "damp", required_argument, NULL, 'd' },
        { "act-order", no_argument, NULL, 'a' },
        { "threads", required_argument, NULL, 'j' },
        { "json", no_argument, NULL, 'J' },
        { "holdout", required_argument, NULL, 'o' },
        { "gguf", required_argument, NULL, 'g' },
        { "tensor", required_argument, NULL, 't' },
        { "calib", required_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int64_t v;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int err = 0;
        switch (ch) {
        case 'f':
            if ((err = qf_format_from_name(optarg, &o->fmt)) == 0 && !qf_gptq_supports(o->fmt))
                err = qf_errorf(QF_EUSAGE, "gptq: --format %s has no GPTQ grid (4-bit block "
                                "formats only)", optarg);
            else if (err)
                qf_errorf(err, "gptq: --format '%s' is not a format (see qfleet formats)",
                          optarg);
            break;
        case 'r': err = qf_cli_parse_int("gptq", "--rows", optarg, 1, MAX_DIM, &o->rows); break;
        case 'c': err = qf_cli_parse_int("gptq", "--cols", optarg, 1, MAX_DIM, &o->cols); break;
        case 'n':
            err = qf_cli_parse_int("gptq", "--samples", optarg, 1, MAX_DIM, &o->samples);
            break;
        case 's':
            if (!(err = qf_cli_parse_int("gptq", "--seed", optarg, 0, INT64_MAX, &v)))
                o->seed = (uint64_t)v;
            break;
        case 'd': err = parse_damp(optarg, &o->p.percdamp); break;
        case 'a': o->p.act_order = true; break;
        case 'j':
            if (!(err = qf_cli_parse_int("gptq", "--threads", optarg, 1, MAX_THREADS, &v)))
                o->p.threads = (int)v;
            break;
        case 'J': o->json = true; break;
        case 'o':
            err = qf_cli_parse_int("gptq", "--holdout", optarg, 1, MAX_DIM, &o->holdout);
            break;
        case 'g': o->gguf = optarg; break;
        case 't': o->tensor = optarg; break;
        case 'x': o->calib = optarg; break;
        case 'h': usage(stdout); return 1;
        default: return qf_cli_reject_option("gptq", ch, argc, argv);
        }
        if (err)
            return QF_EUSAGE;
    }
    if (optind != argc)
        return qf_errorf(QF_EUSAGE, "gptq: unexpected argument '%s' (see qfleet gptq --help)",
                         argv[optind]);
    if (!o->gguf != !o->tensor)
        return qf_errorf(QF_EUSAGE, "gptq: --gguf and --tensor go together");
    if (o->holdout && o->calib)
        return qf_errorf(QF_EUSAGE, "gptq: --holdout draws synthetic samples, which would not "
                         "match --calib's");
    return 0;
}

/* W from a GGUF tensor: 2-D, in a format we decode; rows and cols from its dims. */
static int load_gguf(gptq_opts *o, float **w)
{
    char why[512] = "";
    qf_gguf *g = NULL;
    int err = qf_gguf_open(o->gguf, &g, why, sizeof why);
    if (err)
        return qf_errorf(QF_EUSAGE, "gptq: %s", why);
    const qf_gguf_tensor *t = qf_gguf_find_tensor(g, o->tensor);
    if (!t || t->n_dims != 2 || t->format < 0) {
        err = qf_errorf(QF_EUSAGE, "gptq: %s: tensor '%s' %s", o->gguf, o->tensor,
                        !t ? "is not there" : t->n_dims != 2 ? "is not 2-D"
                                                             : "has a type we cannot decode");
        goto out;
    }
    o->rows = t->dims[1];
    o->cols = t->dims[0];
    if (!(*w = malloc(sizeof **w * (size_t)o->rows * (size_t)o->cols))) {
        err = qf_errorf(QF_ENOMEM, "gptq: no memory for tensor '%s'", o->tensor);
        goto out;
    }
    err = qf_dequantize((qf_format)t->format, t->data, *w, o->rows, o->cols);
out:
    qf_gguf_close(&g);
    return err;
}

/* X from a raw f32 file whose size is a multiple of a row of cols floats. */
static int load_calib(gptq_opts *o, float **x)
{
    struct stat sb;
    FILE *f = fopen(o->calib, "rb");
    size_t row = sizeof(float) * (size_t)o->cols;
    if (!f || fstat(fileno(f), &sb) != 0 || sb.st_size <= 0 || (size_t)sb.st_size % row != 0) {
        if (f)
            fclose(f);
        return qf_errorf(QF_EUSAGE, "gptq: %s: %s", o->calib,
                         !f ? "cannot open" : "size is not a whole number of rows of --cols f32");
    }
    o->samples = (int64_t)((size_t)sb.st_size / row);
    *x = malloc((size_t)sb.st_size);
    int err = 0;
    if (!*x)
        err = qf_errorf(QF_ENOMEM, "gptq: no memory for %s", o->calib);
    else if (fread(*x, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        err = qf_errorf(QF_EIO, "gptq: %s: short read", o->calib);
    fclose(f);
    return err;
}

/* "ratio 0.7439 (25.6% lower)", or "... higher" where GPTQ lost. */
static void print_ratio(double gptq, double rtn)
{
    double ratio = gptq / rtn;
    printf("ratio %.4f (%.1f%% %s)\n", ratio, 100 * fabs(1 - ratio),
           ratio <= 1 ? "lower" : "higher");
}

static void print_text(const gptq_opts *o, const qf_gptq_stats *st, const qf_gptq_stats *ho)
{
    printf("gptq: %s, %lld x %lld layer, %lld calibration samples, damp %g, act-order %s\n",
           qf_format_get(o->fmt)->name, (long long)o->rows, (long long)o->cols,
           (long long)o->samples, o->p.percdamp, o->p.act_order ? "on" : "off");
    printf("  ||WX^T - ŴX^T||^2   gptq %.6e   rtn %.6e\n", st->err_gptq, st->err_rtn);
    printf("  relative to ||WX^T||^2   gptq %.4e   rtn %.4e\n", st->err_gptq / st->ref_norm2,
           st->err_rtn / st->ref_norm2);
    printf("  gptq/rtn ");
    print_ratio(st->err_gptq, st->err_rtn);
    printf("  time  gptq %.3f s (Hessian %.3f, factor %.3f, columns %.3f)   rtn %.3f s\n",
           st->seconds, st->seconds_hessian, st->seconds_factor,
           st->seconds - st->seconds_hessian - st->seconds_factor, st->seconds_rtn);
    if (o->holdout) {
        printf("  held out (%lld fresh samples): gptq %.6e   rtn %.6e   ", (long long)o->holdout,
               ho->err_gptq, ho->err_rtn);
        print_ratio(ho->err_gptq, ho->err_rtn);
    }
    if (st->dead_cols)
        printf("  dead input columns: %lld (no sample reaches them; weights set to 0)\n",
               (long long)st->dead_cols);
}

static int print_json(const gptq_opts *o, const qf_gptq_stats *st, const qf_gptq_stats *ho)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:f, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                          "s:f, s:I}",
                          "format", qf_format_get(o->fmt)->name, "rows", (json_int_t)o->rows,
                          "cols", (json_int_t)o->cols, "samples", (json_int_t)o->samples,
                          "damp", o->p.percdamp, "act_order", o->p.act_order,
                          "err_gptq", st->err_gptq, "err_rtn", st->err_rtn,
                          "ratio", st->err_gptq / st->err_rtn, "ref_norm2", st->ref_norm2,
                          "seconds", st->seconds, "seconds_hessian", st->seconds_hessian,
                          "seconds_factor", st->seconds_factor, "seconds_rtn", st->seconds_rtn,
                          "dead_cols", (json_int_t)st->dead_cols);
    if (j && o->holdout)
        json_object_set_new(j, "holdout", json_pack("{s:I, s:f, s:f, s:f}", "samples",
                            (json_int_t)o->holdout, "err_gptq", ho->err_gptq, "err_rtn",
                            ho->err_rtn, "ratio", ho->err_gptq / ho->err_rtn));
    if (!j)
        return qf_errorf(QF_ENOMEM, "gptq: cannot build the JSON result");
    int rc = json_dumpf(j, stdout, JSON_COMPACT);
    json_decref(j);
    putchar('\n');
    return rc ? qf_errorf(QF_EIO, "gptq: cannot write the JSON result") : 0;
}

int qf_cmd_gptq(int argc, char **argv)
{
    gptq_opts o = { .fmt = QF_FMT_INT4_G128, .rows = 1024, .cols = 1024, .samples = 512,
                    .seed = 1, .p = qf_gptq_defaults() };
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? QF_EXIT_OK : QF_EXIT_USAGE;

    float *w = NULL, *x = NULL;
    void *q = NULL;
    int err = o.gguf ? load_gguf(&o, &w) : 0;
    if (!err && o.calib)
        err = load_calib(&o, &x);
    if (!err && (err = qf_format_check_cols(o.fmt, o.cols)))
        err = QF_EUSAGE;
    if (!err && !w) {
        qf_synth_params sp = qf_synth_defaults(QF_SYNTH_GAUSSIAN, o.seed);
        if (!(w = malloc(sizeof *w * (size_t)o.rows * (size_t)o.cols)))
            err = qf_errorf(QF_ENOMEM, "gptq: no memory for a %lld x %lld layer",
                            (long long)o.rows, (long long)o.cols);
        else
            err = qf_synth_fill(&sp, w, o.rows, o.cols);
    }
    if (!err && !x) {
        if (!(x = malloc(sizeof *x * (size_t)o.samples * (size_t)o.cols)))
            err = qf_errorf(QF_ENOMEM, "gptq: no memory for %lld calibration samples",
                            (long long)o.samples);
        else
            err = qf_gptq_synth_calib(o.seed, 0, o.samples, o.cols, x);
    }
    if (!err && !(q = malloc(qf_format_row_size(o.fmt, o.cols) * (size_t)o.rows)))
        err = qf_errorf(QF_ENOMEM, "gptq: no memory for the quantized layer");

    qf_gptq_stats st, ho = { 0 };
    if (!err)
        err = qf_gptq_quantize(o.fmt, w, o.rows, o.cols, x, o.samples, &o.p, q, NULL, &st);
    if (!err && o.holdout) {     /* fresh samples in x's place */
        free(x);
        if (!(x = malloc(sizeof *x * (size_t)o.holdout * (size_t)o.cols)))
            err = qf_errorf(QF_ENOMEM, "gptq: no memory for %lld held-out samples",
                            (long long)o.holdout);
        else if (!(err = qf_gptq_synth_calib(o.seed, 1, o.holdout, o.cols, x)))
            err = qf_gptq_compare(o.fmt, w, o.rows, o.cols, q, x, o.holdout, &ho);
    }
    if (!err)
        err = o.json ? print_json(&o, &st, &ho) : (print_text(&o, &st, &ho), 0);
    free(w);
    free(x);
    free(q);
    if (err == QF_EUSAGE || err == QF_ESHAPE)
        return QF_EXIT_USAGE;
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
