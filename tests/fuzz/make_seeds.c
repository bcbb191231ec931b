/* make_seeds.c - writes the seed corpora of the fuzz targets with quantfleet's own writers.
 *
 * `make_seeds DIR` fills DIR/wire (one frame of every message type, from qf_wire_encode, plus
 * a SUBMIT whose jobs hit each job kind and a RESULT with nil metrics), DIR/gguf (files from
 * qf_gguf_writer: every metadata type, arrays, tensors of several types and alignments) and
 * DIR/safetensors (every dtype, a scalar, an empty tensor, metadata, and an index for the
 * fuzzer's scratch shards: there is no safetensors writer in quantfleet, so these are laid out
 * here byte by byte). The suite seeds are the YAML files themselves (tests/fuzz/suite/).
 * Run by `make fuzz-seeds`; the output is what tests/fuzz/<target>/ holds in the repository.
 * Not part of any test: a harness tool, so a failure here aborts with a message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_formats.h"
#include "qf_gguf.h"
#include "qf_wire.h"

static const char *g_out;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s\n", what);
    exit(1);
}

static void put(const char *sub, const char *name, const void *bytes, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_out, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_out, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

/* --- wire ---------------------------------------------------------------------------------- */

static qf_job_spec spec(const char *kind, const char *format, int64_t rows, int64_t cols)
{
    qf_job_spec s = { .rows = rows, .cols = cols, .reps = 3, .warmup = 1, .threads = 2,
                      .seed = 42, .timeout_ms = 60000, .priority = -1 };
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "synth:student-t");
    snprintf(s.selector, sizeof s.selector, "arch=x86_64 isa=avx2 name=lab-*");
    return s;
}

static void put_msg(const char *name, const qf_msg *m)
{
    void *buf;
    size_t len;
    if (qf_wire_encode(m, &buf, &len) != 0)
        die(name);
    put("wire", name, buf, len);
    free(buf);
}

static void wire_seeds(void)
{
    qf_msg m = { .type = QF_MSG_HELLO, .id = 1 };
    qf_msg_hello *h = &m.u.hello;
    snprintf(h->name, sizeof h->name, "lab-pi5-01");
    h->instance = 0x0123456789abcdefu;
    h->slots = 2;
    snprintf(h->version, sizeof h->version, "0.1.0");
    snprintf(h->commit, sizeof h->commit, "4049890-dirty");
    snprintf(h->arch, sizeof h->arch, "aarch64");
    snprintf(h->isa, sizeof h->isa, "asimd asimddp");
    snprintf(h->backends, sizeof h->backends, "cpu");
    h->fingerprint = "{\"cpu\":\"Cortex-A76\",\"cores\":4,\"caches\":[65536,524288]}";
    put_msg("01-hello", &m);

    m = (qf_msg){ .type = QF_MSG_WELCOME, .id = 1 };
    m.u.welcome = (qf_msg_welcome){ .agent_id = 7, .heartbeat_ms = 1000,
                                    .max_frame = QF_WIRE_DEFAULT_MAX_FRAME };
    put_msg("02-welcome", &m);

    m = (qf_msg){ .type = QF_MSG_HEARTBEAT, .id = 2 };
    m.u.heartbeat.running = 1;
    put_msg("03-heartbeat", &m);

    m = (qf_msg){ .type = QF_MSG_JOB, .id = 3 };
    m.u.job.job_id = 11;
    m.u.job.attempt = 2;
    m.u.job.spec = spec("quantize", "q4_K", 256, 4096);
    put_msg("04-job", &m);

    m = (qf_msg){ .type = QF_MSG_ACCEPT, .id = 4 };
    m.u.jobref.job_id = 11;
    m.u.jobref.attempt = 2;
    put_msg("05-accept", &m);

    m.type = QF_MSG_REJECT;
    snprintf(m.u.jobref.reason, sizeof m.u.jobref.reason, "no free slot");
    m.u.jobref.busy = true;
    put_msg("06-reject", &m);

    m = (qf_msg){ .type = QF_MSG_PROGRESS, .id = 5 };
    m.u.jobref = (qf_msg_jobref){ .job_id = 11, .attempt = 2, .done = 1, .total = 3 };
    put_msg("07-progress", &m);

    double samples[3] = { 1.5e-3, 1.4e-3, 1.6e-3 };
    m = (qf_msg){ .type = QF_MSG_RESULT, .id = 6 };
    m.u.result.job_id = 11;
    m.u.result.attempt = 2;
    qf_job_result *r = &m.u.result.result;
    r->status = QF_JOB_OK;
    r->samples = samples;
    r->n_samples = 3;
    r->has_metrics = true;
    r->metrics = (qf_job_metrics){ .rmse = 0.01, .nmse = 1e-4, .snr_db = 40.0, .max_abs = 0.2,
                                   .cosine = 0.9999 };
    r->bytes = 589824;
    r->bpw = 4.5;
    r->throughput_bytes = 589824;
    snprintf(r->dataset_sha256, sizeof r->dataset_sha256, "%064d", 0);
    snprintf(r->kernel, sizeof r->kernel, "ref");
    r->seed = 42;
    r->peak_rss_kb = 20480;
    r->wall_s = 0.25;
    put_msg("08-result", &m);
    r->status = QF_JOB_TIMEOUT;
    r->has_metrics = false;
    r->n_samples = 0;
    r->samples = NULL;
    snprintf(r->error, sizeof r->error, "killed at 60000 ms");
    r->dataset_sha256[0] = '\0';
    put_msg("08-result-timeout", &m);

    m = (qf_msg){ .type = QF_MSG_ACK, .id = 6 };
    m.u.jobref.job_id = 11;
    m.u.jobref.attempt = 2;
    put_msg("09-ack", &m);

    m = (qf_msg){ .type = QF_MSG_ERROR, .id = 6 };
    snprintf(m.u.error.code, sizeof m.u.error.code, "QF_EPROTO");
    snprintf(m.u.error.reason, sizeof m.u.error.reason, "unknown agent, send HELLO");
    put_msg("10-error", &m);

    m = (qf_msg){ .type = QF_MSG_BYE, .id = 7 };
    snprintf(m.u.error.reason, sizeof m.u.error.reason, "shutting down");
    put_msg("11-bye", &m);

    qf_job_spec jobs[4] = { spec("quantize", "q8_0", 64, 512), spec("matvec", "q4_0", 64, 512),
                            spec("dequantize", "int4_g32", 64, 512), spec("noop", "", 32, 32) };
    snprintf(jobs[3].dataset, sizeof jobs[3].dataset, "manifest:smollm2-135m/w");
    jobs[3].selector[0] = '\0';
    m = (qf_msg){ .type = QF_MSG_SUBMIT, .id = 8 };
    qf_msg_submit *s = &m.u.submit;
    snprintf(s->suite, sizeof s->suite, "quick");
    snprintf(s->commit, sizeof s->commit, "4049890");
    snprintf(s->branch, sizeof s->branch, "main");
    snprintf(s->baseline, sizeof s->baseline, "q8_0");
    s->max_attempts = 3;
    s->n_jobs = 4;
    s->jobs = jobs;
    put_msg("12-submit", &m);

    m = (qf_msg){ .type = QF_MSG_STATUS, .id = 9 };
    put_msg("13-status", &m);
    m = (qf_msg){ .type = QF_MSG_CANCEL, .id = 10 };
    m.u.runref.run_id = 3;
    put_msg("14-cancel", &m);

    m = (qf_msg){ .type = QF_MSG_REPLY, .id = 9 };
    m.u.reply.ok = true;
    m.u.reply.run_id = 3;
    m.u.reply.json = "{\"runs\":[{\"id\":3,\"done\":16,\"failed\":0}]}";
    put_msg("15-reply", &m);
}

/* --- GGUF ---------------------------------------------------------------------------------- */

static void gguf_file(const char *name, uint32_t align, bool tensors)
{
    char path[512], why[512];
    snprintf(path, sizeof path, "%s/gguf", g_out);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/gguf/%s", g_out, name);
    qf_gguf_writer *w = NULL;
    if (qf_gguf_writer_new(path, &w, why, sizeof why) != 0)
        die(why);
    qf_gguf_writer_set_str(w, "general.architecture", "llama");
    qf_gguf_writer_set_str(w, "general.name", "seed");
    if (align)
        qf_gguf_writer_set_u32(w, QF_GGUF_KEY_ALIGNMENT, align);
    qf_gguf_writer_set_u8(w, "t.u8", 1);
    qf_gguf_writer_set_i8(w, "t.i8", -1);
    qf_gguf_writer_set_u16(w, "t.u16", 2);
    qf_gguf_writer_set_i16(w, "t.i16", -2);
    qf_gguf_writer_set_i32(w, "t.i32", -3);
    qf_gguf_writer_set_u64(w, "t.u64", 4);
    qf_gguf_writer_set_i64(w, "t.i64", -4);
    qf_gguf_writer_set_f32(w, "t.f32", 0.5f);
    qf_gguf_writer_set_f64(w, "t.f64", 0.25);
    qf_gguf_writer_set_bool(w, "t.bool", true);
    const int32_t ints[3] = { 1, 2, 3 };
    qf_gguf_writer_set_arr(w, "t.arr_i32", QF_GGUF_I32, ints, 3);
    const char *const toks[3] = { "<s>", "</s>", "hello" };
    qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    static float f32[64];
    static uint8_t blocks[1024];
    for (int i = 0; i < 64; i++)
        f32[i] = (float)i * 0.125f - 4.0f;
    if (tensors) {
        const int64_t d1[1] = { 64 }, d2[2] = { 32, 2 }, d3[2] = { 256, 1 };
        qf_format f8, f4;
        uint32_t q8, q4k;
        if (qf_format_from_name("q8_0", &f8) || qf_format_from_name("q4_K", &f4) ||
            qf_gguf_type_from_format(f8, &q8) || qf_gguf_type_from_format(f4, &q4k))
            die("no GGUF type for q8_0 / q4_K");
        qf_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", 0 /* F32 */, 1, d1, f32, NULL);
        qf_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", q8, 2, d2, blocks, NULL);
        qf_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", q4k, 2, d3, blocks, NULL);
    }
    if (qf_gguf_writer_finish(&w, why, sizeof why) != 0)
        die(why);
}

/* --- safetensors --------------------------------------------------------------------------- */

static void st_file(const char *name, const char *header, size_t data_len)
{
    static uint8_t buf[4096];
    size_t hlen = strlen(header);
    if (8 + hlen + data_len > sizeof buf)
        die(name);
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hlen + i] = (uint8_t)(i * 37 + 11);
    put("safetensors", name, buf, 8 + hlen + data_len);
}

static void st_seeds(void)
{
    st_file("every-dtype.safetensors",
            "{\"__metadata__\":{\"format\":\"pt\"},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]},"
            "\"c\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
            "\"d\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[32,36]},"
            "\"e\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[36,40]},"
            "\"f\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[40,48]},"
            "\"g\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[48,56]},"
            "\"h\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[56,58]},"
            "\"i\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[58,60]},"
            "\"j\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[60,64]},"
            "\"k\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[64,68]},"
            "\"l\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[68,76]},"
            "\"m\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[76,84]},"
            "\"n\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[84,86]},"
            "\"o\":{\"dtype\":\"F8_E5M2\",\"shape\":[2],\"data_offsets\":[86,88]}}", 88);
    st_file("scalar-and-empty.safetensors",
            "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
            "\"z\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[4,4]}}", 4);
    st_file("llama-like.safetensors",
            "{\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[4,8],"
            "\"data_offsets\":[0,64]},\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8],"
            "\"data_offsets\":[64,96]}}        ", 96);
    /* an index over the fuzz target's two scratch shards (see fuzz_safetensors.c) */
    static const char index[] =
        "{\"metadata\":{\"total_size\":16},"
        "\"weight_map\":{\"w.a\":\"a.safetensors\",\"w.b\":\"b.safetensors\"}}";
    put("safetensors", "index.json", index, sizeof index - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    g_out = argv[1];
    mkdir(g_out, 0755);
    wire_seeds();
    gguf_file("tensors.gguf", 0, true);
    gguf_file("align64.gguf", 64, true);
    gguf_file("metadata-only.gguf", 0, false);
    st_seeds();
    return 0;
}
