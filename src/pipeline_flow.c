/* pipeline_flow — messages into batches, batches into transactions, and the
 * stop; see pipeline_int.h for the pipeline's files and their layering.
 *
 * A message is routed (route.c) into the open batch of the batch queue
 * (batchq.c): a row, a dead letter, or only its offset (a duplicate, a
 * dropped miss). A batch is sealed when it is full, or when it has lingered
 * batch.max_wait_ms; one sealed batch at a time goes to the sink, with the
 * fence: each partition's offset as stored now (assignment_stored). The sink
 * commits its rows and offsets in one transaction (sink_pg.h); only then do
 * the committed positions move (assignment_committed), the latencies get
 * their samples, and the next batch goes.
 *
 * Back-pressure: when batch.max_buffered messages are buffered, fetching is
 * paused; it resumes, at each partition's next offset, once the buffer is
 * below half of that. A fence that does not hold (another consumer moved the
 * offsets) drops every uncommitted batch, whose messages are read again
 * after the partitions are positioned again from the stored offsets.
 *
 * The stop: fetching pauses, the buffer is flushed, then pipeline_finish()
 * closes everything from a timer callback of its own (on_close), so nothing
 * is torn down while a librdkafka or sink callback is on the stack.
 */
#include <assert.h>
#include <stdlib.h>

#include "camjoin/base.h"
#include "camjoin/log.h"
#include "camjoin/notify.h"
#include "camjoin/route.h"
#include "pipeline_int.h"

/* ---- batches ---- */

/* Drops everything not yet sent; its messages will be read again. */
void pipeline_drop_buffered(pipeline_t *p)
{
    size_t dropped = batchq_drop(p->q);
    if (dropped)
        log_info("dropped uncommitted messages; they will be read again",
                 "messages=%zu", dropped);
}

/* Resumes every active partition at the next offset it expects. */
static void resume_at_next(pipeline_t *p)
{
    size_t n = 0, cnt = assignment_count(p->asg);
    int32_t *parts = malloc((cnt ? cnt : 1) * sizeof *parts);
    int64_t *offs = malloc((cnt ? cnt : 1) * sizeof *offs);
    if (parts && offs) {
        for (size_t i = 0; i < cnt; i++) {
            int32_t id = assignment_at(p->asg, i);
            const assignment_pos_t *pos = assignment_peek(p->asg, id);
            if (pos) {
                parts[n] = id;
                offs[n++] = pos->next;
            }
        }
        if (source_kafka_resume_at(p->src, parts, offs, n) != 0 &&
            assignment_reposition(p->asg) != 0)
            pipeline_stop(p, 1);
    } else {
        log_error("out of memory resuming partitions", NULL);
        pipeline_stop(p, 1);
    }
    free(parts);
    free(offs);
}

/* Paused partitions may fetch again: not stopping, no re-positioning
 * pending, and the buffer drained below half of batch.max_buffered. */
int pipeline_may_resume(const pipeline_t *p)
{
    return !p->stopping && !p->reposition &&
           batchq_buffered(p->q) <= (size_t)p->cfg->batch_max_buffered / 2;
}

static void backpressure(pipeline_t *p)
{
    size_t max = (size_t)p->cfg->batch_max_buffered;
    size_t buffered = batchq_buffered(p->q);
    if (!p->stopping && buffered >= max && !source_kafka_paused(p->src)) {
        log_info("buffer full, pausing partitions", "buffered=%zu", buffered);
        source_kafka_pause(p->src);
        p->paused_since_ms = uv_now(p->loop);
    } else if (source_kafka_paused(p->src) && pipeline_may_resume(p)) {
        log_info("buffer drained, resuming partitions", "buffered=%zu", buffered);
        p->paused_since_ms = 0;
        resume_at_next(p);
    }
}

/* Revoking partitions whose batches are all done (committed, or dropped by
 * a fence) leave the assignment's books. */
void pipeline_release_revoked(pipeline_t *p)
{
    if (!p->revoke_barrier || batchq_done_count(p->q) < p->revoke_barrier)
        return;
    int32_t *ids = malloc((assignment_count(p->asg) + 1) * sizeof *ids);
    if (!ids) {
        pipeline_stop(p, 1);
        return;
    }
    p->revoke_barrier = 0;
    size_t n = assignment_release(p->asg, ids);
    if (n) {
        char t[256];
        log_info("revoked partitions released", "count=%zu partitions=%s", n,
                 log_ids(t, sizeof t, ids, n));
    }
    free(ids);
}

/* ---- messages ---- */

static void add_dead(pipeline_t *p, batch_t *b, const source_msg_t *m,
                     const char *reason)
{
    pipeline_count_invalid(p, reason);
    if (batch_add_dead(b, m->partition, m->offset, m->value, m->len, reason) ||
        batch_add_stamp(b, m->timestamp_ms, -1)) {
        log_error("cannot buffer a dead letter", "reason=%s", reason);
        pipeline_stop(p, 1);
    }
}

static void process(pipeline_t *p, batch_t *b, const source_msg_t *m)
{
    const route_rules rules = {
        .max_message_bytes = (size_t)p->cfg->max_message_bytes,
        .max_future_ms = p->cfg->max_future_ms, .max_age_ms = p->cfg->max_age_ms,
        .on_miss = p->cfg->on_miss,
    };
    route_result r;
    route_message(&rules, p->dedup, p->ref, m->value, m->len, m->partition,
                  m->offset, clock_wall_ms(), (int64_t)uv_now(p->loop), &r);
    p->st.join_misses += (uint64_t)r.join_miss;
    switch (r.kind) {
    case ROUTE_DEAD:
        add_dead(p, b, m, r.reason);
        break;
    case ROUTE_DUPLICATE:
    case ROUTE_DROPPED: /* no row; the offset is read all the same */
        p->st.duplicates += r.kind == ROUTE_DUPLICATE;
        if (batch_note_offset(b, m->partition, m->offset) != 0) {
            log_error("out of memory noting an offset", NULL);
            pipeline_stop(p, 1);
        }
        break;
    case ROUTE_ROW:
        if (batch_add_event(b, &r.ev, r.row, m->partition, m->offset) != 0)
            add_dead(p, b, m, "unencodable");
        else if (batch_add_stamp(b, m->timestamp_ms, r.ev.event_ts_us / 1000) != 0) {
            log_error("out of memory buffering a row", NULL);
            pipeline_stop(p, 1);
        }
        break;
    }
    route_clear(&r);
}

void pipeline_on_message(void *ud, const source_msg_t *m)
{
    pipeline_t *p = ud;
    assignment_pos_t *pt = assignment_active(p->asg, m->partition);
    if (p->stopping || !pt || m->offset < pt->next)
        return; /* not ours (any more), or a re-delivery of a skipped range */
    if (pt->end >= 0 && m->offset >= pt->end) { /* past --replay-until's bound */
        pipeline_skip_to(p, m->partition, pt->end); /* [next, end) held no message */
        return;
    }
    batch_t *b = batchq_open(p->q, (int64_t)uv_now(p->loop));
    if (!b) {
        log_error("out of memory allocating a batch", NULL);
        pipeline_stop(p, 1);
        return;
    }
    if (!p->st.first_message_ms)
        p->st.first_message_ms = clock_wall_ms();
    if (m->offset > pt->next) /* transaction markers, aborted data, compaction */
        p->st.offsets_skipped += (uint64_t)(m->offset - pt->next);
    pt->next = m->offset + 1;
    p->st.consumed++;
    batchq_note(p->q);
    process(p, b, m);
    batch_note_time(b, m->partition, m->timestamp_ms); /* for the lag in seconds */
    p->st.consumed_bytes += m->len;
    if (batch_messages(b) >= (size_t)p->cfg->batch_max_rows && batchq_seal(p->q))
        pipeline_stop(p, 1);
}

void pipeline_skip_to(pipeline_t *p, int32_t partition, int64_t offset)
{
    assignment_pos_t *pos = assignment_active(p->asg, partition);
    if (pos && pos->end >= 0 && offset > pos->end)
        offset = pos->end; /* --replay-until: nothing past the bound */
    if (p->stopping || !pos || offset <= pos->next)
        return;
    p->st.offsets_skipped += (uint64_t)(offset - pos->next);
    batch_t *b = batchq_open(p->q, (int64_t)uv_now(p->loop));
    if (!b) {
        pipeline_stop(p, 1);
        return;
    }
    pos->next = offset;
    batchq_note(p->q);
    if (batch_note_offset(b, partition, offset - 1) != 0) {
        log_error("out of memory noting an offset", NULL);
        pipeline_stop(p, 1);
        return;
    }
    pipeline_flush(p);
}

void pipeline_on_drained(void *ud)
{
    pipeline_t *p = ud;
    backpressure(p);
    pipeline_flush(p);
}

/* ---- flushing and commits ---- */

static void on_txn_done(void *ud, batch_t *b, enum sink_result r,
                        size_t inserted, double commit_ms);

/* The fence: each partition's offset as stored now. Returns 0, or -1 when
 * out of memory (the batch is still ours). */
static int submit(pipeline_t *p, batch_t *b)
{
    size_t n;
    const batch_offset_t *off = batch_offsets(b, &n);
    int64_t *expected = malloc((n ? n : 1) * sizeof *expected);
    if (!expected)
        return -1;
    for (size_t i = 0; i < n; i++)
        expected[i] = assignment_stored(p->asg, off[i].partition);
    /* on success the batch is the sink's until on_txn_done, expected for good */
    assert(!p->sent && sink_pg_pending(p->sink) == 0); /* one at a time */
    if (sink_pg_submit(p->sink, b, expected, on_txn_done, p) != 0) {
        free(expected);
        return -1;
    }
    p->sent = b;
    return 0;
}

static void on_linger(uv_timer_t *t) { pipeline_flush(t->data); }

/* --until-end: every partition committed up to its end at assignment;
 * --replay-until: up to its bound. */
static int until_end_reached(pipeline_t *p)
{
    if ((!p->cfg->until_end && !p->cfg->replay_until) || !assignment_settled(p->asg) ||
        batchq_buffered(p->q))
        return 0;
    for (size_t i = 0; i < assignment_count(p->asg); i++) {
        const assignment_pos_t *pos = assignment_peek(p->asg, assignment_at(p->asg, i));
        if (!pos || pos->committed < (pos->end >= 0 ? pos->end : pos->high))
            return 0;
    }
    return 1;
}

void pipeline_flush(pipeline_t *p)
{
    if (p->stopped || !p->sink || sink_pg_pending(p->sink) > 0)
        return;
    batch_t *open = batchq_current(p->q), *next;
    if (!batchq_sealed(p->q) && open && batch_messages(open)) {
        int64_t age = (int64_t)uv_now(p->loop) - batchq_open_since(p->q);
        if (!p->stopping && !p->reposition && age < p->cfg->batch_max_wait_ms) {
            uv_timer_start(&p->linger, on_linger,
                           (uint64_t)(p->cfg->batch_max_wait_ms - age), 0);
            return;
        }
        if (batchq_seal(p->q)) {
            log_error("out of memory sealing a batch; dropping the buffer "
                      "(it is read again on restart)", NULL);
            p->exit_code = 1;
            pipeline_drop_buffered(p);
            pipeline_finish(p);
            return;
        }
    }
    if ((next = batchq_next(p->q))) {
        if (submit(p, next) != 0) {
            log_error("out of memory queueing a batch for postgres; dropping "
                      "the buffer (it is read again on restart)", NULL);
            batchq_done(p->q, next); /* its messages are read again */
            p->exit_code = 1;
            pipeline_drop_buffered(p);
            pipeline_finish(p);
        }
        return;
    }
    if (p->stopping)
        pipeline_finish(p);
    else if (p->reposition && !batchq_buffered(p->q)) {
        /* every message read before the out-of-range is committed: now the
         * stored offsets are exact, and positioning records the gap */
        p->reposition = 0;
        if (assignment_reposition(p->asg) != 0)
            pipeline_stop(p, 1);
    } else if (until_end_reached(p)) {
        log_info("reached the end of every assigned partition", NULL);
        pipeline_stop(p, 0);
    }
}

/* The batch is durable: one latency sample per message it wrote. */
static void record_latency(pipeline_t *p, const batch_t *b, double commit_ms)
{
    size_t n;
    const batch_stamp_t *st = batch_stamps(b, &n);
    int64_t now_us = clock_wall_us();
    for (size_t i = 0; i < n; i++) {
        if (st[i].produced_ms >= 0)
            hist_record_us(p->lat_produce, now_us - st[i].produced_ms * 1000);
        if (st[i].event_ms != -1)
            hist_record_us(p->lat_event, now_us - st[i].event_ms * 1000);
    }
    hist_record_us(p->commit_dur, (int64_t)(commit_ms * 1000));
    p->st.last_commit_ms = now_us / 1000;
}

static void on_txn_done(void *ud, batch_t *b, enum sink_result r,
                        size_t inserted, double commit_ms)
{
    pipeline_t *p = ud;
    size_t n, msgs = batch_messages(b);
    batch_offset_t *off = batch_offsets(b, &n);
    assert(b == p->sent);
    p->sent = NULL; /* ours again */
    if (r == SINK_OK) {
        for (size_t i = 0; i < n; i++) {
            if (!assignment_committed(p->asg, off[i].partition, off[i].next))
                continue;
            p->kafka_dirty = 1;
            if (off[i].last_ts_ms >= 0) /* ACTIVE: committed just moved */
                assignment_active(p->asg, off[i].partition)->committed_ts_ms =
                    off[i].last_ts_ms;
        }
        record_latency(p, b, commit_ms);
        hist_record_us(p->batch_rows, (int64_t)batch_rows(b) * 1000000);
        p->st.restaged = sink_pg_restaged(p->sink);
        p->st.batches++;
        p->st.rows_committed += batch_rows(b);
        p->st.rows_inserted += inserted;
        p->st.dead_letters += batch_dead(b);
        log_debug("batch committed", "messages=%zu rows=%zu inserted=%zu "
                  "dead=%zu commit_ms=%.2f", msgs, batch_rows(b), inserted,
                  batch_dead(b), commit_ms);
    } else {
        p->st.fenced++;
        log_warn("offsets moved by another consumer: batch rolled back, "
                 "re-reading stored offsets", "messages=%zu", msgs);
        pipeline_drop_buffered(p);
        if (!p->stopping && assignment_reposition(p->asg) != 0)
            pipeline_stop(p, 1);
    }
    batchq_done(p->q, b); /* recycled */
    pipeline_release_revoked(p);
    backpressure(p);
    pipeline_flush(p);
}


/* ---- stop, signals, timers ---- */

void pipeline_stop(pipeline_t *p, int code)
{
    if (code > p->exit_code)
        p->exit_code = code;
    if (p->stopping)
        return;
    p->stopping = 1;
    log_info("stopping: flushing buffered rows", "buffered=%zu", batchq_buffered(p->q));
    notify_stopping("stopping: flushing buffered rows");
    source_kafka_pause(p->src);
    uv_timer_stop(&p->linger);
    pipeline_flush(p);
}

void pipeline_close(pipeline_t *p)
{
    pipeline_commit_kafka(p);
    source_kafka_close(p->src);
    sink_pg_free(p->sink); /* an unfinished transaction rolls back; its batch
                              is freed with the sink */
    p->sent = NULL;
    p->sink = NULL;
    upkeep_close(p->upkeep); /* a run on the pool stops at its next check */
    p->upkeep = NULL;
    refwatch_close(p->refwatch);
    p->refwatch = NULL;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&p->sig[i], NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
    uv_close((uv_handle_t *)&p->linger, NULL);
    uv_close((uv_handle_t *)&p->closer, NULL);
    uv_close((uv_handle_t *)&p->watchdog, NULL);
    uv_close((uv_handle_t *)&p->start_timer, NULL);
    http_close(p->http);
    p->http = NULL;
}

/* Closes everything: the loop runs dry. Runs from its own timer callback,
 * never from inside a librdkafka or sink callback, so nothing below it is
 * torn down while it is still on the stack. */
static void on_close(uv_timer_t *t)
{
    pipeline_t *p = t->data;
    pipeline_close(p);
    pipeline_log_stats(p, "stopped");
}

void pipeline_finish(pipeline_t *p)
{
    if (p->stopped)
        return;
    p->stopped = p->stopping = 1;
    uv_timer_start(&p->closer, on_close, 0, 0);
}

/* Tells Kafka the committed positions, for lag tools only (PostgreSQL holds
 * the truth): once a tick rather than once a transaction, which at low rates
 * would be hundreds of OffsetCommit requests a second. */
void pipeline_commit_kafka(pipeline_t *p)
{
    int32_t parts[64];
    int64_t next[64];
    size_t k = 0;
    if (!p->kafka_dirty || !p->src)
        return;
    p->kafka_dirty = 0;
    for (size_t i = 0; i < assignment_count(p->asg); i++) {
        int32_t id = assignment_at(p->asg, i);
        const assignment_pos_t *pos = assignment_peek(p->asg, id);
        if (!pos || pos->committed <= 0)
            continue;
        parts[k] = id;
        next[k++] = pos->committed;
        if (k == 64) {
            source_kafka_commit_async(p->src, parts, next, k);
            k = 0;
        }
    }
    if (k)
        source_kafka_commit_async(p->src, parts, next, k);
}

