/* source_kafka — see include/camjoin/source_kafka.h; the state and what
 * this file shares with source_kafka_meta.c: source_kafka_int.h. */
#include "camjoin/source_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camjoin/base.h"
#include "camjoin/config.h"
#include "camjoin/log.h"
#include "source_kafka_int.h"

#define DRAIN_BATCH 1024
#define DRAIN_BUDGET (8 * DRAIN_BATCH) /* messages per loop iteration */


/* ---- librdkafka callbacks (served on the loop thread by the queue) ---- */


static int32_t *plist_ids(const rd_kafka_topic_partition_list_t *parts)
{
    int32_t *ids = malloc(sizeof *ids * (size_t)(parts->cnt ? parts->cnt : 1));
    for (int i = 0; ids && i < parts->cnt; i++)
        ids[i] = parts->elems[i].partition;
    return ids;
}

static int assign_error(source_kafka_t *s, const char *code, const char *what,
                        const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "kafka %s: %s", what, why);
    s->cb.on_error(s->ud, code, msg, 0);
    return -1;
}

/* One incremental (un)assign; an error is reported, and destroyed. */
static int incremental(source_kafka_t *s, rd_kafka_topic_partition_list_t *l,
                       int assign)
{
    rd_kafka_error_t *e = assign ? rd_kafka_incremental_assign(s->rk, l)
                                 : rd_kafka_incremental_unassign(s->rk, l);
    if (!e)
        return 0;
    assign_error(s, rd_kafka_error_name(e),
                 assign ? "incremental assign" : "incremental unassign",
                 rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return -1;
}

/* Eager: a revoke takes the whole assignment at once, and the assign of the
 * new one is deferred until the owner knows where each partition starts
 * (the group waits for it). Cooperative: both name only the partitions that
 * move, and both are answered here at once, because librdkafka pauses the
 * whole assignment until they are: added partitions join the assignment at
 * the end of the log (what they fetch meanwhile is ignored: the owner
 * re-assigns them at their start offsets once it knows them), revoked
 * ones leave it, and the owner still commits what it read of them (the
 * fence keeps that safe). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    source_kafka_t *s = opaque;
    int32_t *ids = plist_ids(parts);
    if (!ids) {
        s->cb.on_error(s->ud, "_NO_MEMORY", "out of memory in rebalance", 1);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (s->cooperative) {
            for (int i = 0; i < parts->cnt; i++)
                parts->elems[i].offset = RD_KAFKA_OFFSET_END;
            incremental(s, parts, 1);
            if (s->paused) /* back-pressure covers them too */
                rd_kafka_pause_partitions(rk, parts);
        } else if (parts->cnt == 0) {
            rd_kafka_assign(rk, parts); /* nothing to position */
        }
        s->cb.on_assign(s->ud, ids, (size_t)parts->cnt);
        free(ids);
        return;
    }
    int keep = 0;
    if (!s->cooperative) {
        rd_kafka_assign(rk, NULL);
        s->paused = 0;
    } else {
        keep = !s->closed && !rd_kafka_assignment_lost(rk) &&
               err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
        incremental(s, parts, 0);
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        char msg[256];
        snprintf(msg, sizeof msg, "rebalance error: %s", rd_kafka_err2str(err));
        s->cb.on_error(s->ud, rd_kafka_err2name(err), msg, 0);
    }
    s->cb.on_revoke(s->ud, ids, (size_t)parts->cnt, keep);
    free(ids);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
    source_kafka_t *s = opaque;
    char msg[512];
    int fatal = source_kafka_permanent((rd_kafka_resp_err_t)err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal_reason[256];
        rd_kafka_fatal_error(rk, fatal_reason, sizeof fatal_reason);
        snprintf(msg, sizeof msg, "kafka fatal error: %s", fatal_reason);
    } else {
        snprintf(msg, sizeof msg, "kafka: %s: %s",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
    s->cb.on_error(s->ud, rd_kafka_err2name((rd_kafka_resp_err_t)err), msg, fatal);
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    (void)rk;
    char q[512];
    enum log_level l = level <= 3 ? LOG_ERROR : level <= 5 ? LOG_WARN
                     : level == 6 ? LOG_INFO : LOG_DEBUG;
    log_emit(l, "librdkafka", "facility=%s detail=%s", fac,
             log_quote(q, sizeof q, buf));
}

/* ---- draining the queue ---- */

static void on_idle(uv_idle_t *h);

static void drain(source_kafka_t *s)
{
    rd_kafka_message_t *msgs[DRAIN_BATCH];
    size_t delivered = 0, budget = DRAIN_BUDGET;
    ssize_t n = 0;
    while (budget > 0 && !s->closed) {
        n = rd_kafka_consume_batch_queue(s->queue, 0, msgs, DRAIN_BATCH);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_timestamp_type_t tt;
                source_msg_t sm = {
                    .partition = m->partition, .offset = m->offset,
                    .timestamp_ms = rd_kafka_message_timestamp(m, &tt),
                    .value = m->payload, .len = m->payload ? m->len : 0,
                };
                s->cb.on_message(s->ud, &sm);
                delivered++;
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                s->cb.on_eof(s->ud, m->partition, m->offset);
            } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
                /* the partition stopped fetching; the owner re-positions it */
                char msg[512];
                snprintf(msg, sizeof msg, "partition=%d offset=%lld: %s",
                         (int)m->partition, (long long)m->offset,
                         rd_kafka_message_errstr(m));
                s->cb.on_out_of_range(s->ud, m->partition, m->offset, msg);
            } else {
                char msg[512];
                int fatal = source_kafka_permanent(m->err) ||
                            rd_kafka_fatal_error(s->rk, NULL, 0) != 0;
                snprintf(msg, sizeof msg, "consume error: partition=%d %s",
                         (int)m->partition, rd_kafka_message_errstr(m));
                s->cb.on_error(s->ud, rd_kafka_err2name(m->err), msg, fatal);
            }
            rd_kafka_message_destroy(m);
        }
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        if (n < DRAIN_BATCH)
            break;
    }
    if (delivered)
        s->cb.on_drained(s->ud);
    /* budget spent with more waiting: continue after the loop's other I/O */
    if (!s->closed && budget == 0)
        uv_idle_start(&s->idle, on_idle);
    else
        uv_idle_stop(&s->idle);
}

static void on_idle(uv_idle_t *h) { drain(h->data); }
static void on_tick(uv_timer_t *h) { drain(h->data); }

static void on_wake(uv_poll_t *h, int status, int events)
{
    source_kafka_t *s = h->data;
    (void)events;
    char buf[256];
    if (status == 0)
        while (read(s->pipefd[0], buf, sizeof buf) > 0)
            ;
    drain(s);
}

/* ---- lifecycle ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                    char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka property %s=%s: %s", k, config_secret_property(k) ? "****" : v,
             e); /* librdkafka's own reason names the key, never the value */
    return -1;
}

source_kafka_t *source_kafka_new(uv_loop_t *loop, const camjoin_config *cfg,
                                 const source_kafka_callbacks *cb, void *ud,
                                 char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},

        /* a fetch is answered at 64 KiB or after 5 ms: fewer wake-ups (at 10k
         * events/s CPU 14 % -> 7 %), never librdkafka's 500 ms idle wait */
        {"fetch.min.bytes", "65536"},
        {"fetch.wait.max.ms", "5"},
        /* a member killed with -9 is replaced within 10 s, not 45 */
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        /* a broker back from an outage is reconnected within a second */
        {"reconnect.backoff.max.ms", "1000"},
        /* partitions added to the topic are seen (and rebalanced in)
         * within 10 s instead of librdkafka's 5 minutes */
        {"topic.metadata.refresh.interval.ms", "10000"},
        {"log.queue", "true"},
        {"client.id", "camjoin"},
    };
    source_kafka_t *s = calloc(1, sizeof *s);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!s || !conf) {
        snprintf(err, errlen, "out of memory");
        goto fail_conf;
    }
    s->loop = loop;
    s->cb = *cb;
    s->ud = ud;
    s->pipefd[0] = s->pipefd[1] = -1;
    if (!(s->topic = strdup(cfg->topic))) {
        snprintf(err, errlen, "out of memory");
        goto fail_conf;
    }
    if (conf_set(conf, "bootstrap.servers", cfg->brokers, err, errlen) ||
        conf_set(conf, "group.id", cfg->group, err, errlen))
        goto fail_conf;
    for (size_t i = 0; i < ARRAY_LEN(defaults); i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1], err, errlen))
            goto fail_conf;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (conf_set(conf, cfg->kafka_props[i].key, cfg->kafka_props[i].value,
                     err, errlen))
            goto fail_conf;
    /* Two settings camjoin's offset bookkeeping depends on, so they come
     * after the user's. EOF events carry the consumer's position when it
     * reaches the end of a partition, past commit/abort markers and aborted
     * transactions that are never delivered: the stored offset follows the
     * position, not "last message + 1". And an out-of-range fetch position
     * (retention deleted what was not read yet) must not be reset silently:
     * "error" makes librdkafka report it (on_out_of_range), and the owner
     * records the lost range before going on. camjoin itself applies the
     * user's auto.offset.reset to partitions with no stored offset. */
    if (conf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        conf_set(conf, "auto.offset.reset", "error", err, errlen))
        goto fail_conf;
    char strategy[256];
    size_t slen = sizeof strategy;
    if (rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy,
                          &slen) != RD_KAFKA_CONF_OK)
        strategy[0] = '\0';
    int eager = 0;
    for (char *save = NULL, *tok = strtok_r(strategy, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (strstr(tok, "cooperative"))
            s->cooperative = 1;
        else
            eager = 1;
    }
    if (s->cooperative && eager) { /* librdkafka would refuse it at start */
        slen = sizeof strategy;
        rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy, &slen);
        snprintf(err, errlen, "kafka property partition.assignment.strategy=%s: "
                 "eager (range, roundrobin) and cooperative assignors cannot be "
                 "mixed", strategy);
        goto fail_conf;
    }
    /* librdkafka before 2.10 loses the whole assignment when a commit meets
     * the generation bump of a cooperative rebalance's second join (its
     * issue #4059): the informational commit is not worth that */
    s->kafka_commits = !s->cooperative || rd_kafka_version() >= 0x020a0000;
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail_conf;
    }
    s->conf = conf; /* the consumer is created by source_kafka_start() */
    return s;

fail_conf:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (s)
        free(s->topic);
    free(s);
    return NULL;
}

int source_kafka_start(source_kafka_t *s, char *err, size_t errlen)
{
    char e[512];
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, s->conf, e, sizeof e);
    if (!s->rk) {
        snprintf(err, errlen, "kafka consumer: %s", e);
        return -1;
    }
    s->conf = NULL; /* owned by rk */
    if (source_kafka_check_topic(s, err, errlen) != 0)
        return -1;
    rd_kafka_poll_set_consumer(s->rk);
    rd_kafka_set_log_queue(s->rk, NULL); /* logs to the main → consumer queue */
    s->queue = rd_kafka_queue_get_consumer(s->rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(s->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se) {
        snprintf(err, errlen, "kafka subscribe %s: %s", s->topic,
                 rd_kafka_err2str(se));
        return -1;
    }
    rd_kafka_queue_io_event_enable(s->queue, s->pipefd[1], "1", 1);
    uv_poll_init(s->loop, &s->poll, s->pipefd[0]);
    uv_idle_init(s->loop, &s->idle);
    uv_timer_init(s->loop, &s->tick);
    s->poll.data = s->idle.data = s->tick.data = s;
    s->handles_open = 1;
    uv_poll_start(&s->poll, UV_READABLE, on_wake);
    uv_timer_start(&s->tick, on_tick, 100, 100);
    return 0;
}


/* Cooperative: the partitions among these that are assigned already (added
 * paused by on_rebalance, or being re-positioned) leave the assignment first,
 * so that every one restarts at its new offset. */
static int assign_incremental(source_kafka_t *s, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_topic_partition_list_t *cur = NULL, *again;
    if (rd_kafka_assignment(s->rk, &cur) != RD_KAFKA_RESP_ERR_NO_ERROR || !cur)
        return assign_error(s, "_NO_MEMORY", "assignment", "cannot read the assignment");
    again = rd_kafka_topic_partition_list_new(l->cnt ? l->cnt : 1);
    for (int i = 0; i < l->cnt; i++)
        if (rd_kafka_topic_partition_list_find(cur, s->topic, l->elems[i].partition))
            rd_kafka_topic_partition_list_add(again, s->topic, l->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(cur);
    int rc = again->cnt ? incremental(s, again, 0) : 0;
    rd_kafka_topic_partition_list_destroy(again);
    return rc == 0 && l->cnt ? incremental(s, l, 1) : rc;
}

int source_kafka_assign(source_kafka_t *s, const int32_t *partitions,
                        const int64_t *offsets, size_t n)
{
    if (s->closed)
        return -1;
    rd_kafka_topic_partition_list_t *l = source_kafka_plist(s->topic, partitions, offsets, n);
    int rc = 0;
    if (s->cooperative) {
        rc = assign_incremental(s, l);
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, l);
        if (e)
            rc = assign_error(s, rd_kafka_err2name(e), "assign", rd_kafka_err2str(e));
    }
    if (rc == 0 && s->paused)
        rd_kafka_pause_partitions(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int source_kafka_cooperative(const source_kafka_t *s) { return s->cooperative; }
int source_kafka_commits_offsets(const source_kafka_t *s) { return s->kafka_commits; }

static void set_paused(source_kafka_t *s, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (s->closed || s->paused == pause)
        return;
    s->paused = pause;
    if (rd_kafka_assignment(s->rk, &l) || !l)
        return;
    if (pause)
        rd_kafka_pause_partitions(s->rk, l);
    else
        rd_kafka_resume_partitions(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

void source_kafka_pause(source_kafka_t *s) { set_paused(s, 1); }

int source_kafka_resume_at(source_kafka_t *s, const int32_t *partitions,
                           const int64_t *offsets, size_t n)
{
    set_paused(s, 0);
    return source_kafka_assign(s, partitions, offsets, n);
}
int source_kafka_paused(const source_kafka_t *s) { return s->paused; }

int64_t source_kafka_high(const source_kafka_t *s, int32_t partition)
{
    int64_t low = -1, high = -1;
    if (!s->rk || s->closed ||
        rd_kafka_get_watermark_offsets(s->rk, s->topic, partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return high;
}

void source_kafka_commit_async(source_kafka_t *s, const int32_t *partitions,
                               const int64_t *next, size_t n)
{
    if (s->closed || n == 0 || !s->kafka_commits || rd_kafka_assignment_lost(s->rk))
        return;
    rd_kafka_topic_partition_list_t *l = source_kafka_plist(s->topic, partitions, next, n);
    rd_kafka_commit(s->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

void source_kafka_close(source_kafka_t *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    if (s->rk)
        rd_kafka_consumer_close(s->rk); /* revokes through on_rebalance */
    if (s->handles_open) {
        rd_kafka_queue_io_event_enable(s->queue, -1, NULL, 0);
        uv_poll_stop(&s->poll);
        uv_idle_stop(&s->idle);
        uv_timer_stop(&s->tick);
        uv_close((uv_handle_t *)&s->poll, NULL);
        uv_close((uv_handle_t *)&s->idle, NULL);
        uv_close((uv_handle_t *)&s->tick, NULL);
        s->handles_open = 0;
    }
}

void source_kafka_free(source_kafka_t *s)
{
    if (!s)
        return;
    source_kafka_close(s);
    if (s->queue)
        rd_kafka_queue_destroy(s->queue);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    close(s->pipefd[0]);
    close(s->pipefd[1]);
    free(s->topic);
    free(s);
}
