/*
 * assignment — where each partition the group gave us starts reading.
 *
 * Owns the partition table: which partitions are ours, each one's place in
 * positioning (enum assignment_state below), and its positions. A partition
 * given by the group goes through three asynchronous steps, each one a
 * request through the io table the owner supplies, before it may fetch:
 * the stored offsets from PostgreSQL, the dedup warm-up, and Kafka's
 * watermarks. Then the module reports it "positioned" with its start
 * offset, and the owner assigns it in Kafka.
 *
 * Stale replies. Every positioning round has a number (one counter for the
 * whole module). A partition remembers the round it waits in; a reply
 * applies only to the partitions still waiting in that round and in the
 * state the request belongs to. A rebalance, a fence or a retry in the
 * middle therefore needs no flag: the old reply finds nobody.
 *
 * Eager and cooperative rebalancing are the same calls: assignment_assign()
 * adds partitions (all of them after an eager revoke), assignment_revoke()
 * removes some; only the added ones are positioned, and the others keep
 * flowing.
 *
 * Ownership: the module copies every array it is given; arrays passed to the
 * io functions (positioned included) live during the call only. Positions:
 * `next` and `committed` are written by the owner (the message flow),
 * `stored` and `high` by this module. Loop thread only. Functions returning
 * int give 0, or -1 when memory ran out (the owner stops).
 */
#ifndef CAMJOIN_ASSIGNMENT_H
#define CAMJOIN_ASSIGNMENT_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"
#include "camjoin/replay.h"
#include "camjoin/source_kafka.h" /* source_resolved_t */

typedef struct assignment assignment_t;

/* One partition's place in positioning. Every transition is asserted.
 *
 *   IDLE ──assign──▶ READ_OFFSETS ──offsets──▶ WARMING ──warmed──▶ RESOLVING
 *                         ▲           (no warm-up: straight to RESOLVING) │
 *                         └── reposition / retry (any non-idle state)    │
 *   IDLE ◀──released── REVOKING ◀──revoke (cooperative)── ACTIVE ◀─resolved
 *   IDLE ◀──revoke, lost (from any state)
 */
enum assignment_state {
    ASSIGN_IDLE = 0,     /* not ours: never assigned, revoked or lost */
    ASSIGN_READ_OFFSETS, /* ours; waiting for the stored offsets of its round
                            (round 0: the request failed, the tick retries) */
    ASSIGN_WARMING,      /* stored offset known; the dedup window is being
                            warmed with what PostgreSQL holds for it */
    ASSIGN_RESOLVING,    /* waiting for Kafka's watermarks (and the offset of
                            the --replay-from time) */
    ASSIGN_ACTIVE,       /* positioned: messages at or after `next` are ours */
    ASSIGN_REVOKING,     /* cooperative revoke: no longer fetched; waits
                            until what was read of it is committed */
};

/* 1 when a partition may go from `from` to `to` (the diagram above) */
int assignment_legal(enum assignment_state from, enum assignment_state to);

typedef struct assignment_pos {
    int64_t next;      /* next offset expected from Kafka (owner) */
    int64_t committed; /* position committed by this run (owner) */
    int64_t stored;    /* next_offset in camjoin_offsets as last known; the
                          fence of the next transaction; BATCH_OFFSET_NONE */
    int64_t high;      /* high watermark when positioned */
    int64_t committed_ts_ms; /* Kafka timestamp of the last message committed
                                by this run; -1 none yet (owner) */
    int64_t end;       /* --replay-until: the first offset not to read; -1: none */
} assignment_pos_t;

/* Why a start offset is not the one asked for. */
enum assignment_clamp {
    ASSIGN_CLAMP_NONE = 0,
    ASSIGN_CLAMP_GAP,        /* stored offset below the log start: offsets
                                [wanted, offset) were deleted by retention
                                before anyone read them (an offset_gap) */
    ASSIGN_CLAMP_REPLAY_LOW, /* --replay-from below the log start */
    ASSIGN_CLAMP_HIGH,       /* beyond the end of the partition (recreated?) */
};

/* A positioned partition: it fetches from `offset`. */
typedef struct assignment_start {
    int32_t partition;
    int64_t offset;
    int64_t wanted;          /* the start before clamping into [low, high] */
    enum assignment_clamp clamp;
    int64_t end;             /* --replay-until's bound in [offset, high]; -1: none */
    int replayed;            /* the --replay-from spec chose the start */
} assignment_start_t;

/* Where a partition starts and stops, as positioning decides it (pure, for
 * the assignment and for --dry-run): the --replay-from spec when apply_from
 * (its first positioning in this run), else `stored`, else the reset
 * (latest: high; else low); clamped into [low, high]. The end is
 * --replay-until's bound (OFFSET; P:OFFSET, a partition not listed: high;
 * @TIME: at_until), clamped into [start, high]; -1 without a bound. at_time
 * and at_until: the first offsets with a timestamp at or after each time
 * (high when none). */
assignment_start_t assignment_plan(const replay_spec_t *from, int apply_from,
                                   const replay_spec_t *until, int reset_latest, int32_t id,
                                   int64_t stored, int64_t low, int64_t high, int64_t at_time,
                                   int64_t at_until);

/* Requests and reports. Every request carries the round; its answer comes
 * back through the matching assignment_* call below, with that round. */
typedef struct assignment_io {
    /* read the stored offsets → assignment_offsets() */
    int (*read_offsets)(void *ud, uint64_t round);
    /* warm the dedup window for these partitions → assignment_warmed() */
    int (*warm)(void *ud, uint64_t round, const int32_t *parts, size_t n);
    /* watermarks (and the offsets at time_ms and until_ms when >= 0) →
     * assignment_resolved() */
    int (*resolve)(void *ud, uint64_t round, const int32_t *parts, size_t n,
                   int64_t time_ms, int64_t until_ms);
    /* these partitions fetch from these offsets now; -1: retried at the tick */
    int (*positioned)(void *ud, const assignment_start_t *starts, size_t n);
} assignment_io;

/* `replay` and `until` (--replay-from, --replay-until) are taken (their
 * arrays owned by the module from here; the caller's copies are zeroed).
 * dedup_warm_up: 0 skips the WARMING step. offset_reset_latest: a partition
 * with no stored offset starts at the end, not the beginning. */
assignment_t *assignment_new(const assignment_io *io, void *ud,
                             replay_spec_t *replay, replay_spec_t *until,
                             int dedup_warm_up, int offset_reset_latest);
void assignment_free(assignment_t *a);

/* The group's decisions. assign() adds partitions and starts positioning
 * them; revoke(cooperative = 0) forgets the whole assignment at once (eager
 * revoke, or lost); revoke(cooperative = 1) forgets these partitions, the
 * ACTIVE ones through REVOKING until assignment_release(). */
CJ_MUSTCHECK int assignment_assign(assignment_t *a, const int32_t *parts, size_t n);
void assignment_revoke(assignment_t *a, const int32_t *parts, size_t n,
                       int cooperative);
/* REVOKING partitions become IDLE; their ids are written to out (room for
 * assignment_count()), the number returned. */
size_t assignment_release(assignment_t *a, int32_t *out);

/* Starts a new round for every partition that is ours and not revoking: after
 * a fenced commit (another consumer wrote them: the dedup window lacks what
 * it wrote) or an out-of-range fetch. */
CJ_MUSTCHECK int assignment_reposition(assignment_t *a);
/* Retries the rounds whose requests failed. */
CJ_MUSTCHECK int assignment_tick(assignment_t *a);

/* Answers. `status` != 0: the request failed; the partitions retry at the tick. */
void assignment_offsets(assignment_t *a, uint64_t round, int status,
                        const int32_t *parts, const int64_t *next, size_t n);
/* 1 while a warm-up row of this partition belongs to a live round */
int assignment_warming(const assignment_t *a, uint64_t round, int32_t partition);
void assignment_warmed(assignment_t *a, uint64_t round, int status, size_t rows);
void assignment_resolved(assignment_t *a, uint64_t round,
                         const source_resolved_t *r);

/* A transaction committed partition `p` up to `next`: stored moves; returns 1
 * when the partition is ACTIVE (its committed position moved too). */
int assignment_committed(assignment_t *a, int32_t p, int64_t next);

/* Positions of an ACTIVE partition, NULL otherwise (peek: read only). */
assignment_pos_t *assignment_active(assignment_t *a, int32_t p);
const assignment_pos_t *assignment_peek(const assignment_t *a, int32_t p);
/* The fence of partition `p` in any state: its stored offset as last known,
 * BATCH_OFFSET_NONE when PostgreSQL has none. */
int64_t assignment_stored(const assignment_t *a, int32_t p);
enum assignment_state assignment_state_of(const assignment_t *a, int32_t p);
/* The partitions that are ours (any state but IDLE), in assignment order. */
size_t assignment_count(const assignment_t *a);
int32_t assignment_at(const assignment_t *a, size_t i);
size_t assignment_active_count(const assignment_t *a);
/* Every partition ours is ACTIVE and no eager revoke awaits its assign. */
int assignment_settled(const assignment_t *a);

#endif
