/* One categorical sample per row by inverse CDF, at the row's temperature, optionally through the keyboard mask
 * (performance_rnn/keyboard.py) and advancing it: what KeyboardMask.apply + CategoricalHead.sample +
 * KeyboardMask.update do in some forty tensor ops, in one pass per row. Built on first use (fast_sample.py).
 *
 * Per row b (V logits l):
 *   mask:   NOTE_ON k allowed iff key k holds no note (start[k] < 0); NOTE_OFF k iff it holds one struck before
 *           this step (0 <= start[k] < step). Each key group's probability mass (at temperature 1) is kept and goes
 *           to its allowed keys: their logits are lifted by -log(kept share), the others are impossible.
 *   sample: p = softmax(masked l / T); the token is the first k with cdf[k] > u * cdf[V-1] (torch.searchsorted,
 *           right=True, on the cumulative sum), at most V - 1.
 *
 * Two ways to the same distribution:
 *   - given w1 = exp(l - rowmax) (and wt = exp((l - rowmax) / T) where T != 1), computed by torch's vectorised exp:
 *     a group's lift is the factor (sum of its w1) / (sum of its allowed w1), raised to 1/T; no exp here;
 *   - from the logits alone, in double (w1 == NULL: small batches, where torch's per-op cost is more than these
 *     exps), and for a row where the first way would lose precision to underflow: a group with possible keys
 *     whose w1 sum to less than TINY, or a row whose possible tokens do. (A group's mass then still goes to its
 *     possible keys, however unlikely the model found them.)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS 128
#define TINY 1e-35 /* e^-80.6: sums above it hold normal floats (float32 is subnormal below 1.2e-38) */

static void allowed_keys(const int64_t *start, int64_t step, unsigned char *ok)
{
    for (int k = 0; k < KEYS; k++) {
        int open = start[k] >= 0;
        ok[k] = !open;
        ok[KEYS + k] = open && start[k] < step;
    }
}

/* the weights' cumulative sum into cdf from the logits alone, in double throughout (the lifts too, so a group far
 * below its row keeps its own distribution); returns the total */
static double cdf_from_logits(const float *l, int64_t V, int64_t on0, const unsigned char *ok, float temp,
                              double *cdf)
{
    double lift[2] = {0.0, 0.0};
    if (ok) {
        for (int g = 0; g < 2; g++) {
            const float *x = l + on0 + KEYS * g;
            float m = x[0];
            for (int k = 1; k < KEYS; k++) m = x[k] > m ? x[k] : m;
            double all = 0.0, kept = 0.0;
            for (int k = 0; k < KEYS; k++) {
                double e = exp((double)x[k] - m);
                all += e;
                if (ok[KEYS * g + k]) kept += e;
            }
            lift[g] = kept > 0.0 ? log(all / kept) : 0.0;
        }
    }
    double top = -INFINITY;
    for (int64_t k = 0; k < V; k++) {
        int64_t r = k - on0;
        double y = l[k];
        if (ok && r >= 0 && r < 2 * KEYS) y = ok[r] ? y + lift[r / KEYS] : -INFINITY;
        cdf[k] = y / temp;
        if (cdf[k] > top) top = cdf[k];
    }
    double total = 0.0;
    for (int64_t k = 0; k < V; k++) {
        total += exp(cdf[k] - top);
        cdf[k] = total;
    }
    return total;
}

/* the same from the precomputed weights; returns 0 where it cannot be trusted (see the top of the file) */
static double cdf_from_weights(const float *w1, const float *wt, int64_t V, int64_t on0, const unsigned char *ok,
                               float temp, double *cdf)
{
    double factor[2] = {1.0, 1.0};
    if (ok) {
        for (int g = 0; g < 2; g++) {
            const float *x = w1 + on0 + KEYS * g;
            double all = 0.0, kept = 0.0;
            int allowed = 0;
            for (int k = 0; k < KEYS; k++) {
                all += x[k];
                if (ok[KEYS * g + k]) {
                    kept += x[k];
                    allowed++;
                }
            }
            /* possible keys whose weights are (nearly) subnormal or 0: their lift is not to be trusted from these */
            if (allowed && kept < TINY) return 0.0;
            factor[g] = kept > 0.0 ? all / kept : 1.0;
            if (temp != 1.f) factor[g] = pow(factor[g], 1.0 / temp);
        }
    }
    double total = 0.0;
    for (int64_t k = 0; k < V; k++) {
        int64_t r = k - on0;
        double w = wt[k];
        if (ok && r >= 0 && r < 2 * KEYS) w = ok[r] ? w * factor[r / KEYS] : 0.0;
        total += w;
        cdf[k] = total;
    }
    return total > TINY ? total : 0.0;
}

/* logits, w1, wt: (B, V) row-major (w1 may be NULL; wt == NULL means wt = w1); temp: (B,) > 0; u: (B,) in [0, 1);
 * start (B, 128) and step (B,): the keyboard mask, advanced by the tokens (both NULL: no mask); tokens: (B,) out;
 * probs: (B, V) out, the distribution sampled from, or NULL; cdf: V doubles of scratch. */
void fs_sample(int64_t B, int64_t V, const float *logits, const float *w1, const float *wt, const float *temp,
               const double *u, int64_t on0, int64_t shift0, int64_t max_shift, int64_t *start, int64_t *step,
               int64_t *tokens, double *probs, double *cdf)
{
    unsigned char ok_row[2 * KEYS];
    for (int64_t b = 0; b < B; b++) {
        const float *l = logits + b * V;
        unsigned char *ok = NULL;
        if (start) {
            ok = ok_row;
            allowed_keys(start + b * KEYS, step[b], ok);
        }
        double total = 0.0;
        if (w1) total = cdf_from_weights(w1 + b * V, (wt ? wt : w1) + b * V, V, on0, ok, temp[b], cdf);
        if (!(total > 0.0)) total = cdf_from_logits(l, V, on0, ok, temp[b], cdf);
        double target = u[b] * total;
        int64_t lo = 0, hi = V;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] > target) hi = mid;
            else lo = mid + 1;
        }
        int64_t t = lo < V ? lo : V - 1;
        tokens[b] = t;
        if (probs) {
            double before = 0.0;
            for (int64_t k = 0; k < V; k++) {
                probs[b * V + k] = (cdf[k] - before) / total;
                before = cdf[k];
            }
        }
        if (start) {
            int64_t r = t - on0, s = t - shift0;
            if (r >= 0 && r < KEYS) start[b * KEYS + r] = step[b];
            else if (r >= KEYS && r < 2 * KEYS) start[b * KEYS + r - KEYS] = -1;
            if (s >= 0 && s < max_shift) step[b] += s + 1;
        }
    }
}
