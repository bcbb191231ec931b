/* fuzz_wire.c - libFuzzer target for the wire decoder (common/wire.c, docs/protocol.md).
 *
 * Every frame the coordinator or an agent receives goes through qf_wire_decode, so any input
 * must come back as a message or an error with a reason, never a crash, a leak or a read past
 * the frame. Beyond that, the codec's promise that it never refuses to send what it accepted
 * is checked: a frame that decodes must re-encode, the re-encoding must decode, and encoding
 * that again gives the same bytes (a fixed point). Small limits are tried too, so the
 * QF_ETOOBIG paths for samples and jobs are reached by small inputs. Seeds: tests/fuzz/wire/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_wire.h"

static void check_round_trip(const qf_msg *m)
{
    void *a = NULL, *b = NULL;
    size_t a_len = 0, b_len = 0;
    qf_wire_limits lim = qf_wire_default_limits();
    char why[512];
    if (qf_wire_encode(m, &a, &a_len) != 0) {
        fprintf(stderr, "fuzz_wire: decoded %s does not re-encode\n", qf_msg_type_name(m->type));
        abort();
    }
    qf_msg again;
    if (qf_wire_decode(a, a_len, &lim, &again, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_wire: re-encoded %s does not decode: %s\n",
                qf_msg_type_name(m->type), why);
        abort();
    }
    if (qf_wire_encode(&again, &b, &b_len) != 0 || a_len != b_len || memcmp(a, b, a_len) != 0) {
        fprintf(stderr, "fuzz_wire: %s is not a fixed point of decode(encode())\n",
                qf_msg_type_name(m->type));
        abort();
    }
    qf_msg_clear(&again);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    qf_msg m;
    qf_wire_limits lim = qf_wire_default_limits();
    if (qf_wire_decode(data, size, &lim, &m, why, sizeof why) == 0) {
        check_round_trip(&m);
        qf_msg_clear(&m);
    } else if (why[0] == '\0') {
        fprintf(stderr, "fuzz_wire: refused without a reason\n");
        abort();
    }
    /* the same bytes under tight limits: the size checks' own paths */
    qf_wire_limits tight = { .max_frame = 1024, .max_jobs = 2, .max_samples = 3 };
    if (qf_wire_decode(data, size, &tight, &m, why, sizeof why) == 0)
        qf_msg_clear(&m);
    return 0;
}
