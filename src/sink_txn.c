/* sink_txn — see sink_txn.h.
 *
 * The model is pgbench's ConnectionStateEnum and advanceConnectionState():
 * one enum says what the connection is doing, each state's comment says
 * what entering it means, and one function decides the next state from the
 * outcome of the current one. Here the decision is kept apart from the
 * doing: sink_txn_next() only reads its arguments, and sink_pg.c performs
 * the actions and the next state's entry (send a statement, arm a timer).
 *
 * Delivery rules encoded here (include/camjoin/sink_pg.h has the whole
 * story): a TXN whose connection is lost while one of its statements is in
 * flight is verified before it is redone (SK_ACT_MARK_VERIFY); COMMIT is
 * sent only when every fence held; a unique violation of the direct COPY
 * rolls back and redoes the TXN staged; any other failure of WRITE or COMMIT
 * rolls back and retries the same TXN after the backoff; a failed ROLLBACK
 * counts as done (the server discards the transaction either way).
 *
 * Lost during SETUP marks a TXN at the head for verification too, as it
 * always has: it costs one read of the stored offsets, and the verdict
 * (not committed, most often) is the same as writing it.
 */
#include "sink_txn.h"

#include <string.h>

#define BIT(s) (1u << (s))

static const unsigned legal[SK_NSTATES] = {
    [SK_DOWN] = BIT(SK_CONNECTING) | BIT(SK_IDLE),
    [SK_CONNECTING] = BIT(SK_SETUP) | BIT(SK_DOWN),
    [SK_SETUP] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_IDLE] = BIT(SK_OFFSETS) | BIT(SK_WARM) | BIT(SK_VERIFY) | BIT(SK_WRITE) |
                BIT(SK_DOWN),
    [SK_BACKOFF] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_OFFSETS] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_WARM] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_VERIFY] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_WRITE] = BIT(SK_COMMIT) | BIT(SK_ROLLBACK_FENCED) | BIT(SK_ROLLBACK_CONFLICT) |
                 BIT(SK_ROLLBACK_RETRY) | BIT(SK_DOWN),
    [SK_COMMIT] = BIT(SK_IDLE) | BIT(SK_ROLLBACK_RETRY) | BIT(SK_DOWN),
    [SK_ROLLBACK_CONFLICT] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_ROLLBACK_FENCED] = BIT(SK_IDLE) | BIT(SK_DOWN),
    [SK_ROLLBACK_RETRY] = BIT(SK_BACKOFF) | BIT(SK_DOWN),
};

int sink_txn_legal(sink_state from, sink_state to)
{
    if ((unsigned)from >= SK_NSTATES || (unsigned)to >= SK_NSTATES)
        return 0;
    return (legal[from] & BIT(to)) != 0;
}

int sink_txn_in_flight(sink_state s)
{
    return s == SK_SETUP || (s >= SK_OFFSETS && s < SK_NSTATES);
}

int sink_txn_up(sink_state s) { return s >= SK_IDLE && s < SK_NSTATES; }

sink_sqlclass sink_txn_classify(const char *sqlstate)
{
    return sqlstate && strcmp(sqlstate, "23505") == 0 ? SK_ERR_UNIQUE : SK_ERR_OTHER;
}

const char *sink_txn_state_name(sink_state s)
{
    static const char *const names[SK_NSTATES] = {
        "DOWN", "CONNECTING", "SETUP", "IDLE", "BACKOFF", "OFFSETS", "WARM",
        "VERIFY", "WRITE", "COMMIT", "ROLLBACK_CONFLICT", "ROLLBACK_FENCED",
        "ROLLBACK_RETRY",
    };
    return (unsigned)s < SK_NSTATES ? names[s] : "INVALID";
}

static sink_txn_step to(sink_state next, unsigned act)
{
    return (sink_txn_step){next, act};
}

/* A TXN's statement was in flight: its outcome is unknown. */
static sink_txn_step lost(sink_state from, const sink_txn_input *in)
{
    return to(SK_DOWN, sink_txn_in_flight(from) && in->head == SK_OP_TXN
                           ? SK_ACT_MARK_VERIFY : 0);
}

static sink_txn_step run(const sink_txn_input *in)
{
    switch (in->head) {
    case SK_OP_OFFSETS: return to(SK_OFFSETS, 0);
    case SK_OP_WARM: return to(SK_WARM, 0);
    case SK_OP_TXN: return to(in->verify ? SK_VERIFY : SK_WRITE, 0);
    default: return to(SK_INVALID, 0);
    }
}

sink_txn_step sink_txn_next(sink_state from, const sink_txn_input *in)
{
    const sink_txn_step invalid = to(SK_INVALID, 0);
    sink_event ev = in->ev;
    if (ev == SK_EV_LOST)
        return from == SK_DOWN || (unsigned)from >= SK_NSTATES ? invalid : lost(from, in);
    switch (from) {
    case SK_DOWN:
        if (ev == SK_EV_TIMER)
            return to(SK_CONNECTING, 0);
        return ev == SK_EV_OPENED ? to(SK_IDLE, 0) : invalid;
    case SK_CONNECTING:
        if (ev == SK_EV_CONNECTED)
            return to(SK_SETUP, 0);
        return ev == SK_EV_TIMER ? to(SK_DOWN, 0) : invalid;
    case SK_SETUP:
        if (ev == SK_EV_DONE)
            return to(SK_IDLE, SK_ACT_UP);
        if (ev == SK_EV_FAILED)
            return to(SK_DOWN, 0);
        return ev == SK_EV_TIMER ? lost(from, in) : invalid;
    case SK_IDLE:
        return ev == SK_EV_RUN ? run(in) : invalid;
    case SK_BACKOFF:
        return ev == SK_EV_TIMER ? to(SK_IDLE, 0) : invalid;
    case SK_OFFSETS:
    case SK_WARM:
        if (ev == SK_EV_DONE)
            return to(SK_IDLE, SK_ACT_DELIVER);
        return ev == SK_EV_FAILED ? to(SK_DOWN, 0) : invalid;
    case SK_VERIFY:
        if (ev == SK_EV_FAILED)
            return to(SK_DOWN, 0);
        if (ev != SK_EV_DONE)
            return invalid;
        switch (in->verdict) {
        case SK_NOT_COMMITTED: return to(SK_IDLE, SK_ACT_CLEAR_VERIFY);
        case SK_COMMITTED: return to(SK_IDLE, SK_ACT_CLEAR_VERIFY | SK_ACT_FINISH_OK);
        case SK_MOVED: return to(SK_IDLE, SK_ACT_CLEAR_VERIFY | SK_ACT_FINISH_FENCED);
        }
        return invalid;
    case SK_WRITE:
        if (ev == SK_EV_DONE)
            return to(in->fences_held ? SK_COMMIT : SK_ROLLBACK_FENCED, 0);
        if (ev != SK_EV_FAILED)
            return invalid;
        if (in->err == SK_ERR_UNIQUE && !in->staged)
            return to(SK_ROLLBACK_CONFLICT, 0);
        return to(SK_ROLLBACK_RETRY, 0);
    case SK_COMMIT:
        if (ev == SK_EV_DONE)
            return to(SK_IDLE, SK_ACT_FINISH_OK | SK_ACT_RESET_BACKOFF |
                                   (in->staged && in->complete ? SK_ACT_STAGING_OFF : 0));
        return ev == SK_EV_FAILED ? to(SK_ROLLBACK_RETRY, 0) : invalid;
    case SK_ROLLBACK_CONFLICT:
        return ev == SK_EV_DONE || ev == SK_EV_FAILED ? to(SK_IDLE, SK_ACT_RESTAGE) : invalid;
    case SK_ROLLBACK_FENCED:
        return ev == SK_EV_DONE || ev == SK_EV_FAILED ? to(SK_IDLE, SK_ACT_FINISH_FENCED)
                                                      : invalid;
    case SK_ROLLBACK_RETRY:
        return ev == SK_EV_DONE || ev == SK_EV_FAILED ? to(SK_BACKOFF, 0) : invalid;
    default:
        return invalid;
    }
}

sink_verdict sink_txn_verdict(size_t n, size_t at_expected, size_t at_next)
{
    /* "not committed" first: when next == expected (a replay below the
     * stored offset) both hold, and running the batch again is harmless
     * (ON CONFLICT for rows and dead letters, the fence rewrites the value) */
    if (at_expected == n)
        return SK_NOT_COMMITTED;
    return at_next == n ? SK_COMMITTED : SK_MOVED;
}
