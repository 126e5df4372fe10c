/* upkeep — see include/camjoin/upkeep.h.
 *
 * Two parts: the run (worker thread, blocking libpq) and the loop side
 * (timer, thread-pool job, stats). This file holds the loop side and
 * steps (a) and (b) of a run, the partitions. Below it: the run's frame
 * (its connection, session and lock, its SQL helpers) in upkeep_run.c;
 * step (c), retention and its archive, in upkeep_retention.c; names,
 * manifest text and durable files in upkeep_archive.c. Calls go down only
 * (upkeep_int.h).
 *
 * Why the run keeps one blocking connection of its own rather than the
 * sink's: its statements wait on table locks for up to lock_timeout and
 * stream whole partitions, which must never hold up a batch. */
#include "camjoin/upkeep.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "camjoin/base.h"
#include "camjoin/calendar.h"
#include "camjoin/strbuf.h"
#include "upkeep_int.h"

/* ---- the loop side's state -------------------------------------------- */

enum mode { RUN_PREPARE, RUN_FULL };

struct upkeep {
    uv_loop_t *loop;
    const camjoin_config *cfg;
    upkeep_done_fn done;
    void *ud;
    uv_timer_t timer;
    uv_work_t work;
    upkeep_report_t job;  /* written by the worker, read in after_work */
    atomic_int cancel;    /* set by upkeep_close(), read by the worker */
    int running;          /* a job is queued or on the pool */
    int closing, timer_open;
    upkeep_stats_t st;
};

/* ---- a run (worker thread, or the caller's for prepare) --------------- */

static void free_parts(struct run *x)
{
    for (size_t i = 0; i < x->nparts; i++)
        free(x->parts[i].qname);
    free(x->parts);
    free(x->def);
    x->parts = NULL;
    x->def = NULL;
    x->nparts = 0;
}

/* Lists T's partitions through camjoin_partitions(T), keeping the default
 * one and the daily ones: those whose bounds are exactly one UTC day. They
 * are matched to the catalog by their bounds, not by name, so a name's
 * spelling (quoted, qualified) does not matter. */
static int list_parts(struct run *x)
{
    free_parts(x);
    strbuf_addf(&x->sql,
        "WITH cat AS (SELECT c.oid::regclass::text AS qname,"
        " pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass)"
        " SELECT p.day, p.is_default, cat.qname FROM camjoin_partitions(%s::regclass) p"
        " JOIN cat ON CASE WHEN p.is_default THEN cat.bound = 'DEFAULT'"
        " ELSE cat.bound = format('FOR VALUES FROM (%%L) TO (%%L)',"
        " p.day::timestamp AT TIME ZONE 'UTC', (p.day + 1)::timestamp AT TIME ZONE 'UTC')"
        " END ORDER BY p.is_default DESC, p.day", x->tlit, x->tlit);
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, "listing partitions (camjoin_partitions)");
    if (!res)
        return -1;
    int n = PQntuples(res);
    x->parts = calloc(n ? (size_t)n : 1, sizeof *x->parts);
    if (!x->parts) {
        PQclear(res);
        upkeep_run_fail(x, "out of memory");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t day;
        if (strcmp(PQgetvalue(res, i, 1), "t") == 0) {
            if (!x->def && !(x->def = strdup(PQgetvalue(res, i, 2))))
                rc = -1;
        } else if (upkeep_parse_day(PQgetvalue(res, i, 0), &day) == 0) {
            struct daily *d = &x->parts[x->nparts];
            if (!(d->qname = strdup(PQgetvalue(res, i, 2)))) {
                rc = -1;
            } else {
                d->day = day;
                x->nparts++;
            }
        }
    }
    PQclear(res);
    if (rc != 0)
        upkeep_run_fail(x, "out of memory");
    return rc;
}

static int has_daily(const struct run *x, int64_t day)
{
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].day == day)
            return 1;
    return 0;
}

/* Runs the query in x->sql, which yields one count. */
static int count_of(struct run *x, const char *what, uint64_t *n)
{
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, what);
    if (!res)
        return -1;
    *n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* SELECT camjoin_ensure_partition(T, day), in a transaction that counts
 * T's partitions before and after it: the function also returns a
 * partition that existed (one whose range covers the day), so the
 * difference is what it made (no other camjoin interleaves: the upkeep
 * lock). When it made one, the rows the new partition holds before COMMIT
 * are the rows it moved out of the default partition: nobody else can
 * write to a table created in this transaction until it commits. */
static void ensure(struct run *x, int64_t day)
{
    char ds[16], next[16], what[96];
    uint64_t before, after, rows = 0;
    upkeep_format_day(ds, sizeof ds, day);
    upkeep_format_day(next, sizeof next, day + 1);
    snprintf(what, sizeof what, "making the partition of %s", ds);
    strbuf_addf(&x->sql, "BEGIN");
    if (upkeep_exec_ok(x, what) != 0)
        return;
    strbuf_addf(&x->sql, "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                x->tlit);
    if (count_of(x, what, &before) != 0)
        goto fail;
    strbuf_addf(&x->sql, "SELECT camjoin_ensure_partition(%s::regclass, '%s'::date)",
                x->tlit, ds);
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, what);
    PQclear(res);
    if (!res)
        goto fail;
    strbuf_addf(&x->sql, "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                x->tlit);
    if (count_of(x, what, &after) != 0)
        goto fail;
    if (after > before) {
        strbuf_addf(&x->sql, "SELECT count(*) FROM %s WHERE event_ts >= '%s 00:00:00+00'"
                    " AND event_ts < '%s 00:00:00+00'", x->tid, ds, next);
        if (count_of(x, what, &rows) != 0)
            goto fail;
    }
    strbuf_addf(&x->sql, "COMMIT");
    if (upkeep_exec_ok(x, what) == 0) {
        x->r->created += after > before ? after - before : 0;
        x->r->moved_rows += rows;
    }
    return;
fail:
    upkeep_rollback(x);
}

/* (a) Every UTC day with rows in the default partition gets its partition,
 * which takes them. */
static void move_default(struct run *x)
{
    if (!x->def)
        return;
    strbuf_addf(&x->sql, "SELECT DISTINCT (event_ts AT TIME ZONE 'UTC')::date::text"
                " FROM %s ORDER BY 1", x->def);
    PGresult *days = upkeep_exec(x, PGRES_TUPLES_OK, "reading the default partition's days");
    for (int i = 0; days && i < PQntuples(days) && !upkeep_stopped(x); i++) {
        const char *ds = PQgetvalue(days, i, 0);
        int64_t day;
        if (upkeep_parse_day(ds, &day) == 0)
            ensure(x, day);
        else
            upkeep_run_fail(x, "default partition holds rows of day %s, outside years 1-9999", ds);
    }
    PQclear(days);
}

/* (b) today .. today + partitions_ahead; days with a daily partition are
 * not asked about again. */
static void ensure_ahead(struct run *x)
{
    for (int64_t d = x->today; d <= x->today + x->cfg->partitions_ahead; d++) {
        if (upkeep_stopped(x))
            return;
        if (!has_daily(x, d))
            ensure(x, d);
    }
}

static void run(upkeep_t *u, enum mode mode, upkeep_report_t *r)
{
    double t0 = (double)clock_mono_us() / 1000;
    memset(r, 0, sizeof *r);
    struct run x = {.cancel = &u->cancel, .cfg = u->cfg, .r = r,
                    .today = calendar_day_of((int64_t)time(NULL))};
    if (upkeep_run_open(&x) && list_parts(&x) == 0) {
        if (mode == RUN_FULL)
            move_default(&x);
        /* the days just made are daily partitions now: list them again */
        if (!upkeep_stopped(&x) && (!r->created || list_parts(&x) == 0))
            ensure_ahead(&x);
        if (mode == RUN_FULL && u->cfg->retention_days > 0 && !upkeep_stopped(&x) &&
            list_parts(&x) == 0)
            upkeep_retention(&x);
    }
    free_parts(&x);
    free(x.tid);
    free(x.tlit);
    strbuf_free(&x.sql);
    PQfinish(x.c); /* releases the advisory lock */
    r->ms = (double)clock_mono_us() / 1000 - t0;
}

/* ---- the loop side ---------------------------------------------------- */

static void account(upkeep_t *u, const upkeep_report_t *r)
{
    if (r->busy) {
        u->st.skipped++;
        return;
    }
    u->st.runs++;
    u->st.created += r->created;
    u->st.moved_rows += r->moved_rows;
    u->st.dropped += r->dropped;
    u->st.archived_rows += r->archived_rows;
    if (r->failed)
        u->st.failures++;
    else
        u->st.last_success_ms = clock_wall_ms();
}

static void maybe_free(upkeep_t *u)
{
    if (u->closing && !u->running && !u->timer_open)
        free(u);
}

static void work_cb(uv_work_t *w)
{
    upkeep_t *u = w->data;
    run(u, RUN_FULL, &u->job);
}

static void after_work(uv_work_t *w, int status)
{
    upkeep_t *u = w->data;
    u->running = 0;
    if (u->closing) {
        maybe_free(u);
        return;
    }
    if (status != 0) /* cancelled before it started: only by upkeep_close() */
        return;
    account(u, &u->job);
    if (u->done)
        u->done(u->ud, &u->job);
}

static void on_timer(uv_timer_t *t)
{
    upkeep_t *u = t->data;
    if (u->running) {
        u->st.skipped++;
        return;
    }
    u->running = 1;
    if (uv_queue_work(u->loop, &u->work, work_cb, after_work) != 0)
        u->running = 0;
}

upkeep_t *upkeep_new(uv_loop_t *loop, const camjoin_config *cfg,
                     upkeep_done_fn done, void *ud)
{
    upkeep_t *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->loop = loop;
    u->cfg = cfg;
    u->done = done;
    u->ud = ud;
    atomic_init(&u->cancel, 0);
    uv_timer_init(loop, &u->timer);
    u->timer.data = u->work.data = u;
    u->timer_open = 1;
    return u;
}

int upkeep_prepare(upkeep_t *u, upkeep_report_t *r)
{
    run(u, RUN_PREPARE, r);
    account(u, r);
    return r->failed ? -1 : 0;
}

void upkeep_start(upkeep_t *u)
{
    uint64_t every = (uint64_t)u->cfg->retention_interval_ms;
    uv_timer_start(&u->timer, on_timer, 0, every);
}

void upkeep_stats(const upkeep_t *u, upkeep_stats_t *out)
{
    if (u)
        *out = u->st;
    else
        memset(out, 0, sizeof *out);
}

static void timer_closed(uv_handle_t *h)
{
    upkeep_t *u = h->data;
    u->timer_open = 0;
    maybe_free(u);
}

void upkeep_close(upkeep_t *u)
{
    if (!u || u->closing)
        return;
    u->closing = 1;
    atomic_store(&u->cancel, 1);
    if (u->running)
        uv_cancel((uv_req_t *)&u->work); /* only if not yet started; else it stops soon */
    uv_close((uv_handle_t *)&u->timer, timer_closed);
}
