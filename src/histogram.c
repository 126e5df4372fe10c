/* histogram — see include/camjoin/histogram.h. */
#include "camjoin/histogram.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)          /* sub-buckets per power of two */
#define MAX_SHIFT 34                 /* top range: [2^39, 2^40) µs */
#define NBUCKETS ((MAX_SHIFT + 2) * SUB)

struct hist {
    uint64_t count, sum_us;
    int64_t max_us;
    uint64_t bucket[NBUCKETS];
    size_t nbounds;
    double *bound_s;
    int64_t *bound_us;               /* the bounds, in µs, for recording */
    uint64_t *le;                    /* values <= bound i, not cumulative */
};

/* values < SUB: index = value; otherwise shift = msb - SUB_BITS and the
 * index is (shift + 1) * SUB + (value >> shift) - SUB. */
static size_t index_of(uint64_t v)
{
    if (v < SUB)
        return (size_t)v;
    int shift = 63 - __builtin_clzll(v) - SUB_BITS;
    if (shift > MAX_SHIFT)
        return NBUCKETS - 1;
    return (size_t)(shift + 1) * SUB + (size_t)(v >> shift) - SUB;
}

/* The largest value that maps to bucket i. */
static uint64_t upper_of(size_t i)
{
    if (i < SUB)
        return i;
    size_t shift = i / SUB - 1;
    uint64_t base = (uint64_t)(i % SUB + SUB) << shift;
    return base + ((uint64_t)1 << shift) - 1;
}

hist_t *hist_new(const double *bounds_s, size_t nbounds)
{
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds_s[i] > bounds_s[i - 1]))
            return NULL;
    hist_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->nbounds = nbounds;
    h->bound_s = malloc((nbounds ? nbounds : 1) * sizeof *h->bound_s);
    h->bound_us = malloc((nbounds ? nbounds : 1) * sizeof *h->bound_us);
    h->le = calloc(nbounds ? nbounds : 1, sizeof *h->le);
    if (!h->bound_s || !h->bound_us || !h->le) {
        hist_free(h);
        return NULL;
    }
    for (size_t i = 0; i < nbounds; i++) {
        h->bound_s[i] = bounds_s[i];
        /* a value v µs is <= b s iff v <= floor(b * 1e6) */
        h->bound_us[i] = (int64_t)(bounds_s[i] * 1e6 + 1e-6);
    }
    return h;
}

void hist_free(hist_t *h)
{
    if (!h)
        return;
    free(h->bound_s);
    free(h->bound_us);
    free(h->le);
    free(h);
}

void hist_reset(hist_t *h)
{
    h->count = h->sum_us = 0;
    h->max_us = 0;
    memset(h->bucket, 0, sizeof h->bucket);
    memset(h->le, 0, h->nbounds * sizeof *h->le);
}

void hist_record_us(hist_t *h, int64_t us)
{
    if (us < 0)
        us = 0;
    h->count++;
    h->sum_us += (uint64_t)us;
    if (us > h->max_us)
        h->max_us = us;
    h->bucket[index_of((uint64_t)us)]++;
    /* first bound >= us (binary search; few bounds) */
    size_t lo = 0, hi = h->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bound_us[mid] >= us)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < h->nbounds)
        h->le[lo]++;
}

uint64_t hist_count(const hist_t *h) { return h->count; }
double hist_sum_s(const hist_t *h) { return (double)h->sum_us / 1e6; }
int64_t hist_max_us(const hist_t *h) { return h->max_us; }
size_t hist_nbounds(const hist_t *h) { return h->nbounds; }
double hist_bound_s(const hist_t *h, size_t i) { return h->bound_s[i]; }

uint64_t hist_cumulative(const hist_t *h, size_t i)
{
    uint64_t n = 0;
    for (size_t k = 0; k <= i && k < h->nbounds; k++)
        n += h->le[k];
    return n;
}

int64_t hist_quantile_us(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* rank of the q-quantile, 1-based: ceil(q * count), at least 1 */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t up = i == NBUCKETS - 1 ? (uint64_t)h->max_us : upper_of(i);
            return up > (uint64_t)h->max_us ? h->max_us : (int64_t)up;
        }
    }
    return h->max_us;
}
