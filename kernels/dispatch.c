/* dispatch.c - CPU feature detection and the per-ISA kernel tables (see qf_kernels.h).
 *
 * The tables are filled once, on first use (pthread_once), by every ISA file this build has;
 * detection runs once too. After that every call is a table lookup: callers resolve a kernel
 * set once per matrix, not per row, so none of this is hot.
 */
#include "qf_kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "isa/qf_isa_fill.h"
#include "qf_err.h"

#if defined(QF_ISA_X86)
#include <cpuid.h>
#include <stdint.h>
#endif
#if defined(QF_ISA_ARM) && defined(__linux__)
#include <sys/auxv.h>
#endif

static const char *const k_isa_names[QF_ISA_COUNT] = {
    [QF_ISA_REF] = "ref", [QF_ISA_AVX2] = "avx2", [QF_ISA_AVX512] = "avx512",
    [QF_ISA_NEON] = "neon",
};

/* The ISA a slot falls back to when an ISA lacks it; REF falls back to the format table. */
static const qf_isa k_fallback[QF_ISA_COUNT] = {
    [QF_ISA_REF] = QF_ISA_REF, [QF_ISA_AVX2] = QF_ISA_REF, [QF_ISA_AVX512] = QF_ISA_AVX2,
    [QF_ISA_NEON] = QF_ISA_REF,
};

static pthread_once_t   g_once = PTHREAD_ONCE_INIT;
static qf_isa_kernels   g_tables[QF_ISA_COUNT][QF_FMT_COUNT];
static bool             g_supported[QF_ISA_COUNT];
static char             g_features[256];

static void add_feature(const char *name)
{
    size_t used = strlen(g_features);
    snprintf(g_features + used, sizeof g_features - used, "%s%s", used ? " " : "", name);
}

static void detect(void)
{
    g_supported[QF_ISA_REF] = true;
#if defined(QF_ISA_X86)
    /* CPUID leaves 1 and 7 for the features, XGETBV for whether the OS saves the wider
     * registers (YMM: XCR0 bits 1-2; ZMM and mask registers: bits 5-7). Read directly:
     * clang 14's __builtin_cpu_supports knows neither "f16c" nor "avx512bf16". */
    unsigned a, b, c, d, b7 = 0, c7 = 0, a71 = 0;
    bool f16c = false, fma = false, osxsave = false;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        fma = c & (1u << 12);
        f16c = c & (1u << 29);
        osxsave = c & (1u << 27);
    }
    if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d))
        if (a >= 1 && !__get_cpuid_count(7, 1, &a71, &b, &c, &d))
            a71 = 0;
    uint64_t xcr0 = 0;
    if (osxsave) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (uint64_t)hi << 32 | lo;
    }
    const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    bool avx2 = ymm && (b7 & (1u << 5)), bmi2 = b7 & (1u << 8);
    bool f = zmm && (b7 & (1u << 16)), dq = zmm && (b7 & (1u << 17));
    bool bw = zmm && (b7 & (1u << 30)), vl = zmm && (b7 & (1u << 31));
    bool vnni = zmm && (c7 & (1u << 11)), bf16 = zmm && (a71 & (1u << 5));
    fma = fma && ymm;
    f16c = f16c && ymm;
    const struct { bool on; const char *name; } feats[] = {
        { avx2, "avx2" }, { fma, "fma" }, { f16c, "f16c" }, { bmi2, "bmi2" },
        { f, "avx512f" }, { bw, "avx512bw" }, { vl, "avx512vl" }, { dq, "avx512dq" },
        { vnni, "avx512vnni" }, { bf16, "avx512bf16" },
    };
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (feats[i].on)
            add_feature(feats[i].name);
    g_supported[QF_ISA_AVX2] = avx2 && fma && f16c && bmi2;
    g_supported[QF_ISA_AVX512] = g_supported[QF_ISA_AVX2] && f && bw && vl && dq && vnni;
#elif defined(QF_ISA_ARM)
    bool dotprod = false, i8mm = false;
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    dotprod = (hw & (1UL << 20)) != 0;   /* HWCAP_ASIMDDP */
    i8mm = (hw2 & (1UL << 13)) != 0;     /* HWCAP2_I8MM */
#elif defined(__APPLE__)
    dotprod = true;                      /* every Apple Silicon core has it */
#endif
    add_feature("neon");
    if (dotprod)
        add_feature("dotprod");
    if (i8mm)
        add_feature("i8mm");
    g_supported[QF_ISA_NEON] = dotprod;
#endif
}

static void init(void)
{
    detect();
#if defined(QF_ISA_X86)
    qf_isa_fill_avx2_float(g_tables[QF_ISA_AVX2]);
    qf_isa_fill_avx2_legacy(g_tables[QF_ISA_AVX2]);
    qf_isa_fill_avx2_kquants(g_tables[QF_ISA_AVX2]);
    qf_isa_fill_avx512_float(g_tables[QF_ISA_AVX512]);
    qf_isa_fill_avx512_legacy(g_tables[QF_ISA_AVX512]);
    qf_isa_fill_avx512_kquants(g_tables[QF_ISA_AVX512]);
#elif defined(QF_ISA_ARM)
    qf_isa_fill_neon_float(g_tables[QF_ISA_NEON]);
    qf_isa_fill_neon_legacy(g_tables[QF_ISA_NEON]);
    qf_isa_fill_neon_kquants(g_tables[QF_ISA_NEON]);
#endif
}

const char *qf_isa_name(qf_isa isa)
{
    return isa < QF_ISA_COUNT ? k_isa_names[isa] : "?";
}

int qf_isa_from_name(const char *name, qf_isa *out)
{
    for (int i = 0; i < QF_ISA_COUNT; i++)
        if (strcmp(name, k_isa_names[i]) == 0) {
            *out = (qf_isa)i;
            return 0;
        }
    return qf_errorf(QF_EUSAGE, "'%s' is not an instruction set (ref, avx2, avx512, neon)", name);
}

bool qf_isa_host_supports(qf_isa isa)
{
    pthread_once(&g_once, init);
    return isa < QF_ISA_COUNT && g_supported[isa];
}

qf_isa qf_isa_best(void)
{
    pthread_once(&g_once, init);
    static const qf_isa order[] = { QF_ISA_AVX512, QF_ISA_AVX2, QF_ISA_NEON };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (g_supported[order[i]])
            return order[i];
    return QF_ISA_REF;
}

const char *qf_isa_host_features(void)
{
    pthread_once(&g_once, init);
    return g_features;
}

const qf_isa_kernels *qf_kernels_own(qf_isa isa, qf_format fmt)
{
    pthread_once(&g_once, init);
    return &g_tables[isa][fmt];
}

/* Walks isa -> fallback -> ... -> REF for one slot (an offset into qf_isa_kernels, since the
 * three slots have different function types). REF's own table is empty: the format table's
 * reference kernels are the last resort, filled in by the caller. */
#define RESOLVE(slot, from)                                                 \
    do {                                                                    \
        qf_isa i_ = isa;                                                    \
        while (i_ != QF_ISA_REF && !g_tables[i_][fmt].slot)                 \
            i_ = k_fallback[i_];                                            \
        (from) = i_;                                                        \
    } while (0)

static void resolve(qf_isa isa, qf_format fmt, qf_kernel_set *out)
{
    const qf_format_traits *t = qf_format_get(fmt);
    qf_isa from;
    RESOLVE(quantize, from);
    out->from_quantize = from;
    out->quantize = from == QF_ISA_REF ? t->quantize_ref : g_tables[from][fmt].quantize;
    RESOLVE(dequantize, from);
    out->from_dequantize = from;
    out->dequantize = from == QF_ISA_REF ? t->dequantize : g_tables[from][fmt].dequantize;
    RESOLVE(vec_dot, from);
    out->from_vec_dot = from;
    out->vec_dot = from == QF_ISA_REF ? t->vec_dot_ref : g_tables[from][fmt].vec_dot;
}

int qf_kernels_get(qf_isa isa, qf_format fmt, qf_kernel_set *out)
{
    if (!qf_isa_host_supports(isa))
        return qf_errorf(QF_EUNSUP, "this machine or build cannot run the %s kernels "
                         "(CPU features: %s)", qf_isa_name(isa),
                         g_features[0] ? g_features : "none detected");
    memset(out, 0, sizeof *out);
    out->fmt = fmt;
    out->isa = isa;
    resolve(isa, fmt, out);
    const qf_format_traits *t = qf_format_get(fmt);
    if (t->vec_dot_ref) {
        qf_kernel_set act;
        resolve(isa, t->act, &act);
        out->quantize_act = act.quantize;
    }
    return 0;
}
