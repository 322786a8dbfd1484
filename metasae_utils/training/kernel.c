/* The sparse part of one ReLU + L1 SAE training step (SAELens "standard"), forward and backward.
 *
 * Shapes: B rows, S latents, D input width.  The dense encoder product P = xc @ W_enc (B x S, fp32 or bf16)
 * is computed by torch; everything else touches only the non-zero activations f[b, j] = relu(P[b, j] + b_enc[j]):
 *
 *   out_b   = b_dec + sum_j f[b, j] W_dec[j]            e_b = out_b - x_b          g_b = 2 e_b / B
 *   loss    = sum_b |e_b|^2 / B  +  l1 * sum_b sum_j f[b, j] |W_dec[j]| / B
 *   dP[b,j] = [f[b, j] > 0] (g_b . W_dec[j] + l1 |W_dec[j]| / B)
 *   dW_dec[j]  = sum_b f[b, j] g_b + l1 (sum_b f[b, j]) W_dec[j] / (B |W_dec[j]|)
 *   dW_enc[:, j] = sum_b dP[b, j] xc_b     db_enc[j] = sum_b dP[b, j]
 *   db_dec  = sum_b g_b - W_enc @ db_enc     (xc = x - b_dec)
 *
 * Two passes: sae_count (active latents per row) and sae_step (rows in parallel for the forward pass and dP,
 * then latents in parallel over a column index for the weight gradients).  The encoder gradient is written
 * transposed (S x D, one contiguous row per latent).  Sums of squares of all gradients are returned for the
 * gradient-norm clip.  Reductions over rows and latents run in double, in a fixed order: the results do not
 * depend on the number of threads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define LANES 4    /* decoder rows whose norms are summed side by side */
#define DBLOCK 32  /* input dimensions of db_dec per iteration */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = ((uint32_t)h) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float pre_at(const void *pre, int bf16, int64_t i) {
    return bf16 ? bf16_to_f32(((const uint16_t *)pre)[i]) : ((const float *)pre)[i];
}

/* row_nnz[b] = number of j with P[b, j] + b_enc[j] > 0 */
void sae_count(const void *pre, int bf16, const float *b_enc, int64_t B, int64_t S, int64_t *row_nnz) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        int64_t c = 0;
        const int64_t o = b * S;
        for (int64_t j = 0; j < S; j++) c += (pre_at(pre, bf16, o + j) + b_enc[j]) > 0.0f;
        row_nnz[b] = c;
    }
}

/* out[0] = mse (sum over rows / B), out[1] = l1 term, out[2] = sum of squares of every gradient.
 * crow: (B + 1) row offsets from sae_count; col (nnz), val (nnz), dpre (nnz), counts (S) are outputs;
 * g (B x D) is workspace (2 e / B on return); dWencT (S x D), db_enc (S), dWdec (S x D), db_dec (D) outputs. */
void sae_step(const void *pre, int bf16, const float *b_enc, const float *W_dec, const float *b_dec,
              const float *x, const float *xc, const float *W_encT, const int64_t *crow, float l1,
              int64_t B, int64_t S, int64_t D, int32_t *col, float *val, float *dpre, float *g,
              float *dWencT, float *db_enc, float *dWdec, float *db_dec, int64_t *counts, double *out) {
    const int64_t nnz = crow[B];
    float *nrm = (float *)malloc(sizeof(float) * (size_t)S);
    int64_t *start = (int64_t *)malloc(sizeof(int64_t) * (size_t)(S + 1));
    int32_t *ent = (int32_t *)malloc(sizeof(int32_t) * (size_t)(nnz > 0 ? nnz : 1));
    int32_t *entrow = (int32_t *)malloc(sizeof(int32_t) * (size_t)(nnz > 0 ? nnz : 1));
    double *sq = (double *)malloc(sizeof(double) * (size_t)S);
    double *rowmse = (double *)malloc(sizeof(double) * (size_t)B);
    double *rowl1 = (double *)malloc(sizeof(double) * (size_t)B);
    double mse = 0.0, l1sum = 0.0, sumsq = 0.0;
    const float inv_b = 1.0f / (float)B;

    /* decoder row norms, LANES rows at a time: independent sums (each in its own d order) run side by side */
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < S; j0 += LANES) {
        const int64_t n = S - j0 < LANES ? S - j0 : LANES;
        double s[LANES] = {0.0};
        for (int64_t d = 0; d < D; d++)
            for (int64_t t = 0; t < n; t++) {
                const float w = W_dec[(j0 + t) * D + d];
                s[t] += (double)w * w;
            }
        for (int64_t t = 0; t < n; t++) nrm[j0 + t] = (float)sqrt(s[t]);
    }

    /* rows: active latents, reconstruction, error, dP */
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t b = 0; b < B; b++) {
        const int64_t o = b * S;
        int64_t k = crow[b];
        for (int64_t j = 0; j < S; j++) {
            const float v = pre_at(pre, bf16, o + j) + b_enc[j];
            if (v > 0.0f) { col[k] = (int32_t)j; val[k] = v; k++; }
        }
        float *gb = g + b * D;
        const float *xb = x + b * D;
        for (int64_t d = 0; d < D; d++) gb[d] = b_dec[d];
        double l1b = 0.0;
        for (int64_t k2 = crow[b]; k2 < crow[b + 1]; k2++) {
            const float v = val[k2];
            const float *w = W_dec + (int64_t)col[k2] * D;
#pragma omp simd
            for (int64_t d = 0; d < D; d++) gb[d] += v * w[d];
            l1b += (double)v * nrm[col[k2]];
        }
        double e2 = 0.0;
        for (int64_t d = 0; d < D; d++) {
            const float e = gb[d] - xb[d];
            e2 += (double)e * e;
            gb[d] = 2.0f * e * inv_b;
        }
        rowmse[b] = e2;
        rowl1[b] = l1b;
        for (int64_t k2 = crow[b]; k2 < crow[b + 1]; k2++) {
            const float *w = W_dec + (int64_t)col[k2] * D;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t d = 0; d < D; d++) s += gb[d] * w[d];
            dpre[k2] = s + l1 * nrm[col[k2]] * inv_b;
        }
    }

    /* column index (counting sort by latent, stable in row order) */
    memset(counts, 0, sizeof(int64_t) * (size_t)S);
    for (int64_t k = 0; k < nnz; k++) counts[col[k]]++;
    start[0] = 0;
    for (int64_t j = 0; j < S; j++) start[j + 1] = start[j] + counts[j];
    {
        int64_t *fill = (int64_t *)malloc(sizeof(int64_t) * (size_t)S);
        memcpy(fill, start, sizeof(int64_t) * (size_t)S);
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = crow[b]; k < crow[b + 1]; k++) {
                const int64_t p = fill[col[k]]++;
                ent[p] = (int32_t)k;
                entrow[p] = (int32_t)b;
            }
        free(fill);
    }

    /* latents: weight gradients (one latent per iteration: deterministic whatever the thread count) */
#pragma omp parallel for schedule(dynamic, 32)
    for (int64_t j = 0; j < S; j++) {
        float *dd = dWdec + j * D;
        float *de = dWencT + j * D;
        memset(dd, 0, sizeof(float) * (size_t)D);
        memset(de, 0, sizeof(float) * (size_t)D);
        double sv = 0.0, sd = 0.0;
        for (int64_t p = start[j]; p < start[j + 1]; p++) {
            const int64_t k = ent[p];
            const int64_t b = entrow[p];
            const float v = val[k], q = dpre[k];
            const float *gb = g + b * D;
            const float *xb = xc + b * D;
#pragma omp simd
            for (int64_t d = 0; d < D; d++) { dd[d] += v * gb[d]; de[d] += q * xb[d]; }
            sv += v;
            sd += q;
        }
        if (sv > 0.0 && nrm[j] > 0.0f) {
            const float c = (float)(l1 * sv / ((double)B * nrm[j]));
            const float *w = W_dec + j * D;
#pragma omp simd
            for (int64_t d = 0; d < D; d++) dd[d] += c * w[d];
        }
        db_enc[j] = (float)sd;
        double s2 = sd * sd;
        for (int64_t d = 0; d < D; d++) s2 += (double)dd[d] * dd[d] + (double)de[d] * de[d];
        sq[j] = s2;
    }

    /* db_dec = sum_b g_b - sum_j db_enc[j] W_encT[j]: a block of DBLOCK input dimensions per iteration, rows read
     * contiguously (each dimension's sum keeps its order: rows, then latents, ascending) */
#pragma omp parallel for schedule(static)
    for (int64_t d0 = 0; d0 < D; d0 += DBLOCK) {
        const int64_t n = D - d0 < DBLOCK ? D - d0 : DBLOCK;
        double s[DBLOCK] = {0.0};
        for (int64_t b = 0; b < B; b++) {
            const float *gb = g + b * D + d0;
            for (int64_t t = 0; t < n; t++) s[t] += gb[t];
        }
        for (int64_t j = 0; j < S; j++) {
            const double q = (double)db_enc[j];
            const float *w = W_encT + j * D + d0;
            for (int64_t t = 0; t < n; t++) s[t] -= q * w[t];
        }
        for (int64_t t = 0; t < n; t++) db_dec[d0 + t] = (float)s[t];
    }
    for (int64_t j = 0; j < S; j++) sumsq += sq[j];
    for (int64_t d = 0; d < D; d++) sumsq += (double)db_dec[d] * db_dec[d];
    for (int64_t b = 0; b < B; b++) { mse += rowmse[b]; l1sum += rowl1[b]; }

    out[0] = mse / (double)B;
    out[1] = (double)l1 * l1sum / (double)B;
    out[2] = sumsq;
    free(nrm);
    free(start);
    free(ent);
    free(entrow);
    free(sq);
    free(rowmse);
    free(rowl1);
}
