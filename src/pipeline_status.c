/*
 * pipeline_status — what the pipeline tells its operators, besides logs:
 * invalid messages counted by reason, consumer lag per partition, and the
 * systemd conversation (READY, STATUS, WATCHDOG, RELOADING, STOPPING).
 * Private to the pipeline module; /metrics reads the results through
 * pipeline.h.
 *
 * The watchdog is pinged from a loop timer at half of WatchdogSec: if the
 * loop stops turning (a callback that never returns), the pings stop and
 * systemd restarts the service. Nothing here blocks or allocates per event.
 */
#include <stdio.h>
#include <string.h>

#include "camjoin/notify.h"
#include "camjoin/source_kafka.h"
#include "pipeline_int.h"

/* ---- invalid messages by reason ---- */

void pipeline_count_invalid(pipeline_t *p, const char *reason)
{
    size_t i;
    for (i = 0; i < p->ninvalid; i++)
        if (strcmp(p->invalid[i].reason, reason) == 0)
            break;
    if (i == p->ninvalid) {
        if (p->ninvalid == PIPELINE_MAX_REASONS) /* never with today's codes */
            reason = "other", i = PIPELINE_MAX_REASONS - 1;
        else
            p->ninvalid++;
        snprintf(p->invalid[i].reason, sizeof p->invalid[i].reason, "%s", reason);
    }
    p->invalid[i].count++;
}

const pipeline_reason_t *pipeline_get_invalid(const pipeline_t *p, size_t *n)
{
    *n = p->ninvalid;
    return p->invalid;
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

void pipeline_notify_start(pipeline_t *p)
{
    char s[256];
    uint64_t usec = notify_watchdog_usec();
    uv_timer_init(p->loop, &p->watchdog);
    p->watchdog.data = p;
    if (usec) {
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_start(&p->watchdog, on_watchdog, ms, ms);
        notify_watchdog();
    }
    p->status_ms = uv_now(p->loop);
    if (notify_enabled()) {
        status_text(p, s, sizeof s);
        notify_ready(s);
    }
}
