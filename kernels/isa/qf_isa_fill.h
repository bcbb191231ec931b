/* qf_isa_fill.h - how each instruction set's kernel files register their row kernels.
 *
 * Each file under kernels/x86/ or kernels/arm/ is compiled with its ISA's flags and exports one
 * fill function that writes the slots it implements into its ISA's table (indexed by
 * qf_format) and leaves the others alone. dispatch.c calls every fill function of the build once,
 * at first use, whether or not the host runs that ISA: filling only stores function pointers,
 * and nothing from an ISA's file runs before qf_isa_host_supports said yes. So a fill function
 * must not execute any instruction of its ISA itself.
 * Only dispatch.c includes this.
 */
#ifndef QF_ISA_FILL_H
#define QF_ISA_FILL_H

#include "qf_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#define QF_ISA_X86 1
/* kernels/x86/avx2_float.c: f32, f16, bf16 */
void qf_isa_fill_avx2_float(qf_isa_kernels t[QF_FMT_COUNT]);
/* kernels/x86/avx2_legacy.c: q8_0, q8_1, q4_0, q4_1, q5_0, q5_1, iq4_nl, int8_pc, int4_g* */
void qf_isa_fill_avx2_legacy(qf_isa_kernels t[QF_FMT_COUNT]);
/* kernels/x86/avx2_kquants.c: q2_K..q6_K, q8_K */
void qf_isa_fill_avx2_kquants(qf_isa_kernels t[QF_FMT_COUNT]);
void qf_isa_fill_avx512_float(qf_isa_kernels t[QF_FMT_COUNT]);
void qf_isa_fill_avx512_legacy(qf_isa_kernels t[QF_FMT_COUNT]);
void qf_isa_fill_avx512_kquants(qf_isa_kernels t[QF_FMT_COUNT]);
#endif

#if defined(__aarch64__)
#define QF_ISA_ARM 1
/* kernels/arm/neon_*.c, the same split */
void qf_isa_fill_neon_float(qf_isa_kernels t[QF_FMT_COUNT]);
void qf_isa_fill_neon_legacy(qf_isa_kernels t[QF_FMT_COUNT]);
void qf_isa_fill_neon_kquants(qf_isa_kernels t[QF_FMT_COUNT]);
#endif

#endif
