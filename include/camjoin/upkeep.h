/*
 * upkeep — the events table's daily partitions over time: made ahead of
 * the rows, rows moved out of the default partition, old days archived and
 * dropped (retention).
 *
 * The table T (postgres.table) is `PARTITION BY RANGE (event_ts)`, one
 * partition a UTC day named T_pYYYYMMDD, plus T_default for rows no daily
 * partition takes. The schema supplies three SQL functions, and this module
 * only calls them: camjoin_ensure_partition(T, day) (creates the day's
 * partition, moving its rows out of T_default in the same transaction),
 * camjoin_drop_partition(T, day) (returns the rows it held) and
 * camjoin_partitions(T).
 *
 * A run, one at a time, on libuv's thread pool, with its own blocking libpq
 * connection (the sink's conninfo, application_name=camjoin-upkeep) opened
 * for the run and closed after it:
 *   (a) for each UTC day that has rows in T_default, ensure its partition
 *       (in one transaction: T's partitions are counted before and after,
 *       so a day that a wider partition already covers is not "created",
 *       and the new partition's rows, counted before COMMIT, are the rows
 *       it moved);
 *   (b) ensure the partitions of today .. today + postgres.partitions_ahead;
 *   (c) if retention.days > 0, for each daily partition whose day is before
 *       today - retention.days, oldest first: with archive.dir set, in ONE
 *       transaction, lock the partition (SHARE: reads go on, writes wait;
 *       a role without UPDATE, DELETE or TRUNCATE on it goes on unlocked),
 *       count it, COPY it out as CSV into a gzip file, fsync, publish, write
 *       its manifest, then drop it and commit. The rows streamed, count(*)
 *       and the rows camjoin_drop_partition finds must agree; a mismatch or
 *       an I/O error rolls back and the partition stays. Without archive.dir
 *       it is just dropped.
 * "Today" is the daemon's clock, in UTC. A daily partition is one whose
 * bounds are exactly [day 00:00 UTC, day+1 00:00 UTC); anything else
 * attached to T (a migrated range, say) is never dropped.
 *
 * upkeep_prepare() is the startup part, (b) only, run synchronously on the
 * caller's thread before consumption starts. upkeep_start() then arms a
 * timer: a full run at once, then every retention.interval. A tick that
 * finds a run still going queues nothing (counted as skipped), as does a
 * run that finds another process holding the upkeep advisory lock (several
 * camjoin processes share one table; one of them does the upkeep at a
 * time). On a plain (unpartitioned) T nothing is done and the report says
 * so; that is not a failure. A failure is reported and retried at the next
 * tick; ingestion never waits for upkeep, except on the table locks the SQL
 * functions take for the moment they need them.
 *
 * Archive files: archive.dir/T/YYYY/MM/T_pYYYYMMDD.csv.gz (COPY CSV with a
 * header, rows ordered by event_ts, event_id, in UTC) and
 * T_pYYYYMMDD.manifest.json beside it (table, partition, day, rows, bytes,
 * xxh64 of the compressed file, columns, min/max event_ts, created_at,
 * camjoin version). Each is written to `NAME.tmp`, fsynced, renamed, and
 * its directory fsynced. A name is never overwritten: if a day is archived
 * again (late rows made its partition anew), the files get a `.1`, `.2`, ...
 * before `.csv.gz` and `.manifest.json`.
 *
 * Cost: a connection a run, a few catalog queries, four statements for each
 * day made; an archive reads its partition once (COPY, gzip level 6) and
 * its file once more (the hash). Locks: lock_timeout is 10 s, so batches
 * never queue longer behind an upkeep statement waiting for a lock; the
 * run fails instead, and the next one retries.
 *
 * Threads: the worker touches only its own connection, the immutable config
 * and the job's report; everything else (stats, callback, the timer) lives
 * on the loop thread. Nothing here logs: the caller logs the reports.
 *
 * Ownership: upkeep_new() returns the object; upkeep_close() releases it
 * without waiting. A run still on the pool is asked to stop: it checks
 * between steps, every 1024 rows of an archive's COPY and just before a
 * drop, rolls back what it has under way (an archive's files are removed)
 * and drops nothing more; partitions it made before that stay, unreported.
 * The object is freed when the run's completion reaches the loop, so keep
 * running the loop after closing; after upkeep_close() the done callback is
 * never called again.
 */
#ifndef CAMJOIN_UPKEEP_H
#define CAMJOIN_UPKEEP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/base.h"
#include "camjoin/config.h"

typedef struct upkeep upkeep_t;

/* What one run did. Counts are true even when it failed part-way. */
typedef struct upkeep_report {
    int failed;              /* err says why (the first error) */
    int unpartitioned;       /* T is a plain table: nothing done, not a failure */
    int busy;                /* another process holds the upkeep lock: nothing done */
    uint64_t created;        /* partitions made */
    uint64_t moved_rows;     /* rows moved out of the default partition */
    uint64_t dropped;        /* partitions dropped by retention */
    uint64_t archived_rows;  /* rows written to archive files of dropped partitions */
    double ms;               /* wall time of the run */
    char err[512];
} upkeep_report_t;

/* Totals since upkeep_new(); read on the loop thread. */
typedef struct upkeep_stats {
    uint64_t runs;           /* runs completed, the startup one included */
    uint64_t failures;       /* of which failed */
    uint64_t skipped;        /* ticks that found a run going, runs that found the lock held */
    uint64_t created, moved_rows, dropped, archived_rows;
    int64_t last_success_ms; /* wall clock (ms since the epoch) of the last good run; 0 = none */
} upkeep_stats_t;

/* Called on the loop thread after each timer run (not after prepare). */
typedef void (*upkeep_done_fn)(void *ud, const upkeep_report_t *r);

/* Reads cfg (kept; it must outlive the object): table, conninfo,
 * partitions_ahead, retention.*, archive.dir. NULL when out of memory. */
upkeep_t *upkeep_new(uv_loop_t *loop, const camjoin_config *cfg,
                     upkeep_done_fn done, void *ud);

/* Blocking: the partitions of today .. today + partitions_ahead. Fills *r
 * and counts the run in the stats. Returns 0, or -1 when r->failed. */
int upkeep_prepare(upkeep_t *u, upkeep_report_t *r);

/* Arms the timer: a full run at once, then every retention.interval. */
void upkeep_start(upkeep_t *u);

void upkeep_stats(const upkeep_t *u, upkeep_stats_t *out);

/* See Ownership above. NULL is fine. */
void upkeep_close(upkeep_t *u);

/* ---- pure helpers, exposed for the unit tests ---- */

/* (days and dates: camjoin/calendar.h) */
/* Parses "YYYY-MM-DD" (years 0001-9999, a real date): 0, or -1. */
CJ_MUSTCHECK int upkeep_parse_day(const char *s, int64_t *day);
/* "YYYY-MM-DD" into buf (at least 11 bytes). */
void upkeep_format_day(char *buf, size_t len, int64_t day);

/* The archive's file names for `table`'s partition of `day`, copy `n`
 * (0 for the first, then 1, 2, ...): sets dir to ARCHIVE/T/YYYY/MM, data to
 * dir/T_pYYYYMMDD[.n].csv.gz and manifest to dir/T_pYYYYMMDD[.n].manifest.json.
 * A '/' in the table name becomes '_' in the paths, and a leading '.' in
 * the table's path component becomes '_' too. Returns 0, or -1 when a name
 * does not fit its buffer. */
CJ_MUSTCHECK int upkeep_archive_paths(const char *archive_dir, const char *table, int64_t day,
                         unsigned n, char *dir, char *data, char *manifest,
                         size_t len);

/* What a manifest says about one archive file. */
typedef struct upkeep_manifest {
    const char *table, *partition, *file;  /* file: the data file's base name */
    int64_t day;
    uint64_t rows, bytes;                  /* bytes: of the compressed file */
    uint64_t xxh64;                        /* XXH64 (seed 0) of the compressed file */
    const char *const *columns;
    size_t ncolumns;
    const char *min_event_ts, *max_event_ts; /* NULL when there are no rows */
    int64_t created_ms;                    /* wall clock */
    const char *version;
} upkeep_manifest_t;

/* The manifest as one JSON object and a newline (malloc'd), or NULL when out
 * of memory. xxh64 is written as 16 lowercase hex digits, as `xxhsum -H1`
 * prints it; created_at as RFC 3339 UTC with milliseconds. */
char *upkeep_manifest_json(const upkeep_manifest_t *m);

#endif
