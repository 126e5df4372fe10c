/* metrics — see include/camjoin/metrics.h. */
#include "camjoin/metrics.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "camjoin/base.h"
#include "camjoin/histogram.h"
#include "camjoin/pipeline.h"
#include "camjoin/strbuf.h"

static void metric(strbuf_t *t, const char *name, const char *type,
                   const char *help, unsigned long long v)
{
    strbuf_addf(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
        name, v);
}

/* One family of a labelled counter or gauge: HELP and TYPE once, then one
 * line per sample the caller adds. */
static void family(strbuf_t *t, const char *name, const char *type, const char *help)
{
    strbuf_addf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values are reason codes and partition numbers: no quote, backslash
 * or newline can occur (event.h's codes are [a-z_:]), so none is escaped. */
static void invalid_by_reason(const pipeline_t *p, strbuf_t *t)
{
    size_t n;
    const pipeline_reason_t *r = pipeline_get_invalid(p, &n);
    family(t, "camjoin_messages_invalid_total", "counter",
           "Messages routed to dead letters, by the reason stored with them.");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(t, "camjoin_messages_invalid_total{reason=\"%s\"} %llu\n",
                    r[i].reason, (unsigned long long)r[i].count);
}

static void kafka_errors(const pipeline_t *p, strbuf_t *t)
{
    size_t n;
    const pipeline_reason_t *r = pipeline_get_kafka_errors(p, &n);
    family(t, "camjoin_kafka_errors_total", "counter",
           "Errors reported by librdkafka, by error name (rd_kafka_err2name).");
    for (size_t i = 0; i < n; i++) /* names are [A-Z0-9_] */
        strbuf_addf(t, "camjoin_kafka_errors_total{code=\"%s\"} %llu\n", r[i].reason,
                    (unsigned long long)r[i].count);
}

static void lag(const pipeline_t *p, strbuf_t *t)
{
    pipeline_lag_t l[256];
    size_t n = pipeline_get_lag(p, l, 256);
    family(t, "camjoin_consumer_lag_seconds", "gauge",
           "Now minus the Kafka timestamp of the last message committed, per partition "
           "(0 when caught up; absent until this run commits one).");
    for (size_t i = 0; i < n; i++)
        if (l[i].lag_ms >= 0)
            strbuf_addf(t, "camjoin_consumer_lag_seconds{partition=\"%d\"} %.3f\n",
                        (int)l[i].partition, (double)l[i].lag_ms / 1000);
    family(t, "camjoin_consumer_lag_messages", "gauge",
           "High watermark minus the position committed to PostgreSQL, per partition.");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(t, "camjoin_consumer_lag_messages{partition=\"%d\"} %lld\n",
                    (int)l[i].partition, (long long)l[i].lag);
    family(t, "camjoin_partition_high_watermark", "gauge",
           "Last known high watermark (next offset to be written), per partition.");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(t, "camjoin_partition_high_watermark{partition=\"%d\"} %lld\n",
                    (int)l[i].partition, (long long)l[i].high);
    family(t, "camjoin_partition_committed_offset", "gauge",
           "Next offset to read, as committed to PostgreSQL by this run, per partition.");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(t, "camjoin_partition_committed_offset{partition=\"%d\"} %lld\n",
                    (int)l[i].partition, (long long)l[i].committed);
}

static void seconds(strbuf_t *t, const char *name, const char *help, uint64_t ms)
{
    strbuf_addf(t, "# HELP %s %s\n# TYPE %s gauge\n%s %.3f\n", name, help, name,
                name, (double)ms / 1000);
}

/* A Prometheus histogram (cumulative buckets, _sum, _count). */
static void histogram(strbuf_t *t, const char *name, const char *help,
                      const hist_t *h)
{
    strbuf_addf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < hist_nbounds(h); i++)
        strbuf_addf(t, "%s_bucket{le=\"%g\"} %llu\n", name, hist_bound_s(h, i),
                    (unsigned long long)hist_cumulative(h, i));
    strbuf_addf(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                name, (unsigned long long)hist_count(h), name, hist_sum_s(h), name,
                (unsigned long long)hist_count(h));
}

/* A counter: a uint64_t field of a stats struct, exported as is. */
struct counter {
    const char *name, *help;
    size_t field; /* offsetof the uint64_t */
};

static const struct counter PIPELINE_COUNTERS[] = {
    {"camjoin_messages_consumed_total", "Kafka messages handed to the pipeline.",
     offsetof(pipeline_stats_t, consumed)},
    {"camjoin_rows_committed_total", "Event rows in committed transactions.",
     offsetof(pipeline_stats_t, rows_committed)},
    {"camjoin_rows_inserted_total", "Event rows newly inserted (the rest met ON CONFLICT).",
     offsetof(pipeline_stats_t, rows_inserted)},
    {"camjoin_duplicates_dropped_total", "Events dropped by the in-memory dedup window.",
     offsetof(pipeline_stats_t, duplicates)},
    {"camjoin_dead_letters_total", "Dead letters committed.",
     offsetof(pipeline_stats_t, dead_letters)},
    {"camjoin_join_misses_total", "Events whose camera_id is not in the reference table.",
     offsetof(pipeline_stats_t, join_misses)},
    {"camjoin_batches_committed_total", "Transactions committed.",
     offsetof(pipeline_stats_t, batches)},
    {"camjoin_commits_fenced_total", "Transactions rolled back because another consumer moved the offsets.",
     offsetof(pipeline_stats_t, fenced)},
    {"camjoin_batches_restaged_total", "Batches rolled back on a unique violation and redone through staging.",
     offsetof(pipeline_stats_t, restaged)},
    {"camjoin_offset_gaps_total", "Offset ranges lost to retention before camjoin read them (each recorded as an offset_gap dead letter).",
     offsetof(pipeline_stats_t, offset_gaps)},
    {"camjoin_offsets_lost_total", "Offsets in those ranges.",
     offsetof(pipeline_stats_t, offsets_lost)},
    {"camjoin_offsets_skipped_total", "Offsets that carry no message for camjoin: transaction markers, aborted transactions, compaction.",
     offsetof(pipeline_stats_t, offsets_skipped)},
    {"camjoin_reference_reloads_total", "Successful reloads of the reference CSV.",
     offsetof(pipeline_stats_t, reloads)},
    {"camjoin_reference_reload_failures_total", "Failed reloads of the reference CSV (old table kept).",
     offsetof(pipeline_stats_t, reload_failures)},
    {"camjoin_consumed_bytes_total", "Payload bytes of the Kafka messages handed to the pipeline.",
     offsetof(pipeline_stats_t, consumed_bytes)},
    {"camjoin_rebalances_total", "Consumer group rebalances completed (the new assignment positioned and fetching).",
     offsetof(pipeline_stats_t, rebalances)},
    {"camjoin_postgres_reconnects_total", "PostgreSQL connections re-established after a loss.",
     offsetof(pipeline_stats_t, pg_reconnects)},
};

static const struct counter UPKEEP_COUNTERS[] = {
    {"camjoin_partitions_created_total", "Daily partitions of the events table made by partition upkeep.",
     offsetof(upkeep_stats_t, created)},
    {"camjoin_partition_rows_moved_total", "Rows moved out of the default partition into their day's partition.",
     offsetof(upkeep_stats_t, moved_rows)},
    {"camjoin_partitions_dropped_total", "Daily partitions dropped by retention.",
     offsetof(upkeep_stats_t, dropped)},
    {"camjoin_archived_rows_total", "Rows written to archive files before their partition was dropped.",
     offsetof(upkeep_stats_t, archived_rows)},
    {"camjoin_upkeep_runs_total", "Partition upkeep runs completed, the one at startup included.",
     offsetof(upkeep_stats_t, runs)},
    {"camjoin_upkeep_failures_total", "Partition upkeep runs that failed (retried at the next interval).",
     offsetof(upkeep_stats_t, failures)},
    {"camjoin_upkeep_skipped_total", "Upkeep runs not made: the previous run was still going, or another process held the upkeep lock.",
     offsetof(upkeep_stats_t, skipped)},
};

static void counters(strbuf_t *t, const void *stats, const struct counter *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        metric(t, c[i].name, "counter", c[i].help,
               *(const uint64_t *)((const char *)stats + c[i].field));
}

/* Partition upkeep and retention (upkeep.h). */
static void upkeep(const pipeline_t *p, strbuf_t *t)
{
    upkeep_stats_t u;
    pipeline_get_upkeep(p, &u);
    counters(t, &u, UPKEEP_COUNTERS, ARRAY_LEN(UPKEEP_COUNTERS));
    seconds(t, "camjoin_upkeep_last_success_timestamp_seconds",
            "Unix time of the last successful partition upkeep run (0: none yet).",
            u.last_success_ms > 0 ? (uint64_t)u.last_success_ms : 0);
}

/* ---- process_*: the Prometheus client libraries' standard set ---- */

static double process_start_s(void)
{
    /* /proc/self/stat field 22 (starttime, clock ticks after boot) + btime */
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *c = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long long ticks = 0, btime = 0;
    for (int field = 2; c && *c && field < 22; c++)
        if (*c == ' ')
            field++;
    if (!c || sscanf(c, "%llu", &ticks) != 1)
        return 0;
    if (!(f = fopen("/proc/stat", "r")))
        return 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void process_metrics(strbuf_t *t)
{
    struct rusage ru;
    struct rlimit rl;
    long rss_pages = 0;
    unsigned long long fds = 0;
    getrusage(RUSAGE_SELF, &ru);
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%*s %ld", &rss_pages) != 1)
            rss_pages = 0;
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        fds += e->d_name[0] != '.';
    if (d) {
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    strbuf_addf(t, "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.6f\n", cpu);
    metric(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           (unsigned long long)rss_pages * (unsigned long long)sysconf(_SC_PAGESIZE));
    strbuf_addf(t, "# HELP process_start_time_seconds Start time of the process since unix "
                "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %.2f\n", process_start_s());
    metric(t, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    metric(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
           getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0);
}

static void render(const pipeline_t *p, strbuf_t *t)
{
    pipeline_stats_t s;
    pipeline_health_t h;
    pipeline_get_stats(p, &s);
    pipeline_get_health(p, &h);
    static const char *const G = "gauge";
    counters(t, &s, PIPELINE_COUNTERS, ARRAY_LEN(PIPELINE_COUNTERS));
    metric(t, "camjoin_reference_rows", G, "Rows in the reference table.",
           h.reference_rows);
    seconds(t, "camjoin_reference_loaded_timestamp_seconds",
            "Unix time when the current reference table was loaded.",
            (uint64_t)h.reference_loaded_ms);
    metric(t, "camjoin_dedup_keys", G, "Keys in the dedup window.", h.dedup_keys);
    metric(t, "camjoin_dedup_bytes", G, "Bytes held by the dedup window.",
           h.dedup_bytes);
    metric(t, "camjoin_buffered_messages", G,
           "Messages consumed but not yet committed.", h.buffered);
    metric(t, "camjoin_postgres_up", G,
           "1 when the PostgreSQL connection is ready.", (unsigned long long)h.pg_up);
    metric(t, "camjoin_partitions_assigned", G, "Partitions assigned.", h.assigned);
    metric(t, "camjoin_partitions_paused", G, "Partitions paused by back-pressure.",
           h.paused ? h.active : 0);
    seconds(t, "camjoin_paused_since_timestamp_seconds",
            "Unix time when back-pressure paused the partitions (0: consuming).",
            (uint64_t)h.paused_since_ms);
    upkeep(p, t);
    invalid_by_reason(p, t);
    kafka_errors(p, t);
    lag(p, t);
    pipeline_latency_t lat;
    pipeline_get_latency(p, &lat);
    histogram(t, "camjoin_end_to_end_latency_seconds",
              "Kafka timestamp (producer send) to COMMIT, per row and dead letter.",
              lat.produce_to_commit);
    histogram(t, "camjoin_event_latency_seconds",
              "Event time (event_ts) to COMMIT, per row.", lat.event_to_commit);
    histogram(t, "camjoin_commit_duration_seconds",
              "Batch transaction, from submit to COMMIT returned.", lat.commit);
    histogram(t, "camjoin_rebalance_duration_seconds",
              "Rebalance, from the first callback to the partitions positioned.", lat.rebalance);
    histogram(t, "camjoin_batch_rows", "Event rows per committed transaction.", lat.batch_rows);
    process_metrics(t);
    strbuf_addf(t, "# HELP camjoin_build_info Build information.\n"
           "# TYPE camjoin_build_info gauge\n"
           "camjoin_build_info{version=\"%s\"} 1\n", CAMJOIN_VERSION);
}

static const char *not_ready(const pipeline_health_t *h)
{
    if (h->waiting)
        return h->waiting;
    if (h->stopping)
        return "stopping";
    if (!h->pg_up)
        return "postgres unavailable";
    if (h->assigned == 0)
        return "no partitions assigned";
    if (h->active < h->assigned)
        return "partitions being positioned";
    if (h->paused_ms > (uint64_t)h->max_pause_ms)
        return "paused by back-pressure longer than http.ready_max_pause";
    return NULL;
}

void metrics_handle(void *ud, const char *path, http_response *res)
{
    const pipeline_t *p = ud;
    strbuf_t t = {0};
    pipeline_health_t h;
    if (strcmp(path, "/metrics") == 0) {
        render(p, &t);
        res->status = 200;
        res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(path, "/healthz") == 0) {
        strbuf_addf(&t, "ok\n");
        res->status = 200;
    } else if (strcmp(path, "/readyz") == 0) {
        pipeline_get_health(p, &h);
        const char *why = not_ready(&h);
        strbuf_addf(&t, "%s\n", why ? why : "ready");
        res->status = why ? 503 : 200;
    } else {
        strbuf_addf(&t, "not found: try /metrics, /healthz or /readyz\n");
        res->status = 404;
    }
    size_t len = t.oom ? 0 : t.len;
    res->body = strbuf_take(&t); /* owned by the server now; NULL on OOM */
    res->len = len;
    if (!res->body)
        res->status = 503;
}
