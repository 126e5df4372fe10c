/* upkeep_run — the frame of one upkeep run: its connection, session and
 * lock, and the SQL helpers its steps share (see upkeep_int.h).
 *
 * A run is blocking libpq on one thread (the pool's, or the caller's for
 * upkeep_prepare()) and may not log: the loop thread alone does. So every
 * helper records the run's first error in its report (one line) and lets
 * the caller decide; the report travels back to the loop, which logs it.
 * A run stops at the first lost connection, at upkeep_close() (the one
 * field another thread writes, x->cancel), or when T turns out to be a
 * plain table; upkeep_stopped() is the one question the steps ask.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/pg_conn.h"
#include "camjoin/strbuf.h"
#include "upkeep_int.h"

/* pg_try_advisory_lock(UPKEEP_LOCK, hashtext(T)): one upkeep per table at a
 * time, across processes (the schema lock in sink_pg is 7262330617). */
#define UPKEEP_LOCK 7262331

void upkeep_run_fail(struct run *x, const char *fmt, ...)
{
    if (x->r->failed)
        return; /* the first error is the one reported */
    x->r->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->r->err, sizeof x->r->err, fmt, ap);
    va_end(ap);
    char *nl = strchr(x->r->err, '\n');
    if (nl)
        *nl = '\0';
}

int upkeep_stopped(struct run *x)
{
    if (atomic_load(x->cancel)) {
        upkeep_run_fail(x, "stopped: camjoin is shutting down");
        x->dead = 1;
    }
    return x->dead || x->r->unpartitioned;
}

PGresult *upkeep_exec(struct run *x, ExecStatusType want, const char *what)
{
    if (x->sql.oom) {
        upkeep_run_fail(x, "%s: out of memory", what);
        return NULL;
    }
    PGresult *res = PQexec(x->c, x->sql.data);
    strbuf_reset(&x->sql);
    if (PQresultStatus(res) == want)
        return res;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "CJ001") == 0)
        x->r->unpartitioned = 1;
    else
        upkeep_run_fail(x, "%s: %s", what,
                 res ? PQresultErrorMessage(res) : PQerrorMessage(x->c));
    PQclear(res);
    if (PQstatus(x->c) != CONNECTION_OK)
        x->dead = 1;
    return NULL;
}

int upkeep_exec_ok(struct run *x, const char *what)
{
    PGresult *res = upkeep_exec(x, PGRES_COMMAND_OK, what);
    PQclear(res);
    return res ? 0 : -1;
}

void upkeep_rollback(struct run *x)
{
    if (x->dead)
        return;
    PQclear(PQexec(x->c, "ROLLBACK"));
}

/* Connects (the sink's conninfo and connection defaults, and
 * application_name=camjoin-upkeep whatever it says; quiet: this thread may
 * not log), sets the session up, takes the upkeep lock and looks at T.
 * Returns 1 when partition work may go on. */
int upkeep_run_open(struct run *x)
{
    const char *conninfo = x->cfg->upkeep_conninfo[0] ? x->cfg->upkeep_conninfo
                                                      : x->cfg->pg_conninfo;
    x->c = pg_conn_open(conninfo, "camjoin-upkeep",
                        PG_CONN_FORCE_APP | PG_CONN_QUIET);
    if (!x->c || PQstatus(x->c) != CONNECTION_OK) {
        upkeep_run_fail(x, "connect: %s", x->c ? PQerrorMessage(x->c) : "out of memory");
        x->dead = 1;
        return 0;
    }
    x->tid = pg_conn_escape(x->c, x->cfg->table, 1);
    x->tlit = x->tid ? pg_conn_escape(x->c, x->tid, 0) : NULL;
    if (!x->tid || !x->tlit) {
        upkeep_run_fail(x, "out of memory");
        return 0;
    }
    /* UTC and ISO: partition bounds, day names and the archived CSV do not
     * depend on the role's settings; archives are UTF-8; reals round-trip.
     * Locks are waited for at most 10 s (ingestion queues behind a waiter),
     * and a frozen camjoin cannot hold them past 5 min. */
    strbuf_addf(&x->sql, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; "
                "SET client_encoding = 'UTF8'; SET extra_float_digits = 1; "
                "SET lock_timeout = '10s'; "
                "SET idle_in_transaction_session_timeout = '5min'");
    if (upkeep_exec_ok(x, "session setup") != 0)
        return 0;
    strbuf_addf(&x->sql, "SELECT pg_try_advisory_lock(%d, hashtext(%s))", UPKEEP_LOCK,
                x->tlit);
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, "upkeep lock");
    if (!res)
        return 0;
    x->r->busy = strcmp(PQgetvalue(res, 0, 0), "t") != 0;
    PQclear(res);
    if (x->r->busy)
        return 0;
    strbuf_addf(&x->sql, "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
                x->tlit);
    if (!(res = upkeep_exec(x, PGRES_TUPLES_OK, "looking up the table")))
        return 0;
    char kind = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)[0] : '\0';
    PQclear(res);
    if (kind == 'r')
        x->r->unpartitioned = 1;
    else if (kind != 'p')
        upkeep_run_fail(x, "table %s %s", x->tid, kind ? "is not a table" : "does not exist");
    return kind == 'p';
}
