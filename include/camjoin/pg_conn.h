/*
 * pg_conn — what every camjoin connection to PostgreSQL shares: the
 * connection defaults, notice handling, escaping, and the check of a
 * conninfo string. Used by sink_pg (the loop's nonblocking connection, and
 * its blocking startup) and by upkeep (a blocking connection on the thread
 * pool).
 *
 * Defaults: for every key the conninfo leaves out, connect_timeout=5, TCP
 * keepalives (idle 10 s, interval 3 s, count 3) and tcp_user_timeout=10000,
 * so that a dead server is noticed in seconds, not minutes. The conninfo is
 * passed as dbname, so a URI or a key=value string both work.
 *
 * Errors: libpq's messages never leave this module or its callers raw: use
 * pg_conn_first_line() on PQerrorMessage/PQresultErrorMessage (one line, no
 * trailing newline, "unknown error" for an empty one).
 *
 * Threads: every function may run on any thread; a connection opened with
 * PG_CONN_QUIET never logs (the thread pool, where nothing may log).
 */
#ifndef CAMJOIN_PG_CONN_H
#define CAMJOIN_PG_CONN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"

#define PG_CONN_ASYNC     1u /* PQconnectStartParams: the caller drives PQconnectPoll */
#define PG_CONN_FORCE_APP 2u /* application_name is `app` whatever the conninfo says */
#define PG_CONN_QUIET     4u /* discard server notices (else: logged at debug) */

/* Connects (blocking, or only starts with PG_CONN_ASYNC) with the defaults
 * above; `app` is the application_name, a default unless PG_CONN_FORCE_APP.
 * Returns what libpq returns: NULL when out of memory, else check PQstatus.
 * The caller owns the connection (PQfinish). */
PGconn *pg_conn_open(const char *conninfo, const char *app, unsigned flags);

/* Checks that conninfo parses: 0, or -1 with a configuration error in err.
 * The message never repeats the string, which may hold a password. An empty
 * or NULL conninfo is fine (libpq's environment and defaults). */
CJ_MUSTCHECK int pg_conn_check_conninfo(const char *conninfo, char *err, size_t errlen);

/* v escaped as an identifier (ident 1) or a literal (0), in malloc'd memory
 * (not libpq's); NULL when out of memory or v is not valid in the
 * connection's encoding. */
char *pg_conn_escape(PGconn *c, const char *v, int ident);

/* Whether a failure is worth retrying. r NULL: the connection attempt c
 * failed (PQstatus CONNECTION_BAD), and libpq gives no SQLSTATE for that, so
 * the message is matched (libpq's and the server's English texts; camjoin
 * never sets a locale): the server unreachable (refused, timed out, no route,
 * the socket file missing, the host name not resolved), starting up, shutting
 * down, in recovery, or out of connection slots. Anything else, such as
 * authentication, TLS verification, a database or role that does not exist,
 * or pg_hba.conf, is permanent: 0. r set: a statement failed; retryable when
 * the connection is gone, or its SQLSTATE is of class 08 (connection), 53
 * (resources), 57P (shutdown, cannot connect now), 40001/40P01 or 55P03.
 * Behind PgBouncer, "cannot connect to server" and "server login has been
 * failing" are transient, and statement pooling (it refuses transaction
 * blocks) is permanent. */
int pg_conn_retryable(const PGconn *c, const PGresult *r);

/* 1 when the failure is PgBouncer's statement pooling refusing a
 * transaction block (its words may be on the result or the connection). */
int pg_conn_statement_pool(const PGconn *c, const PGresult *r);

/* The reconnect backoff every PostgreSQL wait uses: 100 ms after 0, then
 * doubling, capped at max_ms (postgres.retry_max), never below 100 ms. */
#define PG_CONN_BACKOFF_MIN_MS 100
int64_t pg_conn_backoff_next(int64_t prev_ms, int64_t max_ms);

/* The first line of a libpq message into dst ("unknown error" if empty). */
void pg_conn_first_line(char *dst, size_t size, const char *msg);

#endif
