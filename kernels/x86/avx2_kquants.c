/* avx2_kquants.c - the AVX2 row kernels of the K-quants q2_K .. q6_K and their activation q8_K
 * (see qf_kernels.h and kernels/isa/qf_isa_fill.h). Compiled with -mavx2 -mfma -mf16c -mbmi2;
 * runs only where dispatch.c's detection said the host has them. avx512_kquants.c falls back
 * to the quantizers and dequantizers here.
 *
 * Quantize is byte-exact with kernels/ref/kquants.c. The reference spends its time in the
 * per-sub-block scale searches (fit_affine, fit_symmetric, fit_q3), whose float sums run in
 * weight order; reassociating them would change bytes. So the searches run with one SIMD lane
 * per sub-block instead: lane j walks sub-block j's weights in the reference's order and does
 * the reference's float operations one for one (no FMA: -std=c11 keeps GCC from contracting,
 * the pragma below keeps clang from it), and every data-dependent branch becomes a per-lane
 * blend. The sub-blocks are transposed in once per super-block (xt[i] holds weight i of every
 * lane's sub-block) and the chosen levels transposed back once.
 * Dequantize does the reference's two float operations per weight, so it is bit-exact.
 * vec_dot keeps the integer sums exact (u8 x s8 pairs by maddubs, scaled by the sub-block
 * scales in int32); how its float side follows the reference is explained above vec_dot_q2_K
 * (q2_K, q4_K, q5_K: bit-exact; q3_K, q6_K: one exact integer total per block).
 * The scalar steps between searches and packing (rounding the sub-block scales to 4 or 6 bits)
 * are the reference's code again: they must round exactly as it does, and it keeps them static.
 * Hot: vec_dot runs once per weight row of every matvec; quantize once per tensor.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "isa/qf_isa_fill.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GROUP_EPS 1e-15f

/* The level helpers take their bit positions as arguments; inlined into unrolled loops those
 * become immediates, which is what makes the dot products fast. */
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* --- small helpers ------------------------------------------------------------------------------ */

INLINE float f16_to_f32(qf_half h)
{
    return _cvtsh_ss(h);   /* exact, NaN payload kept and quieted, as qf_fp16_to_fp32 */
}

/* ggml's nearest_int (add 1.5 * 2^23, read the mantissa), lane by lane and bit for bit, in its
 * scalar form for the few per-block scale roundings. */
static int nearest(float v)
{
    float biased = v + 12582912.f;
    uint32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (int)(bits & 0x007fffffu) - 0x00400000;
}

INLINE __m256i nearest8(__m256 v)
{
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                            _mm256_set1_epi32(0x00400000));
}

/* clamp(nearest(v), lo, hi) as a float: the levels stay floats through the searches, where the
 * reference converts them with (float)l anyway. */
INLINE __m256 level8(__m256 v, int lo, int hi)
{
    __m256i i = _mm256_max_epi32(nearest8(v), _mm256_set1_epi32(lo));
    return _mm256_cvtepi32_ps(_mm256_min_epi32(i, _mm256_set1_epi32(hi)));
}

INLINE __m256 abs8(__m256 v)
{
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

INLINE __m256 blend8(__m256 a, __m256 b, __m256 take_b)
{
    return _mm256_blendv_ps(a, b, take_b);
}

/* The 8 x 8 transpose: o[i] lane j = r[j] lane i. */
INLINE void transpose8(const __m256 *r, __m256 *o)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    o[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    o[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    o[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    o[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    o[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    o[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    o[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    o[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* xt[i] lane j = x[stride * j + i], for i < n (a multiple of 8): eight sub-blocks side by
 * side. (A transpose: gathers are several times slower on the CPUs we target.) */
INLINE void lanes_in(const float *x, int stride, int n, __m256 *xt)
{
    for (int c = 0; c < n; c += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; j++)
            r[j] = _mm256_loadu_ps(x + stride * j + c);
        transpose8(r, xt + c);
    }
}

/* The way back: L[stride * j + i] = lane j of Lt[i], levels already offset to 0..255. */
INLINE void lanes_out(const __m256 *Lt, int stride, int n, uint8_t *L)
{
    for (int c = 0; c < n; c += 8) {
        __m256 r[8];
        transpose8(Lt + c, r);
        for (int j = 0; j < 8; j++) {
            const __m256i v = _mm256_cvttps_epi32(r[j]);
            __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storel_epi64((__m128i *)(L + stride * j + c), _mm_packus_epi16(w, w));
        }
    }
}

/* The signed value of largest magnitude per lane (first wins ties, NaN never wins), as
 * qf_ref_signed_absmax; *amax gets the magnitude. */
static __m256 lanes_signed_absmax(const __m256 *xt, int n, __m256 *amax)
{
    __m256 best = _mm256_setzero_ps(), max = _mm256_setzero_ps();
    for (int i = 0; i < n; i++) {
        const __m256 ax = abs8(xt[i]);
        const __m256 gt = _mm256_cmp_ps(ax, best, _CMP_GT_OQ);
        best = blend8(best, ax, gt);
        max = blend8(max, xt[i], gt);
    }
    *amax = best;
    return max;
}

/* --- the scale searches, one sub-block per lane ------------------------------------------------- */

/* Each search runs G groups of eight lanes side by side (two halves of a super-block, or two
 * super-blocks): the reference's sums must run in weight order, so a group's sums are long
 * dependency chains, and independent groups are what keeps the vector units busy. G is a
 * constant at every call, so the group loops unroll. */
#define MAXG 4

/* clamp(nearest(v), lo, hi) without leaving the float domain: exact while |v| < 2^22, which
 * holds in the trials of fit_affine and fit_symmetric (their v are scaled into the level range
 * by construction); a NaN gives lo. */
INLINE __m256 flevel8(__m256 v, float lo, float hi)
{
    const __m256 magic = _mm256_set1_ps(12582912.f);
    __m256 b = _mm256_max_ps(_mm256_add_ps(v, magic), _mm256_set1_ps(12582912.f + lo));
    b = _mm256_min_ps(b, _mm256_set1_ps(12582912.f + hi));
    return _mm256_sub_ps(b, magic);
}

/* fit_affine of kernels/ref/kquants.c (ggml's make_qkx2_quants) for G x 8 sub-blocks of
 * n <= 32 weights: levels 0..nmax into Lt, -min into the_min, the scale into scale. */
INLINE void fit_affine_lanes(int G, __m256 (*xt)[32], __m256 (*wt)[32], int n, int nmax,
                             float rmin, float rdelta, int nstep, int use_mad, __m256 (*Lt)[32],
                             __m256 *scale_out, __m256 *the_min)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 min[MAXG], max[MAXG], sum_w[MAXG], sum_x[MAXG], flat[MAXG], range[MAXG];
    __m256 scale[MAXG], best_error[MAXG];
    __m256 xm[MAXG][32], trial[MAXG][32];
    UNROLL
    for (int g = 0; g < G; g++) {
        min[g] = max[g] = xt[g][0];
        sum_w[g] = wt[g][0];
        sum_x[g] = _mm256_mul_ps(sum_w[g], xt[g][0]);
    }
    for (int i = 1; i < n; i++) {
        UNROLL
        for (int g = 0; g < G; g++) {
            min[g] = _mm256_min_ps(xt[g][i], min[g]);   /* x < min ? x : min, as the reference */
            max[g] = _mm256_max_ps(xt[g][i], max[g]);
            sum_w[g] = _mm256_add_ps(sum_w[g], wt[g][i]);
            sum_x[g] = _mm256_add_ps(sum_x[g], _mm256_mul_ps(wt[g][i], xt[g][i]));
        }
    }
    UNROLL
    for (int g = 0; g < G; g++) {
        min[g] = _mm256_min_ps(zero, min[g]);           /* if (min > 0) min = 0, NaN kept */
        flat[g] = _mm256_cmp_ps(max[g], min[g], _CMP_EQ_OQ);
        range[g] = _mm256_sub_ps(max[g], min[g]);
        best_error[g] = zero;
        const __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), range[g]);
        scale[g] = _mm256_div_ps(_mm256_set1_ps(1.f), iscale);
        for (int i = 0; i < n; i++) {
            /* x - min, redone whenever a trial moves min: later trials start from it */
            xm[g][i] = _mm256_sub_ps(xt[g][i], min[g]);
            Lt[g][i] = level8(_mm256_mul_ps(iscale, xm[g][i]), 0, nmax);
            __m256 diff = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(scale[g], Lt[g][i]), min[g]), xt[g][i]);
            diff = use_mad ? abs8(diff) : _mm256_mul_ps(diff, diff);
            best_error[g] = _mm256_add_ps(best_error[g], _mm256_mul_ps(wt[g][i], diff));
        }
    }

    for (int step = 0; step <= nstep; step++) {
        const __m256 num = _mm256_set1_ps(rmin + rdelta * (float)step + (float)nmax);
        __m256 iscale[MAXG], sum_l[MAXG], sum_l2[MAXG], sum_xl[MAXG];
        UNROLL
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_div_ps(num, range[g]);
            sum_l[g] = sum_l2[g] = sum_xl[g] = zero;
        }
        for (int i = 0; i < n; i++) {
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m256 l = flevel8(_mm256_mul_ps(iscale[g], xm[g][i]), 0.f, (float)nmax);
                trial[g][i] = l;
                const __m256 wl = _mm256_mul_ps(wt[g][i], l);
                sum_l[g] = _mm256_add_ps(sum_l[g], wl);
                sum_l2[g] = _mm256_add_ps(sum_l2[g], _mm256_mul_ps(wl, l));
                sum_xl[g] = _mm256_add_ps(sum_xl[g], _mm256_mul_ps(wl, xt[g][i]));
            }
        }
        __m256 this_scale[MAXG], this_min[MAXG], solvable[MAXG], error[MAXG];
        int any = 0;
        UNROLL
        for (int g = 0; g < G; g++) {
            const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_l2[g]),
                                           _mm256_mul_ps(sum_l[g], sum_l[g]));
            solvable[g] = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
            any |= _mm256_movemask_ps(solvable[g]);
            this_scale[g] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_xl[g]),
                                                        _mm256_mul_ps(sum_x[g], sum_l[g])), D);
            this_min[g] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2[g], sum_x[g]),
                                                      _mm256_mul_ps(sum_l[g], sum_xl[g])), D);
            const __m256 pos = _mm256_cmp_ps(this_min[g], zero, _CMP_GT_OQ);
            this_min[g] = blend8(this_min[g], zero, pos);
            this_scale[g] = blend8(this_scale[g], _mm256_div_ps(sum_xl[g], sum_l2[g]), pos);
            error[g] = zero;
        }
        if (!any)
            continue;
        for (int i = 0; i < n; i++) {
            UNROLL
            for (int g = 0; g < G; g++) {
                __m256 diff = _mm256_sub_ps(
                    _mm256_add_ps(_mm256_mul_ps(this_scale[g], trial[g][i]), this_min[g]),
                    xt[g][i]);
                diff = use_mad ? abs8(diff) : _mm256_mul_ps(diff, diff);
                error[g] = _mm256_add_ps(error[g], _mm256_mul_ps(wt[g][i], diff));
            }
        }
        UNROLL
        for (int g = 0; g < G; g++) {
            const __m256 better = _mm256_and_ps(
                solvable[g], _mm256_cmp_ps(error[g], best_error[g], _CMP_LT_OQ));
            if (!_mm256_movemask_ps(better))
                continue;
            best_error[g] = blend8(best_error[g], error[g], better);
            scale[g] = blend8(scale[g], this_scale[g], better);
            min[g] = blend8(min[g], this_min[g], better);
            range[g] = _mm256_sub_ps(max[g], min[g]);
            for (int i = 0; i < n; i++) {
                Lt[g][i] = blend8(Lt[g][i], trial[g][i], better);
                xm[g][i] = _mm256_sub_ps(xt[g][i], min[g]);
            }
        }
    }
    UNROLL
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < n; i++)
            Lt[g][i] = blend8(Lt[g][i], zero, flat[g]);
        the_min[g] = _mm256_xor_ps(min[g], _mm256_set1_ps(-0.f));
        scale_out[g] = blend8(scale[g], zero, flat[g]);
    }
}

/* fit_symmetric (ggml's make_qx_quants, rmse_type 1) for G x 8 sub-blocks of 16: levels offset
 * by nmax into Lt, the scales into scale_out. */
INLINE void fit_symmetric_lanes(int G, __m256 (*xt)[32], int nmax, __m256 (*Lt)[32],
                                __m256 *scale_out)
{
    const int n = 16;
    const __m256 zero = _mm256_setzero_ps();
    __m256 max[MAXG], empty[MAXG], scale[MAXG], best[MAXG];
    __m256 w[MAXG][16], wx[MAXG][16];
    UNROLL
    for (int g = 0; g < G; g++) {
        __m256 amax;
        max[g] = lanes_signed_absmax(xt[g], n, &amax);
        empty[g] = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_EPS), _CMP_LT_OQ);
        for (int i = 0; i < n; i++) {
            w[g][i] = _mm256_mul_ps(xt[g][i], xt[g][i]);
            wx[g][i] = _mm256_mul_ps(w[g][i], xt[g][i]);
        }
        scale[g] = best[g] = zero;
    }
    for (int step = -10; step <= 9; step++) {
        if (step == 0)
            continue;
        /* step -10 stands for the first trial, at iscale = -nmax / max */
        const float num = step == -10 ? (float)-nmax : -((float)nmax + 0.1f * (float)step);
        __m256 iscale[MAXG], sumlx[MAXG], suml2[MAXG], trial[MAXG][16];
        UNROLL
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_div_ps(_mm256_set1_ps(num), max[g]);
            sumlx[g] = suml2[g] = zero;
        }
        for (int i = 0; i < n; i++) {
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m256 l = flevel8(_mm256_mul_ps(iscale[g], xt[g][i]), (float)-nmax,
                                         (float)(nmax - 1));
                trial[g][i] = l;
                sumlx[g] = _mm256_add_ps(sumlx[g], _mm256_mul_ps(wx[g][i], l));
                suml2[g] = _mm256_add_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(w[g][i], l), l));
            }
        }
        UNROLL
        for (int g = 0; g < G; g++) {
            if (step == -10) {
                const __m256 nz = _mm256_cmp_ps(suml2[g], zero, _CMP_NEQ_UQ);
                scale[g] = _mm256_and_ps(nz, _mm256_div_ps(sumlx[g], suml2[g]));
                best[g] = _mm256_mul_ps(scale[g], sumlx[g]);
                for (int i = 0; i < n; i++)
                    Lt[g][i] = trial[g][i];
                continue;
            }
            const __m256 better = _mm256_and_ps(
                _mm256_cmp_ps(suml2[g], zero, _CMP_GT_OQ),
                _mm256_cmp_ps(_mm256_mul_ps(sumlx[g], sumlx[g]), _mm256_mul_ps(best[g], suml2[g]),
                              _CMP_GT_OQ));
            if (!_mm256_movemask_ps(better))
                continue;
            for (int i = 0; i < n; i++)
                Lt[g][i] = blend8(Lt[g][i], trial[g][i], better);
            scale[g] = blend8(scale[g], _mm256_div_ps(sumlx[g], suml2[g]), better);
            best[g] = blend8(best[g], _mm256_mul_ps(scale[g], sumlx[g]), better);
        }
    }
    const __m256 off = _mm256_set1_ps((float)nmax);
    UNROLL
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < n; i++)
            Lt[g][i] = blend8(_mm256_add_ps(Lt[g][i], off), zero, empty[g]);
        scale_out[g] = blend8(scale[g], zero, empty[g]);
    }
}

/* fit_q3 (ggml's make_q3_quants with do_rmse) for G x 8 sub-blocks of 16. A lane whose pass
 * changed nothing would change nothing in another pass either (its state is the same), so a
 * group runs until none of its lanes changes, at most five passes, as the reference's
 * per-block loop. The new level x * sl2 / slx is unbounded here, so it takes the integer
 * rounding path. Each element's update waits on the previous one's (a division, the rounding
 * and the comparison in a row), hence several groups side by side. */
INLINE void fit_q3_lanes(int G, __m256 (*xt)[32], int nmax, __m256 (*Lt)[32], __m256 *scale_out)
{
    const int n = 16;
    const __m256 zero = _mm256_setzero_ps();
    __m256 empty[MAXG], sumlx[MAXG], suml2[MAXG];
    __m256 w[MAXG][16], wx[MAXG][16];
    UNROLL
    for (int g = 0; g < G; g++) {
        __m256 amax;
        const __m256 max = lanes_signed_absmax(xt[g], n, &amax);
        empty[g] = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_EPS), _CMP_LT_OQ);
        const __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
        sumlx[g] = suml2[g] = zero;
        for (int i = 0; i < n; i++) {
            w[g][i] = _mm256_mul_ps(xt[g][i], xt[g][i]);
            wx[g][i] = _mm256_mul_ps(w[g][i], xt[g][i]);
            Lt[g][i] = level8(_mm256_mul_ps(iscale, xt[g][i]), -nmax, nmax - 1);
            sumlx[g] = _mm256_add_ps(sumlx[g], _mm256_mul_ps(wx[g][i], Lt[g][i]));
            suml2[g] = _mm256_add_ps(suml2[g],
                                     _mm256_mul_ps(_mm256_mul_ps(w[g][i], Lt[g][i]), Lt[g][i]));
        }
    }
    /* a group whose lanes all passed unchanged is done for good: its passes are skipped */
    int live[MAXG];
    for (int g = 0; g < G; g++)
        live[g] = 1;
    for (int pass = 0; pass < 5; pass++) {
        __m256 changed[MAXG];
        for (int g = 0; g < G; g++)
            changed[g] = zero;
        for (int i = 0; i < n; i++) {
            UNROLL
            for (int g = 0; g < G; g++) {
                if (!live[g])
                    continue;
                const __m256 L = Lt[g][i];
                __m256 slx = _mm256_sub_ps(sumlx[g], _mm256_mul_ps(wx[g][i], L));
                __m256 sl2 = _mm256_sub_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(w[g][i], L), L));
                const __m256 new_l =
                    level8(_mm256_div_ps(_mm256_mul_ps(xt[g][i], sl2), slx), -nmax, nmax - 1);
                __m256 take = _mm256_and_ps(_mm256_cmp_ps(slx, zero, _CMP_GT_OQ),
                                            _mm256_cmp_ps(new_l, L, _CMP_NEQ_OQ));
                slx = _mm256_add_ps(slx, _mm256_mul_ps(wx[g][i], new_l));
                sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[g][i], new_l), new_l));
                take = _mm256_and_ps(take, _mm256_cmp_ps(sl2, zero, _CMP_GT_OQ));
                take = _mm256_and_ps(take, _mm256_cmp_ps(
                    _mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2[g]),
                    _mm256_mul_ps(_mm256_mul_ps(sumlx[g], sumlx[g]), sl2), _CMP_GT_OQ));
                Lt[g][i] = blend8(L, new_l, take);
                sumlx[g] = blend8(sumlx[g], slx, take);
                suml2[g] = blend8(suml2[g], sl2, take);
                changed[g] = _mm256_or_ps(changed[g], take);
            }
        }
        int any = 0;
        for (int g = 0; g < G; g++) {
            live[g] = live[g] && _mm256_movemask_ps(changed[g]);
            any |= live[g];
        }
        if (!any)
            break;
    }
    const __m256 off = _mm256_set1_ps((float)nmax);
    UNROLL
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < n; i++)
            Lt[g][i] = blend8(_mm256_add_ps(Lt[g][i], off), zero, empty[g]);
        const __m256 scale = _mm256_and_ps(_mm256_cmp_ps(suml2[g], zero, _CMP_GT_OQ),
                                           _mm256_div_ps(sumlx[g], suml2[g]));
        scale_out[g] = blend8(scale, zero, empty[g]);
    }
}

/* The reference's last step for every format: each weight's level re-derived from its
 * sub-block's scale as stored, L = clamp(nearest((x + dm) / d), lo, hi) - lo, where d != 0;
 * lanes with d == 0 keep the search's levels. */
static void lanes_rederive(const __m256 *xt, int n, __m256 d, __m256 dm, int lo, int hi,
                           __m256 *Lt)
{
    const __m256 keep = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ);
    const __m256 off = _mm256_set1_ps((float)-lo);
    for (int i = 0; i < n; i++) {
        __m256 v = _mm256_add_ps(xt[i], dm);
        __m256 l = _mm256_add_ps(level8(_mm256_div_ps(v, d), lo, hi), off);
        Lt[i] = blend8(l, Lt[i], keep);
    }
}

/* --- bit packing ------------------------------------------------------------------------------ */

/* q2_K and q3_K: weight 128h + 32s + l is bits 2s.. of qs[32h + l]; L holds 256 levels 0..3. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    UNROLL
    for (int h = 0; h < 2; h++) {
        const uint8_t *q = L + 128 * h;
        __m256i v = _mm256_loadu_si256((const __m256i *)q);
        v = _mm256_or_si256(v, _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(q + 32)), 2));
        v = _mm256_or_si256(v, _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(q + 64)), 4));
        v = _mm256_or_si256(v, _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(q + 96)), 6));
        _mm256_storeu_si256((__m256i *)(qs + 32 * h), v);
    }
}

/* q4_K and q5_K: the low nibble of weight 64p + 32t + l is nibble t of qs[32p + l]. */
static void pack_4bit(const uint8_t *L, uint8_t *qs)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int p = 0; p < 4; p++) {
        __m256i lo = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(L + 64 * p)), m4);
        __m256i hi = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(L + 64 * p + 32)), m4);
        _mm256_storeu_si256((__m256i *)(qs + 32 * p), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
    }
}

/* The bit of each level above `bit` (level > 2^bit - 1), weight i in bit i / 32 of out[i % 32]:
 * q3_K's hmask and q5_K's qh. */
static void pack_high_bit(const uint8_t *L, int bit, uint8_t *out)
{
    __m256i acc = _mm256_setzero_si256();
    const __m256i limit = _mm256_set1_epi8((char)((1 << bit) - 1));
    UNROLL
    for (int t = 0; t < 8; t++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(L + 32 * t));
        __m256i hi = _mm256_cmpgt_epi8(v, limit);   /* levels < 64: signed compare is fine */
        acc = _mm256_or_si256(acc, _mm256_and_si256(hi, _mm256_set1_epi8((char)(1 << t))));
    }
    _mm256_storeu_si256((__m256i *)out, acc);
}

/* q4_K / q5_K's eight 6-bit scales and mins in 12 bytes (pack_k4_scales of the reference). */
static void pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *scales)
{
    for (int j = 0; j < 4; j++) {
        scales[j] = ls[j];
        scales[j + 4] = lm[j];
    }
    for (int j = 4; j < 8; j++) {
        scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
        scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
}

/* The eight scales (bytes 0..7) and eight mins (bytes 8..15) of a q4_K / q5_K block. */
INLINE __m128i unpack_k4_scales(const uint8_t *scales)
{
    uint32_t u[4];
    memcpy(u, scales, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    const uint32_t mins_lo = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    u[2] = mins_lo;
    u[0] &= m6;
    /* from registers, not through memory: four 32-bit stores read back as one 128-bit load
     * would miss store forwarding */
    return _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]);
}

/* The sixteen 6-bit scales of a q3_K block, minus 32, as int8. */
INLINE __m128i unpack_q3_scales(const uint8_t *scales)
{
    uint32_t a[4];
    memcpy(a, scales, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t hi = a[2];
    a[2] = ((a[0] >> 4) & m4) | (((hi >> 4) & m2) << 4);
    a[3] = ((a[1] >> 4) & m4) | (((hi >> 6) & m2) << 4);
    a[0] = (a[0] & m4) | ((hi & m2) << 4);
    a[1] = (a[1] & m4) | (((hi >> 2) & m2) << 4);
    return _mm_sub_epi8(_mm_setr_epi32((int)a[0], (int)a[1], (int)a[2], (int)a[3]),
                        _mm_set1_epi8(32));
}

/* --- level unpacking: the 32 levels of weights 32t .. 32t + 31 as bytes --------------------- */

INLINE __m256i shr16(__m256i v, int n)
{
    return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n));
}

/* bit `bit` of each byte as 0/1 */
INLINE __m256i bit_of(__m256i v, int bit)
{
    return _mm256_and_si256(shr16(v, bit), _mm256_set1_epi8(1));
}

INLINE __m256i q2_levels(const uint8_t *qs, int t)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * (t / 4)));
    return _mm256_and_si256(shr16(v, 2 * (t % 4)), _mm256_set1_epi8(3));
}

INLINE __m256i q4_levels(const uint8_t *qs, int t)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * (t / 2)));
    return _mm256_and_si256(shr16(v, 4 * (t % 2)), _mm256_set1_epi8(0x0F));
}

/* q3_K as 0..7: the hmask bit set means level q + 4 - 4, clear means q - 4 (so +4 offset) */
INLINE __m256i q3_levels_u(const qf_block_q3_K *b, int t)
{
    __m256i h = bit_of(_mm256_loadu_si256((const __m256i *)b->hmask), t);
    return _mm256_or_si256(q2_levels(b->qs, t), _mm256_slli_epi16(h, 2));
}

INLINE __m256i q5_levels(const qf_block_q5_K *b, int t)
{
    __m256i h = bit_of(_mm256_loadu_si256((const __m256i *)b->qh), t);
    return _mm256_or_si256(q4_levels(b->qs, t), _mm256_slli_epi16(h, 4));
}

/* q6_K as 0..63 (level + 32) */
INLINE __m256i q6_levels_u(const qf_block_q6_K *b, int t)
{
    const int h = t / 4, s = t % 4;
    __m256i lo = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (s % 2)));
    lo = _mm256_and_si256(shr16(lo, 4 * (s / 2)), _mm256_set1_epi8(0x0F));
    __m256i hi = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    hi = _mm256_and_si256(shr16(hi, 2 * s), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

/* --- dequantize ------------------------------------------------------------------------------ */

/* y = dl * level - ml per sub-block of 16 (has_min) or y = dl * level: the reference's two
 * float operations, so the result is bit-exact. L holds 256 levels as int8. */
static void dequant_block(const int8_t *L, const float *dl, const float *ml, int has_min,
                          float *y)
{
    for (int j = 0; j < 16; j++) {
        const __m256 d = _mm256_set1_ps(dl[j]), m = _mm256_set1_ps(ml[j]);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const int i = 16 * j + 8 * h;
            __m256 q = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(L + i))));
            __m256 v = _mm256_mul_ps(d, q);
            if (has_min)
                v = _mm256_sub_ps(v, m);
            _mm256_storeu_ps(y + i, v);
        }
    }
}

static void dequantize_row_q2_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q2_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        int8_t L[QF_QK_K];
        float dl[16], ml[16];
        const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
        for (int j = 0; j < 16; j++) {
            dl[j] = d * (float)(x[b].scales[j] & 0xF);
            ml[j] = dmin * (float)(x[b].scales[j] >> 4);
        }
        UNROLL
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(L + 32 * t), q2_levels(x[b].qs, t));
        dequant_block(L, dl, ml, 1, y);
    }
}

static void dequantize_row_q3_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q3_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        int8_t L[QF_QK_K], sc[16];
        float dl[16];
        const float d = f16_to_f32(x[b].d);
        _mm_storeu_si128((__m128i *)sc, unpack_q3_scales(x[b].scales));
        for (int j = 0; j < 16; j++)
            dl[j] = d * (float)sc[j];
        UNROLL
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(L + 32 * t),
                                _mm256_sub_epi8(q3_levels_u(&x[b], t), _mm256_set1_epi8(4)));
        dequant_block(L, dl, dl, 0, y);
    }
}

static void dequant_k4_scales(const uint8_t *scales, qf_half hd, qf_half hdmin, float *dl,
                              float *ml)
{
    uint8_t sm[16];
    _mm_storeu_si128((__m128i *)sm, unpack_k4_scales(scales));
    const float d = f16_to_f32(hd), dmin = f16_to_f32(hdmin);
    for (int j = 0; j < 8; j++) {
        dl[2 * j] = dl[2 * j + 1] = d * (float)sm[j];
        ml[2 * j] = ml[2 * j + 1] = dmin * (float)sm[8 + j];
    }
}

static void dequantize_row_q4_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q4_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        int8_t L[QF_QK_K];
        float dl[16], ml[16];
        dequant_k4_scales(x[b].scales, x[b].d, x[b].dmin, dl, ml);
        UNROLL
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(L + 32 * t), q4_levels(x[b].qs, t));
        dequant_block(L, dl, ml, 1, y);
    }
}

static void dequantize_row_q5_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q5_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        int8_t L[QF_QK_K];
        float dl[16], ml[16];
        dequant_k4_scales(x[b].scales, x[b].d, x[b].dmin, dl, ml);
        UNROLL
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(L + 32 * t), q5_levels(&x[b], t));
        dequant_block(L, dl, ml, 1, y);
    }
}

static void dequantize_row_q6_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q6_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        int8_t L[QF_QK_K];
        float dl[16];
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < 16; j++)
            dl[j] = d * (float)x[b].scales[j];
        UNROLL
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(L + 32 * t),
                                _mm256_sub_epi8(q6_levels_u(&x[b], t), _mm256_set1_epi8(32)));
        dequant_block(L, dl, dl, 0, y);
    }
}

/* --- vec_dot ----------------------------------------------------------------------------------- */

/* How the float side follows the reference. Where a format has mins (q2_K, q4_K, q5_K) the
 * scale part and the min part of a block can be far larger than the dot product itself (a
 * sub-block with one large negative outlier: every other weight is dl * q ~ ml), so both are
 * rounded in float exactly as the reference rounds them, or the result would drift from it by
 * more than qf_kernels.h allows:
 *  - q2_K: per block, exact integer sums, then sumf += dall * isum - dmin * summs as scalars;
 *  - q4_K, q5_K: the reference's eight int32 lanes (lane l = weights i = l mod 8 of the block,
 *    times their scales), so the eight float lanes and the per-block min step match it bit
 *    for bit. maddubs pairs neighbouring bytes, so weights and activations are first permuted
 *    (by_class) so that the four bytes of int32 lane l are weights l, l+8, l+16, l+24 of each
 *    32-weight group.
 * q3_K and q6_K have no min: one exact integer total per block, times d, is as close to the
 * exact value as the reference is (a block whose products are all zero gives exactly zero). */

/* byte 4l + m <- byte l + 8m of each 32: one dword permute across halves, one byte shuffle */
INLINE __m256i by_class(__m256i v)
{
    const __m256i dw = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i by = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, dw), by);
}

INLINE int hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* The int16 scale of sub-block pair (2s, 2s+1) among eight int16 in each 128-bit half of sc
 * (both halves equal): the low half broadcasts element 2s, the high half element 2s + 1,
 * matching maddubs products of 32 weights (16 of each sub-block per half). */
INLINE __m256i scale_pair(__m256i sc, int s)
{
    const int lo = 4 * s, hi = 4 * s + 2;
    const __m256i idx = _mm256_setr_epi8(
        (char)lo, (char)(lo + 1), (char)lo, (char)(lo + 1), (char)lo, (char)(lo + 1), (char)lo,
        (char)(lo + 1), (char)lo, (char)(lo + 1), (char)lo, (char)(lo + 1), (char)lo,
        (char)(lo + 1), (char)lo, (char)(lo + 1), (char)hi, (char)(hi + 1), (char)hi,
        (char)(hi + 1), (char)hi, (char)(hi + 1), (char)hi, (char)(hi + 1), (char)hi,
        (char)(hi + 1), (char)hi, (char)(hi + 1), (char)hi, (char)(hi + 1), (char)hi,
        (char)(hi + 1));
    return _mm256_shuffle_epi8(sc, idx);
}

/* Sub-block scale of element j of eight int16 per 128-bit half, broadcast everywhere. */
INLINE __m256i scale_one(__m256i sc, int j)
{
    return _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j)));
}

INLINE __m256i dot32(__m256i wq, __m256i a, __m256i scales16)
{
    return _mm256_madd_epi16(scales16, _mm256_maddubs_epi16(wq, a));
}

INLINE __m256i load32(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static void vec_dot_q2_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q2_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float dall = y[b].d * f16_to_f32(x[b].d);
        const float dmin = y[b].d * f16_to_f32(x[b].dmin);
        const __m128i sm = _mm_loadu_si128((const __m128i *)x[b].scales);
        const __m128i m4 = _mm_set1_epi8(0x0F);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
        const int summs = hsum_i32(_mm256_madd_epi16(mins, load32(y[b].bsums)));

        const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
        __m256i sumi = _mm256_setzero_si256();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc, sc, 0x11)
                                  : _mm256_permute2x128_si256(sc, sc, 0x00);
            UNROLL
            for (int t = 0; t < 4; t++)
                sumi = _mm256_add_epi32(sumi, dot32(q2_levels(x[b].qs, 4 * h + t),
                                                    load32(y[b].qs + 128 * h + 32 * t),
                                                    scale_pair(sch, t)));
        }
        sumf += dall * (float)hsum_i32(sumi) - dmin * (float)summs;
    }
    *s = sumf;
}

static void vec_dot_q3_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q3_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float d = f16_to_f32(x[b].d) * y[b].d;
        const __m256i sc = _mm256_cvtepi8_epi16(unpack_q3_scales(x[b].scales));
        /* levels are stored +4: subtract 4 * scale * (sum of each 16 activations) */
        __m256i sumi = _mm256_madd_epi16(sc, _mm256_slli_epi16(load32(y[b].bsums), 2));
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        const __m256i hbits = load32(x[b].hmask);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc, sc, 0x11)
                                  : _mm256_permute2x128_si256(sc, sc, 0x00);
            UNROLL
            for (int t = 0; t < 4; t++) {
                const int g = 4 * h + t;
                __m256i q = _mm256_or_si256(q2_levels(x[b].qs, g),
                                            _mm256_slli_epi16(bit_of(hbits, g), 2));
                sumi = _mm256_add_epi32(sumi, dot32(q, load32(y[b].qs + 32 * g),
                                                    scale_pair(sch, t)));
            }
        }
        sumf += d * (float)hsum_i32(sumi);
    }
    *s = sumf;
}

/* q4_K and q5_K, one block, in the by_class order: the reference's eight lanes into sums, its
 * min step into the returned sumf. lv(t) gives the permuted levels of weights 32t .. 32t + 31. */
#define K4_BLOCK(xb, yb, lv, sumf, sums)                                                      \
    do {                                                                                      \
        const __m128i sm_ = unpack_k4_scales((xb)->scales);                                   \
        const __m256i mins_ = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm_, sm_));              \
        const int summ_ = hsum_i32(_mm256_madd_epi16(mins_, load32((yb)->bsums)));            \
        const __m128i sc16_ = _mm_cvtepu8_epi16(sm_);                                         \
        const __m256i sc_ = _mm256_set_m128i(sc16_, sc16_);                                   \
        __m256i lanes_ = _mm256_setzero_si256();                                              \
        UNROLL                                                                                \
        for (int t = 0; t < 8; t++)                                                           \
            lanes_ = _mm256_add_epi32(lanes_, dot32(lv(t), by_class(load32((yb)->qs + 32 * t)), \
                                                    scale_one(sc_, t)));                      \
        const __m256 d_ = _mm256_set1_ps(f16_to_f32((xb)->d) * (yb)->d);                      \
        (sums) = _mm256_add_ps((sums), _mm256_mul_ps(d_, _mm256_cvtepi32_ps(lanes_)));        \
        (sumf) -= f16_to_f32((xb)->dmin) * (yb)->d * (float)summ_;                            \
    } while (0)

/* the reference's end: sumf, then the eight lanes in order */
INLINE float lanes_total(float sumf, __m256 sums)
{
    float l[8];
    _mm256_storeu_ps(l, sums);
    for (int i = 0; i < 8; i++)
        sumf += l[i];
    return sumf;
}

static void vec_dot_q4_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_K *x = w;
    const qf_block_q8_K *y = a;
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        __m256i qp[4];
        UNROLL
        for (int p = 0; p < 4; p++)
            qp[p] = by_class(load32(x[b].qs + 32 * p));
#define Q4_LV(t) _mm256_and_si256(shr16(qp[(t) / 2], 4 * ((t) % 2)), _mm256_set1_epi8(0x0F))
        K4_BLOCK(&x[b], &y[b], Q4_LV, sumf, sums);
#undef Q4_LV
    }
    *s = lanes_total(sumf, sums);
}

static void vec_dot_q5_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_K *x = w;
    const qf_block_q8_K *y = a;
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        __m256i qp[4];
        UNROLL
        for (int p = 0; p < 4; p++)
            qp[p] = by_class(load32(x[b].qs + 32 * p));
        const __m256i qh = by_class(load32(x[b].qh));
#define Q5_LV(t)                                                                              \
    _mm256_or_si256(_mm256_and_si256(shr16(qp[(t) / 2], 4 * ((t) % 2)), _mm256_set1_epi8(0x0F)), \
                    _mm256_slli_epi16(bit_of(qh, (t)), 4))
        K4_BLOCK(&x[b], &y[b], Q5_LV, sumf, sums);
#undef Q5_LV
    }
    *s = lanes_total(sumf, sums);
}

static void vec_dot_q6_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q6_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float d = f16_to_f32(x[b].d) * y[b].d;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        /* levels are stored +32: subtract 32 * scale * (sum of each 16 activations) */
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(sc, load32(y[b].bsums)), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i sch = h ? _mm256_permute2x128_si256(sc, sc, 0x11)
                                  : _mm256_permute2x128_si256(sc, sc, 0x00);
            UNROLL
            for (int t = 0; t < 4; t++)
                sumi = _mm256_add_epi32(sumi, dot32(q6_levels_u(&x[b], 4 * h + t),
                                                    load32(y[b].qs + 128 * h + 32 * t),
                                                    scale_pair(sch, t)));
        }
        sumf += d * (float)hsum_i32(sumi);
    }
    *s = sumf;
}

/* --- quantize -------------------------------------------------------------------------------- */

static void quantize_row_q8_K(const float *x, void *vy, int64_t k)
{
    qf_block_q8_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < QF_QK_K; i += 8)
            m = _mm256_max_ps(abs8(_mm256_loadu_ps(x + i)), m);   /* NaN never wins */
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first weight of that magnitude gives the sign, as the reference's strict > */
        float max = 0;
        for (int i = 0; i < QF_QK_K; i += 8) {
            int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i)),
                                                       _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hit) {
                max = x[i + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127), byte = _mm256_set1_epi32(0xFF);
        const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (int i = 0; i < QF_QK_K; i += 32) {
            __m256i q[4];
            for (int j = 0; j < 4; j++) {
                __m256i v = nearest8(_mm256_mul_ps(vs, _mm256_loadu_ps(x + i + 8 * j)));
                /* only the top is capped; the low byte is what (int8_t) keeps */
                q[j] = _mm256_and_si256(_mm256_min_epi32(v, top), byte);
            }
            __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]),
                                            _mm256_packus_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[b].qs + i), _mm256_permutevar8x32_epi32(p, perm));
        }
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
        __m256i s32[8];
        for (int j = 0; j < 8; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(y[b].qs + 32 * j));
            s32[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        }
        /* s32[j] holds four partial sums of 16-sum 2j (low half) and 2j + 1 (high half) */
        __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s32[0], s32[1]),
                                       _mm256_hadd_epi32(s32[2], s32[3]));
        __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s32[4], s32[5]),
                                       _mm256_hadd_epi32(s32[6], s32[7]));
        h0 = _mm256_permutevar8x32_epi32(h0, perm);
        h1 = _mm256_permutevar8x32_epi32(h1, perm);
        __m256i sums = _mm256_permute4x64_epi64(_mm256_packs_epi32(h0, h1), 0xD8);
        _mm256_storeu_si256((__m256i *)y[b].bsums, sums);
        y[b].d = 1 / iscale;
    }
}

static void quantize_row_q2_K(const float *x, void *vy, int64_t k)
{
    qf_block_q2_K *y = vy;
    const float q4scale = 15.f;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        __m256 xt[2][32], wt[2][32], Lt[2][32], sc[2], mn[2];
        for (int g = 0; g < 2; g++) {
            lanes_in(x + 128 * g, 16, 16, xt[g]);
            for (int i = 0; i < 16; i++)
                wt[g][i] = abs8(xt[g][i]);
        }
        fit_affine_lanes(2, xt, wt, 16, 3, -0.5f, 0.1f, 15, 1, Lt, sc, mn);
        float scales[16], mins[16];
        for (int g = 0; g < 2; g++) {
            _mm256_storeu_ps(scales + 8 * g, sc[g]);
            _mm256_storeu_ps(mins + 8 * g, mn[g]);
        }
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)nearest(iscale * scales[j]);
            y[b].d = qf_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[b].scales, 0, sizeof y[b].scales);
            y[b].d = qf_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)((unsigned)nearest(iscale * mins[j]) << 4);
            y[b].dmin = qf_fp32_to_fp16(max_min / q4scale);
        } else {
            y[b].dmin = qf_fp32_to_fp16(0.f);
        }

        const float d_all = f16_to_f32(y[b].d), dmin_all = f16_to_f32(y[b].dmin);
        uint8_t L[QF_QK_K];
        for (int g = 0; g < 2; g++) {
            float d[8], dm[8];
            for (int j = 0; j < 8; j++) {
                d[j] = d_all * (float)(y[b].scales[8 * g + j] & 0xF);
                dm[j] = dmin_all * (float)(y[b].scales[8 * g + j] >> 4);
            }
            lanes_rederive(xt[g], 16, _mm256_loadu_ps(d), _mm256_loadu_ps(dm), 0, 3, Lt[g]);
            lanes_out(Lt[g], 16, 16, L + 128 * g);
        }
        pack_2bit(L, y[b].qs);
    }
}

/* q3_K after the search: the sixteen scales to 6 bits, the levels re-derived and packed. */
static void q3_K_finish(const float *scales, __m256 (*xt)[32], __m256 (*Lt)[32],
                        qf_block_q3_K *y)
{
    float best = 0, max_scale = 0;   /* the signed scale of largest magnitude */
    for (int j = 0; j < 16; j++) {
        float a = scales[j] < 0 ? -scales[j] : scales[j];
        if (a > best) {
            best = a;
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, sizeof y->scales);
    if (max_scale != 0) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int8_t l = (int8_t)nearest(iscale * scales[j]);
            int sc = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
            y->scales[j % 8] |= (uint8_t)((sc & 0xF) << (4 * (j / 8)));
            y->scales[8 + j % 4] |= (uint8_t)((sc >> 4) << (2 * (j / 4)));
        }
        y->d = qf_fp32_to_fp16(1 / iscale);
    } else {
        y->d = qf_fp32_to_fp16(0.f);
    }

    const float d_all = f16_to_f32(y->d);
    int8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, unpack_q3_scales(y->scales));
    uint8_t L[QF_QK_K];
    for (int g = 0; g < 2; g++) {
        float d[8];
        for (int j = 0; j < 8; j++)
            d[j] = d_all * (float)sc[8 * g + j];
        lanes_rederive(xt[g], 16, _mm256_loadu_ps(d), _mm256_setzero_ps(), -4, 3, Lt[g]);
        lanes_out(Lt[g], 16, 16, L + 128 * g);
    }
    pack_high_bit(L, 2, y->hmask);
    for (int i = 0; i < QF_QK_K; i += 32)
        _mm256_storeu_si256((__m256i *)(L + i),
                            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(L + i)),
                                             _mm256_set1_epi8(3)));
    pack_2bit(L, y->qs);
}

/* Two super-blocks at a time (four groups of eight sub-blocks): fit_q3's passes are one long
 * dependency chain per group, so more groups side by side are nearly free. */
static void quantize_row_q3_K(const float *x, void *vy, int64_t k)
{
    qf_block_q3_K *y = vy;
    const int64_t nb = k / QF_QK_K;
    for (int64_t b = 0; b < nb; b += 2) {
        const int pair = b + 1 < nb;
        __m256 xt[4][32], Lt[4][32], sc[4];
        for (int g = 0; g < 2 + 2 * pair; g++)
            lanes_in(x + QF_QK_K * b + 128 * g, 16, 16, xt[g]);
        if (pair)
            fit_q3_lanes(4, xt, 4, Lt, sc);
        else
            fit_q3_lanes(2, xt, 4, Lt, sc);
        for (int p = 0; p <= pair; p++) {
            float scales[16];
            _mm256_storeu_ps(scales, sc[2 * p]);
            _mm256_storeu_ps(scales + 8, sc[2 * p + 1]);
            q3_K_finish(scales, xt + 2 * p, Lt + 2 * p, &y[b + p]);
        }
    }
}

/* q4_K and q5_K after the search of one super-block (lane j = sub-block j): the reference's
 * scale rounding, then the levels re-derived into L. */
static void k4_finish(__m256 scale, __m256 the_min, __m256 *xt, __m256 *Lt, int nmax,
                      qf_half *d_out, qf_half *dmin_out, uint8_t *scales_out, uint8_t *L)
{
    float scales[8], mins[8];
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, the_min);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        uint8_t s = (uint8_t)nearest(inv_scale * scales[j]);
        uint8_t m = (uint8_t)nearest(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    pack_k4_scales(ls, lm, scales_out);
    *d_out = qf_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = qf_fp32_to_fp16(max_min / 63.f);

    const float d_all = f16_to_f32(*d_out), dmin_all = f16_to_f32(*dmin_out);
    float d[8], dm[8];
    for (int j = 0; j < 8; j++) {
        d[j] = d_all * (float)ls[j];
        dm[j] = dmin_all * (float)lm[j];
    }
    lanes_rederive(xt, 32, _mm256_loadu_ps(d), _mm256_loadu_ps(dm), 0, nmax, Lt);
    lanes_out(Lt, 32, 32, L);
}

/* The sub-block fits of nb (1 or 2) super-blocks of q4_K or q5_K, one per group of lanes;
 * weights |x| + rms(x) per sub-block. */
INLINE void k4_search(int nb, const float *x, int nmax, float rmin, float rdelta, int nstep,
                      __m256 (*xt)[32], __m256 (*Lt)[32], __m256 *sc, __m256 *mn)
{
    __m256 wt[2][32];
    for (int g = 0; g < nb; g++) {
        lanes_in(x + QF_QK_K * g, 32, 32, xt[g]);
        __m256 sum_x2 = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++)
            sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[g][i], xt[g][i]));
        const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.f)));
        for (int i = 0; i < 32; i++)
            wt[g][i] = _mm256_add_ps(av_x, abs8(xt[g][i]));
    }
    if (nb == 2)
        fit_affine_lanes(2, xt, wt, 32, nmax, rmin, rdelta, nstep, 0, Lt, sc, mn);
    else
        fit_affine_lanes(1, xt, wt, 32, nmax, rmin, rdelta, nstep, 0, Lt, sc, mn);
}

/* q4_K and q5_K rows: two super-blocks per search; q5_K adds the fifth bits in qh. */
INLINE void k4_row(const float *x, void *vy, int64_t k, int q5)
{
    const int nmax = q5 ? 31 : 15, nstep = q5 ? 15 : 20;
    const float rmin = q5 ? -0.5f : -1.f;
    const int64_t nb = k / QF_QK_K;
    for (int64_t b = 0; b < nb; b += 2) {
        const int n = b + 1 < nb ? 2 : 1;
        __m256 xt[2][32], Lt[2][32], sc[2], mn[2];
        k4_search(n, x + QF_QK_K * b, nmax, rmin, 0.1f, nstep, xt, Lt, sc, mn);
        for (int p = 0; p < n; p++) {
            uint8_t L[QF_QK_K];
            qf_block_q4_K *y4 = (qf_block_q4_K *)vy + b + p;
            qf_block_q5_K *y5 = (qf_block_q5_K *)vy + b + p;
            k4_finish(sc[p], mn[p], xt[p], Lt[p], nmax, q5 ? &y5->d : &y4->d,
                      q5 ? &y5->dmin : &y4->dmin, q5 ? y5->scales : y4->scales, L);
            if (q5)
                pack_high_bit(L, 4, y5->qh);
            pack_4bit(L, q5 ? y5->qs : y4->qs);
        }
    }
}

static void quantize_row_q4_K(const float *x, void *vy, int64_t k)
{
    k4_row(x, vy, k, 0);
}

static void quantize_row_q5_K(const float *x, void *vy, int64_t k)
{
    k4_row(x, vy, k, 1);
}

static void quantize_row_q6_K(const float *x, void *vy, int64_t k)
{
    qf_block_q6_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        __m256 xt[2][32], Lt[2][32], sc[2];
        for (int g = 0; g < 2; g++)
            lanes_in(x + 128 * g, 16, 16, xt[g]);
        fit_symmetric_lanes(2, xt, 32, Lt, sc);
        float scales[16];
        _mm256_storeu_ps(scales, sc[0]);
        _mm256_storeu_ps(scales + 8, sc[1]);
        float max_abs_scale = 0, max_scale = 0;
        for (int j = 0; j < 16; j++) {
            float a = scales[j] < 0 ? -scales[j] : scales[j];
            if (a > max_abs_scale) {
                max_abs_scale = a;
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < GROUP_EPS) {
            memset(&y[b], 0, sizeof y[b]);
            y[b].d = qf_fp32_to_fp16(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[b].d = qf_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) {
            int l = nearest(iscale * scales[j]);
            y[b].scales[j] = (int8_t)(l < 127 ? l : 127);
        }

        const float d_all = f16_to_f32(y[b].d);
        uint8_t L[QF_QK_K];
        for (int g = 0; g < 2; g++) {
            float d[8];
            for (int j = 0; j < 8; j++)
                d[j] = d_all * (float)y[b].scales[8 * g + j];
            lanes_rederive(xt[g], 16, _mm256_loadu_ps(d), _mm256_setzero_ps(), -32, 31, Lt[g]);
            lanes_out(Lt[g], 16, 16, L + 128 * g);
        }
        /* weight 128h + 32t + l: low nibble in nibble t / 2 of ql[64h + 32(t % 2) + l], top
         * two bits in bits 2t.. of qh[32h + l] */
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = L + 128 * h;
            __m256i q0 = _mm256_loadu_si256((const __m256i *)q);
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(q + 32));
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(q + 64));
            __m256i q3 = _mm256_loadu_si256((const __m256i *)(q + 96));
            _mm256_storeu_si256((__m256i *)(y[b].ql + 64 * h), _mm256_or_si256(
                _mm256_and_si256(q0, m4), _mm256_slli_epi16(_mm256_and_si256(q2, m4), 4)));
            _mm256_storeu_si256((__m256i *)(y[b].ql + 64 * h + 32), _mm256_or_si256(
                _mm256_and_si256(q1, m4), _mm256_slli_epi16(_mm256_and_si256(q3, m4), 4)));
            const __m256i m3 = _mm256_set1_epi8(3);
            __m256i hb = _mm256_and_si256(shr16(q0, 4), m3);
            hb = _mm256_or_si256(hb, _mm256_slli_epi16(_mm256_and_si256(shr16(q1, 4), m3), 2));
            hb = _mm256_or_si256(hb, _mm256_slli_epi16(_mm256_and_si256(shr16(q2, 4), m3), 4));
            hb = _mm256_or_si256(hb, _mm256_slli_epi16(_mm256_and_si256(shr16(q3, 4), m3), 6));
            _mm256_storeu_si256((__m256i *)(y[b].qh + 32 * h), hb);
        }
    }
}

void qf_isa_fill_avx2_kquants(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q8_K].quantize = quantize_row_q8_K;
    t[QF_FMT_Q2_K] = (qf_isa_kernels){ quantize_row_q2_K, dequantize_row_q2_K, vec_dot_q2_K };
    t[QF_FMT_Q3_K] = (qf_isa_kernels){ quantize_row_q3_K, dequantize_row_q3_K, vec_dot_q3_K };
    t[QF_FMT_Q4_K] = (qf_isa_kernels){ quantize_row_q4_K, dequantize_row_q4_K, vec_dot_q4_K };
    t[QF_FMT_Q5_K] = (qf_isa_kernels){ quantize_row_q5_K, dequantize_row_q5_K, vec_dot_q5_K };
    t[QF_FMT_Q6_K] = (qf_isa_kernels){ quantize_row_q6_K, dequantize_row_q6_K, vec_dot_q6_K };
}
