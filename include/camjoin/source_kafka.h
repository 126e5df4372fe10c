/*
 * source_kafka — the Kafka consumer, driven by the libuv loop.
 *
 * librdkafka runs its own threads for the network; the loop thread only ever
 * calls non-blocking functions. The consumer queue's io-event is enabled on a
 * pipe that a uv_poll_t watches: when the queue goes from empty to non-empty
 * librdkafka writes one byte, and the loop drains the queue with
 * rd_kafka_consume_batch_queue(..., timeout 0, ...). Draining is bounded per
 * loop iteration (a uv_idle_t continues it), so PostgreSQL's socket is served
 * in between. A 100 ms timer drains as well, which keeps max.poll.interval.ms
 * satisfied while partitions are paused and covers a missed wake-up.
 *
 * Offsets are not Kafka's business here: enable.auto.commit and
 * enable.auto.offset.store are off, and PostgreSQL (camjoin_offsets) is the
 * source of truth. Offsets go to Kafka only as an informational async commit,
 * so that standard lag tools see progress. The source never moves a position
 * by itself: every partition is assigned at an explicit offset, partition
 * EOF events report the position at the end of a partition (on_eof), and an
 * out-of-range position is reported (on_out_of_range), never reset.
 *
 * Rebalancing. Eager assignors (range, roundrobin): on revoke the source
 * drops its assignment at once and tells the owner; on assign it hands the
 * partition list to the owner, which looks up the stored offsets
 * asynchronously and later calls source_kafka_assign(). Until then the group
 * waits for the assign call, which librdkafka allows. Cooperative
 * (cooperative-sticky): only the partitions that move are named; they are
 * added (at the end of the log, ignored until positioned) or removed at once, since librdkafka pauses the whole
 * assignment until the callback answers, and the owner positions the added
 * ones later with source_kafka_assign(); the others keep fetching.
 * source_kafka_assign() may also be called at any time to re-position
 * (after a fenced commit).
 *
 * Blocking calls (watermark and offsets-for-times queries) run on libuv's
 * thread pool via source_kafka_resolve().
 *
 * Ownership: messages handed to on_message are owned by the source and
 * destroyed after the callback returns; copy what must outlive it.
 */
#ifndef CAMJOIN_SOURCE_KAFKA_H
#define CAMJOIN_SOURCE_KAFKA_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/base.h"
#include "camjoin/config.h"

typedef struct source_kafka source_kafka_t;

typedef struct source_msg {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;     /* Kafka message timestamp, -1 if none */
    const void *value;        /* NULL for a tombstone */
    size_t len;
} source_msg_t;

typedef struct source_kafka_callbacks {
    void (*on_message)(void *ud, const source_msg_t *m);
    /* called once after each drain pass that delivered at least one message */
    void (*on_drained)(void *ud);
    /* these partitions are no longer ours (no longer fetched). keep = 0:
     * drop what was read of them (eager revoke: the whole assignment; or
     * lost; or closing). keep = 1 (cooperative): only these partitions
     * moved; what was read of them may still be committed */
    void (*on_revoke)(void *ud, const int32_t *partitions, size_t n, int keep);
    /* partitions given to us (eager: the whole assignment; cooperative: the
     * ones added); call source_kafka_assign() once offsets are known */
    void (*on_assign)(void *ud, const int32_t *partitions, size_t n);
    /* the consumer reached the end of the partition: its position is
     * `offset` (the high watermark, or the last stable offset), and every
     * message before it has been delivered; offsets in between that were
     * never delivered are transaction markers or aborted data */
    void (*on_eof)(void *ud, int32_t partition, int64_t offset);
    /* the fetch position `offset` is not in the log (below the log start:
     * retention; or above the end); the partition stopped fetching until it
     * is assigned again. `msg` is one formatted line for the log. */
    void (*on_out_of_range)(void *ud, int32_t partition, int64_t offset,
                            const char *msg);
    /* a consumer error worth logging (already formatted, one line), and
     * its librdkafka error name (rd_kafka_err2name); fatal:
     * one that reconnecting cannot cure (librdkafka's fatal errors,
     * authentication, TLS, authorization on the topic, group or cluster) */
    void (*on_error)(void *ud, const char *code, const char *msg, int fatal);
} source_kafka_callbacks;

/* Builds the consumer configuration from cfg: brokers, group, topic, the
 * camjoin defaults, then kafka_props in order; a property librdkafka rejects
 * is reported here (a configuration error). Returns NULL with err set. */
source_kafka_t *source_kafka_new(uv_loop_t *loop, const camjoin_config *cfg,
                                 const source_kafka_callbacks *cb, void *ud,
                                 char *err, size_t errlen);
/* Creates the consumer (rd_kafka_new), checks that the topic exists (a
 * blocking metadata request, at most ~3 s; a broker that does not answer is
 * no answer, and the subscription goes ahead), subscribes, starts watching
 * the queue. -1 with err set: the topic does not exist, or may not be
 * described (permanent: not retried). */
CJ_MUSTCHECK int source_kafka_start(source_kafka_t *s, char *err, size_t errlen);

/* Eager: assigns exactly these partitions at these absolute offsets (the
 * whole assignment). Cooperative: these partitions fetch from these offsets,
 * the others keep theirs. -1 after reporting the error to on_error. */
CJ_MUSTCHECK int source_kafka_assign(source_kafka_t *s, const int32_t *partitions,
                        const int64_t *offsets, size_t n);
/* 1 when partition.assignment.strategy is cooperative (cooperative-sticky) */
int source_kafka_cooperative(const source_kafka_t *s);
/* 0 when source_kafka_commit_async() never commits (see there) */
int source_kafka_commits_offsets(const source_kafka_t *s);

/* Pauses fetching of the whole assignment (idempotent). */
void source_kafka_pause(source_kafka_t *s);
/* Resumes by re-assigning at the given absolute offsets (the owner's next
 * expected offsets) rather than rd_kafka_resume_partitions(): librdkafka
 * 2.0.2 can skip offsets when batch consumption meets pause/resume (fixed
 * upstream in 2.1.0), and an explicit position cannot skip anything. */
CJ_MUSTCHECK int source_kafka_resume_at(source_kafka_t *s, const int32_t *partitions,
                           const int64_t *offsets, size_t n);
int source_kafka_paused(const source_kafka_t *s);

/* The last known high watermark of a partition, from librdkafka's cache
 * (refreshed by every fetch response; no broker round trip, so it is cheap
 * enough for every /metrics scrape). -1 when not known yet. */
int64_t source_kafka_high(const source_kafka_t *s, int32_t partition);

/* Informational async commit of next offsets to Kafka (skipped when the
 * assignment was lost, and with a cooperative assignor on librdkafka before
 * 2.10, which loses the assignment when a commit meets a rebalance). */
void source_kafka_commit_async(source_kafka_t *s, const int32_t *partitions,
                               const int64_t *next, size_t n);

/* Resolution job for partitions: low/high watermarks and, for each of
 * time_ms and until_ms that is >= 0, the first offset whose timestamp is >=
 * it (the high watermark when none): at_time and at_until (the high
 * watermark when not asked). Runs on the thread pool; `done` runs on the
 * loop thread with status 0 or -1 (err set). Arrays are owned by the job
 * and valid during `done` only. */
typedef struct source_resolved {
    size_t n;
    const int32_t *partitions;
    const int64_t *low, *high, *at_time, *at_until;
    int status;
    const char *err;
} source_resolved_t;
typedef void (*source_resolve_cb)(void *ud, const source_resolved_t *r);
CJ_MUSTCHECK int source_kafka_resolve(source_kafka_t *s, const int32_t *partitions, size_t n,
                                      int64_t time_ms, int64_t until_ms,
                                      source_resolve_cb done, void *ud);

/* --dry-run, instead of source_kafka_start(): creates the consumer without
 * subscribing (no group join), checks the topic, and fills `out` with every
 * partition of the topic in order, its watermarks and its offsets at time_ms
 * and until_ms, as a resolve job would (blocking, at most a few timeouts of
 * 10 s). 0 (free `out` with source_kafka_survey_free), or -1 with err set. */
CJ_MUSTCHECK int source_kafka_survey(source_kafka_t *s, int64_t time_ms, int64_t until_ms,
                                     source_resolved_t *out, char *err, size_t errlen);
void source_kafka_survey_free(source_resolved_t *r);

/* Leaves the group (blocking; call once, at shutdown) and stops watching. */
void source_kafka_close(source_kafka_t *s);
/* Frees; the handles are closed asynchronously, so run the loop once more. */
void source_kafka_free(source_kafka_t *s);

#endif
