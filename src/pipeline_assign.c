/* pipeline_assign — where each assigned partition starts reading.
 *
 * On assignment (and after a fenced commit) the pipeline reads the stored
 * offsets from PostgreSQL, asks Kafka for the watermarks (and for the offset
 * of a replay timestamp) on the thread pool, applies --replay-from once per
 * partition, and only then assigns at absolute offsets. Every step checks a
 * generation number, so a rebalance in the middle discards stale answers.
 *
 * Retention. A stored offset below the log start means messages were deleted
 * before camjoin read them. That is never skipped silently: the partition is
 * logged with the exact range, the gap is counted, and the range is written
 * as an `offset_gap` dead letter in the same transaction that moves the
 * stored offset to the log start (batch_add_gap). The same happens when a
 * running fetch goes out of range: librdkafka reports it (auto.offset.reset
 * is "error", source_kafka.c), the pipeline pauses, commits everything it
 * has read, and only then re-reads the stored offsets and re-positions, so
 * the recorded range is exactly what nobody read.
 */
#include <stdlib.h>
#include <string.h>

#include "camjoin/log.h"
#include "pipeline_int.h"

void pipeline_on_revoke(void *ud)
{
    pipeline_t *p = ud;
    for (size_t i = 0; i < p->nassigned; i++)
        p->parts[p->assigned[i]].state = P_NONE;
    log_info("partitions revoked", "count=%zu", p->nassigned);
    p->nassigned = 0;
    p->gen++;
    p->awaiting_assign = 1;
    pipeline_drop_buffered(p);
    pipeline_flush(p); /* a stop may have been waiting for this */
}

void pipeline_on_assign(void *ud, const int32_t *partitions, size_t n)
{
    pipeline_t *p = ud;
    int32_t *a = malloc((n ? n : 1) * sizeof *a);
    if (!a || (n && !pipeline_part(p, partitions[n - 1]))) {
        free(a);
        log_error("out of memory in assignment", NULL);
        pipeline_stop(p, 1);
        return;
    }
    memcpy(a, partitions, n * sizeof *a);
    free(p->assigned);
    p->assigned = a;
    p->nassigned = n;
    log_info("partitions assigned", "count=%zu", n);
    pipeline_resolve(p);
}

/* Step 1 of (re)positioning the assignment: read the stored offsets. */
void pipeline_resolve(pipeline_t *p)
{
    p->gen++;
    p->awaiting_assign = 1;
    for (size_t i = 0; i < p->nassigned; i++) {
        struct part *pt = pipeline_part(p, p->assigned[i]);
        if (!pt) {
            pipeline_stop(p, 1);
            return;
        }
        pt->state = P_RESOLVING;
    }
    p->offsets_gen = p->gen;
    if (sink_pg_read_offsets(p->sink, pipeline_on_offsets, p) != 0) {
        log_error("out of memory queueing a read of the stored offsets", NULL);
        pipeline_stop(p, 1);
    }
}

struct resolve_ctx {
    pipeline_t *p;
    uint64_t gen;
};

static void on_resolved(void *ud, const source_resolved_t *r);

/* Step 3: ask Kafka for watermarks (thread pool). */
static void start_resolve(pipeline_t *p)
{
    struct resolve_ctx *c = malloc(sizeof *c);
    int64_t at = p->replay.kind == REPLAY_TIME ? p->replay.time_ms : -1;
    if (!c || source_kafka_resolve(p->src, p->assigned, p->nassigned, at,
                                   on_resolved, c) != 0) {
        free(c);
        log_error("cannot start offset resolution", NULL);
        pipeline_stop(p, 1);
        return;
    }
    c->p = p;
    c->gen = p->gen;
}

/* Step 2: stored offsets known; warm the dedup window. Also after a fenced
 * commit: the fence means another consumer wrote these partitions (this
 * process may have been a zombie the group had already replaced), so the
 * window lacks what it wrote. */
void pipeline_on_offsets(void *ud, const int32_t *parts, const int64_t *next,
                       size_t n)
{
    pipeline_t *p = ud;
    if (p->offsets_gen != p->gen || p->stopping)
        return; /* superseded by a later assignment */
    p->offsets_gen = 0;
    for (size_t i = 0; i < p->nassigned; i++)
        p->parts[p->assigned[i]].stored = BATCH_OFFSET_NONE;
    for (size_t i = 0; i < n; i++)
        if ((size_t)parts[i] < p->nparts)
            p->parts[parts[i]].stored = next[i];
    if (p->cfg->dedup_warm_up) {
        p->warm_gen = p->gen;
        p->warm_start_ms = uv_now(p->loop);
        if (sink_pg_warm(p->sink, p->assigned, p->nassigned, pipeline_on_warm_row,
                         pipeline_on_warm_done, p) != 0) {
            log_error("out of memory queueing the dedup warm-up", NULL);
            pipeline_stop(p, 1);
        }
        return;
    }
    start_resolve(p);
}

/* Step 2b: a dedup entry for each event of the window on these partitions,
 * with its position, so a re-read of it is not mistaken for a duplicate. */
void pipeline_on_warm_row(void *ud, const char *id, size_t len, int32_t partition,
                          int64_t offset)
{
    pipeline_t *p = ud;
    if (p->warm_gen == p->gen)
        dedup_check(p->dedup, id, len, partition, offset, (int64_t)uv_now(p->loop));
}

void pipeline_on_warm_done(void *ud, size_t rows)
{
    pipeline_t *p = ud;
    if (p->warm_gen != p->gen || p->stopping)
        return;
    log_info("dedup window warmed from postgres", "partitions=%zu events=%zu "
             "ms=%llu", p->nassigned, rows,
             (unsigned long long)(uv_now(p->loop) - p->warm_start_ms));
    start_resolve(p);
}

/* The stored offset `from` of partition `id` is below the log start `to`:
 * offsets [from, to) were deleted unread. Logged, counted, and recorded in
 * the open batch, which commits it with the new stored offset. */
static void record_gap(pipeline_t *p, int32_t id, int64_t from, int64_t to)
{
    batch_t *b = pipeline_open_batch(p);
    /* every gap is logged: never folded into a "repeated" count */
    log_emit_each(LOG_WARN, "messages lost: deleted by retention before camjoin "
                  "read them; recorded as an offset_gap dead letter", "partition=%d "
                  "from=%lld to=%lld lost_offsets=%lld", (int)id, (long long)from,
                  (long long)to, (long long)(to - from));
    if (!b || batch_add_gap(b, id, from, to) != 0) {
        log_error("cannot buffer the offset_gap dead letter", "partition=%d", (int)id);
        pipeline_stop(p, 1);
        return;
    }
    p->buffered++;
    p->st.offset_gaps++;
    p->st.offsets_lost += (uint64_t)(to - from);
}

/* Where partition i starts: replay spec (first assignment only), else the
 * stored offset, else auto.offset.reset. Clamped into [low, high]. */
static int64_t start_offset(pipeline_t *p, struct part *pt, int32_t id,
                            const source_resolved_t *r, size_t i)
{
    int64_t start = pt->stored;
    int replayed = 0;
    if (!pt->replayed && p->replay.kind != REPLAY_NONE) {
        replayed = p->replay.kind != REPLAY_PARTITIONS;
        switch (p->replay.kind) {
        case REPLAY_EARLIEST: start = r->low[i]; break;
        case REPLAY_LATEST: start = r->high[i]; break;
        case REPLAY_OFFSET: start = p->replay.offset; break;
        case REPLAY_TIME: start = r->at_time[i]; break;
        case REPLAY_PARTITIONS:
            for (size_t k = 0; k < p->replay.n; k++)
                if (p->replay.partitions[k] == id) {
                    start = p->replay.offsets[k];
                    replayed = 1;
                }
            break;
        default: break;
        }
    }
    pt->replayed = 1;
    if (start == BATCH_OFFSET_NONE)
        start = p->offset_reset_latest ? r->high[i] : r->low[i];
    if (start < r->low[i] && !replayed) {
        record_gap(p, id, start, r->low[i]);
        start = r->low[i];
    } else if (start < r->low[i]) {
        log_warn("--replay-from below the log start: replaying from the log "
                 "start", "partition=%d start=%lld low=%lld", (int)id,
                 (long long)start, (long long)r->low[i]);
        start = r->low[i];
    } else if (start > r->high[i]) {
        log_warn("start offset beyond the end of the partition (topic "
                 "recreated?)", "partition=%d start=%lld high=%lld", (int)id,
                 (long long)start, (long long)r->high[i]);
        start = r->high[i];
    }
    return start;
}

/* Step 4: assign at absolute offsets. */
static void on_resolved(void *ud, const source_resolved_t *r)
{
    struct resolve_ctx *c = ud;
    pipeline_t *p = c->p;
    uint64_t gen = c->gen;
    free(c);
    if (gen != p->gen || p->stopping)
        return;
    if (r->status != 0) {
        log_warn("offset resolution failed, retrying", "error=\"%s\"", r->err);
        p->need_resolve = 1; /* the tick retries */
        return;
    }
    int64_t *starts = malloc((r->n ? r->n : 1) * sizeof *starts);
    if (!starts) {
        pipeline_stop(p, 1);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct part *pt = &p->parts[r->partitions[i]];
        starts[i] = start_offset(p, pt, r->partitions[i], r, i);
        pt->next = pt->committed = starts[i];
        pt->high = r->high[i];
        pt->state = P_ACTIVE;
        log_info("partition positioned", "partition=%d offset=%lld "
                 "stored=%lld high=%lld", (int)r->partitions[i],
                 (long long)starts[i], (long long)pt->stored,
                 (long long)pt->high);
    }
    /* paused for a re-positioning, or with nothing buffered any more: the
     * new positions resume fetching (back-pressure keeps its own pause) */
    int rc = source_kafka_paused(p->src) && pipeline_may_resume(p)
                 ? source_kafka_resume_at(p->src, r->partitions, starts, r->n)
                 : source_kafka_assign(p->src, r->partitions, starts, r->n);
    if (rc != 0) {
        for (size_t i = 0; i < r->n; i++)
            p->parts[r->partitions[i]].state = P_RESOLVING;
        p->need_resolve = 1; /* the tick tries again */
    } else {
        p->awaiting_assign = 0;
    }
    free(starts);
    pipeline_flush(p); /* --until-end may already be satisfied */
}

/* The consumer's position at the end of a partition. If the offsets before
 * it were never delivered (commit/abort markers, aborted transactions), they
 * are accounted for, so the stored offset follows the position: lag reaches
 * 0, and --until-end reaches the end. */
void pipeline_on_eof(void *ud, int32_t partition, int64_t offset)
{
    pipeline_t *p = ud;
    struct part *pt = pipeline_part_active(p, partition);
    if (p->stopping || !pt || offset <= pt->next)
        return;
    p->st.offsets_skipped += (uint64_t)(offset - pt->next);
    if (!pipeline_open_batch(p)) {
        pipeline_stop(p, 1);
        return;
    }
    pt->next = offset;
    p->buffered++;
    batch_note_offset(p->open, partition, offset - 1);
    pipeline_flush(p);
}


/* A fetch position is out of range: most likely retention deleted what was
 * not read yet. Stop reading, commit what was read, then re-position from
 * the stored offsets (pipeline_flush), which records the gap exactly. */
void pipeline_on_out_of_range(void *ud, int32_t partition, int64_t offset,
                              const char *msg)
{
    pipeline_t *p = ud;
    char q[600];
    struct part *pt = pipeline_part_active(p, partition);
    if (p->stopping || !pt)
        return;
    log_warn("fetch position out of range: committing what was read, then "
             "re-positioning", "partition=%d offset=%lld next=%lld detail=%s",
             (int)partition, (long long)offset, (long long)pt->next,
             log_quote(q, sizeof q, msg));
    p->reposition = 1;
    source_kafka_pause(p->src);
    pipeline_flush(p);
}
