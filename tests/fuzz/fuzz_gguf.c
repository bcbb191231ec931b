/* fuzz_gguf.c - libFuzzer target for the GGUF reader (datasets/gguf.c, docs/gguf.md).
 *
 * GGUF files come from the internet (`qfleet quantize`, model datasets), so any bytes must be
 * refused with a reason or opened into something every accessor can walk: each key, string
 * and array element, and each tensor's bytes, which must lie inside the file's data section.
 * The input is given to the reader as a memory file (fuzz_memfile.h). Seeds, written by our
 * own writer (make_seeds.c): tests/fuzz/gguf/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_gguf.h"
#include "fuzz_memfile.h"

static unsigned walk_kv(const qf_gguf_kv *kv)
{
    unsigned s = qf_fuzz_touch(kv->key, strlen(kv->key) + 1);
    if (kv->type == QF_GGUF_STRING)
        return s + qf_fuzz_touch(kv->v.str.s, kv->v.str.len + 1);
    if (kv->type != QF_GGUF_ARRAY)
        return s;
    if (kv->arr_type == QF_GGUF_STRING) {
        const qf_gguf_str *a = kv->v.arr;
        for (uint64_t i = 0; i < kv->n; i++)
            s += qf_fuzz_touch(a[i].s, a[i].len + 1);
        return s;
    }
    return s + qf_fuzz_touch(kv->v.arr, (size_t)kv->n * qf_gguf_vtype_size(kv->arr_type));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], why[512];
    int fd = qf_fuzz_memfile(data, size, path, sizeof path);
    qf_gguf *g = NULL;
    if (qf_gguf_open(path, &g, why, sizeof why) != 0) {
        if (g != NULL || why[0] == '\0') {
            fprintf(stderr, "fuzz_gguf: refused without a reason, or left *out set\n");
            abort();
        }
        close(fd);
        return 0;
    }
    unsigned s = 0;
    for (size_t i = 0; i < qf_gguf_kv_count(g); i++) {
        const qf_gguf_kv *kv = qf_gguf_kv_at(g, i);
        s += walk_kv(kv);
        if (qf_gguf_find_kv(g, kv->key) == NULL)
            abort();
    }
    uint64_t data_off = qf_gguf_data_offset(g), file_size = qf_gguf_file_size(g);
    for (size_t i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        uint64_t nbytes = 0;
        if (t->file_offset < data_off || t->file_offset > file_size ||
            t->size > file_size - t->file_offset ||
            qf_gguf_type_nbytes(t->type, t->n_dims, t->dims, &nbytes) != 0 || nbytes != t->size) {
            fprintf(stderr, "fuzz_gguf: tensor %zu (%s) lies outside the data section or has "
                    "the wrong size\n", i, t->name);
            abort();
        }
        s += qf_fuzz_touch(t->name, strlen(t->name) + 1);
        if (t->size > 0)
            s += qf_fuzz_touch(t->data, 1) + qf_fuzz_touch((const uint8_t *)t->data + t->size - 1, 1);
        if (qf_gguf_find_tensor(g, t->name) == NULL)
            abort();
    }
    int64_t v;
    (void)qf_gguf_get_int(g, QF_GGUF_KEY_ALIGNMENT, &v);
    qf_gguf_close(&g);
    close(fd);
    (void)s;
    return 0;
}
