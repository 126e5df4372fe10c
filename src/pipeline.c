/* pipeline — see include/camjoin/pipeline.h, and pipeline_int.h for the
 * files of the module.
 *
 * This file wires the stages together and owns the lifecycle: it creates
 * the source, the sink, the dedup window, the batch queue, the assignment
 * and the upkeep, starts them in the order in which a failure is cheapest
 * (PostgreSQL first, Kafka last), and frees them. It also owns the handles
 * that only start or stop the flow: the signals (SIGTERM and SIGINT stop,
 * a second one abandons the buffer; SIGHUP reloads the reference table on
 * the thread pool) and the one-second tick (commits to Kafka, dedup expiry,
 * the assignment's retries, progress lines and STATUS=).
 */
#include "camjoin/pipeline.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/batchq.h"
#include "camjoin/dedup.h"
#include "camjoin/http.h"
#include "camjoin/log.h"
#include "camjoin/metrics.h"
#include "camjoin/notify.h"
#include "camjoin/pg_conn.h"
#include "camjoin/refwatch.h"
#include "camjoin/reload.h"
#include "camjoin/sink_pg.h"
#include "pipeline_int.h"

#define TICK_MS 1000
#define REFWATCH_DEBOUNCE_MS 500 /* the file left alone this long is read */

static const double LATENCY_BOUNDS_S[] = {
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    300, 3600};
static const double COMMIT_BOUNDS_S[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double REBALANCE_BOUNDS_S[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
/* rows per batch: camjoin_batch_rows reads these bounds as rows */
static const double BATCH_ROWS_BOUNDS[] = {1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000,
                                           50000, 100000};
#define STATS_EVERY_MS 10000


static void on_source_error(void *ud, const char *code, const char *msg, int fatal)
{
    pipeline_t *p = ud;
    char q[600];
    pipeline_count_kafka_error(p, code);
    if (!fatal) {
        log_warn("kafka", "detail=%s", log_quote(q, sizeof q, msg));
        return;
    }
    log_error("kafka error that reconnecting cannot cure (not retried); stopping",
              "detail=%s", log_quote(q, sizeof q, msg));
    pipeline_stop(p, 1);
}

/* The sink's news, logged here: the sink itself logs nothing. */
static void on_sink_news(void *ud, const sink_pg_news *n)
{
    pipeline_t *p = ud;
    char q[600];
    switch (n->kind) {
    case SINK_NEWS_UP:
        p->st.pg_reconnects++;
        log_info("postgres connected", NULL);
        break;
    case SINK_NEWS_DOWN:
        log_warn("postgres unavailable, retrying", "error=%s",
                 log_quote(q, sizeof q, n->detail));
        break;
    case SINK_NEWS_RETRY_FAILED:
        log_debug("postgres reconnect failed", "retry_ms=%llu", (unsigned long long)n->n);
        break;
    case SINK_NEWS_COMMITTED:
        log_info("unknown commit outcome resolved: committed", "messages=%llu",
                 (unsigned long long)n->n);
        break;
    case SINK_NEWS_NOT_COMMITTED:
        log_info("unknown commit outcome resolved: not committed, retrying",
                 "messages=%llu", (unsigned long long)n->n);
        break;
    case SINK_NEWS_STAGING:
        log_info("batch met rows that exist already; writing through staging "
                 "tables until a batch meets none", "error=%s",
                 log_quote(q, sizeof q, n->detail));
        break;
    case SINK_NEWS_FAILED:
        log_warn("postgres statement failed", "step=%s error=%s", n->step,
                 log_quote(q, sizeof q, n->detail));
        break;
    }
}

/* SIGHUP: the CSV is loaded on the thread pool (reload.c); only the pointer
 * swap happens here, between two events. */
static void on_reloaded(void *ud, refdata_t *fresh, const char *err, int more)
{
    pipeline_t *p = ud;
    char q[600];
    if (!fresh) {
        p->st.reload_failures++;
        log_emit_each(LOG_ERROR, "reference reload failed; keeping the current table",
                      "error=%s", log_quote(q, sizeof q, err));
    } else {
        refdata_free(p->ref);
        p->ref = fresh; /* the swap: the next event sees the new table */
        p->ref_loaded_wall_ms = clock_wall_ms();
        p->st.reloads++;
        log_info("reference table reloaded", "rows=%zu hash=%016llx",
                 refdata_count(p->ref), (unsigned long long)refdata_hash(p->ref));
    }
    if (more && p->stopped)
        reload_cancel_queued(p->reload);
    else if (!more && !p->stopping && p->phase == PL_RUNNING)
        notify_ready(NULL); /* the reload is over, whatever its outcome */
}

/* A load of the reference CSV on the thread pool (reload.h), on SIGHUP or a
 * changed file; one that cannot even start counts as a failed reload. */
static void request_reload(pipeline_t *p)
{
    if (reload_request(p->reload) != 0) {
        p->st.reload_failures++;
        log_emit_each(LOG_ERROR, "reference reload failed: out of memory", NULL);
    }
}

/* The reference CSV was replaced or rewritten (refwatch.h): the same load
 * as SIGHUP's, without systemd's RELOADING=1 (nobody ran systemctl reload). */
static void on_reference_changed(void *ud)
{
    pipeline_t *p = ud;
    char q[1100];
    log_info("reference file changed, reloading", "path=%s",
             log_quote(q, sizeof q, p->cfg->reference));
    request_reload(p);
}

static void on_signal(uv_signal_t *h, int signum)
{
    pipeline_t *p = h->data;
    if (signum == SIGHUP) {
        if (!reload_busy(p->reload) && p->phase == PL_RUNNING)
            notify_reloading(); /* before READY=1, systemd is still starting us */
        request_reload(p);
        return;
    }
    if (p->phase != PL_RUNNING) {
        pipeline_start_abandon(p, signum);
        return;
    }
    if (!p->stopping) {
        log_info("signal received, shutting down", "signal=%d", signum);
        pipeline_stop(p, 0);
        return;
    }
    log_warn("second signal: abandoning buffered rows (re-read on restart)",
             "buffered=%zu", batchq_buffered(p->q));
    p->exit_code = 1;
    pipeline_drop_buffered(p);
    pipeline_finish(p);
}

static void on_tick(uv_timer_t *t)
{
    pipeline_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    pipeline_commit_kafka(p);
    dedup_expire(p->dedup, (int64_t)now);
    if (!p->stopping && assignment_tick(p->asg) != 0)
        pipeline_stop(p, 1);
    if (now - p->last_stats_ms >= STATS_EVERY_MS) {
        if (p->st.consumed != p->last_consumed)
            pipeline_log_stats(p, "progress");
        p->last_consumed = p->st.consumed;
        p->last_stats_ms = now;
    }
    pipeline_notify_status(p);
    pipeline_flush(p);
}

/* ---- lifecycle ---- */

pipeline_t *pipeline_new(uv_loop_t *loop, const camjoin_config *cfg,
                         refdata_t *ref, replay_spec_t *replay, replay_spec_t *until,
                         char *err, size_t errlen)
{
    static const source_kafka_callbacks scb = {
        .on_message = pipeline_on_message, .on_drained = pipeline_on_drained,
        .on_revoke = pipeline_on_revoke, .on_assign = pipeline_on_assign,
        .on_eof = pipeline_on_eof, .on_out_of_range = pipeline_on_out_of_range,
        .on_error = on_source_error,
    };
    pipeline_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int reset_latest = 0;
    p->loop = loop;
    p->cfg = cfg;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (strcmp(cfg->kafka_props[i].key, "auto.offset.reset") == 0)
            reset_latest =
                strcmp(cfg->kafka_props[i].value, "latest") == 0 ||
                strcmp(cfg->kafka_props[i].value, "largest") == 0 ||
                strcmp(cfg->kafka_props[i].value, "end") == 0;
    if (pg_conn_check_conninfo(cfg->pg_conninfo, err, errlen) != 0 ||
        (cfg->http_listen[0] && http_check_listen(cfg->http_listen, err, errlen)))
        goto fail;
    p->lat_produce = hist_new(LATENCY_BOUNDS_S, ARRAY_LEN(LATENCY_BOUNDS_S));
    p->lat_event = hist_new(LATENCY_BOUNDS_S, ARRAY_LEN(LATENCY_BOUNDS_S));
    p->commit_dur = hist_new(COMMIT_BOUNDS_S, ARRAY_LEN(COMMIT_BOUNDS_S));
    p->rebalance_dur = hist_new(REBALANCE_BOUNDS_S, ARRAY_LEN(REBALANCE_BOUNDS_S));
    p->batch_rows = hist_new(BATCH_ROWS_BOUNDS, ARRAY_LEN(BATCH_ROWS_BOUNDS));
    if (!p->lat_produce || !p->lat_event || !p->commit_dur || !p->rebalance_dur ||
        !p->batch_rows ||
        !(p->dedup = dedup_new(cfg->dedup_window_ms, 1 << 16))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(p->q = batchq_new(cfg->topic)) ||
        !(p->reload = reload_new(loop, cfg->reference, on_reloaded, p))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(p->src = source_kafka_new(loop, cfg, &scb, p, err, errlen)))
        goto fail;
    if (!(p->sink = sink_pg_new(loop, cfg, on_sink_news, p))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* the replay specs' arrays are the assignment's from here */
    p->reset_latest = reset_latest;
    if (!(p->asg = assignment_new(&pipeline_assignment_io, p, replay, until,
                                  cfg->dedup_warm_up, reset_latest))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->ref = ref;                  /* owned by the pipeline from here */
    p->ref_loaded_wall_ms = clock_wall_ms();
    return p;
fail:
    reload_free(p->reload);
    batchq_free(p->q);
    sink_pg_free(p->sink);
    source_kafka_free(p->src);
    dedup_free(p->dedup);
    hist_free(p->lat_produce);
    hist_free(p->lat_event);
    hist_free(p->commit_dur);
    hist_free(p->rebalance_dur);
    hist_free(p->batch_rows);
    free(p);
    return NULL;
}

/* The rest of the startup, PostgreSQL connected (pipeline_start.c). */
int pipeline_run(pipeline_t *p, char *err, size_t errlen)
{
    log_info("postgres connected", NULL); /* later reconnects: on_sink_news */
    /* today's partitions before consuming; a failure only costs rows going
     * to the default partition until a later run succeeds */
    if (!(p->upkeep = upkeep_new(p->loop, p->cfg, pipeline_on_upkeep, p))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    upkeep_report_t ur;
    upkeep_prepare(p->upkeep, &ur);
    pipeline_on_upkeep(p, &ur);
    if (source_kafka_start(p->src, err, errlen) != 0)
        return -1;
    if (!source_kafka_commits_offsets(p->src))
        log_info("cooperative assignor: offsets are not committed to Kafka "
                 "(this librdkafka loses the assignment on a commit during a "
                 "rebalance); lag is on /metrics", NULL);
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    p->last_stats_ms = uv_now(p->loop);
    upkeep_start(p->upkeep); /* a full run at once, then every retention.interval */
    if (p->cfg->reference_watch) {
        char werr[300], q[400];
        p->refwatch = refwatch_start(p->loop, p->cfg->reference, REFWATCH_DEBOUNCE_MS,
                                     on_reference_changed, p, werr, sizeof werr);
        if (!p->refwatch)
            log_warn("reference file not watched; SIGHUP still reloads it", "error=%s",
                     log_quote(q, sizeof q, werr));
    }
    pipeline_notify_start(p); /* connected, table loaded, subscribed: READY=1 */
    return 0;
}

/* The handles, initialised once by pipeline_start (pipeline_start.c) so that
 * pipeline_close() may close them all whatever the phase. */
void pipeline_init_handles(pipeline_t *p)
{
    static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(p->loop, &p->sig[i]);
        p->sig[i].data = p;
        uv_signal_start(&p->sig[i], on_signal, signums[i]);
    }
    uv_timer_init(p->loop, &p->tick);
    uv_timer_init(p->loop, &p->linger);
    uv_timer_init(p->loop, &p->closer);
    uv_timer_init(p->loop, &p->watchdog);
    uv_timer_init(p->loop, &p->start_timer);
    p->tick.data = p->linger.data = p->closer.data = p->start_timer.data = p;
}

int pipeline_exit_code(const pipeline_t *p) { return p->exit_code; }

void pipeline_free(pipeline_t *p)
{
    if (!p)
        return;
    http_close(p->http);
    source_kafka_free(p->src);
    sink_pg_free(p->sink);
    upkeep_close(p->upkeep);
    batchq_free(p->q);
    reload_free(p->reload);
    dedup_free(p->dedup);
    hist_free(p->lat_produce);
    hist_free(p->lat_event);
    hist_free(p->commit_dur);
    hist_free(p->rebalance_dur);
    hist_free(p->batch_rows);
    refdata_free(p->ref);
    assignment_free(p->asg);
    pipeline_free_requests(p);
    free(p);
}
