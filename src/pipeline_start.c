/* pipeline_start — the startup: pipeline_start() (camjoin/pipeline.h) and
 * the wait for PostgreSQL.
 *
 * A daemon started at boot often comes up before its database, and a
 * database restarted under it comes back in seconds; neither should leave
 * the unit failed. So startup tries PostgreSQL once, blocking, before the
 * loop runs: connected, the pipeline runs (pipeline_run: upkeep, Kafka,
 * READY=1). A failure that waiting can cure (pg_conn_retryable: refused,
 * timed out, starting up, shutting down, out of slots) is not an error but
 * the WAITING phase: the signals and HTTP are already up, /healthz answers
 * 200 and /readyz 503 with the reason, STATUS= says "waiting for
 * PostgreSQL", and each attempt runs sink_pg_connect() on the thread pool
 * (a connect_timeout of 5 s must not stall the loop), after the sink's own
 * backoff (100 ms doubling to postgres.retry_max). Each attempt also sends
 * EXTEND_TIMEOUT_USEC, so systemd's TimeoutStartSec= counts from the last
 * attempt, not from the start: a wait is not a hang (the watchdog, started
 * at once, still catches a stalled loop). A failure that waiting cannot cure
 * (credentials, TLS, a missing database or privilege) exits 1 with one line,
 * at the first attempt or a later one.
 *
 * A stop signal while waiting ends the process with 0 (nothing was read);
 * while an attempt is on the pool, when it returns (its connection closed).
 *
 * The phases and their transitions: enum pipeline_phase (pipeline_int.h).
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "camjoin/log.h"
#include "camjoin/metrics.h"
#include "camjoin/notify.h"
#include "camjoin/pg_conn.h"
#include "camjoin/sink_pg.h"
#include "pipeline_int.h"

/* systemd's start timeout from each attempt: the backoff, the attempt's
 * connect_timeout and the schema setup, with room to spare */
#define START_EXTEND_MS 60000

static int phase_legal(enum pipeline_phase from, enum pipeline_phase to)
{
    switch (from) {
    case PL_NEW:
        return to == PL_RUNNING || to == PL_WAITING || to == PL_ENDED;
    case PL_WAITING:
        return to == PL_TRYING || to == PL_ENDED;
    case PL_TRYING:
        return to == PL_WAITING || to == PL_RUNNING || to == PL_ENDED;
    case PL_RUNNING:
        return to == PL_ENDED; /* the rest of the startup failed */
    case PL_ENDED:
        return 0;
    }
    return 0;
}

void pipeline_set_phase(pipeline_t *p, enum pipeline_phase from, enum pipeline_phase to)
{
    assert(p->phase == from);
    assert(phase_legal(from, to));
    (void)from, (void)phase_legal; /* NDEBUG */
    p->phase = to;
}

static void on_start_timer(uv_timer_t *t);

/* Gives up before running: everything closes, the loop runs dry. */
static void start_end(pipeline_t *p, enum pipeline_phase from, int code)
{
    pipeline_set_phase(p, from, PL_ENDED);
    if (code > p->exit_code)
        p->exit_code = code;
    p->stopping = p->stopped = 1;
    pipeline_close(p);
}

/* A transient failure: WAITING, the next attempt after the backoff. */
static void start_wait(pipeline_t *p, enum pipeline_phase from, const char *why)
{
    char q[600];
    pipeline_set_phase(p, from, PL_WAITING);
    p->start_attempts++;
    if (!p->start_since_ms)
        p->start_since_ms = uv_now(p->loop);
    p->start_backoff_ms = pg_conn_backoff_next(p->start_backoff_ms, p->cfg->pg_retry_max_ms);
    snprintf(p->wait_reason, sizeof p->wait_reason, "waiting for PostgreSQL: %s", why);
    /* a warn line with the same msg is written at most every 10 s (log.h) */
    log_warn("waiting for PostgreSQL", "error=%s attempts=%llu retry_ms=%lld",
             log_quote(q, sizeof q, why), (unsigned long long)p->start_attempts,
             (long long)p->start_backoff_ms);
    notify_extend_timeout(((uint64_t)p->start_backoff_ms + START_EXTEND_MS) * 1000);
    notify_status("%s", p->wait_reason);
    uv_timer_start(&p->start_timer, on_start_timer, (uint64_t)p->start_backoff_ms, 0);
}

static void start_work(uv_work_t *w)
{
    pipeline_t *p = w->data; /* only the start_* results are touched here */
    p->start_rc = (int)sink_pg_connect(p->cfg, &p->start_conn, p->start_err,
                                       sizeof p->start_err);
}

/* Connected: the sink takes the connection and the pipeline runs. 0:
 * RUNNING. 1: the sink could not take it (err set, the phase still `from`:
 * wait and try again). -1: RUNNING, but the rest of the startup failed (err
 * set). */
static int start_connected(pipeline_t *p, enum pipeline_phase from, sink_pg_conn_t *c,
                           char *err, size_t errlen)
{
    if (sink_pg_attach(p->sink, c, err, errlen) != 0)
        return 1; /* try again */
    pipeline_set_phase(p, from, PL_RUNNING);
    return pipeline_run(p, err, errlen);
}

static void start_after(uv_work_t *w, int status)
{
    pipeline_t *p = w->data;
    char err[600], q[700];
    sink_pg_conn_t *c = p->start_conn;
    p->start_conn = NULL;
    if (p->start_abandon || status != 0) { /* a stop signal came meanwhile */
        sink_pg_conn_free(c);
        start_end(p, PL_TRYING, 0);
        return;
    }
    snprintf(err, sizeof err, "%s", p->start_err);
    if (p->start_rc == SINK_OPEN_RETRY) {
        start_wait(p, PL_TRYING, err);
        return;
    }
    if (p->start_rc == SINK_OPEN_FATAL) {
        log_error("startup failed, not retried", "error=%s", log_quote(q, sizeof q, err));
        start_end(p, PL_TRYING, 1);
        return;
    }
    log_info("postgres reached after waiting", "attempts=%llu waited_ms=%llu",
             (unsigned long long)p->start_attempts,
             (unsigned long long)(uv_now(p->loop) - p->start_since_ms));
    int rc = start_connected(p, PL_TRYING, c, err, sizeof err);
    if (rc > 0) {
        start_wait(p, PL_TRYING, err);
    } else if (rc < 0) { /* RUNNING already: Kafka could not start */
        log_error("startup failed", "error=%s", log_quote(q, sizeof q, err));
        start_end(p, PL_RUNNING, 1);
    }
}

static void on_start_timer(uv_timer_t *t)
{
    pipeline_t *p = t->data;
    pipeline_set_phase(p, PL_WAITING, PL_TRYING);
    p->start_work.data = p;
    if (uv_queue_work(p->loop, &p->start_work, start_work, start_after) != 0)
        start_wait(p, PL_TRYING, "cannot queue the connection attempt");
}

void pipeline_start_abandon(pipeline_t *p, int signum)
{
    log_info("signal received while waiting for PostgreSQL, exiting", "signal=%d", signum);
    if (p->phase == PL_WAITING)
        start_end(p, PL_WAITING, 0);
    else if (p->phase == PL_TRYING)
        p->start_abandon = 1; /* start_after ends it */
}

int pipeline_start(pipeline_t *p, char *err, size_t errlen)
{
    sink_pg_conn_t *c = NULL;
    assert(p->phase == PL_NEW);
    pipeline_init_handles(p);
    pipeline_watchdog_start(p);
    if (p->cfg->http_listen[0] &&
        !(p->http = http_new(p->loop, p->cfg->http_listen, metrics_handle, p, err, errlen)))
        goto fail;
    switch (sink_pg_connect(p->cfg, &c, err, errlen)) {
    case SINK_OPEN_FATAL:
        goto fail;
    case SINK_OPEN_RETRY:
        start_wait(p, PL_NEW, err);
        return 0;
    case SINK_OPEN_OK:
        break;
    }
    int rc = start_connected(p, PL_NEW, c, err, errlen);
    if (rc > 0) {
        start_wait(p, PL_NEW, err);
        return 0;
    }
    if (rc == 0)
        return 0;
    start_end(p, PL_RUNNING, 1); /* Kafka could not start; the caller reports it */
    return -1;
fail:
    start_end(p, PL_NEW, 1);
    return -1;
}
