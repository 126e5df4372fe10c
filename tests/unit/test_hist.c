/*
 * Unit tests for histogram: quantiles against a sorted copy of the same
 * values (the exact order statistic), the 1/64 error bound, and the
 * Prometheus counters against a brute-force count per bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>

#include "camjoin/histogram.h"

static const double BOUNDS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0};
#define NB (sizeof BOUNDS / sizeof BOUNDS[0])

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 42;
static uint64_t next_rand(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void test_empty(void **state)
{
    (void)state;
    hist_t *h = hist_new(BOUNDS, NB);
    assert_non_null(h);
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_quantile_us(h, 0.99), 0);
    assert_int_equal(hist_max_us(h), 0);
    assert_int_equal(hist_cumulative(h, NB - 1), 0);
    hist_free(h);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    hist_t *h = hist_new(BOUNDS, NB);
    for (int64_t v = 1; v <= 60; v++) /* below 64 µs every value has a bucket */
        hist_record_us(h, v);
    assert_int_equal(hist_quantile_us(h, 0.5), 30);
    assert_int_equal(hist_quantile_us(h, 1.0), 60);
    assert_int_equal(hist_quantile_us(h, 0.0), 1);
    assert_int_equal(hist_count(h), 60);
    assert_true(hist_sum_s(h) == 1830e-6);
    hist_record_us(h, -5); /* a clock step counts as 0 */
    assert_int_equal(hist_quantile_us(h, 0.0), 0);
    hist_free(h);
}

static void test_bucket_edges(void **state)
{
    (void)state;
    hist_t *h = hist_new(NULL, 0);
    /* 64..127 are exact too (shift 0); 128 and 129 share a bucket */
    hist_record_us(h, 100);
    assert_int_equal(hist_quantile_us(h, 1.0), 100);
    hist_reset(h);
    hist_record_us(h, 128);
    hist_record_us(h, 10000);
    /* bucket of 128 is [128, 129]; the quantile is capped by no value, edge 129 */
    assert_int_equal(hist_quantile_us(h, 0.5), 129);
    assert_int_equal(hist_quantile_us(h, 1.0), 10000); /* capped at the max */
    hist_free(h);
}

static void test_quantiles_vs_sorted(void **state)
{
    (void)state;
    enum { N = 200000 };
    int64_t *v = malloc(N * sizeof *v);
    hist_t *h = hist_new(BOUNDS, NB);
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        /* log-uniform over 1 µs .. ~17 min */
        int e = (int)(next_rand() % 30);
        v[i] = (int64_t)(next_rand() % ((uint64_t)1 << (e + 1)));
        hist_record_us(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp64);
    const double qs[] = {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)(qs[k] * N);
        if ((double)rank < qs[k] * N)
            rank++;
        if (rank == 0)
            rank = 1;
        int64_t truth = v[rank - 1], got = hist_quantile_us(h, qs[k]);
        assert_true(got >= truth);
        assert_true(got <= truth + truth / 64 + 1);
    }
    assert_int_equal(hist_max_us(h), v[N - 1]);
    /* Prometheus counters: exact against a count per bound */
    for (size_t b = 0; b < NB; b++) {
        int64_t bound_us = (int64_t)(BOUNDS[b] * 1e6 + 1e-6);
        uint64_t n = 0;
        for (int i = 0; i < N; i++)
            n += v[i] <= bound_us;
        assert_int_equal(hist_cumulative(h, b), n);
    }
    assert_int_equal(hist_count(h), N);
    free(v);
    hist_free(h);
}

static void test_bound_is_inclusive(void **state)
{
    (void)state;
    hist_t *h = hist_new(BOUNDS, NB);
    hist_record_us(h, 1000);  /* exactly 1 ms: le="0.001" */
    hist_record_us(h, 1001);
    hist_record_us(h, 2000000); /* above every bound: only +Inf (count) */
    assert_int_equal(hist_cumulative(h, 0), 1);
    assert_int_equal(hist_cumulative(h, 1), 2);
    assert_int_equal(hist_cumulative(h, NB - 1), 2);
    assert_int_equal(hist_count(h), 3);
    hist_free(h);
}

static void test_huge_value_clamped(void **state)
{
    (void)state;
    hist_t *h = hist_new(NULL, 0);
    hist_record_us(h, INT64_MAX / 2);
    assert_int_equal(hist_max_us(h), INT64_MAX / 2);
    assert_int_equal(hist_quantile_us(h, 0.5), INT64_MAX / 2);
    hist_free(h);
}

static void test_unsorted_bounds_rejected(void **state)
{
    (void)state;
    const double bad[] = {0.1, 0.05};
    assert_null(hist_new(bad, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_quantiles_vs_sorted),
        cmocka_unit_test(test_bound_is_inclusive),
        cmocka_unit_test(test_huge_value_clamped),
        cmocka_unit_test(test_unsorted_bounds_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
