/* fuzz_imatrix.c - libFuzzer target for the imatrix file reader (datasets/imatrix_file.c).
 *
 * Imatrix files come from the internet next to the models they were computed for, and
 * `qfleet quantize --imatrix` reads them; any bytes must be refused with a reason or opened
 * into entries whose every name and value is readable, whose values are finite and >= 0 (the
 * quantizers' precondition), and which find() returns by name. The input goes to the reader as
 * a memory file (fuzz_memfile.h): inputs starting with "GGUF" exercise the GGUF path (after
 * the GGUF reader), the rest the legacy .dat parser. Seeds: tests/fuzz/imatrix/ (a .dat with
 * and without its trailer, a GGUF imatrix with an expert entry).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_imatrix_file.h"
#include "fuzz_memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], why[512];
    int fd = qf_fuzz_memfile(data, size, path, sizeof path);
    qf_imatrix_file *m = NULL;
    if (qf_imatrix_file_open(path, &m, why, sizeof why) != 0) {
        if (m != NULL || why[0] == '\0') {
            fprintf(stderr, "fuzz_imatrix: refused without a reason, or left *out set\n");
            abort();
        }
        close(fd);
        return 0;
    }
    unsigned s = qf_fuzz_touch(qf_imatrix_file_kind(m), strlen(qf_imatrix_file_kind(m)) + 1) +
                 qf_fuzz_touch(qf_imatrix_file_dataset(m), strlen(qf_imatrix_file_dataset(m)) + 1);
    if (qf_imatrix_file_count(m) == 0)
        abort();
    for (size_t i = 0; i < qf_imatrix_file_count(m); i++) {
        const qf_imatrix_entry *e = qf_imatrix_file_at(m, i);
        s += qf_fuzz_touch(e->name, strlen(e->name) + 1);
        if (e->nval < 1 || e->nmat < 1 || e->nval % e->nmat != 0 ||
            qf_imatrix_file_find(m, e->name) != e) {
            fprintf(stderr, "fuzz_imatrix: entry %zu ('%s') has nval %lld, nmat %lld, or is not "
                    "found by its name\n", i, e->name, (long long)e->nval, (long long)e->nmat);
            abort();
        }
        for (int64_t k = 0; k < e->nval; k++)
            if (!isfinite(e->values[k]) || e->values[k] < 0.0f) {
                fprintf(stderr, "fuzz_imatrix: entry '%s' value %lld is %g\n", e->name,
                        (long long)k, (double)e->values[k]);
                abort();
            }
    }
    qf_imatrix_file_destroy(&m);
    close(fd);
    (void)s;
    return 0;
}
