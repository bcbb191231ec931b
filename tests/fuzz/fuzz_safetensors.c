/* fuzz_safetensors.c - libFuzzer target for the safetensors reader (datasets/safetensors.c).
 *
 * Checkpoints come from the internet, so any bytes must be refused with a message or opened
 * into tensors whose bytes lie in the file and convert to float without a read or write out
 * of bounds. Two shapes of input: a .safetensors file (given to the reader as a memory file,
 * fuzz_memfile.h), or, when the input starts with '{', a model.safetensors.index.json in a
 * scratch folder that also holds two small valid shards (written once at start-up), so the
 * index's weight_map checks are fuzzed too. The reader prints its refusals on stderr: run with
 * -close_fd_mask=2 (make fuzz does). Seeds: tests/fuzz/safetensors/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_safetensors.h"
#include "fuzz_memfile.h"

static char g_dir[64];
static char g_index[128];

static void write_file(const char *name, const void *bytes, size_t len)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* A shard: 8-byte little-endian header length, the JSON header, the data. */
static void write_shard(const char *name, const char *header, const void *data, size_t len)
{
    size_t hlen = strlen(header);
    uint8_t buf[512];
    if (8 + hlen + len > sizeof buf)
        abort();
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memcpy(buf + 8 + hlen, data, len);
    write_file(name, buf, 8 + hlen + len);
}

static void cleanup(void)
{
    static const char *const names[] = { "a.safetensors", "b.safetensors",
                                         "model.safetensors.index.json" };
    char path[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-fuzz-st-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(cleanup);
    static const uint8_t zeros[16];
    write_shard("a.safetensors",
                "{\"w.a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", zeros, 8);
    write_shard("b.safetensors",
                "{\"w.b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"__metadata__\":{\"format\":\"pt\"}}", zeros, 8);
    snprintf(g_index, sizeof g_index, "%s/model.safetensors.index.json", g_dir);
    return 0;
}

static void walk(const qf_safetensors *st)
{
    unsigned s = 0;
    for (size_t i = 0; i < qf_safetensors_count(st); i++) {
        const qf_st_tensor *t = qf_safetensors_at(st, i);
        s += qf_fuzz_touch(t->name, strlen(t->name) + 1);
        if (t->nbytes != (size_t)t->nelem * qf_st_dtype_size(t->dtype))
            abort();
        s += qf_fuzz_touch(t->data, t->nbytes);
        if (qf_safetensors_find(st, t->name) != t)
            abort();
        /* the inputs are small, so every tensor is too: converting it costs little */
        float *dst = malloc(((size_t)t->nelem + 1) * sizeof *dst);
        if (!dst)
            abort();
        (void)qf_safetensors_to_float(t, dst);
        free(dst);
    }
    (void)qf_safetensors_metadata(st, "format");
    (void)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_safetensors *st = NULL;
    int fd = -1, err;
    if (size > 0 && data[0] == '{') {
        write_file("model.safetensors.index.json", data, size);
        err = qf_safetensors_open(g_index, &st);
    } else {
        char path[64];
        fd = qf_fuzz_memfile(data, size, path, sizeof path);
        err = qf_safetensors_open(path, &st);
    }
    if (err == 0)
        walk(st);
    else if (st != NULL)
        abort();
    qf_safetensors_destroy(&st);
    if (fd >= 0)
        close(fd);
    return 0;
}
