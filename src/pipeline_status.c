/*
 * pipeline_status — what the pipeline tells its operators, besides logs:
 * invalid messages counted by reason, consumer lag per partition, the
 * systemd conversation (READY, STATUS, WATCHDOG, RELOADING, STOPPING), and
 * the periodic log lines (progress, stopped, partition upkeep).
 * Private to the pipeline module; /metrics reads the results through
 * pipeline.h.
 *
 * The watchdog is pinged from a loop timer at half of WatchdogSec: if the
 * loop stops turning (a callback that never returns), the pings stop and
 * systemd restarts the service. Nothing here blocks or allocates per event.
 */
#include <stdio.h>
#include <string.h>

#include "camjoin/log.h"
#include "camjoin/notify.h"
#include "camjoin/source_kafka.h"
#include "pipeline_int.h"

/* ---- counts by name: dead letters by reason, Kafka errors by code ---- */

/* One more of `name` in a first-seen table of PIPELINE_MAX_REASONS; the
 * last slot becomes "other" once the table is full. */
static void count_in(pipeline_reason_t *t, size_t *n, const char *name)
{
    size_t i;
    for (i = 0; i < *n; i++)
        if (strcmp(t[i].reason, name) == 0)
            break;
    if (i == *n) {
        if (*n == PIPELINE_MAX_REASONS) /* never with today's codes */
            name = "other", i = PIPELINE_MAX_REASONS - 1;
        else
            (*n)++;
        snprintf(t[i].reason, sizeof t[i].reason, "%s", name);
    }
    t[i].count++;
}

void pipeline_count_invalid(pipeline_t *p, const char *reason)
{
    count_in(p->invalid, &p->ninvalid, reason);
}

void pipeline_count_kafka_error(pipeline_t *p, const char *code)
{
    count_in(p->kafka_errors, &p->nkafka_errors, code);
}

const pipeline_reason_t *pipeline_get_invalid(const pipeline_t *p, size_t *n)
{
    *n = p->ninvalid;
    return p->invalid;
}

const pipeline_reason_t *pipeline_get_kafka_errors(const pipeline_t *p, size_t *n)
{
    *n = p->nkafka_errors;
    return p->kafka_errors;
}

/* ---- lag ---- */

/* High watermark - committed position of an active partition. The position
 * is what this run has committed (or positioned at, before its first
 * commit): after a replay it is the replay's progress, not the offset an
 * earlier run left in camjoin_offsets. */
static int64_t part_lag(const pipeline_t *p, int32_t id, int64_t *high_out)
{
    const assignment_pos_t *pt = assignment_peek(p->asg, id);
    int64_t high = source_kafka_high(p->src, id);
    if (high < pt->high)
        high = pt->high; /* nothing fetched since the assignment */
    if (high_out)
        *high_out = high;
    return high > pt->committed ? high - pt->committed : 0;
}

size_t pipeline_get_lag(const pipeline_t *p, pipeline_lag_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < assignment_count(p->asg) && k < cap; i++) {
        int32_t id = assignment_at(p->asg, i);
        const assignment_pos_t *pos = assignment_peek(p->asg, id);
        if (!pos)
            continue;
        out[k].partition = id;
        out[k].committed = pos->committed;
        out[k].lag = part_lag(p, id, &out[k].high);
        out[k].lag_ms = out[k].lag == 0 ? 0
                        : pos->committed_ts_ms < 0 ? -1
                        : clock_wall_ms() - pos->committed_ts_ms;
        k++;
    }
    return k;
}

static int64_t total_lag(const pipeline_t *p)
{
    int64_t sum = 0;
    for (size_t i = 0; i < assignment_count(p->asg); i++)
        if (assignment_peek(p->asg, assignment_at(p->asg, i)))
            sum += part_lag(p, assignment_at(p->asg, i), NULL);
    return sum;
}

/* ---- systemd ---- */

static void status_text(pipeline_t *p, char *buf, size_t len)
{
    uint64_t now = uv_now(p->loop);
    double dt = (double)(now - p->status_ms) / 1000;
    double rate = dt > 0 ? (double)(p->st.consumed - p->status_consumed) / dt : 0;
    p->status_ms = now;
    p->status_consumed = p->st.consumed;
    snprintf(buf, len, "consumed=%llu rows=%llu rate=%.0f/s lag=%lld dead_letters=%llu%s",
             (unsigned long long)p->st.consumed,
             (unsigned long long)p->st.rows_committed, rate,
             (long long)total_lag(p), (unsigned long long)p->st.dead_letters,
             p->stopping ? " stopping" : "");
}

void pipeline_notify_status(pipeline_t *p)
{
    char s[256];
    if (!notify_enabled())
        return;
    status_text(p, s, sizeof s);
    notify_status("%s", s);
}

static void on_watchdog(uv_timer_t *t) { (void)t; notify_watchdog(); }

void pipeline_watchdog_start(pipeline_t *p)
{
    uint64_t usec = notify_watchdog_usec();
    p->watchdog.data = p; /* initialised by pipeline_start */
    if (usec) {
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_start(&p->watchdog, on_watchdog, ms, ms);
        notify_watchdog();
    }
}

void pipeline_notify_start(pipeline_t *p)
{
    char s[256];
    p->status_ms = uv_now(p->loop);
    if (notify_enabled()) {
        status_text(p, s, sizeof s);
        notify_ready(s);
    }
}

/* ---- log lines ---- */

void pipeline_log_stats(const pipeline_t *p, const char *msg)
{
    const pipeline_stats_t *s = &p->st;
    int64_t active = s->first_message_ms && s->last_commit_ms > s->first_message_ms
                         ? s->last_commit_ms - s->first_message_ms : 0;
    const hist_t *l = p->lat_produce;
    log_info(msg, "consumed=%llu rows=%llu inserted=%llu duplicates=%llu "
             "dead_letters=%llu join_misses=%llu batches=%llu fenced=%llu "
             "restaged=%llu offset_gaps=%llu offsets_skipped=%llu dedup_keys=%zu "
             "dedup_bytes=%zu active_s=%.3f rate=%.0f "
             "latency_p50_ms=%.2f latency_p99_ms=%.2f latency_p999_ms=%.2f "
             "latency_max_ms=%.2f",
             (unsigned long long)p->st.consumed,
             (unsigned long long)p->st.rows_committed,
             (unsigned long long)p->st.rows_inserted,
             (unsigned long long)p->st.duplicates,
             (unsigned long long)p->st.dead_letters,
             (unsigned long long)p->st.join_misses,
             (unsigned long long)p->st.batches,
             (unsigned long long)p->st.fenced,
             (unsigned long long)p->st.restaged,
             (unsigned long long)p->st.offset_gaps,
             (unsigned long long)p->st.offsets_skipped, dedup_count(p->dedup),
             dedup_bytes(p->dedup), (double)active / 1000,
             active ? (double)s->consumed * 1000 / (double)active : 0.0,
             (double)hist_quantile_us(l, 0.5) / 1000,
             (double)hist_quantile_us(l, 0.99) / 1000,
             (double)hist_quantile_us(l, 0.999) / 1000,
             (double)hist_max_us(l) / 1000);
}

/* The outcome of one upkeep run: the startup one, then every
 * retention.interval (upkeep.h). A failure is logged and retried at the
 * next run; ingestion goes on (rows without a partition land in the
 * default one). */
void pipeline_on_upkeep(void *ud, const upkeep_report_t *r)
{
    pipeline_t *p = ud;
    char q[600];
    if (r->busy) {
        log_debug("partition upkeep skipped: another process holds its lock", NULL);
        return;
    }
    if (r->unpartitioned && !p->upkeep_plain_warned) {
        p->upkeep_plain_warned = 1;
        log_warn("events table is not partitioned: partition upkeep and retention "
                 "skipped", "table=%s", log_quote(q, sizeof q, p->cfg->table));
    }
    if (r->failed)
        log_warn("partition upkeep failed; retried next interval", "error=%s "
                 "created=%llu moved_rows=%llu dropped=%llu archived_rows=%llu ms=%.1f",
                 log_quote(q, sizeof q, r->err), (unsigned long long)r->created,
                 (unsigned long long)r->moved_rows, (unsigned long long)r->dropped,
                 (unsigned long long)r->archived_rows, r->ms);
    else if (!r->unpartitioned)
        log_info("partition upkeep", "created=%llu moved_rows=%llu dropped=%llu "
                 "archived_rows=%llu ms=%.1f", (unsigned long long)r->created,
                 (unsigned long long)r->moved_rows, (unsigned long long)r->dropped,
                 (unsigned long long)r->archived_rows, r->ms);
}

/* ---- what /metrics and /healthz read (pipeline.h) ---- */

void pipeline_get_health(const pipeline_t *p, pipeline_health_t *h)
{
    memset(h, 0, sizeof *h);
    h->pg_up = p->sink && sink_pg_up(p->sink);
    h->waiting = p->phase == PL_WAITING || p->phase == PL_TRYING ? p->wait_reason : NULL;
    h->stopping = p->stopping;
    h->paused = source_kafka_paused(p->src);
    h->assigned = assignment_count(p->asg);
    h->active = assignment_active_count(p->asg);
    h->buffered = batchq_buffered(p->q);
    h->dedup_keys = dedup_count(p->dedup);
    h->dedup_bytes = dedup_bytes(p->dedup);
    h->reference_rows = refdata_count(p->ref);
    uint64_t now = uv_now(p->loop);
    h->reference_loaded_ms = p->ref_loaded_wall_ms;
    h->paused_ms = p->paused_since_ms && h->paused ? now - p->paused_since_ms : 0;
    h->paused_since_ms = p->paused_since_ms && h->paused ? clock_wall_ms() - (int64_t)h->paused_ms : 0;
    h->max_pause_ms = (uint64_t)p->cfg->ready_max_pause_ms;
}
void pipeline_get_stats(const pipeline_t *p, pipeline_stats_t *out) { *out = p->st; }

void pipeline_get_latency(const pipeline_t *p, pipeline_latency_t *out)
{
    out->produce_to_commit = p->lat_produce;
    out->event_to_commit = p->lat_event;
    out->commit = p->commit_dur;
    out->rebalance = p->rebalance_dur;
    out->batch_rows = p->batch_rows;
}

void pipeline_get_upkeep(const pipeline_t *p, upkeep_stats_t *out)
{
    upkeep_stats(p->upkeep, out);
}
