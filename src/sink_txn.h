/*
 * sink_txn — the sink's states and the decision of what comes next: a pure
 * function of (state, what just happened, SQLSTATE class, flags), with no
 * libpq and no libuv, so every transition is unit-tested on its own. Private
 * to sink_pg, which drives it (sink_pg.c: set_state() asserts each
 * transition against sink_txn_legal()).
 *
 * One state at a time, for the one connection and the operation at the head
 * of the sink's queue. Entering a state does what its comment says;
 * "→ X on E" lists what sink_txn_next() decides.
 */
#ifndef CAMJOIN_SINK_TXN_H
#define CAMJOIN_SINK_TXN_H

#include <stddef.h>

typedef enum sink_state {
    /* No connection. The retry timer runs the reconnect backoff (100 ms
     * doubling to postgres.retry_max). → CONNECTING on TIMER; → IDLE on
     * OPENED (sink_pg_attach, after the startup connection). */
    SK_DOWN,
    /* PQconnectPoll under way; the retry timer is the connect timeout.
     * → SETUP on CONNECTED; → DOWN on LOST. */
    SK_CONNECTING,
    /* The session setup (temporary staging tables) in flight; still the
     * connect timeout. → IDLE on DONE (the owner hears "up"); → DOWN on
     * FAILED, LOST, TIMER (the timeout). */
    SK_SETUP,
    /* Connected, nothing in flight. → the head operation's first statement
     * on RUN: OFFSETS, WARM, VERIFY (a TXN whose last attempt's outcome is
     * unknown) or WRITE; → DOWN on LOST (the server went away). */
    SK_IDLE,
    /* Connected; a TXN whose statement failed waits out its backoff on the
     * retry timer. → IDLE on TIMER (the same TXN runs again); → DOWN on LOST. */
    SK_BACKOFF,
    /* OFFSETS: SELECT the stored offsets. → IDLE on DONE (delivered, popped);
     * → DOWN on FAILED, LOST (the operation is retried after a reconnect). */
    SK_OFFSETS,
    /* WARM: COPY … TO STDOUT streaming the window's event_ids. Like OFFSETS. */
    SK_WARM,
    /* TXN, outcome of the last attempt unknown: reading the stored offsets of
     * its partitions. → IDLE on DONE: not committed (all = expected: run it
     * again), committed (all = next: SINK_OK) or moved (anything else:
     * SINK_FENCED); → DOWN on FAILED, LOST. */
    SK_VERIFY,
    /* TXN: BEGIN, the COPYs, the fenced offset advance, in one string (COPY
     * data streamed). → COMMIT on DONE with every fence held;
     * → ROLLBACK_FENCED on DONE with a fence missed; → ROLLBACK_CONFLICT on
     * FAILED with a unique violation, written direct; → ROLLBACK_RETRY on any
     * other FAILED; → DOWN on LOST (the TXN is verified before it is redone). */
    SK_WRITE,
    /* TXN: COMMIT in flight. → IDLE on DONE (SINK_OK; a staged TXN that
     * inserted everything it carried ends staging); → ROLLBACK_RETRY on
     * FAILED; → DOWN on LOST (outcome unknown: verify). */
    SK_COMMIT,
    /* TXN: ROLLBACK after a unique violation on the direct COPY.
     * → IDLE on DONE or FAILED: the same TXN is redone at once through
     * staging, and later ones stay staged; → DOWN on LOST. */
    SK_ROLLBACK_CONFLICT,
    /* TXN: ROLLBACK after a missed fence. → IDLE on DONE or FAILED
     * (SINK_FENCED); → DOWN on LOST. */
    SK_ROLLBACK_FENCED,
    /* TXN: ROLLBACK after a failed WRITE or COMMIT. → BACKOFF on DONE or
     * FAILED; → DOWN on LOST. */
    SK_ROLLBACK_RETRY,
    SK_NSTATES,
    SK_INVALID = SK_NSTATES /* sink_txn_next(): no such transition */
} sink_state;

typedef enum sink_event {
    SK_EV_OPENED,    /* the blocking startup connected and set the session up */
    SK_EV_TIMER,     /* the retry timer fired */
    SK_EV_CONNECTED, /* PQconnectPoll said OK, the connection is nonblocking */
    SK_EV_RUN,       /* IDLE with an operation at the head: start it */
    SK_EV_DONE,      /* the statement's results are all in; none failed */
    SK_EV_FAILED,    /* the statement's results are all in; one failed */
    SK_EV_LOST,      /* the connection is gone, or could not be used */
} sink_event;

/* The class of a failed statement's SQLSTATE: only a unique violation on
 * the direct COPY changes the decision. */
typedef enum sink_sqlclass { SK_ERR_OTHER, SK_ERR_UNIQUE } sink_sqlclass;

typedef enum sink_op { SK_OP_NONE, SK_OP_TXN, SK_OP_OFFSETS, SK_OP_WARM } sink_op;

/* VERIFY's reading of the stored offsets. */
typedef enum sink_verdict {
    SK_NOT_COMMITTED, /* every partition holds `expected` */
    SK_COMMITTED,     /* every partition holds `next` (and not all `expected`) */
    SK_MOVED,         /* anything else */
} sink_verdict;

typedef struct sink_txn_input {
    sink_event ev;
    sink_op head;         /* RUN, LOST: the operation at the head of the queue */
    int verify;           /* RUN: that TXN's last outcome is unknown */
    sink_sqlclass err;    /* FAILED */
    int staged;           /* WRITE, COMMIT: written through the staging tables */
    int fences_held;      /* WRITE DONE: every fenced offset row was touched */
    int complete;         /* COMMIT DONE: every row and dead letter was inserted */
    sink_verdict verdict; /* VERIFY DONE */
} sink_txn_input;

/* What the driver does besides entering the next state (bits). */
enum {
    SK_ACT_UP = 1 << 0,           /* connection ready: backoff reset, owner told */
    SK_ACT_DELIVER = 1 << 1,      /* OFFSETS/WARM: the result to the owner, popped */
    SK_ACT_FINISH_OK = 1 << 2,    /* TXN popped, SINK_OK */
    SK_ACT_FINISH_FENCED = 1 << 3,/* TXN popped, SINK_FENCED */
    SK_ACT_RESET_BACKOFF = 1 << 4,/* a commit went through */
    SK_ACT_STAGING_OFF = 1 << 5,  /* back to the direct COPY */
    SK_ACT_RESTAGE = 1 << 6,      /* the TXN is redone staged; staging on */
    SK_ACT_CLEAR_VERIFY = 1 << 7, /* the TXN did not commit: write it again */
    SK_ACT_MARK_VERIFY = 1 << 8,  /* the TXN's outcome is unknown: verify first */
};

typedef struct sink_txn_step {
    sink_state next; /* SK_INVALID: the event cannot happen in this state */
    unsigned act;    /* SK_ACT_* */
} sink_txn_step;

sink_txn_step sink_txn_next(sink_state from, const sink_txn_input *in);

/* 1 when from → to is a transition sink_txn_next() can decide. */
int sink_txn_legal(sink_state from, sink_state to);

/* SQLSTATE (5 characters, or "" when none) to its class. */
sink_sqlclass sink_txn_classify(const char *sqlstate);

/* A statement is in flight (results are collected) in this state. */
int sink_txn_in_flight(sink_state s);
/* The connection is up (set up and usable) in this state. */
int sink_txn_up(sink_state s);

const char *sink_txn_state_name(sink_state s);

/* VERIFY's verdict on a batch of n partitions, of which `at_expected`
 * hold the offset the batch expected and `at_next` the one it stores. */
sink_verdict sink_txn_verdict(size_t n, size_t at_expected, size_t at_next);

#endif
