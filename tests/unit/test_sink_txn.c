/* Unit tests for sink_txn: the sink's state machine, table by table. Every
 * transition sink_txn_next() may decide is listed with its exact next state
 * and actions; every other (state, event) pair must be refused; the legal
 * transitions are written out as a matrix and compared pair by pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/sink_txn.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum { NEVENTS = SK_EV_LOST + 1 };

#define D SK_DOWN
#define C SK_CONNECTING
#define S SK_SETUP
#define I SK_IDLE
#define B SK_BACKOFF
#define O SK_OFFSETS
#define W SK_WARM
#define V SK_VERIFY
#define WR SK_WRITE
#define CM SK_COMMIT
#define RC SK_ROLLBACK_CONFLICT
#define RF SK_ROLLBACK_FENCED
#define RR SK_ROLLBACK_RETRY

#define MARK SK_ACT_MARK_VERIFY

struct row {
    const char *name;
    sink_state from;
    sink_txn_input in;
    sink_state next;
    unsigned act;
};

/* Every transition there is. */
static const struct row rows[] = {
    {"startup", D, {.ev = SK_EV_OPENED}, I, 0},
    {"reconnect", D, {.ev = SK_EV_TIMER}, C, 0},
    {"reconnect, TXN queued", D, {.ev = SK_EV_TIMER, .head = SK_OP_TXN}, C, 0},

    {"connected", C, {.ev = SK_EV_CONNECTED}, S, 0},
    {"connect timeout", C, {.ev = SK_EV_TIMER, .head = SK_OP_TXN}, D, 0},
    {"connect failed", C, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, 0},

    {"setup done", S, {.ev = SK_EV_DONE}, I, SK_ACT_UP},
    {"setup done, TXN queued", S, {.ev = SK_EV_DONE, .head = SK_OP_TXN}, I, SK_ACT_UP},
    {"setup failed", S, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, D, 0},
    {"setup lost", S, {.ev = SK_EV_LOST}, D, 0},
    {"setup lost, TXN queued", S, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},
    {"setup lost, OFFSETS queued", S, {.ev = SK_EV_LOST, .head = SK_OP_OFFSETS}, D, 0},
    {"setup timeout", S, {.ev = SK_EV_TIMER}, D, 0},
    {"setup timeout, TXN queued", S, {.ev = SK_EV_TIMER, .head = SK_OP_TXN}, D, MARK},

    {"run offsets", I, {.ev = SK_EV_RUN, .head = SK_OP_OFFSETS}, O, 0},
    {"run warm-up", I, {.ev = SK_EV_RUN, .head = SK_OP_WARM}, W, 0},
    {"run TXN", I, {.ev = SK_EV_RUN, .head = SK_OP_TXN}, WR, 0},
    {"run TXN to verify", I, {.ev = SK_EV_RUN, .head = SK_OP_TXN, .verify = 1}, V, 0},
    {"idle lost", I, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, 0},

    {"backoff over", B, {.ev = SK_EV_TIMER, .head = SK_OP_TXN}, I, 0},
    {"backoff lost", B, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, 0},

    {"offsets done", O, {.ev = SK_EV_DONE, .head = SK_OP_OFFSETS}, I, SK_ACT_DELIVER},
    {"offsets failed", O, {.ev = SK_EV_FAILED, .head = SK_OP_OFFSETS}, D, 0},
    {"offsets lost", O, {.ev = SK_EV_LOST, .head = SK_OP_OFFSETS}, D, 0},
    {"warm-up done", W, {.ev = SK_EV_DONE, .head = SK_OP_WARM}, I, SK_ACT_DELIVER},
    {"warm-up failed", W, {.ev = SK_EV_FAILED, .head = SK_OP_WARM}, D, 0},
    {"warm-up lost", W, {.ev = SK_EV_LOST, .head = SK_OP_WARM}, D, 0},

    {"verify: not committed", V, {.ev = SK_EV_DONE, .head = SK_OP_TXN,
                                  .verdict = SK_NOT_COMMITTED}, I, SK_ACT_CLEAR_VERIFY},
    {"verify: committed", V, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .verdict = SK_COMMITTED},
     I, SK_ACT_CLEAR_VERIFY | SK_ACT_FINISH_OK},
    {"verify: moved", V, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .verdict = SK_MOVED},
     I, SK_ACT_CLEAR_VERIFY | SK_ACT_FINISH_FENCED},
    {"verify failed", V, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, D, 0},
    {"verify lost", V, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},

    {"write: fences held", WR, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .fences_held = 1}, CM, 0},
    {"write staged: fences held", WR, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .staged = 1,
                                       .fences_held = 1}, CM, 0},
    {"write: fence missed", WR, {.ev = SK_EV_DONE, .head = SK_OP_TXN}, RF, 0},
    {"write staged: fence missed", WR, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .staged = 1},
     RF, 0},
    {"write direct: unique violation", WR, {.ev = SK_EV_FAILED, .head = SK_OP_TXN,
                                            .err = SK_ERR_UNIQUE}, RC, 0},
    {"write staged: unique violation", WR, {.ev = SK_EV_FAILED, .head = SK_OP_TXN,
                                            .err = SK_ERR_UNIQUE, .staged = 1}, RR, 0},
    {"write direct: other error", WR, {.ev = SK_EV_FAILED, .head = SK_OP_TXN,
                                       .err = SK_ERR_OTHER}, RR, 0},
    {"write staged: other error", WR, {.ev = SK_EV_FAILED, .head = SK_OP_TXN,
                                       .err = SK_ERR_OTHER, .staged = 1}, RR, 0},
    {"write lost", WR, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},

    {"commit done", CM, {.ev = SK_EV_DONE, .head = SK_OP_TXN},
     I, SK_ACT_FINISH_OK | SK_ACT_RESET_BACKOFF},
    {"commit done, direct, complete", CM, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .complete = 1},
     I, SK_ACT_FINISH_OK | SK_ACT_RESET_BACKOFF},
    {"commit done, staged, conflicts", CM, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .staged = 1},
     I, SK_ACT_FINISH_OK | SK_ACT_RESET_BACKOFF},
    {"commit done, staged, complete", CM, {.ev = SK_EV_DONE, .head = SK_OP_TXN, .staged = 1,
                                           .complete = 1},
     I, SK_ACT_FINISH_OK | SK_ACT_RESET_BACKOFF | SK_ACT_STAGING_OFF},
    {"commit failed", CM, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, RR, 0},
    {"commit failed, unique", CM, {.ev = SK_EV_FAILED, .head = SK_OP_TXN,
                                   .err = SK_ERR_UNIQUE}, RR, 0},
    {"commit lost", CM, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},

    {"rollback conflict done", RC, {.ev = SK_EV_DONE, .head = SK_OP_TXN}, I, SK_ACT_RESTAGE},
    {"rollback conflict failed", RC, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, I,
     SK_ACT_RESTAGE},
    {"rollback conflict lost", RC, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},
    {"rollback fenced done", RF, {.ev = SK_EV_DONE, .head = SK_OP_TXN}, I,
     SK_ACT_FINISH_FENCED},
    {"rollback fenced failed", RF, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, I,
     SK_ACT_FINISH_FENCED},
    {"rollback fenced lost", RF, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},
    {"rollback retry done", RR, {.ev = SK_EV_DONE, .head = SK_OP_TXN}, B, 0},
    {"rollback retry failed", RR, {.ev = SK_EV_FAILED, .head = SK_OP_TXN}, B, 0},
    {"rollback retry lost", RR, {.ev = SK_EV_LOST, .head = SK_OP_TXN}, D, MARK},
};

static void every_transition(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        const struct row *r = &rows[i];
        sink_txn_step d = sink_txn_next(r->from, &r->in);
        if (d.next != r->next || d.act != r->act)
            fail_msg("%s: %s -> %s act %#x, want %s act %#x", r->name,
                     sink_txn_state_name(r->from), sink_txn_state_name(d.next), d.act,
                     sink_txn_state_name(r->next), r->act);
    }
}

/* The events each state accepts; every other pair is refused. */
static const unsigned accepted[SK_NSTATES] = {
    [SK_DOWN] = 1u << SK_EV_OPENED | 1u << SK_EV_TIMER,
    [SK_CONNECTING] = 1u << SK_EV_CONNECTED | 1u << SK_EV_TIMER | 1u << SK_EV_LOST,
    [SK_SETUP] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_TIMER | 1u << SK_EV_LOST,
    [SK_IDLE] = 1u << SK_EV_RUN | 1u << SK_EV_LOST,
    [SK_BACKOFF] = 1u << SK_EV_TIMER | 1u << SK_EV_LOST,
    [SK_OFFSETS] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_WARM] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_VERIFY] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_WRITE] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_COMMIT] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_ROLLBACK_CONFLICT] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_ROLLBACK_FENCED] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
    [SK_ROLLBACK_RETRY] = 1u << SK_EV_DONE | 1u << SK_EV_FAILED | 1u << SK_EV_LOST,
};

static void other_events_refused(void **state)
{
    (void)state;
    static const sink_op heads[] = {SK_OP_NONE, SK_OP_TXN, SK_OP_OFFSETS, SK_OP_WARM};
    size_t refused = 0;
    for (int f = 0; f < SK_NSTATES; f++)
        for (int e = 0; e < NEVENTS; e++) {
            if (accepted[f] & 1u << e)
                continue;
            for (size_t h = 0; h < ARRAY_LEN(heads); h++) {
                sink_txn_input in = {.ev = (sink_event)e, .head = heads[h], .verify = 1};
                sink_txn_step d = sink_txn_next((sink_state)f, &in);
                if (d.next != SK_INVALID || d.act != 0)
                    fail_msg("%s on event %d: -> %s, want refused",
                             sink_txn_state_name((sink_state)f), e,
                             sink_txn_state_name(d.next));
            }
            refused++;
        }
    /* 13 states x 7 events, of which the table above accepts 37 */
    assert_int_equal(refused, 13 * 7 - 37);
    /* RUN with nothing queued, and states that do not exist */
    sink_txn_input run = {.ev = SK_EV_RUN, .head = SK_OP_NONE};
    assert_int_equal(sink_txn_next(SK_IDLE, &run).next, SK_INVALID);
    sink_txn_input lost = {.ev = SK_EV_LOST};
    assert_int_equal(sink_txn_next(SK_NSTATES, &lost).next, SK_INVALID);
    assert_int_equal(sink_txn_next((sink_state)-1, &lost).next, SK_INVALID);
    sink_txn_input verify = {.ev = SK_EV_DONE, .verdict = (sink_verdict)7};
    assert_int_equal(sink_txn_next(SK_VERIFY, &verify).next, SK_INVALID);
}

/* The legal transitions: row = from, column = to, in enum order
 * D C S I B O W V WR CM RC RF RR. */
static const char *const matrix[SK_NSTATES] = {
    /*            DCSIBOWVWCRRR */
    [SK_DOWN] = "0101000000000",
    [SK_CONNECTING] = "1010000000000",
    [SK_SETUP] = "1001000000000",
    [SK_IDLE] = "1000011110000",
    [SK_BACKOFF] = "1001000000000",
    [SK_OFFSETS] = "1001000000000",
    [SK_WARM] = "1001000000000",
    [SK_VERIFY] = "1001000000000",
    [SK_WRITE] = "1000000001111",
    [SK_COMMIT] = "1001000000001",
    [SK_ROLLBACK_CONFLICT] = "1001000000000",
    [SK_ROLLBACK_FENCED] = "1001000000000",
    [SK_ROLLBACK_RETRY] = "1000100000000",
};

static void legal_matrix(void **state)
{
    (void)state;
    for (int f = 0; f < SK_NSTATES; f++)
        for (int t = 0; t < SK_NSTATES; t++)
            if (sink_txn_legal((sink_state)f, (sink_state)t) != (matrix[f][t] == '1'))
                fail_msg("%s -> %s: legal %d, want %c", sink_txn_state_name((sink_state)f),
                         sink_txn_state_name((sink_state)t),
                         sink_txn_legal((sink_state)f, (sink_state)t), matrix[f][t]);
    assert_int_equal(sink_txn_legal(SK_IDLE, SK_INVALID), 0);
    assert_int_equal(sink_txn_legal(SK_INVALID, SK_DOWN), 0);
    assert_int_equal(sink_txn_legal((sink_state)-1, SK_DOWN), 0);
}

/* The rows cover every legal transition, and decide no other. */
static void rows_cover_the_matrix(void **state)
{
    (void)state;
    char seen[SK_NSTATES][SK_NSTATES] = {{0}};
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        if (matrix[rows[i].from][rows[i].next] != '1')
            fail_msg("%s: not in the matrix", rows[i].name);
        seen[rows[i].from][rows[i].next] = 1;
    }
    for (int f = 0; f < SK_NSTATES; f++)
        for (int t = 0; t < SK_NSTATES; t++)
            if ((matrix[f][t] == '1') != seen[f][t])
                fail_msg("%s -> %s: legal but no row takes it",
                         sink_txn_state_name((sink_state)f), sink_txn_state_name((sink_state)t));
}

static void classify(void **state)
{
    (void)state;
    static const struct { const char *code; sink_sqlclass want; } t[] = {
        {"23505", SK_ERR_UNIQUE}, {"23503", SK_ERR_OTHER}, {"23P01", SK_ERR_OTHER},
        {"40001", SK_ERR_OTHER},  {"57P01", SK_ERR_OTHER}, {"", SK_ERR_OTHER},
        {NULL, SK_ERR_OTHER},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        assert_int_equal(sink_txn_classify(t[i].code), t[i].want);
}

static void verdict(void **state)
{
    (void)state;
    static const struct { size_t n, at_expected, at_next; sink_verdict want; } t[] = {
        {3, 3, 0, SK_NOT_COMMITTED},
        {3, 3, 3, SK_NOT_COMMITTED}, /* next == expected: redoing is harmless */
        {3, 0, 3, SK_COMMITTED},
        {3, 1, 3, SK_COMMITTED},     /* one partition whose next == expected */
        {3, 2, 1, SK_MOVED},
        {3, 0, 2, SK_MOVED},
        {3, 0, 0, SK_MOVED},
        {1, 0, 0, SK_MOVED},
        {1, 1, 0, SK_NOT_COMMITTED},
        {1, 0, 1, SK_COMMITTED},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        assert_int_equal(sink_txn_verdict(t[i].n, t[i].at_expected, t[i].at_next), t[i].want);
}

static void predicates_and_names(void **state)
{
    (void)state;
    static const struct { sink_state s; int in_flight, up; const char *name; } t[] = {
        {SK_DOWN, 0, 0, "DOWN"},
        {SK_CONNECTING, 0, 0, "CONNECTING"},
        {SK_SETUP, 1, 0, "SETUP"},
        {SK_IDLE, 0, 1, "IDLE"},
        {SK_BACKOFF, 0, 1, "BACKOFF"},
        {SK_OFFSETS, 1, 1, "OFFSETS"},
        {SK_WARM, 1, 1, "WARM"},
        {SK_VERIFY, 1, 1, "VERIFY"},
        {SK_WRITE, 1, 1, "WRITE"},
        {SK_COMMIT, 1, 1, "COMMIT"},
        {SK_ROLLBACK_CONFLICT, 1, 1, "ROLLBACK_CONFLICT"},
        {SK_ROLLBACK_FENCED, 1, 1, "ROLLBACK_FENCED"},
        {SK_ROLLBACK_RETRY, 1, 1, "ROLLBACK_RETRY"},
    };
    assert_int_equal(ARRAY_LEN(t), SK_NSTATES);
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        assert_int_equal(t[i].s, (sink_state)i);
        assert_int_equal(sink_txn_in_flight(t[i].s), t[i].in_flight);
        assert_int_equal(sink_txn_up(t[i].s), t[i].up);
        assert_string_equal(sink_txn_state_name(t[i].s), t[i].name);
    }
    assert_int_equal(sink_txn_up(SK_INVALID), 0);
    assert_int_equal(sink_txn_in_flight(SK_INVALID), 0);
    assert_string_equal(sink_txn_state_name(SK_INVALID), "INVALID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_transition),
        cmocka_unit_test(other_events_refused),
        cmocka_unit_test(legal_matrix),
        cmocka_unit_test(rows_cover_the_matrix),
        cmocka_unit_test(classify),
        cmocka_unit_test(verdict),
        cmocka_unit_test(predicates_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
