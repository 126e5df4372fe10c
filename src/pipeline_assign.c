/* pipeline_assign — the assignment module's requests, served by the sink and
 * the source, and the source's news about partitions.
 *
 * The assignment module (assignment.c) decides where each partition starts;
 * this file only carries its requests out and the answers back: stored
 * offsets and the dedup warm-up from PostgreSQL, watermarks from Kafka, and
 * "positioned", which assigns the partitions in Kafka. Every request carries
 * its round in a small record (struct req) that the pipeline owns until the
 * answer comes back (or the pipeline is freed).
 *
 * Retention. A stored offset below the log start means messages were deleted
 * before camjoin read them. That is never skipped silently: the partition is
 * logged with the exact range, the gap is counted, and the range is written
 * as an `offset_gap` dead letter in the same transaction that moves the
 * stored offset to the log start (batch_add_gap). The same happens when a
 * running fetch goes out of range: librdkafka reports it (auto.offset.reset
 * is "error", source_kafka.c), the pipeline pauses, commits everything it
 * has read, and only then re-positions, so the recorded range is exactly
 * what nobody read.
 *
 * Cooperative revoke. The revoked partitions have left the consumer already
 * (source_kafka.c answers the rebalance at once); what was read of them is
 * still committed: the open batch is sealed, and when every batch sealed so
 * far is done (committed, or dropped by a fence) they are released from the
 * assignment's books. If the new owner commits first, the fence rolls one
 * side back, and that side positions again. The partitions that stay keep
 * flowing into new batches meanwhile.
 */
#include <stdlib.h>
#include <string.h>

#include "camjoin/log.h"
#include "pipeline_int.h"

struct req {
    pipeline_t *p;
    uint64_t round;
    struct req *prev, *next;
};

static struct req *req_new(pipeline_t *p, uint64_t round)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->p = p;
    r->round = round;
    r->next = p->reqs;
    if (p->reqs)
        p->reqs->prev = r;
    p->reqs = r;
    return r;
}

static void req_free(struct req *r)
{
    pipeline_t *p = r->p;
    if (r->prev)
        r->prev->next = r->next;
    else
        p->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

/* An answer came: the request record is freed; NULL when the pipeline is
 * stopping (answers are ignored then), else the pipeline. */
static pipeline_t *req_answered(struct req *r, uint64_t *round)
{
    pipeline_t *p = r->p;
    *round = r->round;
    req_free(r);
    return p->stopping ? NULL : p;
}

void pipeline_free_requests(pipeline_t *p)
{
    while (p->reqs)
        req_free(p->reqs);
}

/* ---- requests ---- */

static void on_offsets(void *ud, const int32_t *parts, const int64_t *next, size_t n);
static void on_warm_row(void *ud, const char *id, size_t len, int32_t partition,
                        int64_t offset);
static void on_warm_done(void *ud, size_t rows);

static int io_read_offsets(void *ud, uint64_t round)
{
    pipeline_t *p = ud;
    struct req *r = req_new(p, round);
    if (!r)
        return -1;
    if (sink_pg_read_offsets(p->sink, on_offsets, r) != 0) {
        req_free(r);
        return -1;
    }
    return 0; /* r comes back in on_offsets */
}

static int io_warm(void *ud, uint64_t round, const int32_t *parts, size_t n)
{
    pipeline_t *p = ud;
    struct req *r = req_new(p, round);
    if (!r)
        return -1;
    p->warm_start_ms = uv_now(p->loop);
    if (sink_pg_warm(p->sink, parts, n, on_warm_row, on_warm_done, r) != 0) {
        req_free(r);
        return -1;
    }
    return 0; /* r: the rows, then on_warm_done */
}

static void on_resolved(void *ud, const source_resolved_t *res)
{
    uint64_t round;
    pipeline_t *p = req_answered(ud, &round);
    if (!p)
        return;
    if (res->status != 0)
        log_warn("offset resolution failed, retrying", "error=\"%s\"", res->err);
    assignment_resolved(p->asg, round, res);
    pipeline_flush(p); /* --until-end may already be satisfied */
}

static int io_resolve(void *ud, uint64_t round, const int32_t *parts, size_t n,
                      int64_t time_ms, int64_t until_ms)
{
    pipeline_t *p = ud;
    struct req *r = req_new(p, round);
    if (!r ||
        source_kafka_resolve(p->src, parts, n, time_ms, until_ms, on_resolved, r) != 0) {
        if (r)
            req_free(r);
        log_error("cannot start offset resolution", NULL);
        return -1;
    }
    return 0;
}

/* The stored offset `from` of partition `id` is below the log start `to`:
 * offsets [from, to) were deleted unread. Logged, counted, and recorded in
 * the open batch, which commits it with the new stored offset. */
static int record_gap(pipeline_t *p, int32_t id, int64_t from, int64_t to)
{
    batch_t *b = batchq_open(p->q, (int64_t)uv_now(p->loop));
    /* every gap is logged: never folded into a "repeated" count */
    log_emit_each(LOG_WARN, "messages lost: deleted by retention before camjoin "
                  "read them; recorded as an offset_gap dead letter", "partition=%d "
                  "from=%lld to=%lld lost_offsets=%lld", (int)id, (long long)from,
                  (long long)to, (long long)(to - from));
    if (!b || batch_add_gap(b, id, from, to) != 0) {
        log_error("cannot buffer the offset_gap dead letter", "partition=%d", (int)id);
        return -1;
    }
    batchq_note(p->q);
    p->st.offset_gaps++;
    p->st.offsets_lost += (uint64_t)(to - from);
    return 0;
}

/* A rebalance runs from the first rebalance callback (revoke or assign) to
 * the moment its partitions are positioned and fetching: counted, timed. */
static void rebalance_done(pipeline_t *p)
{
    if (!p->rebalance_since_ms)
        return;
    hist_record_us(p->rebalance_dur,
                   (int64_t)(uv_now(p->loop) - p->rebalance_since_ms) * 1000);
    p->st.rebalances++;
    p->rebalance_since_ms = 0;
}

static void log_start(pipeline_t *p, const assignment_start_t *st)
{
    const assignment_pos_t *pos = assignment_active(p->asg, st->partition);
    if (st->clamp == ASSIGN_CLAMP_REPLAY_LOW)
        log_warn("--replay-from below the log start: replaying from the log "
                 "start", "partition=%d start=%lld low=%lld", (int)st->partition,
                 (long long)st->wanted, (long long)st->offset);
    else if (st->clamp == ASSIGN_CLAMP_HIGH)
        log_warn("start offset beyond the end of the partition (topic "
                 "recreated?)", "partition=%d start=%lld high=%lld",
                 (int)st->partition, (long long)st->wanted, (long long)st->offset);
    log_info("partition positioned", "partition=%d offset=%lld stored=%lld "
             "high=%lld end=%lld", (int)st->partition, (long long)st->offset,
             (long long)pos->stored, (long long)pos->high, (long long)st->end);
}

/* Eager assignors take the whole assignment in one call: every ACTIVE
 * partition at its next offset (the new ones start there). Cooperative: only
 * the partitions just positioned. */
static int io_positioned(void *ud, const assignment_start_t *starts, size_t n)
{
    pipeline_t *p = ud;
    int coop = source_kafka_cooperative(p->src);
    size_t cnt = coop ? n : assignment_count(p->asg), k = 0;
    int32_t *parts = malloc((cnt ? cnt : 1) * sizeof *parts);
    int64_t *offs = malloc((cnt ? cnt : 1) * sizeof *offs);
    int rc = -1;
    if (!parts || !offs)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (starts[i].clamp == ASSIGN_CLAMP_GAP &&
            record_gap(p, starts[i].partition, starts[i].wanted, starts[i].offset)) {
            pipeline_stop(p, 1);
            goto out;
        }
        log_start(p, &starts[i]);
    }
    for (size_t i = 0; i < cnt; i++) {
        int32_t id = coop ? starts[i].partition : assignment_at(p->asg, i);
        const assignment_pos_t *pos = assignment_active(p->asg, id);
        if (pos) {
            parts[k] = id;
            offs[k++] = pos->next;
        }
    }
    rebalance_done(p); /* if one was under way, it ends here */
    /* paused for a re-positioning, or with nothing buffered any more: the
     * new positions resume fetching (back-pressure keeps its own pause) */
    rc = source_kafka_paused(p->src) && pipeline_may_resume(p)
             ? source_kafka_resume_at(p->src, parts, offs, k)
             : source_kafka_assign(p->src, parts, offs, k);
out:
    free(parts);
    free(offs);
    return rc;
}

const assignment_io pipeline_assignment_io = {
    .read_offsets = io_read_offsets, .warm = io_warm, .resolve = io_resolve,
    .positioned = io_positioned,
};

/* ---- answers from the sink ---- */

static void on_offsets(void *ud, const int32_t *parts, const int64_t *next, size_t n)
{
    uint64_t round;
    pipeline_t *p = req_answered(ud, &round);
    if (p)
        assignment_offsets(p->asg, round, 0, parts, next, n);
}

/* A dedup entry for each event of the window on these partitions, with its
 * position, so a re-read of it is not mistaken for a duplicate. */
static void on_warm_row(void *ud, const char *id, size_t len, int32_t partition,
                        int64_t offset)
{
    struct req *r = ud;
    pipeline_t *p = r->p;
    if (assignment_warming(p->asg, r->round, partition) &&
        dedup_check(p->dedup, id, len, partition, offset, (int64_t)uv_now(p->loop)) < 0)
        /* the window is full or memory ran out: a duplicate of this event
         * is written, and the table's primary key absorbs it */
        log_warn("dedup window cannot hold a warm-up entry", "partition=%d",
                 (int)partition);
}

static void on_warm_done(void *ud, size_t rows)
{
    uint64_t round;
    pipeline_t *p = req_answered(ud, &round);
    if (!p)
        return;
    log_info("dedup window warmed from postgres", "partitions=%zu events=%zu "
             "ms=%llu", assignment_count(p->asg), rows,
             (unsigned long long)(uv_now(p->loop) - p->warm_start_ms));
    assignment_warmed(p->asg, round, 0, rows);
}

/* ---- the source's news ---- */

void pipeline_on_revoke(void *ud, const int32_t *partitions, size_t n, int keep)
{
    pipeline_t *p = ud;
    char t[256];
    log_info("partitions revoked", "count=%zu partitions=%s", n,
             log_ids(t, sizeof t, partitions, n));
    if (!p->rebalance_since_ms) /* a rebalance begins; it ends when positioned */
        p->rebalance_since_ms = uv_now(p->loop);
    assignment_revoke(p->asg, partitions, n, keep);
    if (!keep) {
        pipeline_drop_buffered(p);
        pipeline_flush(p); /* a stop may have been waiting for this */
        return;
    }
    /* cooperative: what was read of them is committed first */
    if (batchq_seal(p->q) != 0) {
        log_error("out of memory sealing a batch", NULL);
        pipeline_stop(p, 1);
        return;
    }
    p->revoke_barrier = batchq_sealed_count(p->q);
    pipeline_release_revoked(p);
    pipeline_flush(p);
}

void pipeline_on_assign(void *ud, const int32_t *partitions, size_t n)
{
    pipeline_t *p = ud;
    char t[256];
    log_info("partitions assigned", "count=%zu partitions=%s", n,
             log_ids(t, sizeof t, partitions, n));
    if (!p->rebalance_since_ms)
        p->rebalance_since_ms = uv_now(p->loop);
    if (n == 0)
        rebalance_done(p); /* nothing to position */
    if (assignment_assign(p->asg, partitions, n) != 0) {
        log_error("out of memory in assignment", NULL);
        pipeline_stop(p, 1);
    }
}

/* The consumer's position at the end of a partition. If the offsets before
 * it were never delivered (commit/abort markers, aborted transactions), they
 * are accounted for, so the stored offset follows the position: lag reaches
 * 0, and --until-end reaches the end. */
void pipeline_on_eof(void *ud, int32_t partition, int64_t offset)
{
    pipeline_skip_to(ud, partition, offset);
}

/* A fetch position is out of range: most likely retention deleted what was
 * not read yet. Stop reading, commit what was read, then re-position from
 * the stored offsets (pipeline_flush), which records the gap exactly. */
void pipeline_on_out_of_range(void *ud, int32_t partition, int64_t offset,
                              const char *msg)
{
    pipeline_t *p = ud;
    char q[600];
    const assignment_pos_t *pos = assignment_active(p->asg, partition);
    if (p->stopping || !pos)
        return;
    log_warn("fetch position out of range: committing what was read, then "
             "re-positioning", "partition=%d offset=%lld next=%lld detail=%s",
             (int)partition, (long long)offset, (long long)pos->next,
             log_quote(q, sizeof q, msg));
    p->reposition = 1;
    source_kafka_pause(p->src);
    pipeline_flush(p);
}
