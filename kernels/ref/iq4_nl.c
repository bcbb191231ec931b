/* iq4_nl.c - reference kernels of iq4_nl, 4-bit non-linear quantization, and its codebook.
 *
 * A block is 32 weights and one f16 scale: w = d * qf_kvalues_iq4nl[q], q in 0..15, the
 * nibbles packed as in q4_0. The codebook is denser near zero, where most weights of a trained
 * layer lie, so at the same 4.5 bits per weight it loses less than q4_0's uniform grid.
 * The quantizer writes the bytes llama.cpp writes into a GGUF file without an importance
 * matrix (quantize_iq4_nl, reached through ggml_quantize_chunk and llama-quantize): a search
 * over 16 candidate scales, each scored by a weighted least-squares fit. The dot product with
 * a q8_0 activation row reproduces ggml's generic vec_dot. Called through the traits table,
 * the tests and the benchmarks, once per row; quantizing costs about 17 passes over a block.
 *
 * Float arithmetic is written in ggml's order and must not be contracted into fused
 * multiply-adds: gcc in ISO C mode does not contract, and the pragma below tells clang.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "qf_formats.h"
#include "qf_ref.h"
#include "ref_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ggml's kvalues_iq4nl: sorted, asymmetric (the -127 end has no positive twin). */
const int8_t qf_kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* Below this block maximum ggml treats a block as all zeros (its GROUP_MAX_EPS). */
#define IQ4NL_ZERO_EPS 1e-15f

/* How far the scale search goes: candidates put the block's extreme on codebook[0] + itry
 * for |itry| <= ntry. 7 is quantize_iq4_nl's value, the one GGUF files are written with.
 * ggml's quantize_row_iq4_nl_ref passes -1 instead, which skips the search and the final
 * requantization (one pass, extreme on -127, scale refitted); qf_ref_iq4_nl_block reproduces
 * that too, byte for byte, quirks included, if this is set to -1. */
#define IQ4NL_NTRY 7

/* Index of the codebook entry nearest to v, as ggml's best_index_int8: below the first or
 * above the last entry clamps; otherwise a bisection finds the pair of entries around v and
 * the nearer one wins, the upper on a tie. A NaN falls through every test and gets 15; that
 * matters, because a block with |x| above ~1.8e19 overflows its weights x^2 and gets a NaN
 * scale, hence NaN inputs here. (A branch-free midpoint test, as in newer ggml, agrees on
 * every finite float but gives 0 for a NaN.) */
static int nearest_index(float v)
{
    const int8_t *cb = qf_kvalues_iq4nl;
    if (v <= cb[0])
        return 0;
    if (v >= cb[15])
        return 15;
    int lo = 0, hi = 15;        /* invariant: cb[lo] <= v < cb[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < cb[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - cb[hi - 1] < cb[hi] - v ? hi - 1 : hi;
}

/* Least-squares fit of x ~ d * codebook[l] with weights w, for the indices l that the inverse
 * scale id picks. Returns sum w q x and sum w q^2 (ggml's sumqx, sumq2), accumulated in
 * block order; the indices are stored in L when L is not NULL. */
static void fit_indices(const float x[32], const float w[32], float id, uint8_t *L,
                        float *sumqx_out, float *sumq2_out)
{
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; j++) {
        const int l = nearest_index(id * x[j]);
        const float q = qf_kvalues_iq4nl[l];
        if (L)
            L[j] = (uint8_t)l;
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    *sumqx_out = sumqx;
    *sumq2_out = sumq2;
}

/* One block, as ggml's quantize_row_iq4_nl_impl for a 32-weight super-block. Without
 * importance weights (weight NULL) each weight counts as x^2, so large weights are fitted
 * closely; the importance-weighted quantizer (imatrix.c) passes its own. L holds the
 * previous block's indices and receives this block's (see the all-zero case). */
void qf_ref_iq4_nl_block(const float x[32], const float *weight, uint8_t L[32],
                         qf_block_iq4_nl *y, int ntry)
{
    float x2[32];
    float scale = 0.0f;

    if (!weight) {
        for (int j = 0; j < 32; j++)
            x2[j] = x[j] * x[j];
        weight = x2;
    }

    float amax;
    const float max = qf_ref_signed_absmax(x, 32, &amax);

    /* A block below the threshold gets scale 0 and leaves L as it was. With the search on,
     * L is redone below from scale 0 (every index 8, the entry nearest 0: bytes 0x88). With
     * it off, ggml packs whatever L held: the previous block's indices, or its uninitialized
     * array at the start of a row (the caller's L starts at zeros there). */
    if (!(amax < IQ4NL_ZERO_EPS)) {
        /* First candidate: with the search on, ggml scales max to +127 (past the top entry,
         * 113, so it clamps there); with it off, to -127. The scale is then refitted to the
         * indices chosen. sumq2 is positive unless the block holds a NaN or an infinity;
         * ggml's scale is 0 then. */
        const float d0 = ntry > 0 ? -max / qf_kvalues_iq4nl[0] : max / qf_kvalues_iq4nl[0];
        float sumqx, sumq2;
        fit_indices(x, weight, 1.0f / d0, L, &sumqx, &sumq2);
        scale = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
        float best = scale * sumqx;

        /* search: inverse scales that send max to codebook[0] + itry; keep the one whose
         * fit explains the most (sumqx^2 / sumq2), compared without dividing */
        for (int itry = -ntry; itry <= ntry; itry++) {
            const float id = (float)(itry + qf_kvalues_iq4nl[0]) / max;
            fit_indices(x, weight, id, NULL, &sumqx, &sumq2);
            if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
            }
        }
    }

    y->d = qf_fp32_to_fp16(scale);

    /* the indices are redone for the scale the search chose (unrounded, as ggml does);
     * without a search the first candidate's indices stand */
    if (ntry > 0) {
        const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
        for (int j = 0; j < 32; j++)
            L[j] = (uint8_t)nearest_index(id * x[j]);
    }

    for (int j = 0; j < 16; j++)
        y->qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

void qf_quantize_row_iq4_nl_ref(const float *x, void *y, int64_t k)
{
    qf_block_iq4_nl *blk = y;
    assert(k >= 0 && k % QF_QK4_NL == 0);
    const int64_t nb = k / QF_QK4_NL;
    uint8_t L[QF_QK4_NL] = {0};     /* carried between blocks, as in ggml (for ntry < 1) */

    for (int64_t i = 0; i < nb; i++)
        qf_ref_iq4_nl_block(x + i * QF_QK4_NL, NULL, L, &blk[i], IQ4NL_NTRY);
}

void qf_dequantize_row_iq4_nl(const void *x, float *y, int64_t k)
{
    const qf_block_iq4_nl *blk = x;
    assert(k >= 0 && k % QF_QK4_NL == 0);
    const int64_t nb = k / QF_QK4_NL;

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        for (int j = 0; j < QF_QK4_NL / 2; j++) {
            y[i * QF_QK4_NL + j] = d * qf_kvalues_iq4nl[blk[i].qs[j] & 0x0F];
            y[i * QF_QK4_NL + j + QF_QK4_NL / 2] = d * qf_kvalues_iq4nl[blk[i].qs[j] >> 4];
        }
    }
}

void qf_vec_dot_iq4_nl_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_iq4_nl *wb = w;
    const qf_block_q8_0 *ab = a;
    assert(k >= 0 && k % QF_QK4_NL == 0);
    const int64_t nb = k / QF_QK4_NL;
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QF_QK4_NL / 2; j++) {
            sumi += ab[i].qs[j] * qf_kvalues_iq4nl[wb[i].qs[j] & 0x0F];
            sumi += ab[i].qs[j + QF_QK4_NL / 2] * qf_kvalues_iq4nl[wb[i].qs[j] >> 4];
        }
        /* ggml: (da * dw) * sumi */
        sum += qf_fp16_to_fp32(ab[i].d) * qf_fp16_to_fp32(wb[i].d) * (float)sumi;
    }
    *s = sum;
}
