/* pg_conn — see include/camjoin/pg_conn.h.
 *
 * The defaults are added as later keywords of PQconnectdbParams (which
 * win over what the expanded dbname says), so each is added only when the
 * user's conninfo does not set that key: the user's value always wins,
 * except application_name under PG_CONN_FORCE_APP (upkeep's connection is
 * told apart from the sink's in pg_stat_activity that way). */
#include "camjoin/pg_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/log.h"

void pg_conn_first_line(char *dst, size_t size, const char *msg)
{
    snprintf(dst, size, "%s", msg && *msg ? msg : "unknown error");
    dst[strcspn(dst, "\r\n")] = '\0';
}

static void log_notice(void *arg, const char *msg)
{
    (void)arg;
    char q[512];
    log_debug("postgres notice", "detail=%s", log_quote(q, sizeof q, msg));
}

static void drop_notice(void *arg, const char *msg) { (void)arg, (void)msg; }

static int conninfo_sets(const PQconninfoOption *given, const char *key)
{
    for (const PQconninfoOption *o = given; o && o->keyword; o++)
        if (o->val && strcmp(o->keyword, key) == 0)
            return 1;
    return 0;
}

PGconn *pg_conn_open(const char *conninfo, const char *app, unsigned flags)
{
    static const char *const defaults[][2] = {
        {"connect_timeout", "5"},   {"keepalives", "1"},
        {"keepalives_idle", "10"},  {"keepalives_interval", "3"},
        {"keepalives_count", "3"},  {"tcp_user_timeout", "10000"},
        {"application_name", NULL}, /* `app` */
    };
    enum { NDEF = ARRAY_LEN(defaults) };
    const char *keys[NDEF + 2], *vals[NDEF + 2];
    size_t n = 0;
    PQconninfoOption *given = NULL;
    if (conninfo && *conninfo) {
        keys[n] = "dbname";
        vals[n++] = conninfo;
        given = PQconninfoParse(conninfo, NULL);
    }
    for (size_t i = 0; i < NDEF; i++) {
        int is_app = !defaults[i][1];
        if ((is_app && (flags & PG_CONN_FORCE_APP)) ||
            !conninfo_sets(given, defaults[i][0])) {
            keys[n] = defaults[i][0]; /* later keywords win over the conninfo's */
            vals[n++] = is_app ? app : defaults[i][1];
        }
    }
    keys[n] = vals[n] = NULL;
    PQconninfoFree(given);
    PGconn *c = flags & PG_CONN_ASYNC ? PQconnectStartParams(keys, vals, 1)
                                      : PQconnectdbParams(keys, vals, 1);
    if (c)
        PQsetNoticeProcessor(c, flags & PG_CONN_QUIET ? drop_notice : log_notice, NULL);
    return c;
}

int pg_conn_check_conninfo(const char *conninfo, char *err, size_t errlen)
{
    char *msg = NULL;
    if (!conninfo || !*conninfo)
        return 0;
    PQconninfoOption *o = PQconninfoParse(conninfo, &msg);
    if (o) {
        PQconninfoFree(o);
        return 0;
    }
    /* libpq quotes the whole string, password included: keep its reason only */
    char why[256];
    pg_conn_first_line(why, sizeof why, msg ? msg : "out of memory");
    char *cut = strstr(why, " in URI");
    if (!cut)
        cut = strstr(why, ": \"");
    if (cut)
        *cut = '\0';
    size_t n = strlen(why);
    while (n && (why[n - 1] == ' ' || why[n - 1] == ':'))
        why[--n] = '\0';
    snprintf(err, errlen, "postgres.conninfo: not a valid connection string or "
             "URI (%s)", why);
    PQfreemem(msg);
    return -1;
}

char *pg_conn_escape(PGconn *c, const char *v, int ident)
{
    char *e = ident ? PQescapeIdentifier(c, v, strlen(v))
                    : PQescapeLiteral(c, v, strlen(v));
    char *copy = e ? strdup(e) : NULL; /* libpq memory -> ours */
    PQfreemem(e);
    return copy;
}

int pg_conn_statement_pool(const PGconn *c, const PGresult *r)
{
    static const char words[] = "statement pooling mode";
    return (r && strstr(PQresultErrorMessage(r), words)) ||
           (c && strstr(PQerrorMessage(c), words));
}

int pg_conn_retryable(const PGconn *c, const PGresult *r)
{
    static const char *const transient[] = {
        "Connection refused", "timeout expired", "Connection timed out",
        "could not translate host name", "Is the server running", /* refused, socket */
        "Network is unreachable", "No route to host", "Connection reset by peer",
        "server closed the connection unexpectedly", "could not receive data from server",
        "the database system is starting up", "the database system is shutting down",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
        "the database system is in recovery mode", "sorry, too many clients already",
        "remaining connection slots are reserved",
        /* PgBouncer's words for a PostgreSQL it cannot reach (yet) */
        "pgbouncer cannot connect to server", "server login has been failing",
        "query_wait_timeout",
    };
    if (pg_conn_statement_pool(c, r))
        return 0; /* no transaction block will ever run there */
    if (r) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!st || !c || PQstatus(c) == CONNECTION_BAD)
            return 1; /* no server answer: the connection went away */
        return strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 ||
               strncmp(st, "57P", 3) == 0 || strcmp(st, "40001") == 0 ||
               strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0;
    }
    const char *msg = c ? PQerrorMessage(c) : "";
    for (size_t i = 0; i < ARRAY_LEN(transient); i++)
        if (strstr(msg, transient[i]))
            return 1;
    return 0;
}

int64_t pg_conn_backoff_next(int64_t prev_ms, int64_t max_ms)
{
    int64_t ms = prev_ms ? prev_ms * 2 : PG_CONN_BACKOFF_MIN_MS;
    if (ms > max_ms)
        ms = max_ms;
    return ms < PG_CONN_BACKOFF_MIN_MS ? PG_CONN_BACKOFF_MIN_MS : ms;
}
