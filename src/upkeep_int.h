/*
 * upkeep_int.h — what the upkeep module's files share. Private to the
 * module.
 *
 * The files, and calls only go down: upkeep.c (the loop side, and steps (a)
 * and (b) of a run, the partitions) calls upkeep_retention.c (step (c),
 * retention and its archive); both call upkeep_run.c (the run's frame and
 * its SQL helpers) and upkeep_archive.c (files), which call neither.
 *
 * A run lives on one thread (the pool's, or the caller's for
 * upkeep_prepare()) and owns everything in struct run; x->cancel is the one
 * field another thread writes.
 *
 * The file helpers, in upkeep_archive.c: each returns 0, or -1 with errno
 * set. "Durable" means the data and the name are on disk when the call
 * returns: the file is fsynced, then renamed, then its directory is fsynced.
 */
#ifndef CAMJOIN_UPKEEP_INT_H
#define CAMJOIN_UPKEEP_INT_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

#include "camjoin/base.h"
#include "camjoin/config.h"
#include "camjoin/strbuf.h"
#include "camjoin/upkeep.h"

/* ---- the run (upkeep_run.c) ---- */

struct daily {
    int64_t day;
    char *qname; /* the partition as regclass prints it: quoted, safe in SQL */
};

struct run {
    atomic_int *cancel;   /* set by upkeep_close() on the loop thread */
    const camjoin_config *cfg;
    upkeep_report_t *r;
    PGconn *c;
    char *tid, *tlit;     /* T as an identifier; that as a literal (for ::regclass) */
    char *def;            /* the default partition's qname, or NULL */
    struct daily *parts;  /* daily partitions, by day */
    size_t nparts;
    int64_t today;
    int dead;             /* connection lost, or upkeep_close(): stop */
    strbuf_t sql;         /* the next statement, for upkeep_exec() */
};

/* Records the run's first error (one line); later ones are dropped. */
void upkeep_run_fail(struct run *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 1 when the run must stop: connection lost, upkeep_close(), or T is plain. */
int upkeep_stopped(struct run *x);
/* Runs the statement in x->sql (and empties it). Returns the result when its
 * status is `want`; otherwise records the error (prefixed by `what`), clears
 * the result and returns NULL. SQLSTATE CJ001 (camjoin_ensure_partition on a
 * plain table) marks the run unpartitioned instead of failed. */
PGresult *upkeep_exec(struct run *x, ExecStatusType want, const char *what);
/* upkeep_exec for a statement without rows: 0, or -1. */
CJ_MUSTCHECK int upkeep_exec_ok(struct run *x, const char *what);
/* ROLLBACK, unless the connection is gone. */
void upkeep_rollback(struct run *x);
/* Connects (the sink's conninfo and connection defaults, application_name
 * camjoin-upkeep), sets the session up, takes the upkeep lock and looks at
 * T. Returns 1 when partition work may go on; else the report says why (or
 * says busy, or unpartitioned). */
int upkeep_run_open(struct run *x);

/* ---- step (c), upkeep_retention.c ---- */

/* Drops (archiving first, with archive.dir) the daily partitions before
 * today - retention.days, oldest first; the first failure ends it. */
void upkeep_retention(struct run *x);

/* ---- files (upkeep_archive.c) ---- */

CJ_MUSTCHECK int upkeep_fsync_dir(const char *dir);
/* mkdir -p (mode 0750), fsyncing the parent of each directory it makes. */
CJ_MUSTCHECK int upkeep_make_dirs(const char *path);
/* rename(tmp, final), then fsync dir (final's directory); tmp must have
 * been fsynced already. */
CJ_MUSTCHECK int upkeep_publish(const char *tmp, const char *final, const char *dir);
/* Creates (or truncates) path with text, fsynced. */
CJ_MUSTCHECK int upkeep_write_durable(const char *path, const char *text);
/* XXH64, seed 0, of a whole file. */
CJ_MUSTCHECK int upkeep_hash_file(const char *path, uint64_t *out);
/* 1 present, 0 absent, -1 cannot tell (errno: a path through a regular
 * file, no permission). */
int upkeep_file_state(const char *path);

#endif
