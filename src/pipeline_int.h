/*
 * pipeline_int.h — the pipeline's state, shared by the files of the pipeline
 * module. Private to the module; loop thread only.
 *
 * The files are layered, and calls only go down:
 *   pipeline.c         wiring and lifecycle: new, start, free, signals, tick
 *   pipeline_assign.c  the source's news about partitions, and the
 *                      assignment module's requests to the sink and source
 *   pipeline_flow.c    messages into batches, batches into transactions,
 *                      back-pressure, the stop
 *   pipeline_status.c  counters, lag, logs of progress, systemd's STATUS=
 * struct pipeline is owned by pipeline.c (pipeline_new/free); each field
 * says which file writes it where that is not the whole module.
 */
#ifndef CAMJOIN_PIPELINE_INT_H
#define CAMJOIN_PIPELINE_INT_H

#include "camjoin/assignment.h"
#include "camjoin/batch.h"
#include "camjoin/batchq.h"
#include "camjoin/dedup.h"
#include "camjoin/histogram.h"
#include "camjoin/http.h"
#include "camjoin/pipeline.h"
#include "camjoin/refwatch.h"
#include "camjoin/reload.h"
#include "camjoin/sink_pg.h"
#include "camjoin/upkeep.h"

/* The startup phases (pipeline_start.c). Every change goes through
 * pipeline_set_phase(), which asserts that the transition is one of:
 *   NEW -> RUNNING | WAITING | ENDED, WAITING -> TRYING | ENDED,
 *   TRYING -> WAITING | RUNNING | ENDED, RUNNING -> ENDED (the rest of the
 *   startup failed: Kafka could not start). */
enum pipeline_phase {
    PL_NEW,     /* pipeline_new() done: nothing started; the first attempt
                   to connect runs blocking, before the loop */
    PL_WAITING, /* PostgreSQL not reached yet (a transient failure): the
                   start timer is armed for the next attempt; /readyz says why */
    PL_TRYING,  /* an attempt runs on the thread pool: start_conn, start_rc
                   and start_err are the pool thread's until it returns */
    PL_RUNNING, /* connected, subscribed, READY=1 sent; stopping and
                   stopped tell the rest */
    PL_ENDED,   /* gave up before running (a stop signal, a permanent
                   failure): the handles are closing, the loop runs dry */
};

struct pipeline {
    uv_loop_t *loop;
    enum pipeline_phase phase;
    const camjoin_config *cfg;
    source_kafka_t *src;
    sink_pg_t *sink;
    http_t *http;            /* NULL unless http.listen is set */
    dedup_t *dedup;
    refdata_t *ref;
    assignment_t *asg;       /* the partitions that are ours, and positions */
    struct req *reqs;        /* requests of the assignment under way (owned) */
    int reposition;          /* a fetch went out of range: drain, then resolve */
    uint64_t warm_start_ms;  /* uv_now when the last warm-up started */
    uint64_t revoke_barrier; /* revoking partitions are released once
                                batchq_done_count reaches this; 0: none */

    batchq_t *q;             /* open, sealed and spare batches; buffered count */
    batch_t *sent;           /* pipeline_flow.c: the batch at the sink (the
                                sink's until on_txn_done), NULL when none */

    int kafka_dirty;         /* committed positions not yet told to Kafka */
    int reset_latest;        /* auto.offset.reset is latest: no stored offset = the end */
    int stopping, stopped, exit_code;
    reload_t *reload;        /* SIGHUP: the reference CSV on the thread pool */
    refwatch_t *refwatch;    /* the CSV replaced or rewritten (reference.watch) */
    uv_signal_t sig[3];
    uv_timer_t tick, linger, closer;
    uint64_t last_stats_ms, last_consumed;
    pipeline_stats_t st;
    hist_t *lat_produce;     /* Kafka timestamp -> commit returned, per message written */
    hist_t *lat_event;       /* event_ts -> commit returned, per row */
    hist_t *commit_dur;      /* submit -> commit returned, per batch */
    hist_t *rebalance_dur;   /* first rebalance callback -> positioned */
    hist_t *batch_rows;      /* event rows per committed batch (x 10^6) */
    uint64_t rebalance_since_ms; /* uv_now of the rebalance under way; 0: none */
    int64_t ref_loaded_wall_ms; /* wall clock when the current reference table came in */
    uint64_t paused_since_ms;/* uv_now of the back-pressure pause; 0 = not paused */
    pipeline_reason_t invalid[PIPELINE_MAX_REASONS]; /* dead letters by reason */
    size_t ninvalid;
    pipeline_reason_t kafka_errors[PIPELINE_MAX_REASONS]; /* by error name */
    size_t nkafka_errors;
    uv_timer_t watchdog;     /* pings systemd's watchdog while the loop turns */
    upkeep_t *upkeep;        /* partitions and retention; NULL before start, after close */
    int upkeep_plain_warned; /* the "not partitioned" warning was logged */
    uint64_t status_ms, status_consumed; /* last STATUS= sent, for its rate */

    /* startup (pipeline_start.c) */
    uv_timer_t start_timer;  /* WAITING: the next attempt */
    uv_work_t start_work;    /* TRYING: the attempt on the thread pool */
    sink_pg_conn_t *start_conn; /* TRYING: the attempt's result */
    int start_rc;            /* TRYING: an enum sink_open_result */
    char start_err[512];     /* TRYING: the attempt's message */
    char wait_reason[600];   /* WAITING, TRYING: why, for /readyz */
    int64_t start_backoff_ms;
    uint64_t start_attempts, start_since_ms;
    int start_abandon;       /* TRYING: a stop signal came; end when it returns */
};

/* ---- pipeline_assign.c ---- */

/* the assignment module's io (sink and source requests) */
extern const assignment_io pipeline_assignment_io;
/* the source's callbacks about partitions */
void pipeline_on_revoke(void *ud, const int32_t *partitions, size_t n, int keep);
void pipeline_on_assign(void *ud, const int32_t *partitions, size_t n);
void pipeline_on_eof(void *ud, int32_t partition, int64_t offset);
void pipeline_on_out_of_range(void *ud, int32_t partition, int64_t offset,
                              const char *msg);
void pipeline_free_requests(pipeline_t *p); /* at pipeline_free */

/* ---- pipeline_flow.c ---- */

/* the source's callbacks about messages */
void pipeline_on_message(void *ud, const source_msg_t *m);
void pipeline_on_drained(void *ud);
/* Offsets [next, offset) of the partition carried no message for us (commit
 * markers, aborted transactions, the rest of a partition past its
 * --replay-until bound): they count as read, so the stored offset follows
 * (at most up to the bound). */
void pipeline_skip_to(pipeline_t *p, int32_t partition, int64_t offset);
void pipeline_drop_buffered(pipeline_t *p);    /* uncommitted batches: read again */
void pipeline_flush(pipeline_t *p);            /* send the next batch if the sink is idle */
void pipeline_stop(pipeline_t *p, int code);   /* graceful stop with this exit code */
/* the end without a flush: closes everything from the closer timer */
void pipeline_finish(pipeline_t *p);
void pipeline_commit_kafka(pipeline_t *p);     /* committed positions to Kafka, if new */
int pipeline_may_resume(const pipeline_t *p);  /* back-pressure and re-positioning allow fetching */
/* revoking partitions whose batches are all done are forgotten */
void pipeline_release_revoked(pipeline_t *p);

/* ---- pipeline.c and pipeline_start.c: the lifecycle ---- */

void pipeline_set_phase(pipeline_t *p, enum pipeline_phase from, enum pipeline_phase to);
/* The rest of the startup once PostgreSQL is connected: upkeep, Kafka, the
 * timers, READY=1. 0, or -1 with err set. */
int pipeline_run(pipeline_t *p, char *err, size_t errlen);
/* Initialises (and starts the signals among) the pipeline's own handles. */
void pipeline_init_handles(pipeline_t *p);
/* A stop signal before RUNNING (pipeline.c's signal handler). */
void pipeline_start_abandon(pipeline_t *p, int signum);
/* Closes every handle the pipeline opened (the consumer, the connection,
 * the upkeep, the signals, the timers, HTTP): the loop runs dry. */
void pipeline_close(pipeline_t *p);

/* ---- pipeline_status.c: counts, lag and the systemd conversation ---- */

void pipeline_count_invalid(pipeline_t *p, const char *reason);
void pipeline_count_kafka_error(pipeline_t *p, const char *code);
/* The watchdog timer, if systemd set one: from the start, before READY */
void pipeline_watchdog_start(pipeline_t *p);
/* READY=1 with a first STATUS= */
void pipeline_notify_start(pipeline_t *p);
void pipeline_notify_status(pipeline_t *p); /* STATUS=, from the tick */
/* the "progress" and "stopped" lines: counters and latency quantiles */
void pipeline_log_stats(const pipeline_t *p, const char *msg);
/* the outcome of an upkeep run (upkeep_new's callback), logged */
void pipeline_on_upkeep(void *ud, const upkeep_report_t *r);

#endif
