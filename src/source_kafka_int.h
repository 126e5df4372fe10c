/*
 * source_kafka_int.h — the source's state, read by source_kafka.c (the
 * consumer, its callbacks and the queue) and source_kafka_meta.c (what the
 * source asks the brokers: the topic, watermarks, offsets for times).
 * Loop thread only, except what a resolve job copies for the thread pool.
 */
#ifndef CAMJOIN_SOURCE_KAFKA_INT_H
#define CAMJOIN_SOURCE_KAFKA_INT_H

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "camjoin/source_kafka.h"

struct source_kafka {
    uv_loop_t *loop;
    rd_kafka_conf_t *conf;      /* until source_kafka_start() creates rk */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;    /* consumer queue (main queue forwarded to it) */
    char *topic;
    int pipefd[2];              /* io-event pipe: librdkafka writes, we poll */
    uv_poll_t poll;
    uv_idle_t idle;             /* continues a drain cut short by the budget */
    uv_timer_t tick;            /* periodic drain: liveness while paused */
    int handles_open;
    int paused;
    int closed;
    int cooperative;            /* partition.assignment.strategy cooperative-sticky */
    int kafka_commits;          /* the informational commits to Kafka are safe */
    source_kafka_callbacks cb;
    void *ud;
};

/* Errors that reconnecting cannot cure: 1 for credentials, TLS, ACLs and
 * librdkafka's fatal errors. */
int source_kafka_permanent(rd_kafka_resp_err_t e);
/* A list of `topic`'s partitions at offs (NULL: RD_KAFKA_OFFSET_INVALID). */
rd_kafka_topic_partition_list_t *source_kafka_plist(const char *topic, const int32_t *parts,
                                                   const int64_t *offs, size_t n);
/* Before subscribing: 0, or -1 with err set when the topic does not exist
 * or may not be described (blocking, at most ~3 s). */
int source_kafka_check_topic(source_kafka_t *s, char *err, size_t errlen);

#endif
