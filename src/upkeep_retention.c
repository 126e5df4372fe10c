/* upkeep_retention — step (c) of an upkeep run: the daily partitions
 * older than retention.days, oldest first, archived (with archive.dir) and
 * dropped; see include/camjoin/upkeep.h for what the run promises and
 * upkeep_int.h for the run's helpers.
 *
 * How an archive stays exact: the partition is locked (SHARE) where the
 * role may, counted, streamed out with COPY into a gzip file that is
 * fsynced and renamed into place with its manifest, and only then dropped,
 * all in one transaction; the rows COPY streamed, count(*) and the rows
 * camjoin_drop_partition() finds must agree, or everything rolls back and
 * the files go. Why files stay after a COMMIT with an unknown outcome: the
 * drop may have committed, and then they are the only copy of the rows.
 * Runs on the thread pool: nothing here logs. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "camjoin/base.h"
#include "camjoin/pg_conn.h"
#include "camjoin/strbuf.h"
#include "camjoin/upkeep.h"
#include "upkeep_int.h"

#define CANCEL_EVERY 1024 /* COPY rows between looks at upkeep_close() */
#define MAX_COPIES 10000  /* archive copies of one day: .1 ... */
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
    PGresult *res = upkeep_exec(x, PGRES_COPY_OUT, "archive COPY");
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
        if (++msgs % CANCEL_EVERY == 0 && atomic_load(x->cancel)) {
            upkeep_stopped(x); /* the connection is closed mid-COPY: the server rolls back */
            return -1;
        }
    }
    if (n == -2) {
        upkeep_run_fail(x, "archive COPY: %s", PQerrorMessage(x->c));
        x->dead = 1;
        return -1;
    }
    while ((res = PQgetResult(x->c))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            upkeep_run_fail(x, "archive COPY: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    if (x->r->failed)
        return -1;
    if (werr) {
        int zerr;
        const char *m = gzerror(a->gz, &zerr);
        upkeep_run_fail(x, "archive: writing %s: %s", a->data_tmp,
                 zerr == Z_ERRNO ? strerror(errno) : m);
        return -1;
    }
    a->rows = msgs ? msgs - 1 : 0;
    if (msgs == 0 || a->rows != a->count) {
        upkeep_run_fail(x, "archive of %s: streamed %llu rows, count(*) says %llu", qname,
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
        upkeep_run_fail(x, "archive: writing %s: %s", a->data_tmp,
                 zrc != Z_OK ? "gzip close failed" : strerror(errno));
        return -1;
    }
    close(a->fd);
    a->fd = -1;
    a->bytes = (uint64_t)sb.st_size;
    if (upkeep_hash_file(a->data_tmp, &a->xxh64) != 0 ||
        upkeep_publish(a->data_tmp, a->data, a->dir) != 0) {
        upkeep_run_fail(x, "archive: %s: %s", a->data, strerror(errno));
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
        .max_event_ts = a->max_ts, .created_ms = clock_wall_ms(), .version = CAMJOIN_VERSION,
    };
    char *text = upkeep_manifest_json(&m);
    if (!text) {
        upkeep_run_fail(x, "archive: out of memory");
        return -1;
    }
    int rc = upkeep_write_durable(a->man_tmp, text);
    free(text);
    if (rc != 0 || upkeep_publish(a->man_tmp, a->manifest, a->dir) != 0) {
        upkeep_run_fail(x, "archive: %s: %s", a->manifest, strerror(errno));
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
            upkeep_run_fail(x, "archive: path too long under %s", x->cfg->archive_dir);
            return -1;
        }
        int d = upkeep_file_state(a->data), m = d < 0 ? d : upkeep_file_state(a->manifest);
        if (d < 0 || m < 0) {
            upkeep_run_fail(x, "archive: cannot use %s: %s", a->dir, strerror(errno));
            return -1;
        }
        if (!d && !m)
            break;
    }
    if (n == MAX_COPIES) {
        upkeep_run_fail(x, "archive: %s has %d copies already", a->data, MAX_COPIES);
        return -1;
    }
    snprintf(a->data_tmp, sizeof a->data_tmp, "%s.tmp", a->data);
    snprintf(a->man_tmp, sizeof a->man_tmp, "%s.tmp", a->manifest);
    if (upkeep_make_dirs(a->dir) != 0) {
        upkeep_run_fail(x, "archive: cannot create %s: %s", a->dir, strerror(errno));
        return -1;
    }
    int dfd = -1;
    a->fd = open(a->data_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (a->fd < 0 || (dfd = dup(a->fd)) < 0 || !(a->gz = gzdopen(dfd, "wb6"))) {
        upkeep_run_fail(x, "archive: cannot create %s: %s", a->data_tmp, strerror(errno));
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
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, "archive: counting the partition");
    if (!res)
        return -1;
    a->count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    if (!PQgetisnull(res, 0, 1)) {
        a->min_ts = strdup(PQgetvalue(res, 0, 1));
        a->max_ts = strdup(PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    if (!(a->part_lit = pg_conn_escape(x->c, qname, 0))) {
        upkeep_run_fail(x, "out of memory");
        return -1;
    }
    strbuf_addf(&x->sql, "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", a->part_lit);
    a->cols = upkeep_exec(x, PGRES_TUPLES_OK, "archive: reading the columns");
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
        upkeep_run_fail(x, "archive: out of memory");
        return -1;
    }
    PGresult *res = PQexec(x->c, x->sql.data);
    strbuf_reset(&x->sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int denied = state && strcmp(state, "42501") == 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !denied)
        upkeep_run_fail(x, "archive: locking %s: %s", qname,
                 res ? PQresultErrorMessage(res) : PQerrorMessage(x->c));
    PQclear(res);
    if (PQstatus(x->c) != CONNECTION_OK)
        x->dead = 1;
    if (x->r->failed)
        return -1;
    strbuf_addf(&x->sql, denied ? "ROLLBACK TO SAVEPOINT archive_lock"
                                : "RELEASE SAVEPOINT archive_lock");
    return upkeep_exec_ok(x, "archive: locking the partition");
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
    if (upkeep_exec_ok(x, what) != 0 || archive_lock(x, p->qname) != 0)
        goto fail_txn;
    if (archive_describe(x, &a, p->qname) != 0 || archive_copy(x, &a, p->qname) != 0 ||
        archive_finish_data(x, &a) != 0 || archive_manifest(x, &a, p) != 0)
        goto fail_txn;
    if (upkeep_stopped(x)) /* closed meanwhile: nobody would hear of the drop */
        goto fail_txn;
    strbuf_addf(&x->sql, "SELECT camjoin_drop_partition(%s::regclass, '%s'::date)",
                x->tlit, ds);
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, what);
    if (!res)
        goto fail_txn;
    uint64_t held = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (held != a.rows) {
        upkeep_run_fail(x, "%s: camjoin_drop_partition says %llu rows, %llu archived", what,
                 (unsigned long long)held, (unsigned long long)a.rows);
        goto fail_txn;
    }
    strbuf_addf(&x->sql, "COMMIT");
    if (upkeep_exec_ok(x, what) != 0) {
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
    upkeep_rollback(x); /* COMMIT was never sent: nothing of this was kept */
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
    PGresult *res = upkeep_exec(x, PGRES_TUPLES_OK, what);
    PQclear(res);
    if (!res)
        return -1;
    x->r->dropped++;
    return 0;
}

/* (c) oldest first; the first failure ends it (the next would likely fail
 * the same way: a full disk, a lock held). */
void upkeep_retention(struct run *x)
{
    int64_t cutoff = x->today - x->cfg->retention_days;
    for (size_t i = 0; i < x->nparts && x->parts[i].day < cutoff; i++) {
        if (upkeep_stopped(x))
            return;
        int rc = x->cfg->archive_dir[0] ? archive_and_drop(x, &x->parts[i])
                                        : drop_only(x, &x->parts[i]);
        if (rc != 0)
            return;
    }
}
