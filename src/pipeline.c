/* pipeline — see include/camjoin/pipeline.h. */
#include "camjoin/pipeline.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "camjoin/batch.h"
#include "camjoin/dedup.h"
#include "camjoin/event.h"
#include "camjoin/http.h"
#include "camjoin/log.h"
#include "camjoin/metrics.h"
#include "camjoin/notify.h"
#include "camjoin/pg_conn.h"
#include "camjoin/sink_pg.h"
#include "pipeline_int.h"

#define TICK_MS 1000

static const double LATENCY_BOUNDS_S[] = {
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    300, 3600};
static const double COMMIT_BOUNDS_S[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
#define STATS_EVERY_MS 10000

static void finish(pipeline_t *p);

/* ---- partitions ---- */

struct part *pipeline_part(pipeline_t *p, int32_t id)
{
    if (id < 0)
        return NULL;
    if ((size_t)id >= p->nparts) {
        size_t n = (size_t)id + 1 > 2 * p->nparts ? (size_t)id + 1 : 2 * p->nparts;
        struct part *np = realloc(p->parts, n * sizeof *np);
        if (!np)
            return NULL;
        memset(np + p->nparts, 0, (n - p->nparts) * sizeof *np);
        p->parts = np;
        p->nparts = n;
    }
    return &p->parts[id];
}

struct part *pipeline_part_active(pipeline_t *p, int32_t id)
{
    return id >= 0 && (size_t)id < p->nparts && p->parts[id].state == P_ACTIVE
               ? &p->parts[id] : NULL;
}

/* ---- batches ---- */

static batch_t *batch_take(pipeline_t *p)
{
    batch_t *b = p->spare;
    p->spare = NULL;
    return b ? b : batch_new(p->cfg->topic);
}

static void batch_recycle(pipeline_t *p, batch_t *b)
{
    batch_reset(b);
    if (p->spare)
        batch_free(b);
    else
        p->spare = b;
}

batch_t *pipeline_open_batch(pipeline_t *p)
{
    if (!p->open && (p->open = batch_take(p)))
        p->open_since = (int64_t)uv_now(p->loop);
    return p->open;
}

static int seal(pipeline_t *p)
{
    if (!p->open || batch_messages(p->open) == 0)
        return 0;
    if (p->nsealed == p->capsealed) {
        size_t n = p->capsealed ? 2 * p->capsealed : 4;
        batch_t **ns = realloc(p->sealed, n * sizeof *ns);
        if (!ns)
            return -1;
        p->sealed = ns;
        p->capsealed = n;
    }
    p->sealed[p->nsealed++] = p->open;
    p->open = NULL;
    return 0;
}

/* Drops everything not yet sent; its messages will be read again. */
void pipeline_drop_buffered(pipeline_t *p)
{
    size_t dropped = 0;
    if (p->open) {
        dropped += batch_messages(p->open);
        batch_recycle(p, p->open);
        p->open = NULL;
    }
    for (size_t i = 0; i < p->nsealed; i++) {
        dropped += batch_messages(p->sealed[i]);
        batch_recycle(p, p->sealed[i]);
    }
    p->nsealed = 0;
    p->buffered -= dropped;
    if (dropped)
        log_info("dropped uncommitted messages; they will be read again",
                 "messages=%zu", dropped);
}

/* Resumes every active partition at the next offset it expects. */
static void resume_at_next(pipeline_t *p)
{
    size_t n = 0;
    int32_t *parts = malloc((p->nassigned ? p->nassigned : 1) * sizeof *parts);
    int64_t *offs = malloc((p->nassigned ? p->nassigned : 1) * sizeof *offs);
    if (parts && offs) {
        for (size_t i = 0; i < p->nassigned; i++) {
            struct part *pt = &p->parts[p->assigned[i]];
            if (pt->state == P_ACTIVE) {
                parts[n] = p->assigned[i];
                offs[n++] = pt->next;
            }
        }
        if (source_kafka_resume_at(p->src, parts, offs, n) != 0)
            p->need_resolve = 1;
    } else {
        log_error("out of memory resuming partitions", NULL);
        pipeline_stop(p, 1);
    }
    free(parts);
    free(offs);
}

/* Paused partitions may fetch again: not stopping, no re-positioning
 * pending, and the buffer drained below half of batch.max_buffered. */
int pipeline_may_resume(const pipeline_t *p)
{
    return !p->stopping && !p->reposition &&
           p->buffered <= (size_t)p->cfg->batch_max_buffered / 2;
}

static void backpressure(pipeline_t *p)
{
    size_t max = (size_t)p->cfg->batch_max_buffered;
    if (!p->stopping && p->buffered >= max && !source_kafka_paused(p->src)) {
        log_info("buffer full, pausing partitions", "buffered=%zu", p->buffered);
        source_kafka_pause(p->src);
        p->paused_since_ms = uv_now(p->loop);
    } else if (source_kafka_paused(p->src) && pipeline_may_resume(p)) {
        log_info("buffer drained, resuming partitions", "buffered=%zu",
                 p->buffered);
        p->paused_since_ms = 0;
        resume_at_next(p);
    }
}

/* ---- messages ---- */

static void add_dead(pipeline_t *p, batch_t *b, const source_msg_t *m,
                     const char *reason)
{
    pipeline_count_invalid(p, reason);
    if (batch_add_dead(b, m->partition, m->offset, m->value, m->len, reason) ||
        batch_add_stamp(b, m->timestamp_ms, -1)) {
        log_error("cannot buffer a dead letter", "reason=%s", reason);
        pipeline_stop(p, 1);
    }
}

/* event.max_future / event.max_age: NULL when the timestamp is acceptable. */
static const char *ts_policy(const pipeline_t *p, int64_t ts_us)
{
    if (!p->cfg->max_future_ms && !p->cfg->max_age_ms)
        return NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t ts_ms = ts_us / 1000;
    if (p->cfg->max_future_ms && ts_ms > now_ms + p->cfg->max_future_ms)
        return "event_ts_in_future";
    if (p->cfg->max_age_ms && ts_ms < now_ms - p->cfg->max_age_ms)
        return "event_ts_too_old";
    return NULL;
}

static void process(pipeline_t *p, batch_t *b, const source_msg_t *m)
{
    char reason[EVENT_REASON_MAX];
    event_t ev;
    if (event_parse(&ev, m->value, m->len, (size_t)p->cfg->max_message_bytes,
                    reason) != EVENT_OK) {
        add_dead(p, b, m, reason);
        return;
    }
    const char *policy = ts_policy(p, ev.event_ts_us);
    if (policy) {
        add_dead(p, b, m, policy);
        goto out;
    }
    int d = dedup_check(p->dedup, ev.event_id, ev.event_id_len, m->partition,
                        m->offset, (int64_t)uv_now(p->loop));
    if (d == DEDUP_DUPLICATE) {
        p->st.duplicates++;
        batch_note_offset(b, m->partition, m->offset);
        goto out;
    }
    const refdata_row_t *row =
        refdata_lookup(p->ref, ev.camera_id, ev.camera_id_len);
    if (!row) {
        p->st.join_misses++;
        if (p->cfg->on_miss == JOIN_DROP) {
            batch_note_offset(b, m->partition, m->offset);
            goto out;
        }
        if (p->cfg->on_miss == JOIN_DEAD_LETTER) {
            add_dead(p, b, m, "unknown_camera");
            goto out;
        }
    }
    /* d < 0: the dedup set could not grow; the row is still written (the
     * primary key catches a duplicate) */
    if (batch_add_event(b, &ev, row, m->partition, m->offset) != 0)
        add_dead(p, b, m, "unencodable");
    else if (batch_add_stamp(b, m->timestamp_ms, ev.event_ts_us / 1000) != 0) {
        log_error("out of memory buffering a row", NULL);
        pipeline_stop(p, 1);
    }
out:
    event_clear(&ev);
}

static void on_message(void *ud, const source_msg_t *m)
{
    pipeline_t *p = ud;
    struct part *pt = pipeline_part_active(p, m->partition);
    if (p->stopping || !pt || m->offset < pt->next)
        return; /* not ours (any more), or a re-delivery of a skipped range */
    if (!p->open) {
        if (!(p->open = batch_take(p))) {
            log_error("out of memory allocating a batch", NULL);
            pipeline_stop(p, 1);
            return;
        }
        p->open_since = (int64_t)uv_now(p->loop);
        if (!p->st.first_message_ms)
            p->st.first_message_ms = wall_ms();
    }
    if (m->offset > pt->next) /* transaction markers, aborted data, compaction */
        p->st.offsets_skipped += (uint64_t)(m->offset - pt->next);
    pt->next = m->offset + 1;
    p->st.consumed++;
    p->buffered++;
    process(p, p->open, m);
    if (batch_messages(p->open) >= (size_t)p->cfg->batch_max_rows && seal(p))
        pipeline_stop(p, 1);
}

static void on_drained(void *ud)
{
    pipeline_t *p = ud;
    backpressure(p);
    pipeline_flush(p);
}

/* ---- flushing and commits ---- */

static void on_txn_done(void *ud, batch_t *b, enum sink_result r,
                        size_t inserted, double commit_ms);

/* The fence: each partition's offset as stored now. Returns 0, or -1 when
 * out of memory (the batch is still ours). */
static int submit(pipeline_t *p, batch_t *b)
{
    size_t n;
    const batch_offset_t *off = batch_offsets(b, &n);
    int64_t *expected = malloc((n ? n : 1) * sizeof *expected);
    if (!expected)
        return -1;
    for (size_t i = 0; i < n; i++)
        expected[i] = p->parts[off[i].partition].stored;
    /* on success the batch is the sink's until on_txn_done; expected is copied */
    int rc = sink_pg_submit(p->sink, b, expected, on_txn_done, p);
    free(expected);
    return rc;
}

static void on_linger(uv_timer_t *t) { pipeline_flush(t->data); }

static int until_end_reached(pipeline_t *p)
{
    if (!p->cfg->until_end || p->awaiting_assign || p->buffered)
        return 0;
    for (size_t i = 0; i < p->nassigned; i++) {
        struct part *pt = &p->parts[p->assigned[i]];
        if (pt->state != P_ACTIVE || pt->committed < pt->high)
            return 0;
    }
    return 1;
}

void pipeline_flush(pipeline_t *p)
{
    if (p->stopped || !p->sink || sink_pg_pending(p->sink) > 0)
        return;
    if (!p->nsealed && p->open && batch_messages(p->open)) {
        int64_t age = (int64_t)uv_now(p->loop) - p->open_since;
        if (!p->stopping && !p->reposition && age < p->cfg->batch_max_wait_ms) {
            uv_timer_start(&p->linger, on_linger,
                           (uint64_t)(p->cfg->batch_max_wait_ms - age), 0);
            return;
        }
        if (seal(p)) {
            log_error("out of memory sealing a batch; dropping the buffer "
                      "(it is read again on restart)", NULL);
            p->exit_code = 1;
            pipeline_drop_buffered(p);
            finish(p);
            return;
        }
    }
    if (p->nsealed) {
        batch_t *b = p->sealed[0];
        memmove(p->sealed, p->sealed + 1, --p->nsealed * sizeof *p->sealed);
        if (submit(p, b) != 0) {
            log_error("out of memory queueing a batch for postgres; dropping "
                      "the buffer (it is read again on restart)", NULL);
            p->buffered -= batch_messages(b);
            batch_recycle(p, b);
            p->exit_code = 1;
            pipeline_drop_buffered(p);
            finish(p);
        }
        return;
    }
    if (p->stopping)
        finish(p);
    else if (p->reposition && !p->buffered) {
        /* every message read before the out-of-range is committed: now the
         * stored offsets are exact, and positioning records the gap */
        p->reposition = 0;
        pipeline_resolve(p);
    } else if (until_end_reached(p)) {
        log_info("reached the end of every assigned partition", NULL);
        pipeline_stop(p, 0);
    }
}

/* The batch is durable: one latency sample per message it wrote. */
static void record_latency(pipeline_t *p, const batch_t *b, double commit_ms)
{
    size_t n;
    const batch_stamp_t *st = batch_stamps(b, &n);
    int64_t now_us = wall_us();
    for (size_t i = 0; i < n; i++) {
        if (st[i].produced_ms >= 0)
            hist_record_us(p->lat_produce, now_us - st[i].produced_ms * 1000);
        if (st[i].event_ms != -1)
            hist_record_us(p->lat_event, now_us - st[i].event_ms * 1000);
    }
    hist_record_us(p->commit_dur, (int64_t)(commit_ms * 1000));
    p->st.last_commit_ms = now_us / 1000;
}

static void on_txn_done(void *ud, batch_t *b, enum sink_result r,
                        size_t inserted, double commit_ms)
{
    pipeline_t *p = ud;
    size_t n, msgs = batch_messages(b);
    batch_offset_t *off = batch_offsets(b, &n);
    p->buffered -= msgs;
    if (r == SINK_OK) {
        for (size_t i = 0; i < n; i++) {
            struct part *pt = pipeline_part(p, off[i].partition);
            if (!pt)
                continue;
            pt->stored = off[i].next;
            if (pt->state == P_ACTIVE) {
                pt->committed = off[i].next;
                p->kafka_dirty = 1;
            }
        }
        record_latency(p, b, commit_ms);
        p->st.restaged = sink_pg_restaged(p->sink);
        p->st.batches++;
        p->st.rows_committed += batch_rows(b);
        p->st.rows_inserted += inserted;
        p->st.dead_letters += batch_dead(b);
        log_debug("batch committed", "messages=%zu rows=%zu inserted=%zu "
                  "dead=%zu commit_ms=%.2f", msgs, batch_rows(b), inserted,
                  batch_dead(b), commit_ms);
    } else {
        p->st.fenced++;
        log_warn("offsets moved by another consumer: batch rolled back, "
                 "re-reading stored offsets", "messages=%zu", msgs);
        pipeline_drop_buffered(p);
        if (!p->stopping)
            pipeline_resolve(p);
    }
    batch_recycle(p, b);
    backpressure(p);
    pipeline_flush(p);
}

static void on_source_error(void *ud, const char *msg, int fatal)
{
    pipeline_t *p = ud;
    char q[600];
    log_emit(fatal ? LOG_ERROR : LOG_WARN, "kafka", "detail=%s",
             log_quote(q, sizeof q, msg));
    if (fatal)
        pipeline_stop(p, 1);
}

static void on_sink_state(void *ud, int up, const char *msg)
{
    (void)ud;
    char q[600];
    if (up)
        log_info("postgres connected", NULL);
    else
        log_warn("postgres unavailable, retrying", "error=%s",
                 log_quote(q, sizeof q, msg));
}

/* ---- partition upkeep ---- */

/* The outcome of one upkeep run: the startup one, then every
 * retention.interval (upkeep.h). A failure is logged and retried at the
 * next run; ingestion goes on (rows without a partition land in the
 * default one). */
static void on_upkeep_done(void *ud, const upkeep_report_t *r)
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

void pipeline_get_upkeep(const pipeline_t *p, upkeep_stats_t *out)
{
    upkeep_stats(p->upkeep, out);
}

/* ---- stop, signals, timers ---- */

void pipeline_stop(pipeline_t *p, int code)
{
    if (code > p->exit_code)
        p->exit_code = code;
    if (p->stopping)
        return;
    p->stopping = 1;
    log_info("stopping: flushing buffered rows", "buffered=%zu", p->buffered);
    notify_stopping("stopping: flushing buffered rows");
    source_kafka_pause(p->src);
    uv_timer_stop(&p->linger);
    pipeline_flush(p);
}

static void log_stats(pipeline_t *p, const char *msg)
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

/* Closes the consumer, the connection and our handles: the loop runs dry.
 * Runs from its own timer callback, never from inside a librdkafka or sink
 * callback, so nothing below it is torn down while it is still on the stack. */
static void on_close(uv_timer_t *t)
{
    pipeline_t *p = t->data;
    pipeline_commit_kafka(p);
    source_kafka_close(p->src);
    sink_pg_free(p->sink); /* an unfinished transaction rolls back */
    p->sink = NULL;
    upkeep_close(p->upkeep); /* a run on the pool stops at its next check */
    p->upkeep = NULL;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&p->sig[i], NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
    uv_close((uv_handle_t *)&p->linger, NULL);
    uv_close((uv_handle_t *)&p->closer, NULL);
    uv_close((uv_handle_t *)&p->watchdog, NULL);
    http_close(p->http);
    p->http = NULL;
    log_stats(p, "stopped");
}

static void finish(pipeline_t *p)
{
    if (p->stopped)
        return;
    p->stopped = p->stopping = 1;
    uv_timer_start(&p->closer, on_close, 0, 0);
}

/* SIGHUP: the CSV is parsed on the thread pool (a million rows take
 * seconds); only the pointer swap happens on the loop, between two events. */
struct reload_job {
    uv_work_t req;
    pipeline_t *p;
    refdata_t *fresh;
    char err[512];
};

static void reload_work(uv_work_t *w)
{
    struct reload_job *j = w->data;
    if (refdata_load(&j->fresh, j->p->cfg->reference, j->err, sizeof j->err) != 0)
        j->fresh = NULL;
}

static void reload_reference(pipeline_t *p);

static void reload_done(uv_work_t *w, int status)
{
    struct reload_job *j = w->data;
    pipeline_t *p = j->p;
    char q[600];
    p->reloading = 0;
    if (status != 0 || !j->fresh) {
        p->st.reload_failures++;
        log_emit_each(LOG_ERROR, "reference reload failed; keeping the current table",
                  "error=%s", log_quote(q, sizeof q, status ? "cancelled" : j->err));
    } else {
        refdata_free(p->ref);
        p->ref = j->fresh; /* the swap: the next event sees the new table */
        p->ref_loaded_ms = uv_now(p->loop);
        p->st.reloads++;
        log_info("reference table reloaded", "rows=%zu hash=%016llx",
                 refdata_count(p->ref), (unsigned long long)refdata_hash(p->ref));
    }
    free(j);
    if (p->reload_again && !p->stopped) { /* a SIGHUP came in meanwhile */
        p->reload_again = 0;
        reload_reference(p);
    } else if (!p->stopping) {
        notify_ready(NULL); /* the reload is over, whatever its outcome */
    }
}

static void reload_reference(pipeline_t *p)
{
    if (p->reloading) {
        p->reload_again = 1;
        return;
    }
    struct reload_job *j = calloc(1, sizeof *j);
    if (!j) {
        p->st.reload_failures++;
        log_emit_each(LOG_ERROR, "reference reload failed: out of memory", NULL);
        return;
    }
    j->p = p;
    j->req.data = j;
    p->reloading = 1;
    uv_queue_work(p->loop, &j->req, reload_work, reload_done);
}

static void on_signal(uv_signal_t *h, int signum)
{
    pipeline_t *p = h->data;
    if (signum == SIGHUP) {
        if (!p->reloading)
            notify_reloading();
        reload_reference(p);
        return;
    }
    if (!p->stopping) {
        log_info("signal received, shutting down", "signal=%d", signum);
        pipeline_stop(p, 0);
        return;
    }
    log_warn("second signal: abandoning buffered rows (re-read on restart)",
             "buffered=%zu", p->buffered);
    p->exit_code = 1;
    pipeline_drop_buffered(p);
    finish(p);
}

/* Tells Kafka the committed positions, for lag tools only (PostgreSQL holds
 * the truth): once a tick rather than once a transaction, which at low rates
 * would be hundreds of OffsetCommit requests a second. */
void pipeline_commit_kafka(pipeline_t *p)
{
    int32_t parts[64];
    int64_t next[64];
    size_t k = 0;
    if (!p->kafka_dirty || !p->src)
        return;
    p->kafka_dirty = 0;
    for (size_t i = 0; i < p->nassigned; i++) {
        struct part *pt = &p->parts[p->assigned[i]];
        if (pt->state != P_ACTIVE || pt->committed <= 0)
            continue;
        parts[k] = p->assigned[i];
        next[k++] = pt->committed;
        if (k == 64) {
            source_kafka_commit_async(p->src, parts, next, k);
            k = 0;
        }
    }
    if (k)
        source_kafka_commit_async(p->src, parts, next, k);
}

static void on_tick(uv_timer_t *t)
{
    pipeline_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    pipeline_commit_kafka(p);
    dedup_expire(p->dedup, (int64_t)now);
    if (p->need_resolve && !p->stopping) {
        p->need_resolve = 0;
        pipeline_resolve(p);
    }
    if (now - p->last_stats_ms >= STATS_EVERY_MS) {
        if (p->st.consumed != p->last_consumed)
            log_stats(p, "progress");
        p->last_consumed = p->st.consumed;
        p->last_stats_ms = now;
    }
    pipeline_notify_status(p);
    pipeline_flush(p);
}

/* ---- lifecycle ---- */

pipeline_t *pipeline_new(uv_loop_t *loop, const camjoin_config *cfg,
                         refdata_t *ref, replay_spec_t *replay, char *err,
                         size_t errlen)
{
    static const source_kafka_callbacks scb = {
        .on_message = on_message, .on_drained = on_drained,
        .on_revoke = pipeline_on_revoke, .on_assign = pipeline_on_assign,
        .on_eof = pipeline_on_eof, .on_out_of_range = pipeline_on_out_of_range,
        .on_error = on_source_error,
    };
    pipeline_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->awaiting_assign = 1;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (strcmp(cfg->kafka_props[i].key, "auto.offset.reset") == 0)
            p->offset_reset_latest =
                strcmp(cfg->kafka_props[i].value, "latest") == 0 ||
                strcmp(cfg->kafka_props[i].value, "largest") == 0 ||
                strcmp(cfg->kafka_props[i].value, "end") == 0;
    if (pg_conn_check_conninfo(cfg->pg_conninfo, err, errlen) != 0 ||
        (cfg->http_listen[0] && http_check_listen(cfg->http_listen, err, errlen)))
        goto fail;
    p->lat_produce = hist_new(LATENCY_BOUNDS_S, NELEM(LATENCY_BOUNDS_S));
    p->lat_event = hist_new(LATENCY_BOUNDS_S, NELEM(LATENCY_BOUNDS_S));
    p->commit_dur = hist_new(COMMIT_BOUNDS_S, NELEM(COMMIT_BOUNDS_S));
    if (!p->lat_produce || !p->lat_event || !p->commit_dur ||
        !(p->dedup = dedup_new(cfg->dedup_window_ms, 1 << 16))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(p->src = source_kafka_new(loop, cfg, &scb, p, err, errlen)))
        goto fail;
    if (!(p->sink = sink_pg_new(loop, cfg, on_sink_state, p))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->ref = ref;                  /* owned by the pipeline from here */
    p->ref_loaded_ms = uv_now(loop);
    p->replay = *replay;
    memset(replay, 0, sizeof *replay); /* arrays owned by the pipeline */
    return p;
fail:
    source_kafka_free(p->src);
    dedup_free(p->dedup);
    hist_free(p->lat_produce);
    hist_free(p->lat_event);
    hist_free(p->commit_dur);
    free(p);
    return NULL;
}

int pipeline_start(pipeline_t *p, char *err, size_t errlen)
{
    static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    if (p->cfg->http_listen[0] &&
        !(p->http = http_new(p->loop, p->cfg->http_listen, metrics_handle, p,
                             err, errlen)))
        return -1;
    if (sink_pg_open(p->sink, err, errlen) != 0)
        return -1;
    log_info("postgres connected", NULL); /* later reconnects: on_sink_state */
    /* today's partitions before consuming; a failure only costs rows going
     * to the default partition until a later run succeeds */
    if (!(p->upkeep = upkeep_new(p->loop, p->cfg, on_upkeep_done, p))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    upkeep_report_t ur;
    upkeep_prepare(p->upkeep, &ur);
    on_upkeep_done(p, &ur);
    if (source_kafka_start(p->src, err, errlen) != 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        uv_signal_init(p->loop, &p->sig[i]);
        p->sig[i].data = p;
        uv_signal_start(&p->sig[i], on_signal, signums[i]);
    }
    uv_timer_init(p->loop, &p->tick);
    uv_timer_init(p->loop, &p->linger);
    uv_timer_init(p->loop, &p->closer);
    p->tick.data = p->linger.data = p->closer.data = p;
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    p->last_stats_ms = uv_now(p->loop);
    upkeep_start(p->upkeep); /* a full run at once, then every retention.interval */
    pipeline_notify_start(p); /* connected, table loaded, subscribed: READY=1 */
    return 0;
}

int pipeline_exit_code(const pipeline_t *p) { return p->exit_code; }

void pipeline_get_health(const pipeline_t *p, pipeline_health_t *h)
{
    memset(h, 0, sizeof *h);
    h->pg_up = p->sink && sink_pg_up(p->sink);
    h->stopping = p->stopping;
    h->paused = source_kafka_paused(p->src);
    h->assigned = p->nassigned;
    for (size_t i = 0; i < p->nassigned; i++)
        h->active += p->parts[p->assigned[i]].state == P_ACTIVE;
    h->buffered = p->buffered;
    h->dedup_keys = dedup_count(p->dedup);
    h->dedup_bytes = dedup_bytes(p->dedup);
    h->reference_rows = refdata_count(p->ref);
    uint64_t now = uv_now(p->loop);
    h->reference_age_ms = now - p->ref_loaded_ms;
    h->paused_ms = p->paused_since_ms && h->paused ? now - p->paused_since_ms : 0;
    h->max_pause_ms = (uint64_t)p->cfg->ready_max_pause_ms;
}
void pipeline_get_stats(const pipeline_t *p, pipeline_stats_t *out) { *out = p->st; }

void pipeline_get_latency(const pipeline_t *p, pipeline_latency_t *out)
{
    out->produce_to_commit = p->lat_produce;
    out->event_to_commit = p->lat_event;
    out->commit = p->commit_dur;
}

void pipeline_free(pipeline_t *p)
{
    if (!p)
        return;
    http_close(p->http);
    source_kafka_free(p->src);
    sink_pg_free(p->sink);
    upkeep_close(p->upkeep);
    pipeline_drop_buffered(p);
    if (p->spare)
        batch_free(p->spare);
    free(p->sealed);
    dedup_free(p->dedup);
    hist_free(p->lat_produce);
    hist_free(p->lat_event);
    hist_free(p->commit_dur);
    refdata_free(p->ref);
    replay_spec_clear(&p->replay);
    free(p->parts);
    free(p->assigned);
    free(p);
}
