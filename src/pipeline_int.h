/*
 * pipeline_int.h — the pipeline's state, shared by pipeline.c (the flow of
 * messages into batches and commits, shutdown) and pipeline_assign.c
 * (positioning partitions on assignment). Private to the pipeline module.
 */
#ifndef CAMJOIN_PIPELINE_INT_H
#define CAMJOIN_PIPELINE_INT_H

#include "camjoin/batch.h"
#include "camjoin/dedup.h"
#include "camjoin/histogram.h"
#include "camjoin/http.h"
#include "camjoin/pipeline.h"
#include "camjoin/sink_pg.h"
#include "camjoin/upkeep.h"

enum part_state { P_NONE = 0, P_RESOLVING, P_ACTIVE };

struct part {
    enum part_state state;
    int64_t stored;    /* next offset in camjoin_offsets; BATCH_OFFSET_NONE */
    int64_t next;      /* next offset expected from Kafka */
    int64_t committed; /* position committed by this run (for --until-end) */
    int64_t high;      /* high watermark at assignment */
    int replayed;      /* the replay spec was applied to this partition */
};

struct pipeline {
    uv_loop_t *loop;
    const camjoin_config *cfg;
    source_kafka_t *src;
    sink_pg_t *sink;
    http_t *http;            /* NULL unless http.listen is set */
    dedup_t *dedup;
    refdata_t *ref;
    replay_spec_t replay;
    int offset_reset_latest; /* auto.offset.reset was set to latest */

    struct part *parts;      /* indexed by partition id */
    size_t nparts;
    int32_t *assigned;       /* current assignment, as given by the group */
    size_t nassigned;
    uint64_t gen;            /* bumped by every (re)assignment */
    uint64_t offsets_gen;    /* gen whose offsets read is outstanding */
    int awaiting_assign;     /* between a revoke/assign and its positioning */
    int need_resolve;        /* resolution failed; the tick retries it */
    int reposition;          /* a fetch went out of range: drain, then resolve */
    uint64_t warm_gen;       /* gen whose dedup warm-up is running */
    uint64_t warm_start_ms;

    batch_t *open;           /* filling */
    batch_t **sealed;        /* FIFO, waiting for the connection */
    size_t nsealed, capsealed;
    batch_t *spare;          /* one recycled batch */
    size_t buffered;         /* messages not yet committed */
    int64_t open_since;      /* uv_now when the open batch got its first message */

    int kafka_dirty;         /* committed positions not yet told to Kafka */
    int stopping, stopped, exit_code;
    int reloading, reload_again; /* SIGHUP reload on the thread pool */
    uv_signal_t sig[3];
    uv_timer_t tick, linger, closer;
    uint64_t last_stats_ms, last_consumed;
    pipeline_stats_t st;
    hist_t *lat_produce;     /* Kafka timestamp -> commit returned, per message written */
    hist_t *lat_event;       /* event_ts -> commit returned, per row */
    hist_t *commit_dur;      /* submit -> commit returned, per batch */
    uint64_t ref_loaded_ms;  /* uv_now when the current reference table came in */
    uint64_t paused_since_ms;/* uv_now of the back-pressure pause; 0 = not paused */
    pipeline_reason_t invalid[PIPELINE_MAX_REASONS]; /* dead letters by reason */
    size_t ninvalid;
    uv_timer_t watchdog;     /* pings systemd's watchdog while the loop turns */
    upkeep_t *upkeep;        /* partitions and retention; NULL before start, after close */
    int upkeep_plain_warned; /* the "not partitioned" warning was logged */
    uint64_t status_ms, status_consumed; /* last STATUS= sent, for its rate */
};

/* pipeline.c */
struct part *pipeline_part(pipeline_t *p, int32_t id);        /* grows the table */
struct part *pipeline_part_active(pipeline_t *p, int32_t id); /* NULL unless active */
batch_t *pipeline_open_batch(pipeline_t *p);   /* the open batch, created if needed */
void pipeline_drop_buffered(pipeline_t *p);    /* uncommitted batches: read again */
void pipeline_flush(pipeline_t *p);            /* send the next batch if the sink is idle */
void pipeline_stop(pipeline_t *p, int code);   /* graceful stop with this exit code */
void pipeline_commit_kafka(pipeline_t *p);     /* committed positions to Kafka, if new */
int pipeline_may_resume(const pipeline_t *p);  /* back-pressure and re-positioning allow fetching */

/* pipeline_assign.c: source and sink callbacks about positions */
void pipeline_on_revoke(void *ud);
void pipeline_on_assign(void *ud, const int32_t *partitions, size_t n);
void pipeline_on_offsets(void *ud, const int32_t *parts, const int64_t *next,
                         size_t n);
void pipeline_on_eof(void *ud, int32_t partition, int64_t offset);
void pipeline_on_out_of_range(void *ud, int32_t partition, int64_t offset,
                              const char *msg);
/* re-read stored offsets, warm the dedup window and re-assign: on
 * assignment, after a fenced commit, after an out-of-range fetch */
void pipeline_resolve(pipeline_t *p);
void pipeline_on_warm_row(void *ud, const char *id, size_t len, int32_t partition,
                          int64_t offset);
void pipeline_on_warm_done(void *ud, size_t rows);

/* pipeline_status.c: counts, lag and the systemd conversation */
void pipeline_count_invalid(pipeline_t *p, const char *reason);
/* READY=1 with a first STATUS=, and the watchdog timer if systemd set one */
void pipeline_notify_start(pipeline_t *p);
void pipeline_notify_status(pipeline_t *p); /* STATUS=, from the tick */

#endif
