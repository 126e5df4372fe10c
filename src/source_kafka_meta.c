/* source_kafka_meta — what the source asks the brokers, apart from
 * consuming: whether the topic exists (before subscribing), the watermarks
 * and offsets for times of partitions being assigned (on the thread pool),
 * and, for --dry-run, the same for every partition of the topic at once
 * (blocking, source_kafka_survey). See source_kafka_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source_kafka_int.h"

#define QUERY_TIMEOUT_MS 10000

/* Errors that reconnecting cannot cure: credentials, TLS, ACLs. A broker
 * that is down, a leader moving, a timeout are librdkafka's to retry. */
int source_kafka_permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__FATAL:
        return 1;
    default:
        return 0;
    }
}

rd_kafka_topic_partition_list_t *source_kafka_plist(const char *topic, const int32_t *parts, const int64_t *offs, size_t n)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset =
            offs ? offs[i] : RD_KAFKA_OFFSET_INVALID;
    return l;
}

/* Whether the topic exists, asked once before subscribing: a subscription
 * to a missing topic would only warn, forever. A broker that does not answer
 * within the timeout is not an answer (librdkafka keeps trying after the
 * subscribe), and "unknown" is asked again twice, half a second apart, in
 * case the topic was created a moment ago. Blocking, at most ~3 s. 0, or -1
 * with err set (the topic does not exist, or may not be described). */
int source_kafka_check_topic(source_kafka_t *s, char *err, size_t errlen)
{
    rd_kafka_resp_err_t te = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *t = rd_kafka_topic_new(s->rk, s->topic, NULL);
        if (!t)
            return 0;
        rd_kafka_resp_err_t e = rd_kafka_metadata(s->rk, 0, t, &md, 2000);
        te = e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 ? md->topics[0].err
                                                                   : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
        if (te != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            break;
        if (attempt < 2)
            usleep(500 * 1000);
    }
    if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(err, errlen, "kafka topic \"%s\" does not exist (not retried): create it, "
                 "or correct kafka.topic", s->topic);
        return -1;
    }
    if (source_kafka_permanent(te)) {
        snprintf(err, errlen, "kafka topic \"%s\" (not retried): %s", s->topic,
                 rd_kafka_err2str(te));
        return -1;
    }
    return 0;
}

/* ---- resolution on the thread pool ---- */

struct resolve_job {
    uv_work_t req;
    rd_kafka_t *rk;
    const char *topic;
    size_t n;
    int32_t *parts;
    int64_t *low, *high, *at, *until;
    int64_t time_ms, until_ms;
    int status;
    char err[256];
    source_resolve_cb done;
    void *ud;
};

/* out[i]: the first offset of partition i whose timestamp is >= time_ms,
 * left as it is (the high watermark) when there is none. 0, or -1 with the
 * job's status and err set. */
static int offsets_at(struct resolve_job *j, int64_t time_ms, int64_t *out)
{
    rd_kafka_topic_partition_list_t *l = source_kafka_plist(j->topic, j->parts, NULL, j->n);
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = time_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(j->rk, l, QUERY_TIMEOUT_MS);
    for (int i = 0; !e && i < l->cnt; i++) {
        if (l->elems[i].err) {
            e = l->elems[i].err;
            break;
        }
        if (l->elems[i].offset >= 0)
            out[i] = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (!e)
        return 0;
    snprintf(j->err, sizeof j->err, "offsets for time %lld: %s", (long long)time_ms,
             rd_kafka_err2str(e));
    j->status = -1;
    return -1;
}

static void resolve_work(uv_work_t *req)
{
    struct resolve_job *j = req->data;
    for (size_t i = 0; i < j->n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            j->rk, j->topic, j->parts[i], &j->low[i], &j->high[i],
            QUERY_TIMEOUT_MS);
        if (e) {
            snprintf(j->err, sizeof j->err, "watermarks of partition %d: %s",
                     (int)j->parts[i], rd_kafka_err2str(e));
            j->status = -1;
            return;
        }
        j->at[i] = j->until[i] = j->high[i];
    }
    if (j->time_ms >= 0 && offsets_at(j, j->time_ms, j->at) != 0)
        return;
    if (j->until_ms >= 0)
        offsets_at(j, j->until_ms, j->until);
}

static void resolve_after(uv_work_t *req, int status)
{
    struct resolve_job *j = req->data;
    source_resolved_t r = {
        .n = j->n, .partitions = j->parts, .low = j->low, .high = j->high,
        .at_time = j->at, .at_until = j->until, .status = status ? -1 : j->status,
        .err = j->err,
    };
    j->done(j->ud, &r);
    free(j->parts);
    free(j->low);
    free(j);
}

int source_kafka_resolve(source_kafka_t *s, const int32_t *partitions, size_t n,
                         int64_t time_ms, int64_t until_ms, source_resolve_cb done, void *ud)
{
    size_t cnt = n ? n : 1;
    struct resolve_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->parts = malloc(cnt * sizeof *j->parts);
    j->low = malloc(4 * cnt * sizeof *j->low); /* low, high, at, until: one block */
    if (!j->parts || !j->low) {
        free(j->parts);
        free(j->low);
        free(j);
        return -1;
    }
    memcpy(j->parts, partitions, n * sizeof *partitions);
    j->high = j->low + cnt;
    j->at = j->low + 2 * cnt;
    j->until = j->low + 3 * cnt;
    j->req.data = j;
    j->rk = s->rk;
    j->topic = s->topic;
    j->n = n;
    j->time_ms = time_ms;
    j->until_ms = until_ms;
    j->done = done;
    j->ud = ud;
    if (uv_queue_work(s->loop, &j->req, resolve_work, resolve_after) != 0) {
        free(j->parts);
        free(j->low);
        free(j);
        return -1;
    }
    return 0; /* the job is the pool's until resolve_after */
}


static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int source_kafka_survey(source_kafka_t *s, int64_t time_ms, int64_t until_ms,
                        source_resolved_t *out, char *err, size_t errlen)
{
    char e[512];
    const struct rd_kafka_metadata *md = NULL;
    struct resolve_job j = {.topic = s->topic, .time_ms = time_ms, .until_ms = until_ms};
    memset(out, 0, sizeof *out);
    if (!(s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, s->conf, e, sizeof e))) {
        snprintf(err, errlen, "kafka consumer: %s", e);
        return -1;
    }
    s->conf = NULL; /* owned by rk; no subscription, no group join */
    if (source_kafka_check_topic(s, err, errlen) != 0)
        return -1;
    rd_kafka_topic_t *t = rd_kafka_topic_new(s->rk, s->topic, NULL);
    rd_kafka_resp_err_t me = t ? rd_kafka_metadata(s->rk, 0, t, &md, QUERY_TIMEOUT_MS)
                               : RD_KAFKA_RESP_ERR__FAIL;
    if (t)
        rd_kafka_topic_destroy(t);
    if (me || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(err, errlen, "kafka metadata of %s: %s", s->topic,
                 rd_kafka_err2str(me ? me : md ? md->topics[0].err : RD_KAFKA_RESP_ERR__FAIL));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    size_t n = (size_t)md->topics[0].partition_cnt, cnt = n ? n : 1;
    j.parts = malloc(cnt * sizeof *j.parts);
    j.low = malloc(4 * cnt * sizeof *j.low); /* low, high, at, until, as a resolve job */
    if (!j.parts || !j.low) {
        rd_kafka_metadata_destroy(md);
        free(j.parts);
        free(j.low);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) /* metadata lists them in no promised order */
        j.parts[i] = md->topics[0].partitions[i].id;
    rd_kafka_metadata_destroy(md);
    qsort(j.parts, n, sizeof *j.parts, cmp_i32);
    j.high = j.low + cnt;
    j.at = j.low + 2 * cnt;
    j.until = j.low + 3 * cnt;
    j.rk = s->rk;
    j.n = n;
    resolve_work(&(uv_work_t){.data = &j}); /* here, not on the pool */
    if (j.status != 0) {
        snprintf(err, errlen, "%s", j.err);
        free(j.parts);
        free(j.low);
        return -1;
    }
    *out = (source_resolved_t){.n = n, .partitions = j.parts, .low = j.low, .high = j.high,
                               .at_time = j.at, .at_until = j.until};
    return 0; /* the arrays are the caller's: source_kafka_survey_free() */
}

void source_kafka_survey_free(source_resolved_t *r)
{
    free((void *)r->partitions);
    free((void *)r->low);
    memset(r, 0, sizeof *r);
}
