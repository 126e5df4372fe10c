/*
 * histogram — latency distributions with bounded relative error.
 *
 * Two views of the same recorded values (microseconds):
 *
 *   - a log-linear bucket array for quantiles (the HdrHistogram layout):
 *     values below 64 µs are exact; above, each power-of-two range is cut
 *     into 64 equal sub-buckets, so a reported quantile is at most 1/64
 *     (1.6 %) above the true value and never below it. 2,304 counters cover
 *     0 µs to about 9.5 days; larger values land in the last bucket (the
 *     exact maximum is kept apart);
 *   - cumulative counters at fixed upper bounds in seconds, given at
 *     creation, exported as a Prometheus histogram (`_bucket{le=…}`, `_sum`,
 *     `_count`). These are exact: each value is compared with the bounds
 *     when it is recorded.
 *
 * Recording is a handful of instructions and never allocates; the whole
 * structure is one allocation of about 18 KiB plus the bounds. Not
 * thread-safe: record and read on one thread.
 */
#ifndef CAMJOIN_HISTOGRAM_H
#define CAMJOIN_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct hist hist_t;

/* `bounds_s`: strictly increasing upper bounds in seconds (copied; +Inf is
 * implied). Returns NULL on allocation failure or unsorted bounds. */
hist_t *hist_new(const double *bounds_s, size_t nbounds);
void hist_free(hist_t *h);
void hist_reset(hist_t *h);

/* Records one value; negative values (clock steps) count as 0. */
void hist_record_us(hist_t *h, int64_t us);

uint64_t hist_count(const hist_t *h);
double hist_sum_s(const hist_t *h);
int64_t hist_max_us(const hist_t *h);      /* 0 when empty */

/* The smallest bucket upper edge with at least q·count values at or below
 * it (capped at the maximum); 0 when empty. q in [0, 1]. */
int64_t hist_quantile_us(const hist_t *h, double q);

/* Prometheus view: number of bounds, and bound i with its cumulative count. */
size_t hist_nbounds(const hist_t *h);
double hist_bound_s(const hist_t *h, size_t i);
uint64_t hist_cumulative(const hist_t *h, size_t i);

#endif
