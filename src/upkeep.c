/* upkeep — see include/camjoin/upkeep.h.
 *
 * Two parts: the run (worker thread, blocking libpq: partitions, the
 * archive's COPY and transaction) and the loop side (timer, thread-pool
 * job, stats). Names, manifest text and durable files: upkeep_archive.c. */
#include "camjoin/upkeep.h"
#include "camjoin/sink_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "camjoin/strbuf.h"
#include "upkeep_int.h"

/* pg_try_advisory_lock(UPKEEP_LOCK, hashtext(T)): one upkeep per table at a
 * time, across processes (the schema lock in sink_pg is 7262330617). */
#define UPKEEP_LOCK 7262331
#define CANCEL_EVERY 1024 /* COPY rows between looks at upkeep_close() */
#define MAX_COPIES 10000  /* archive copies of one day: .1 ... */

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

struct daily {
    int64_t day;
    char *qname; /* the partition as regclass prints it: quoted, safe in SQL */
};

struct run {
    upkeep_t *u;
    const camjoin_config *cfg;
    upkeep_report_t *r;
    PGconn *c;
    char *tid, *tlit;     /* T as an identifier; that as a literal (for ::regclass) */
    char *def;            /* the default partition's qname, or NULL */
    struct daily *parts;  /* daily partitions, by day */
    size_t nparts;
    int64_t today;
    int dead;             /* connection lost, or upkeep_close(): stop */
    strbuf_t sql;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static void run_fail(struct run *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void run_fail(struct run *x, const char *fmt, ...)
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

static int stopped(struct run *x)
{
    if (atomic_load(&x->u->cancel)) {
        run_fail(x, "stopped: camjoin is shutting down");
        x->dead = 1;
    }
    return x->dead || x->r->unpartitioned;
}

/* Runs the statement in x->sql. Returns the result when its status is
 * `want`; otherwise records the error (prefixed by `what`), clears the
 * result and returns NULL. SQLSTATE CJ001 (camjoin_ensure_partition on a
 * plain table) marks the run unpartitioned instead of failed. */
static PGresult *exec(struct run *x, ExecStatusType want, const char *what)
{
    if (x->sql.oom) {
        run_fail(x, "%s: out of memory", what);
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
        run_fail(x, "%s: %s", what,
                 res ? PQresultErrorMessage(res) : PQerrorMessage(x->c));
    PQclear(res);
    if (PQstatus(x->c) != CONNECTION_OK)
        x->dead = 1;
    return NULL;
}

static int exec_ok(struct run *x, const char *what)
{
    PGresult *res = exec(x, PGRES_COMMAND_OK, what);
    PQclear(res);
    return res ? 0 : -1;
}

static void rollback(struct run *x)
{
    if (x->dead)
        return;
    PQclear(PQexec(x->c, "ROLLBACK"));
}

/* The sink's conninfo and connection defaults (sink_pg.c: fail fast on a
 * dead server), and application_name=camjoin-upkeep whatever it says. */

static char *escape(PGconn *c, const char *v, int ident)
{
    char *e = ident ? PQescapeIdentifier(c, v, strlen(v))
                    : PQescapeLiteral(c, v, strlen(v));
    char *copy = e ? strdup(e) : NULL; /* libpq memory -> ours */
    PQfreemem(e);
    return copy;
}

/* Connects, sets the session up, takes the upkeep lock and looks at T.
 * Returns 1 when partition work may go on. */
static int run_open(struct run *x)
{
    x->c = sink_pg_connect(x->cfg->pg_conninfo, "camjoin-upkeep");
    if (!x->c || PQstatus(x->c) != CONNECTION_OK) {
        run_fail(x, "connect: %s", x->c ? PQerrorMessage(x->c) : "out of memory");
        x->dead = 1;
        return 0;
    }
    x->tid = escape(x->c, x->cfg->table, 1);
    x->tlit = x->tid ? escape(x->c, x->tid, 0) : NULL;
    if (!x->tid || !x->tlit) {
        run_fail(x, "out of memory");
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
    if (exec_ok(x, "session setup") != 0)
        return 0;
    strbuf_addf(&x->sql, "SELECT pg_try_advisory_lock(%d, hashtext(%s))", UPKEEP_LOCK,
                x->tlit);
    PGresult *res = exec(x, PGRES_TUPLES_OK, "upkeep lock");
    if (!res)
        return 0;
    x->r->busy = strcmp(PQgetvalue(res, 0, 0), "t") != 0;
    PQclear(res);
    if (x->r->busy)
        return 0;
    strbuf_addf(&x->sql, "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
                x->tlit);
    if (!(res = exec(x, PGRES_TUPLES_OK, "looking up the table")))
        return 0;
    char kind = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)[0] : '\0';
    PQclear(res);
    if (kind == 'r')
        x->r->unpartitioned = 1;
    else if (kind != 'p')
        run_fail(x, "table %s %s", x->tid, kind ? "is not a table" : "does not exist");
    return kind == 'p';
}

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
    PGresult *res = exec(x, PGRES_TUPLES_OK, "listing partitions (camjoin_partitions)");
    if (!res)
        return -1;
    int n = PQntuples(res);
    x->parts = calloc(n ? (size_t)n : 1, sizeof *x->parts);
    if (!x->parts) {
        PQclear(res);
        run_fail(x, "out of memory");
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
        run_fail(x, "out of memory");
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
    PGresult *res = exec(x, PGRES_TUPLES_OK, what);
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
    if (exec_ok(x, what) != 0)
        return;
    strbuf_addf(&x->sql, "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                x->tlit);
    if (count_of(x, what, &before) != 0)
        goto fail;
    strbuf_addf(&x->sql, "SELECT camjoin_ensure_partition(%s::regclass, '%s'::date)",
                x->tlit, ds);
    PGresult *res = exec(x, PGRES_TUPLES_OK, what);
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
    if (exec_ok(x, what) == 0) {
        x->r->created += after > before ? after - before : 0;
        x->r->moved_rows += rows;
    }
    return;
fail:
    rollback(x);
}

/* (a) Every UTC day with rows in the default partition gets its partition,
 * which takes them. */
static void move_default(struct run *x)
{
    if (!x->def)
        return;
    strbuf_addf(&x->sql, "SELECT DISTINCT (event_ts AT TIME ZONE 'UTC')::date::text"
                " FROM %s ORDER BY 1", x->def);
    PGresult *days = exec(x, PGRES_TUPLES_OK, "reading the default partition's days");
    for (int i = 0; days && i < PQntuples(days) && !stopped(x); i++) {
        const char *ds = PQgetvalue(days, i, 0);
        int64_t day;
        if (upkeep_parse_day(ds, &day) == 0)
            ensure(x, day);
        else
            run_fail(x, "default partition holds rows of day %s, outside years 1-9999", ds);
    }
    PQclear(days);
}

/* (b) today .. today + partitions_ahead; days with a daily partition are
 * not asked about again. */
static void ensure_ahead(struct run *x)
{
    for (int64_t d = x->today; d <= x->today + x->cfg->partitions_ahead; d++) {
        if (stopped(x))
            return;
        if (!has_daily(x, d))
            ensure(x, d);
    }
}

/* ---- archive (the run's part; files: upkeep_archive.c) ---- */

/* One partition's archive under way. */
struct archive {
    char dir[4096], data[4096], manifest[4096], data_tmp[4200], man_tmp[4200];
    int fd;            /* the data file, -1 once closed */
    gzFile gz;         /* on a dup of fd */
    int published;     /* data (1) and manifest (2) renamed into place */
    uint64_t rows, count, bytes, xxh64;
    char *min_ts, *max_ts, *part_lit;
    PGresult *cols;
};

static void archive_discard(struct archive *a, int keep_published)
{
    if (a->gz)
        gzclose(a->gz);
    if (a->fd >= 0)
        close(a->fd);
    a->gz = NULL;
    a->fd = -1;
    unlink(a->data_tmp);
    unlink(a->man_tmp);
    if (!keep_published && a->published >= 1)
        unlink(a->data);
    if (!keep_published && a->published >= 2)
        unlink(a->manifest);
    free(a->min_ts);
    free(a->max_ts);
    free(a->part_lit);
    PQclear(a->cols);
}

/* Streams the partition (locked by the caller) into a->gz: COPY ... TO
 * STDOUT (FORMAT csv, HEADER), one CopyData message a row after the header.
 * Returns 0 or -1. */
static int archive_copy(struct run *x, struct archive *a, const char *qname)
{
    strbuf_addf(&x->sql, "COPY (SELECT * FROM %s ORDER BY event_ts, event_id)"
                " TO STDOUT (FORMAT csv, HEADER)", qname);
    PGresult *res = exec(x, PGRES_COPY_OUT, "archive COPY");
    if (!res)
        return -1;
    PQclear(res);
    uint64_t msgs = 0;
    int n, werr = 0;
    char *buf;
    while ((n = PQgetCopyData(x->c, &buf, 0)) > 0) {
        if (!werr && gzwrite(a->gz, buf, (unsigned)n) != n)
            werr = 1;
        PQfreemem(buf);
        if (++msgs % CANCEL_EVERY == 0 && atomic_load(&x->u->cancel)) {
            stopped(x); /* the connection is closed mid-COPY: the server rolls back */
            return -1;
        }
    }
    if (n == -2) {
        run_fail(x, "archive COPY: %s", PQerrorMessage(x->c));
        x->dead = 1;
        return -1;
    }
    while ((res = PQgetResult(x->c))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            run_fail(x, "archive COPY: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    if (x->r->failed)
        return -1;
    if (werr) {
        int zerr;
        const char *m = gzerror(a->gz, &zerr);
        run_fail(x, "archive: writing %s: %s", a->data_tmp,
                 zerr == Z_ERRNO ? strerror(errno) : m);
        return -1;
    }
    a->rows = msgs ? msgs - 1 : 0;
    if (msgs == 0 || a->rows != a->count) {
        run_fail(x, "archive of %s: streamed %llu rows, count(*) says %llu", qname,
                 (unsigned long long)a->rows, (unsigned long long)a->count);
        return -1;
    }
    return 0;
}

/* gzip trailer, fsync, size, hash, rename into place. */
static int archive_finish_data(struct run *x, struct archive *a)
{
    int zrc = gzclose(a->gz);
    a->gz = NULL;
    struct stat sb;
    if (zrc != Z_OK || fsync(a->fd) != 0 || fstat(a->fd, &sb) != 0) {
        run_fail(x, "archive: writing %s: %s", a->data_tmp,
                 zrc != Z_OK ? "gzip close failed" : strerror(errno));
        return -1;
    }
    close(a->fd);
    a->fd = -1;
    a->bytes = (uint64_t)sb.st_size;
    if (upkeep_hash_file(a->data_tmp, &a->xxh64) != 0 ||
        upkeep_publish(a->data_tmp, a->data, a->dir) != 0) {
        run_fail(x, "archive: %s: %s", a->data, strerror(errno));
        return -1;
    }
    a->published = 1;
    return 0;
}

static int archive_manifest(struct run *x, struct archive *a, const struct daily *p)
{
    const char *cols[256];
    size_t ncols = 0;
    for (int i = 0; i < PQntuples(a->cols) && ncols < 256; i++)
        cols[ncols++] = PQgetvalue(a->cols, i, 0);
    const char *base = strrchr(a->data, '/');
    char part[256];
    snprintf(part, sizeof part, "%s", p->qname);
    upkeep_manifest_t m = {
        .table = x->cfg->table, .partition = part, .file = base ? base + 1 : a->data,
        .day = p->day, .rows = a->rows, .bytes = a->bytes, .xxh64 = a->xxh64,
        .columns = cols, .ncolumns = ncols, .min_event_ts = a->min_ts,
        .max_event_ts = a->max_ts, .created_ms = wall_ms(), .version = CAMJOIN_VERSION,
    };
    char *text = upkeep_manifest_json(&m);
    if (!text) {
        run_fail(x, "archive: out of memory");
        return -1;
    }
    int rc = upkeep_write_durable(a->man_tmp, text);
    free(text);
    if (rc != 0 || upkeep_publish(a->man_tmp, a->manifest, a->dir) != 0) {
        run_fail(x, "archive: %s: %s", a->manifest, strerror(errno));
        return -1;
    }
    a->published = 2;
    return 0;
}

/* Picks the first free name of the day and opens its temporary data file. */
static int archive_open(struct run *x, struct archive *a, int64_t day)
{
    unsigned n;
    for (n = 0; n < MAX_COPIES; n++) {
        if (upkeep_archive_paths(x->cfg->archive_dir, x->cfg->table, day, n, a->dir,
                                 a->data, a->manifest, sizeof a->dir) != 0) {
            run_fail(x, "archive: path too long under %s", x->cfg->archive_dir);
            return -1;
        }
        int d = upkeep_file_state(a->data), m = d < 0 ? d : upkeep_file_state(a->manifest);
        if (d < 0 || m < 0) {
            run_fail(x, "archive: cannot use %s: %s", a->dir, strerror(errno));
            return -1;
        }
        if (!d && !m)
            break;
    }
    if (n == MAX_COPIES) {
        run_fail(x, "archive: %s has %d copies already", a->data, MAX_COPIES);
        return -1;
    }
    snprintf(a->data_tmp, sizeof a->data_tmp, "%s.tmp", a->data);
    snprintf(a->man_tmp, sizeof a->man_tmp, "%s.tmp", a->manifest);
    if (upkeep_make_dirs(a->dir) != 0) {
        run_fail(x, "archive: cannot create %s: %s", a->dir, strerror(errno));
        return -1;
    }
    int dfd = -1;
    a->fd = open(a->data_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (a->fd < 0 || (dfd = dup(a->fd)) < 0 || !(a->gz = gzdopen(dfd, "wb6"))) {
        run_fail(x, "archive: cannot create %s: %s", a->data_tmp, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    gzbuffer(a->gz, 1 << 17);
    return 0;
}

/* The partition's count, event_ts range (RFC 3339 UTC) and column names. */
static int archive_describe(struct run *x, struct archive *a, const char *qname)
{
    strbuf_addf(&x->sql, "SELECT count(*),"
                " to_char(min(event_ts), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
                " to_char(max(event_ts), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM %s", qname);
    PGresult *res = exec(x, PGRES_TUPLES_OK, "archive: counting the partition");
    if (!res)
        return -1;
    a->count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    if (!PQgetisnull(res, 0, 1)) {
        a->min_ts = strdup(PQgetvalue(res, 0, 1));
        a->max_ts = strdup(PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    if (!(a->part_lit = escape(x->c, qname, 0))) {
        run_fail(x, "out of memory");
        return -1;
    }
    strbuf_addf(&x->sql, "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", a->part_lit);
    a->cols = exec(x, PGRES_TUPLES_OK, "archive: reading the columns");
    return a->cols ? 0 : -1;
}

/* LOCK the partition IN SHARE MODE: reads go on, writes wait, so count,
 * COPY and drop see the same rows. That needs UPDATE, DELETE or TRUNCATE
 * on it, which a least-privilege writer lacks: then the archive goes on
 * unlocked, and the checks (COPY's rows = count(*) = the rows
 * camjoin_drop_partition finds under its own exclusive lock, in READ
 * COMMITTED so it sees every committed row) refuse to drop a partition
 * that changed meanwhile. */
static int archive_lock(struct run *x, const char *qname)
{
    strbuf_addf(&x->sql, "SAVEPOINT archive_lock; LOCK TABLE %s IN SHARE MODE", qname);
    if (x->sql.oom) {
        run_fail(x, "archive: out of memory");
        return -1;
    }
    PGresult *res = PQexec(x->c, x->sql.data);
    strbuf_reset(&x->sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int denied = state && strcmp(state, "42501") == 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !denied)
        run_fail(x, "archive: locking %s: %s", qname,
                 res ? PQresultErrorMessage(res) : PQerrorMessage(x->c));
    PQclear(res);
    if (PQstatus(x->c) != CONNECTION_OK)
        x->dead = 1;
    if (x->r->failed)
        return -1;
    strbuf_addf(&x->sql, denied ? "ROLLBACK TO SAVEPOINT archive_lock"
                                : "RELEASE SAVEPOINT archive_lock");
    return exec_ok(x, "archive: locking the partition");
}

/* (c) with archive.dir: lock, count, COPY out, write and publish the files,
 * drop, commit, all in one transaction. The files are removed again when
 * the transaction surely did not commit; after a COMMIT with an unknown
 * outcome they stay (they may be the only copy). */
static int archive_and_drop(struct run *x, const struct daily *p)
{
    struct archive a = {.fd = -1};
    char ds[16], what[96];
    upkeep_format_day(ds, sizeof ds, p->day);
    snprintf(what, sizeof what, "dropping the partition of %s", ds);
    if (archive_open(x, &a, p->day) != 0)
        goto fail;
    strbuf_addf(&x->sql, "BEGIN");
    if (exec_ok(x, what) != 0 || archive_lock(x, p->qname) != 0)
        goto fail_txn;
    if (archive_describe(x, &a, p->qname) != 0 || archive_copy(x, &a, p->qname) != 0 ||
        archive_finish_data(x, &a) != 0 || archive_manifest(x, &a, p) != 0)
        goto fail_txn;
    if (stopped(x)) /* closed meanwhile: nobody would hear of the drop */
        goto fail_txn;
    strbuf_addf(&x->sql, "SELECT camjoin_drop_partition(%s::regclass, '%s'::date)",
                x->tlit, ds);
    PGresult *res = exec(x, PGRES_TUPLES_OK, what);
    if (!res)
        goto fail_txn;
    uint64_t held = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (held != a.rows) {
        run_fail(x, "%s: camjoin_drop_partition says %llu rows, %llu archived", what,
                 (unsigned long long)held, (unsigned long long)a.rows);
        goto fail_txn;
    }
    strbuf_addf(&x->sql, "COMMIT");
    if (exec_ok(x, what) != 0) {
        /* refused: rolled back; connection lost: the outcome is unknown, and
         * the files may be the only copy of the rows */
        archive_discard(&a, x->dead);
        return -1;
    }
    x->r->dropped++;
    x->r->archived_rows += a.rows;
    archive_discard(&a, 1);
    return 0;
fail_txn:
    rollback(x); /* COMMIT was never sent: nothing of this was kept */
fail:
    archive_discard(&a, 0);
    return -1;
}

static int drop_only(struct run *x, const struct daily *p)
{
    char ds[16], what[96];
    upkeep_format_day(ds, sizeof ds, p->day);
    snprintf(what, sizeof what, "dropping the partition of %s", ds);
    strbuf_addf(&x->sql, "SELECT camjoin_drop_partition(%s::regclass, '%s'::date)",
                x->tlit, ds);
    PGresult *res = exec(x, PGRES_TUPLES_OK, what);
    PQclear(res);
    if (!res)
        return -1;
    x->r->dropped++;
    return 0;
}

/* (c) oldest first; the first failure ends it (the next would likely fail
 * the same way: a full disk, a lock held). */
static void retention(struct run *x)
{
    int64_t cutoff = x->today - x->cfg->retention_days;
    for (size_t i = 0; i < x->nparts && x->parts[i].day < cutoff; i++) {
        if (stopped(x))
            return;
        int rc = x->cfg->archive_dir[0] ? archive_and_drop(x, &x->parts[i])
                                        : drop_only(x, &x->parts[i]);
        if (rc != 0)
            return;
    }
}

static void run(upkeep_t *u, enum mode mode, upkeep_report_t *r)
{
    double t0 = mono_ms();
    memset(r, 0, sizeof *r);
    struct run x = {.u = u, .cfg = u->cfg, .r = r,
                    .today = upkeep_day_of((int64_t)time(NULL))};
    if (run_open(&x) && list_parts(&x) == 0) {
        if (mode == RUN_FULL)
            move_default(&x);
        /* the days just made are daily partitions now: list them again */
        if (!stopped(&x) && (!r->created || list_parts(&x) == 0))
            ensure_ahead(&x);
        if (mode == RUN_FULL && u->cfg->retention_days > 0 && !stopped(&x) &&
            list_parts(&x) == 0)
            retention(&x);
    }
    free_parts(&x);
    free(x.tid);
    free(x.tlit);
    strbuf_free(&x.sql);
    PQfinish(x.c); /* releases the advisory lock */
    r->ms = mono_ms() - t0;
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
        u->st.last_success_ms = wall_ms();
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
