/*
 * camjoin-bench-dedup — memory and speed of the dedup window, without Kafka or
 * PostgreSQL. Run by hand (it is not a test):
 *
 *   camjoin-bench-dedup N        e.g. 1000000 or 10000000
 *
 * Phase 1 (fill): N distinct keys shaped like the generator's event_ids
 * ("ev-<seed>-<n>") go into a window long enough that nothing expires. Memory
 * is measured twice: by the module's own accounting (dedup_bytes()) and by the
 * process RSS (/proc/self/statm) before and after the inserts. Then every key
 * is checked again from another offset, in a scattered order; each must come
 * back DEDUP_DUPLICATE, or the run fails with exit status 1.
 *
 * Phase 2 (steady state): a fresh window of W ms is fed 3*W ms worth of new
 * keys at a fixed synthetic rate (N keys per window), so that after the first
 * window every insert also expires one key. RSS and dedup_bytes() are sampled
 * throughout; the figures at the moment the window filled, the largest ones
 * after it and the last ones are printed, and should all agree (flat memory).
 *
 * Output: one JSON line on stdout. Timings include building each key string
 * (key_ns_per_key reports that part alone).
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "camjoin/dedup.h"

#define STEADY_RATE 100          /* keys per synthetic millisecond */
#define SAMPLE_EVERY 65536       /* keys between two RSS samples */

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "<prefix><n>" into buf (prefix already there, plen bytes); returns length. */
static size_t key_of(char *buf, size_t plen, uint64_t n)
{
    char tmp[24];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < k; i++)
        buf[plen + i] = tmp[k - 1 - i];
    return plen + k;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static volatile size_t sink;     /* keeps the key-only loop from vanishing */

int main(int argc, char **argv)
{
    char *end;
    unsigned long long arg = argc == 2 ? strtoull(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || arg == 0 || arg > UINT32_MAX) {
        fprintf(stderr, "usage: camjoin-bench-dedup N   (N keys, 1..%" PRIu32 ")\n",
                UINT32_MAX);
        return 2;
    }
    const uint64_t n = arg;
    char key[64];
    size_t plen;

    /* key building alone, to separate it from the dedup cost */
    plen = (size_t)snprintf(key, sizeof key, "ev-%d-", 1);
    double t0 = now_s();
    size_t acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc += key_of(key, plen, i) + (unsigned char)key[plen];
    sink = acc;
    double key_ns = (now_s() - t0) * 1e9 / (double)n;

    /* ---- phase 1: fill, nothing expires ---- */
    const int64_t fill_window = INT64_C(3600000);      /* 1 h; now_ms <= n/10000 */
    dedup_t *d = dedup_new(fill_window, 0);
    if (!d) {
        fprintf(stderr, "dedup_new failed\n");
        return 1;
    }
    size_t rss_before = rss_bytes();
    t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        size_t len = key_of(key, plen, i);
        int r = dedup_check(d, key, len, (int32_t)(i & 63), (int64_t)i,
                            (int64_t)(i / 10000));
        if (r != DEDUP_NEW) {
            fprintf(stderr, "insert %" PRIu64 ": got %d, want DEDUP_NEW\n", i, r);
            return 1;
        }
    }
    double insert_ns = (now_s() - t0) * 1e9 / (double)n;
    size_t rss_after = rss_bytes();
    size_t bytes = dedup_bytes(d), count = dedup_count(d);
    if (count != n) {
        fprintf(stderr, "count %zu, want %" PRIu64 "\n", count, n);
        return 1;
    }

    /* every key again, from another offset, in a scattered order */
    uint64_t stride = 2654435761u % n;
    while (stride == 0 || gcd(stride, n) != 1)
        stride++;
    const int64_t last = (int64_t)((n - 1) / 10000);
    t0 = now_s();
    uint64_t j = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = key_of(key, plen, j);
        int r = dedup_check(d, key, len, (int32_t)(j & 63), (int64_t)(j + n), last);
        if (r != DEDUP_DUPLICATE) {
            fprintf(stderr, "lookup %" PRIu64 ": got %d, want DEDUP_DUPLICATE\n", j, r);
            return 1;
        }
        j += stride;
        if (j >= n)
            j -= n;
    }
    double lookup_ns = (now_s() - t0) * 1e9 / (double)n;
    if (dedup_count(d) != n) {
        fprintf(stderr, "lookups changed the count\n");
        return 1;
    }
    dedup_free(d);
    malloc_trim(0);          /* hand phase 1's heap back before measuring again */

    /* ---- phase 2: steady state, window of n keys, 3 windows fed ---- */
    const int64_t window = (int64_t)(n / STEADY_RATE);
    const uint64_t total = 3 * n;
    const uint64_t filled_at = (uint64_t)(window + 1) * STEADY_RATE;  /* first expiry */
    plen = (size_t)snprintf(key, sizeof key, "st-%d-", 1);
    d = dedup_new(window, 0);
    if (!d) {
        fprintf(stderr, "dedup_new failed\n");
        return 1;
    }
    size_t st_rss0 = rss_bytes();
    size_t fill_rss = 0, fill_bytes = 0, fill_count = 0;
    size_t max_rss = 0, max_bytes = 0, min_count = SIZE_MAX, max_count = 0;
    double steady_s = 0;
    t0 = now_s();
    for (uint64_t i = 0; i < total; i++) {
        size_t len = key_of(key, plen, i);
        int r = dedup_check(d, key, len, (int32_t)(i & 63), (int64_t)i,
                            (int64_t)(i / STEADY_RATE));
        if (r != DEDUP_NEW) {
            fprintf(stderr, "steady insert %" PRIu64 ": got %d\n", i, r);
            return 1;
        }
        if (i + 1 == filled_at) {
            steady_s = now_s();
            fill_rss = rss_bytes();
            fill_bytes = dedup_bytes(d);
            fill_count = dedup_count(d);
        } else if (i + 1 > filled_at && (i % SAMPLE_EVERY == 0 || i + 1 == total)) {
            size_t rss = rss_bytes(), b = dedup_bytes(d), c = dedup_count(d);
            max_rss = rss > max_rss ? rss : max_rss;
            max_bytes = b > max_bytes ? b : max_bytes;
            min_count = c < min_count ? c : min_count;
            max_count = c > max_count ? c : max_count;
        }
    }
    double t1 = now_s();
    double steady_ns = filled_at < total
                     ? (t1 - steady_s) * 1e9 / (double)(total - filled_at) : 0;
    size_t end_rss = rss_bytes(), end_bytes = dedup_bytes(d), end_count = dedup_count(d);
    dedup_free(d);

    printf("{\"keys\":%" PRIu64 ",\"dedup_bytes\":%zu,\"bytes_per_key\":%.2f,"
           "\"rss_before\":%zu,\"rss_after\":%zu,\"rss_bytes_per_key\":%.2f,"
           "\"key_ns_per_key\":%.1f,\"insert_ns_per_key\":%.1f,"
           "\"lookup_ns_per_key\":%.1f,",
           n, bytes, (double)bytes / (double)count, rss_before, rss_after,
           ((double)rss_after - (double)rss_before) / (double)n,
           key_ns, insert_ns, lookup_ns);
    printf("\"steady\":{\"window_ms\":%" PRId64 ",\"keys_per_ms\":%d,"
           "\"keys_fed\":%" PRIu64 ",\"rss_start\":%zu,"
           "\"filled\":{\"keys\":%zu,\"dedup_bytes\":%zu,\"rss\":%zu},"
           "\"after_fill_max\":{\"dedup_bytes\":%zu,\"rss\":%zu,"
           "\"keys_min\":%zu,\"keys_max\":%zu},"
           "\"end\":{\"keys\":%zu,\"dedup_bytes\":%zu,\"rss\":%zu},"
           "\"bytes_per_key_end\":%.2f,\"ns_per_key\":%.1f}}\n",
           window, STEADY_RATE, total, st_rss0,
           fill_count, fill_bytes, fill_rss,
           max_bytes, max_rss, min_count == SIZE_MAX ? 0 : min_count, max_count,
           end_count, end_bytes, end_rss,
           end_count ? (double)end_bytes / (double)end_count : 0.0, steady_ns);
    return 0;
}
