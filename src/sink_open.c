/* sink_open — the sink's startup connection: sink_pg_connect() and the
 * sink_pg_conn_t it returns (camjoin/sink_pg.h).
 *
 * Startup is split so that its blocking half can run on the thread pool
 * while the loop answers /healthz and signals. sink_pg_connect() connects,
 * escapes the names, creates whatever part of the schema is missing and
 * prepares the session; it touches nothing but the sink_pg_conn_t it
 * returns and the (read-only) config, so it may run on any thread.
 * sink_pg_attach() (sink_pg.c, loop thread) then hands the connection to the
 * sink's state machine.
 *
 * The DDL runs only when something is missing: a least-privilege role (no
 * CREATE on the schema) can run against a schema created by its owner. It
 * is one transaction, serialized across instances starting together by an
 * advisory lock.
 *
 * What is retried: pg_conn_retryable() decides, for the connection attempt
 * and for each statement. A server that is down, starting, shutting down or
 * full is worth waiting for; bad credentials, TLS verification, a database
 * that does not exist or a missing privilege are not, and say so.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/pg_conn.h"
#include "camjoin/sink_pg.h"
#include "camjoin/strbuf.h"
#include "sink_pg_int.h"
#include "sink_sql.h"

struct sink_pg_conn {
    PGconn *conn;
    char *group_lit, *topic_lit, *table_id, *index_id; /* escaped, malloc'd */
};

void sink_pg_conn_free(sink_pg_conn_t *c)
{
    if (!c)
        return;
    PQfinish(c->conn);
    free(c->group_lit);
    free(c->topic_lit);
    free(c->table_id);
    free(c->index_id);
    free(c);
}

PGconn *sink_pg_conn_pq(const sink_pg_conn_t *c) { return c->conn; }
const char *sink_pg_conn_topic_lit(const sink_pg_conn_t *c) { return c->topic_lit; }
const char *sink_pg_conn_table_id(const sink_pg_conn_t *c) { return c->table_id; }

PGconn *sink_pg_conn_take(sink_pg_conn_t *c, char **group_lit, char **topic_lit,
                          char **table_id, char **index_id)
{
    PGconn *conn = c->conn;
    *group_lit = c->group_lit; /* the caller's from here */
    *topic_lit = c->topic_lit;
    *table_id = c->table_id;
    *index_id = c->index_id;
    free(c);
    return conn;
}

/* 1 when every object of the schema exists already. */
static int schema_present(sink_pg_conn_t *c)
{
    strbuf_t sql = {0};
    sink_sql_schema_present(&sql, c->table_id, c->index_id);
    if (sql.oom) {
        strbuf_free(&sql);
        return 0;
    }
    PGresult *r = PQexec(c->conn, sql.data);
    int yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    strbuf_free(&sql);
    return yes;
}

enum sink_open_result sink_pg_connect(const camjoin_config *cfg, sink_pg_conn_t **out,
                                      char *err, size_t errlen)
{
    char m[512], index[512];
    enum sink_open_result rc = SINK_OPEN_FATAL;
    char *ddl = NULL;
    sink_pg_conn_t *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c || !(c->conn = pg_conn_open(cfg->pg_conninfo, "camjoin", 0))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        pg_conn_first_line(m, sizeof m, PQerrorMessage(c->conn));
        if (pg_conn_retryable(c->conn, NULL)) {
            rc = SINK_OPEN_RETRY;
            snprintf(err, errlen, "PostgreSQL unreachable: %s", m);
        } else {
            snprintf(err, errlen, "PostgreSQL refused the connection (not retried): %s", m);
        }
        goto fail;
    }
    snprintf(index, sizeof index, "%s_ingested_at_idx", cfg->table);
    c->group_lit = pg_conn_escape(c->conn, cfg->group, 0);
    c->topic_lit = pg_conn_escape(c->conn, cfg->topic, 0);
    c->table_id = pg_conn_escape(c->conn, cfg->table, 1);
    c->index_id = pg_conn_escape(c->conn, index, 1);
    ddl = c->table_id && c->index_id ? sink_pg_schema_sql(c->table_id, c->index_id) : NULL;
    if (!c->group_lit || !c->topic_lit || !ddl) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const char *steps[] = {"BEGIN", "SELECT pg_advisory_xact_lock(7262330617)",
                           ddl, "COMMIT",
                           cfg->pool_mode == POOL_TRANSACTION ? sink_sql_setup_txn_pool
                                                              : sink_sql_setup};
    enum { SESSION_STEP = 4 };
    size_t first = schema_present(c) ? SESSION_STEP : 0;
    /* PostgreSQL cuts names at 63 bytes: the derived ones must stay apart */
    if (first == 0 && strlen(cfg->table) > SINK_SQL_TABLE_MAX) {
        snprintf(err, errlen, "postgres.table: \"%.80s\" is longer than %d bytes "
                 "(camjoin names its rollup table and views after it, such as "
                 "<table>_join_misses_minute)", cfg->table, SINK_SQL_TABLE_MAX);
        goto fail;
    }
    for (size_t i = first; i < ARRAY_LEN(steps); i++) {
        PGresult *r = PQexec(c->conn, steps[i]);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            /* no result, or the connection gone (a pooler's timeout): retried */
            int gone = !r || PQstatus(c->conn) == CONNECTION_BAD;
            pg_conn_first_line(m, sizeof m, r && *PQresultErrorMessage(r)
                                                ? PQresultErrorMessage(r)
                                                : PQerrorMessage(c->conn));
            int stmt_pool = pg_conn_statement_pool(c->conn, r);
            if (stmt_pool)
                snprintf(m, sizeof m, "PgBouncer's statement pooling refuses transaction "
                         "blocks, and each batch is one: use session or transaction pooling "
                         "(postgres.pool_mode)");
            rc = !stmt_pool && (gone || pg_conn_retryable(c->conn, r)) ? SINK_OPEN_RETRY
                                                                       : SINK_OPEN_FATAL;
            snprintf(err, errlen, "PostgreSQL %s failed%s: %s",
                     i == SESSION_STEP ? "session setup (temporary staging tables)"
                                       : "schema setup",
                     rc == SINK_OPEN_FATAL ? " (not retried)" : "", m);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
    }
    free(ddl);
    *out = c; /* the caller's: sink_pg_attach() or sink_pg_conn_free() */
    return SINK_OPEN_OK;
fail:
    free(ddl);
    sink_pg_conn_free(c);
    return rc;
}
