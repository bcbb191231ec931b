/* qf_kernels.h - the fast CPU kernels: which instruction sets exist, and the row kernels each
 * one offers per format, chosen at run time.
 *
 * The reference kernels (kernels/ref/, reached through qf_format_get) define every format; the
 * files under kernels/x86/ and kernels/arm/ are the same functions written for one instruction
 * set each, compiled with that set's flags and called only after CPU feature detection said the
 * host runs it. An ISA need not implement every slot: qf_kernels_get resolves each slot to the
 * ISA's own function, else the next lower ISA's of the same family (avx512 -> avx2), else the
 * reference, and says where each came from. So a new kernel is one table slot, and a missing one
 * costs speed, never correctness.
 *
 * Contract of an ISA kernel, tested on every ISA the host runs (tests/test_kernels.c):
 *  - quantize: byte-exact with the reference for the formats whose definition is deterministic
 *    rounding (k_exact_quantize in dispatch.c lists them); the K-quants and iq4_nl may differ
 *    where float sums are reassociated, within +0.5% RMSE of the reference's error;
 *  - dequantize: bit-exact with the reference;
 *  - vec_dot: integer parts exact, float accumulation within a relative error of 1e-5 of
 *    sum |w_i a_i| (the order of a float sum is the only freedom).
 * Row kernels take k already checked by qf_format_check_cols; they never allocate.
 */
#ifndef QF_KERNELS_H
#define QF_KERNELS_H

#include <stdbool.h>

#include "qf_formats.h"

/* Instruction sets, lowest first within a family. avx512 means F+BW+VL+DQ+VNNI (Ice Lake,
 * Zen 4 and later; BF16 is used where the CPU also has it); neon means AArch64 Advanced SIMD with
 * the dot-product extension (dotprod), i8mm used where present. */
typedef enum qf_isa {
    QF_ISA_REF,
    QF_ISA_AVX2,
    QF_ISA_AVX512,
    QF_ISA_NEON,
    QF_ISA_COUNT
} qf_isa;

/* One ISA's row kernels for one format; a NULL slot is not implemented there. */
typedef struct qf_isa_kernels {
    qf_quantize_row_fn   quantize;
    qf_dequantize_row_fn dequantize;
    qf_vec_dot_fn        vec_dot;
} qf_isa_kernels;

/* The kernels for one format on one ISA, every slot resolved (never NULL, except vec_dot for
 * activation-only formats), with the ISA each slot came from. quantize_act is the activation
 * format's quantizer on the same ISA: what a matvec runs on its input first. */
typedef struct qf_kernel_set {
    qf_format            fmt;
    qf_isa               isa;            /* what was asked for */
    qf_quantize_row_fn   quantize;
    qf_dequantize_row_fn dequantize;
    qf_vec_dot_fn        vec_dot;
    qf_quantize_row_fn   quantize_act;
    qf_isa               from_quantize, from_dequantize, from_vec_dot;
} qf_kernel_set;

/* "ref", "avx2", "avx512", "neon". */
const char *qf_isa_name(qf_isa isa);

/* QF_EUSAGE naming the word and the known names if it is none of them. */
int qf_isa_from_name(const char *name, qf_isa *out);

/* Whether this build has the ISA's kernels and this CPU (and OS) can run them. */
bool qf_isa_host_supports(qf_isa isa);

/* The best ISA the host supports: what runs when nothing is forced. */
qf_isa qf_isa_best(void);

/* The CPU features detection saw, as a space-separated list ("avx2 fma f16c avx512f ..."),
 * for fingerprints and `qfleet formats`. Static storage. */
const char *qf_isa_host_features(void);

/* Fills *out for fmt on isa. QF_EUNSUP (naming the ISA) if the host can't run isa. */
int qf_kernels_get(qf_isa isa, qf_format fmt, qf_kernel_set *out);

/* The ISA's own slots for fmt, unresolved (NULL where it has none): for `qfleet formats` and
 * the tests, which check each implemented slot against the reference. Valid for any isa this
 * build has, whether or not the host runs it. */
const qf_isa_kernels *qf_kernels_own(qf_isa isa, qf_format fmt);

#endif
