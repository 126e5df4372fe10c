/* assignment — see include/camjoin/assignment.h.
 *
 * Positioning is a pipeline of three requests per round:
 *
 *   READ_OFFSETS  the owner reads camjoin_offsets (one query for the whole
 *                 group and topic; the answer holds every stored partition)
 *   WARMING       the owner streams the dedup window's event ids of these
 *                 partitions from PostgreSQL into the dedup set, each with its
 *                 position, so a re-read of an event is not a duplicate
 *   RESOLVING     the owner asks Kafka for the watermarks (thread pool)
 *
 * and then the start offset of each partition is decided here (start_of):
 * the --replay-from spec on the partition's first positioning, else the
 * stored offset, else auto.offset.reset; clamped into [low, high]. A stored
 * offset below the log start is an offset gap: reported with the exact range,
 * never skipped silently.
 *
 * Rounds instead of flags. Before, each step had its own generation counter
 * and the assignment as a whole had "awaiting", "need resolve" and "resync"
 * flags; with cooperative rebalancing several rounds may be under way at
 * once (partitions added while others are re-positioned), so the round is
 * kept per partition: a reply is applied to exactly the partitions that
 * still wait in its round and state. A failed request leaves its partitions
 * in READ_OFFSETS with round 0, and assignment_tick() starts them again.
 *
 * Revoking (cooperative). An ACTIVE partition being revoked may have
 * messages in batches not yet committed. It goes to REVOKING: the owner
 * takes no new messages of it, commits what it read, and then calls
 * assignment_release() and hands the partitions back to Kafka. Nothing it
 * read is dropped, and the partitions that stay keep flowing meanwhile.
 */
#include "camjoin/assignment.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/batch.h"

struct slot {
    enum assignment_state state;
    uint64_t round;        /* the round it waits in; 0: none outstanding */
    int replayed;          /* the replay spec was applied to it */
    assignment_pos_t pos;
};

struct assignment {
    assignment_io io;
    void *ud;
    replay_spec_t replay, until; /* --replay-from, --replay-until */
    int warm_up, reset_latest;
    struct slot *slots;    /* indexed by partition id */
    size_t nslots;
    int32_t *ours;         /* partitions not IDLE, in assignment order */
    size_t nours, capours;
    uint64_t round;        /* the last round started */
    int awaiting;          /* no assign() since the start or an eager revoke */
    int retry;             /* a request failed: the tick starts a new round */
};

int assignment_legal(enum assignment_state from, enum assignment_state to)
{
    if (to == ASSIGN_IDLE)
        return from != ASSIGN_IDLE;
    switch (from) {
    case ASSIGN_IDLE: return to == ASSIGN_READ_OFFSETS;
    case ASSIGN_READ_OFFSETS:
        return to == ASSIGN_READ_OFFSETS || to == ASSIGN_WARMING ||
               to == ASSIGN_RESOLVING;
    case ASSIGN_WARMING: return to == ASSIGN_READ_OFFSETS || to == ASSIGN_RESOLVING;
    case ASSIGN_RESOLVING: return to == ASSIGN_READ_OFFSETS || to == ASSIGN_ACTIVE;
    case ASSIGN_ACTIVE: return to == ASSIGN_READ_OFFSETS || to == ASSIGN_REVOKING;
    case ASSIGN_REVOKING: return to == ASSIGN_READ_OFFSETS;
    }
    return 0;
}

static void set_state(struct slot *s, enum assignment_state to)
{
    assert(assignment_legal(s->state, to));
    s->state = to;
}

static struct slot *slot_get(assignment_t *a, int32_t id)
{
    if (id < 0)
        return NULL;
    if ((size_t)id >= a->nslots) {
        size_t n = (size_t)id + 1 > 2 * a->nslots ? (size_t)id + 1 : 2 * a->nslots;
        struct slot *ns = realloc(a->slots, n * sizeof *ns);
        if (!ns)
            return NULL;
        memset(ns + a->nslots, 0, (n - a->nslots) * sizeof *ns);
        a->slots = ns;
        a->nslots = n;
    }
    return &a->slots[id];
}

static struct slot *slot_find(const assignment_t *a, int32_t id)
{
    return id >= 0 && (size_t)id < a->nslots ? &a->slots[id] : NULL;
}

assignment_t *assignment_new(const assignment_io *io, void *ud,
                             replay_spec_t *replay, replay_spec_t *until,
                             int dedup_warm_up, int offset_reset_latest)
{
    assignment_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->io = *io;
    a->ud = ud;
    a->replay = *replay;
    memset(replay, 0, sizeof *replay); /* its arrays are ours now */
    a->until = *until;
    memset(until, 0, sizeof *until);
    a->warm_up = dedup_warm_up;
    a->reset_latest = offset_reset_latest;
    a->awaiting = 1;
    return a;
}

void assignment_free(assignment_t *a)
{
    if (!a)
        return;
    replay_spec_clear(&a->replay);
    replay_spec_clear(&a->until);
    free(a->slots);
    free(a->ours);
    free(a);
}

/* ---- the partitions in one round ---- */

/* Writes into out the ours partitions in `state` waiting in `round`. */
static size_t collect(const assignment_t *a, enum assignment_state state,
                      uint64_t round, int32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < a->nours; i++) {
        const struct slot *s = &a->slots[a->ours[i]];
        if (s->state == state && s->round == round)
            out[k++] = a->ours[i];
    }
    return k;
}

/* A request failed: back to READ_OFFSETS, out of any round, for the tick. */
static void stall(assignment_t *a, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct slot *s = &a->slots[ids[i]];
        set_state(s, ASSIGN_READ_OFFSETS);
        s->round = 0;
    }
    if (n)
        a->retry = 1;
}

static int32_t *scratch(const assignment_t *a)
{
    return malloc((a->nours ? a->nours : 1) * sizeof(int32_t));
}

static void start_round(assignment_t *a, const int32_t *ids, size_t n)
{
    uint64_t r = ++a->round;
    for (size_t i = 0; i < n; i++) {
        struct slot *s = &a->slots[ids[i]];
        set_state(s, ASSIGN_READ_OFFSETS);
        s->round = r;
    }
    if (n && a->io.read_offsets(a->ud, r) != 0)
        stall(a, ids, n);
}

static void to_resolving(assignment_t *a, uint64_t r, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        set_state(&a->slots[ids[i]], ASSIGN_RESOLVING);
    int64_t at = a->replay.kind == REPLAY_TIME ? a->replay.time_ms : -1;
    int64_t until = a->until.kind == REPLAY_TIME ? a->until.time_ms : -1;
    if (a->io.resolve(a->ud, r, ids, n, at, until) != 0)
        stall(a, ids, n);
}

/* ---- the group's decisions ---- */

static int ours_add(assignment_t *a, int32_t id)
{
    if (a->nours == a->capours) {
        size_t n = a->capours ? 2 * a->capours : 16;
        int32_t *no = realloc(a->ours, n * sizeof *no);
        if (!no)
            return -1;
        a->ours = no;
        a->capours = n;
    }
    a->ours[a->nours++] = id;
    return 0;
}

static void ours_remove(assignment_t *a, int32_t id)
{
    for (size_t i = 0; i < a->nours; i++)
        if (a->ours[i] == id) {
            memmove(a->ours + i, a->ours + i + 1, (--a->nours - i) * sizeof *a->ours);
            return;
        }
}

int assignment_assign(assignment_t *a, const int32_t *parts, size_t n)
{
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return -1;
    a->awaiting = 0;
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_get(a, parts[i]);
        if (!s || (s->state == ASSIGN_IDLE && ours_add(a, parts[i]) != 0)) {
            free(ids);
            return -1;
        }
        ids[i] = parts[i]; /* already ours (a surprise): positioned again */
    }
    start_round(a, ids, n);
    free(ids);
    return 0;
}

void assignment_revoke(assignment_t *a, const int32_t *parts, size_t n,
                       int cooperative)
{
    if (!cooperative) {
        for (size_t i = 0; i < a->nours; i++) {
            struct slot *s = &a->slots[a->ours[i]];
            set_state(s, ASSIGN_IDLE);
            s->round = 0;
        }
        a->nours = 0;
        a->awaiting = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_find(a, parts[i]);
        if (!s || s->state == ASSIGN_IDLE || s->state == ASSIGN_REVOKING)
            continue;
        s->round = 0;
        if (s->state == ASSIGN_ACTIVE) {
            set_state(s, ASSIGN_REVOKING);
        } else {
            set_state(s, ASSIGN_IDLE);
            ours_remove(a, parts[i]);
        }
    }
}

size_t assignment_release(assignment_t *a, int32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < a->nours;) {
        struct slot *s = &a->slots[a->ours[i]];
        if (s->state != ASSIGN_REVOKING) {
            i++;
            continue;
        }
        set_state(s, ASSIGN_IDLE);
        out[k++] = a->ours[i];
        ours_remove(a, a->ours[i]);
    }
    return k;
}

int assignment_reposition(assignment_t *a)
{
    int32_t *ids = scratch(a);
    size_t k = 0;
    if (!ids)
        return -1;
    for (size_t i = 0; i < a->nours; i++)
        if (a->slots[a->ours[i]].state != ASSIGN_REVOKING)
            ids[k++] = a->ours[i];
    a->retry = 0; /* the new round covers the stalled ones too */
    start_round(a, ids, k);
    free(ids);
    return 0;
}

int assignment_tick(assignment_t *a)
{
    if (!a->retry)
        return 0;
    int32_t *ids = scratch(a);
    if (!ids)
        return -1;
    a->retry = 0;
    start_round(a, ids, collect(a, ASSIGN_READ_OFFSETS, 0, ids));
    free(ids);
    return 0;
}

/* ---- answers ---- */

void assignment_offsets(assignment_t *a, uint64_t round, int status,
                        const int32_t *parts, const int64_t *next, size_t n)
{
    int32_t *ids = scratch(a);
    size_t k;
    if (!ids || !(k = collect(a, ASSIGN_READ_OFFSETS, round, ids)) || status != 0) {
        if (ids)
            stall(a, ids, collect(a, ASSIGN_READ_OFFSETS, round, ids));
        else
            a->retry = 1; /* out of memory: the tick tries again */
        free(ids);
        return;
    }
    for (size_t i = 0; i < k; i++)
        a->slots[ids[i]].pos.stored = BATCH_OFFSET_NONE;
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_find(a, parts[i]);
        if (s && s->state == ASSIGN_READ_OFFSETS) /* this round or a later one,
                                                   which sets stored again */
            s->pos.stored = next[i];
    }
    if (!a->warm_up) {
        to_resolving(a, round, ids, k);
    } else {
        for (size_t i = 0; i < k; i++)
            set_state(&a->slots[ids[i]], ASSIGN_WARMING);
        if (a->io.warm(a->ud, round, ids, k) != 0)
            stall(a, ids, k);
    }
    free(ids);
}

int assignment_warming(const assignment_t *a, uint64_t round, int32_t partition)
{
    const struct slot *s = slot_find(a, partition);
    return s && s->state == ASSIGN_WARMING && s->round == round;
}

void assignment_warmed(assignment_t *a, uint64_t round, int status, size_t rows)
{
    (void)rows;
    int32_t *ids = scratch(a);
    size_t k;
    if (!ids) {
        a->retry = 1;
        return;
    }
    k = collect(a, ASSIGN_WARMING, round, ids);
    if (status != 0)
        stall(a, ids, k);
    else if (k)
        to_resolving(a, round, ids, k);
    free(ids);
}

assignment_start_t assignment_plan(const replay_spec_t *from, int apply_from,
                                   const replay_spec_t *until, int reset_latest, int32_t id,
                                   int64_t stored, int64_t low, int64_t high, int64_t at_time,
                                   int64_t at_until)
{
    assignment_start_t st = {.partition = id, .clamp = ASSIGN_CLAMP_NONE, .end = -1};
    int64_t start = stored;
    if (apply_from && from->kind != REPLAY_NONE) {
        st.replayed = from->kind != REPLAY_PARTITIONS;
        switch (from->kind) {
        case REPLAY_EARLIEST: start = low; break;
        case REPLAY_LATEST: start = high; break;
        case REPLAY_OFFSET: start = from->offset; break;
        case REPLAY_TIME: start = at_time; break;
        case REPLAY_PARTITIONS:
            for (size_t k = 0; k < from->n; k++)
                if (from->partitions[k] == id) {
                    start = from->offsets[k];
                    st.replayed = 1;
                }
            break;
        default: break;
        }
    }
    if (start == BATCH_OFFSET_NONE)
        start = reset_latest ? high : low;
    st.wanted = start;
    if (start < low)
        st.clamp = st.replayed ? ASSIGN_CLAMP_REPLAY_LOW : ASSIGN_CLAMP_GAP;
    else if (start > high)
        st.clamp = ASSIGN_CLAMP_HIGH;
    st.offset = start < low ? low : start > high ? high : start;
    switch (until->kind) {
    case REPLAY_OFFSET: st.end = until->offset; break;
    case REPLAY_TIME: st.end = at_until; break;
    case REPLAY_PARTITIONS:
        st.end = high;
        for (size_t k = 0; k < until->n; k++)
            if (until->partitions[k] == id)
                st.end = until->offsets[k];
        break;
    default: return st; /* no bound */
    }
    st.end = st.end < st.offset ? st.offset : st.end > high ? high : st.end;
    return st;
}

/* Where partition `id` starts and stops: assignment_plan(), the replay spec
 * applied on the partition's first positioning only. */
static assignment_start_t start_of(assignment_t *a, struct slot *s, int32_t id,
                                   int64_t low, int64_t high, int64_t at_time,
                                   int64_t at_until)
{
    assignment_start_t st = assignment_plan(&a->replay, !s->replayed, &a->until,
                                            a->reset_latest, id, s->pos.stored, low, high,
                                            at_time, at_until);
    s->replayed = 1;
    return st;
}

void assignment_resolved(assignment_t *a, uint64_t round,
                         const source_resolved_t *r)
{
    int32_t *ids = scratch(a);
    assignment_start_t *starts = malloc((r->n ? r->n : 1) * sizeof *starts);
    size_t k = 0;
    if (!ids || !starts || r->status != 0) {
        if (ids)
            stall(a, ids, collect(a, ASSIGN_RESOLVING, round, ids));
        else
            a->retry = 1;
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct slot *s = slot_find(a, r->partitions[i]);
        if (!s || s->state != ASSIGN_RESOLVING || s->round != round)
            continue;
        starts[k] = start_of(a, s, r->partitions[i], r->low[i], r->high[i],
                             r->at_time[i], r->at_until[i]);
        set_state(s, ASSIGN_ACTIVE);
        s->round = 0;
        s->pos.next = s->pos.committed = starts[k].offset;
        s->pos.high = r->high[i];
        s->pos.committed_ts_ms = -1;
        s->pos.end = starts[k].end;
        ids[k++] = r->partitions[i];
    }
    if (k && a->io.positioned(a->ud, starts, k) != 0)
        stall(a, ids, k);
out:
    free(ids);
    free(starts);
}

/* ---- positions ---- */

int assignment_committed(assignment_t *a, int32_t p, int64_t next)
{
    struct slot *s = slot_find(a, p);
    if (!s)
        return 0;
    s->pos.stored = next;
    if (s->state != ASSIGN_ACTIVE)
        return 0;
    s->pos.committed = next;
    return 1;
}

assignment_pos_t *assignment_active(assignment_t *a, int32_t p)
{
    struct slot *s = slot_find(a, p);
    return s && s->state == ASSIGN_ACTIVE ? &s->pos : NULL;
}

const assignment_pos_t *assignment_peek(const assignment_t *a, int32_t p)
{
    const struct slot *s = slot_find(a, p);
    return s && s->state == ASSIGN_ACTIVE ? &s->pos : NULL;
}

int64_t assignment_stored(const assignment_t *a, int32_t p)
{
    const struct slot *s = slot_find(a, p);
    return s ? s->pos.stored : BATCH_OFFSET_NONE;
}

enum assignment_state assignment_state_of(const assignment_t *a, int32_t p)
{
    const struct slot *s = slot_find(a, p);
    return s ? s->state : ASSIGN_IDLE;
}

size_t assignment_count(const assignment_t *a) { return a->nours; }
int32_t assignment_at(const assignment_t *a, size_t i) { return a->ours[i]; }

size_t assignment_active_count(const assignment_t *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->nours; i++)
        k += a->slots[a->ours[i]].state == ASSIGN_ACTIVE;
    return k;
}

int assignment_settled(const assignment_t *a)
{
    return !a->awaiting && assignment_active_count(a) == a->nours;
}
