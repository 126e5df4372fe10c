/*
 * pipeline — the one place where the stages meet.
 *
 *   source_kafka ─► event_parse ─► dedup ─► refdata join ─► batch ─► sink_pg
 *
 * Everything runs on the loop thread. Per Kafka partition the pipeline keeps
 * three numbers: `stored` (the next offset camjoin_offsets holds, the fence
 * value of the next transaction), `next` (the next offset it expects from
 * Kafka; anything below is a re-delivery and is skipped) and `high` (the
 * high watermark at assignment, for --until-end).
 *
 * Batching: messages go into the open batch; at batch.max_rows it is sealed
 * and queued. At most one transaction is in flight: the next batch is sent
 * the moment the previous commit returns (group commit), after at most
 * batch.max_wait of lingering when the connection is idle. Above
 * batch.max_buffered uncommitted messages the partitions are paused; below
 * half of it they resume.
 *
 * Rebalance: on revoke, buffered (uncommitted) batches are dropped — their
 * messages are read again by whoever owns the partition next, from the
 * stored offsets. A transaction already in flight finishes; the offset fence
 * decides whether it may commit. On assign, stored offsets are read from
 * PostgreSQL, watermarks from Kafka (thread pool), the replay spec applied
 * (once per partition per run), and only then is the assignment made. A
 * fenced commit (another consumer moved the offsets) drops the buffer and
 * repeats that resolution for the current assignment.
 *
 * Startup: PostgreSQL first (waiting for it while it is unreachable, see
 * pipeline_start()), Kafka last, READY=1 when subscribed.
 *
 * Shutdown (SIGTERM/SIGINT, or --until-end reaching the end): pause, flush,
 * commit, close the consumer and the connection, let the loop run dry. A
 * second signal abandons what is buffered (it is re-read on the next start).
 * SIGHUP, or the file replaced or rewritten (reference.watch), reloads the
 * reference CSV, parsed on the thread pool and swapped in
 * on the loop; a bad file keeps the old table.
 *
 * Partition upkeep (upkeep.h) runs beside the flow: today's partitions are
 * made at start, before consuming, then a run every retention.interval on
 * the thread pool (default-partition rows moved, partitions ahead,
 * retention with archive). Its outcome is logged here; a failure never
 * stops ingestion.
 */
#ifndef CAMJOIN_PIPELINE_H
#define CAMJOIN_PIPELINE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/base.h"
#include "camjoin/config.h"
#include "camjoin/histogram.h"
#include "camjoin/refdata.h"
#include "camjoin/replay.h"
#include "camjoin/source_kafka.h"
#include "camjoin/upkeep.h"

typedef struct pipeline pipeline_t;

typedef struct pipeline_stats {
    uint64_t consumed;        /* messages handed to the pipeline */
    uint64_t rows_committed;  /* event rows in committed batches */
    uint64_t rows_inserted;   /* of which newly inserted (rest: ON CONFLICT) */
    uint64_t duplicates;      /* dropped by the in-memory window */
    uint64_t dead_letters;    /* committed dead letters */
    uint64_t join_misses;     /* events with no reference row */
    uint64_t batches;         /* committed transactions */
    uint64_t fenced;          /* transactions rolled back by the offset fence */
    uint64_t reloads, reload_failures;
    uint64_t offset_gaps;     /* ranges lost before they were read (retention) */
    uint64_t offsets_lost;    /* offsets in those ranges */
    uint64_t offsets_skipped; /* offsets with no message (transaction markers,
                               * aborted transactions, compaction) */
    uint64_t restaged;        /* batches redone through staging (they met existing rows) */
    uint64_t consumed_bytes;  /* payload bytes of the messages consumed */
    uint64_t rebalances;      /* consumer group rebalances completed (positioned) */
    uint64_t pg_reconnects;   /* PostgreSQL connections re-established */
    int64_t first_message_ms; /* wall clock of the first message, 0 = none yet */
    int64_t last_commit_ms;   /* wall clock of the last successful commit */
} pipeline_stats_t;

/* The pipeline's present state, for /metrics and /readyz. */
typedef struct pipeline_health {
    int pg_up;                /* the PostgreSQL connection is ready */
    const char *waiting;      /* startup waits for PostgreSQL: why ("waiting
                                 for PostgreSQL: ..."); NULL once running.
                                 Valid until the loop turns again */
    int stopping;
    int paused;               /* partitions paused by back-pressure */
    size_t assigned;          /* partitions in the assignment */
    size_t active;            /* of which positioned and consuming */
    size_t buffered;          /* messages not yet committed */
    size_t dedup_keys, dedup_bytes;
    size_t reference_rows;
    int64_t reference_loaded_ms; /* wall clock when the current reference
                                    table came in */
    int64_t paused_since_ms;  /* wall clock when back-pressure paused the
                                 partitions; 0 when consuming */
    uint64_t paused_ms;       /* how long back-pressure has held the partitions
                                 paused; 0 when consuming */
    uint64_t max_pause_ms;    /* http.ready_max_pause: longer is not ready */
} pipeline_health_t;

void pipeline_get_health(const pipeline_t *p, pipeline_health_t *out);

/* Latency distributions, owned by the pipeline (read them on the loop).
 * End to end = the moment COMMIT returned minus the message's Kafka
 * timestamp (the producer's send time, CreateTime) or its event_ts. */
typedef struct pipeline_latency {
    const hist_t *produce_to_commit; /* every row and dead letter written */
    const hist_t *event_to_commit;   /* every row written */
    const hist_t *commit;            /* per transaction: submit to COMMIT */
    const hist_t *rebalance;         /* first rebalance callback to positioned */
    const hist_t *batch_rows;        /* event rows per committed transaction,
                                        recorded as rows x 10^6 "us" (the
                                        bounds read as rows) */
} pipeline_latency_t;
void pipeline_get_latency(const pipeline_t *p, pipeline_latency_t *out);

/* Messages routed to dead letters, by the reason they are stored with
 * (event.h's codes, unknown_camera, event_ts_in_future, ...), in first-seen
 * order. Counted when buffered, like `consumed`. */
#define PIPELINE_MAX_REASONS 64
typedef struct pipeline_reason {
    char reason[64];
    uint64_t count;
} pipeline_reason_t;
const pipeline_reason_t *pipeline_get_invalid(const pipeline_t *p, size_t *n);
/* Kafka errors reported by librdkafka, by error name (rd_kafka_err2name:
 * "_TRANSPORT", "_ALL_BROKERS_DOWN", ...), in first-seen order. */
const pipeline_reason_t *pipeline_get_kafka_errors(const pipeline_t *p, size_t *n);

/* Consumer lag of each positioned partition: the high watermark (librdkafka's
 * cached value) minus the position committed by this run. Writes at most
 * `cap` entries; returns how many. */
typedef struct pipeline_lag {
    int32_t partition;
    int64_t high, committed, lag;
    int64_t lag_ms; /* 0 when caught up (lag 0); else now minus the Kafka
                       timestamp of the last message this run committed;
                       -1 when this run has committed none yet */
} pipeline_lag_t;
size_t pipeline_get_lag(const pipeline_t *p, pipeline_lag_t *out, size_t cap);

/* Partition upkeep and retention totals (upkeep.h); zeros when upkeep is
 * not running. */
void pipeline_get_upkeep(const pipeline_t *p, upkeep_stats_t *out);

/* Takes ownership of `ref` and of `replay` and `until` (--replay-from and
 * --replay-until: their arrays) on success. */
pipeline_t *pipeline_new(uv_loop_t *loop, const camjoin_config *cfg,
                         refdata_t *ref, replay_spec_t *replay, replay_spec_t *until,
                         char *err, size_t errlen);

/* Installs the signal handlers, starts HTTP and tries PostgreSQL once
 * (blocking, creates the schema); connected, it starts the consumer and
 * sends READY=1. A transient failure (pg_conn_retryable) is not an error:
 * the pipeline waits, retrying with the backoff on the thread pool while
 * the loop runs (/readyz 503 with the reason, STATUS= "waiting for
 * PostgreSQL"), and goes on the same way when it connects; a permanent
 * failure then ends the loop with exit code 1, logged. Returns 0 (running
 * or waiting: run the loop), or -1 with err set: a permanent failure at the
 * first attempt, or HTTP or Kafka could not start (nothing is left open;
 * run the loop once more so the handles finish closing). */
CJ_MUSTCHECK int pipeline_start(pipeline_t *p, char *err, size_t errlen);

/* --dry-run instead of pipeline_start() (blocking, no loop): prints to out,
 * for every partition of the topic, where a run with these specs would start
 * and stop and the messages between, reading the stored offsets and the
 * watermarks without joining the group, consuming or writing. 0, or -1 with
 * err set (PostgreSQL or Kafka unreachable, the topic missing). */
CJ_MUSTCHECK int pipeline_dry_run(pipeline_t *p, const replay_spec_t *from,
                                  const replay_spec_t *until, FILE *out, char *err,
                                  size_t errlen);

/* After uv_run() returns: 0 clean, 1 runtime failure. */
int pipeline_exit_code(const pipeline_t *p);
void pipeline_get_stats(const pipeline_t *p, pipeline_stats_t *out);

void pipeline_free(pipeline_t *p);

#endif
