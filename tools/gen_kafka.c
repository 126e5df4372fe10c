/*
 * gen_kafka.c — camjoin-gen's producer and production loop. gen.c decides
 * what each message is; this file gets it to Kafka (gen.h joins the two).
 *
 * The producer is idempotent (enable.idempotence, acks=all), so librdkafka's
 * retries never add a Kafka-level duplicate: the only duplicates are the
 * ones gen.c counts. Slots are paced by a token bucket refilled at --rate
 * and checked every ~1 ms. Failed deliveries are counted; any failure makes
 * the exit status 1.
 *
 * With --transactional-id the producer is transactional (transactional.id
 * implies idempotence). After rd_kafka_init_transactions every message is
 * produced inside a transaction, begun with rd_kafka_begin_transaction, of
 * --txn-messages slots (the last one may be shorter). Transaction k (from 1)
 * is aborted when k % --abort-every == 0 and committed otherwise: that is
 * decided before it begins, so the outcome depends only on the flags, and
 * gen.c can take the transaction's effects back. A planned abort first
 * flushes, so that its messages really reach the log (a read_uncommitted
 * consumer sees them) before they are marked aborted;
 * rd_kafka_abort_transaction alone would purge whatever is still queued.
 * Errors follow librdkafka's classes:
 *   - retriable (timeouts, a coordinator moving): the call is repeated
 *     after RETRY_PAUSE_MS, with a line on stderr;
 *   - abortable (a delivery or a produce call failed): the transaction is
 *     aborted and its messages count as aborted; the run goes on, but the
 *     exit status is 1, since that outcome was not the planned one;
 *   - fatal (fenced by a newer producer with the same id, and any error of
 *     no class): the run stops with one line on stderr and exit status 1;
 *     the open transaction's messages are in neither manifest nor counts.
 * Each transactional call waits at most TXN_TIMEOUT_MS per attempt. A paced
 * transaction stays open --txn-messages / --rate seconds, and the broker
 * aborts one that outlives transaction.timeout.ms (60 s by default), so a
 * pacing that would take more than half of that is refused up front.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"

#define TXN_TIMEOUT_MS 30000
#define RETRY_PAUSE_MS 500

enum txn_op { TXN_INIT, TXN_COMMIT, TXN_ABORT };
static const char *const txn_op_names[] = {
    "init_transactions", "commit_transaction", "abort_transaction",
};

struct pace {
    struct timespec t0;
    double next_progress; /* seconds since t0 */
};

static volatile sig_atomic_t stop_signal;
static uint64_t delivered, failed; /* touched only from rd_kafka_poll() et al. */
static int transactional;

static void on_signal(int sig) { stop_signal = sig; }

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    char fatal[8];

    (void)opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        delivered++;
        return;
    }
    /* In a transaction, a purge is an abort dropping the message (counted as
     * aborted), and after a fatal error gen_run prints the one line. */
    if (transactional && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                          m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
                          rd_kafka_fatal_error(rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR))
        return;
    if (failed++ < 5)
        fprintf(stderr, "camjoin-gen: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

/* A paced transaction is open for min(--txn-messages, total) / --rate s;
 * refuses more than half of transaction.timeout.ms. */
static int check_txn_pace(rd_kafka_conf_t *conf, const struct opts *o, char *err, size_t errsize)
{
    uint64_t n = o->txn_messages < o->total ? o->txn_messages : o->total;
    double open_s = o->rate > 0 ? (double)n / o->rate : 0;
    char v[32];
    size_t vlen = sizeof(v);
    double timeout_s;

    if (rd_kafka_conf_get(conf, "transaction.timeout.ms", v, &vlen) != RD_KAFKA_CONF_OK)
        return 0;
    timeout_s = strtod(v, NULL) / 1000;
    if (open_s <= timeout_s / 2)
        return 0;
    snprintf(err, errsize, "%llu messages at --rate %g keep a transaction open %.1f s, over half "
             "of transaction.timeout.ms=%s; send fewer per transaction or raise it with -X",
             (unsigned long long)n, o->rate, open_s, v);
    return -1;
}

/* Idempotent (with --transactional-id, transactional) producer with the
 * defaults, then -X overrides. Returns NULL with err and *flag set for a
 * usage error. */
rd_kafka_t *gen_producer_new(const struct opts *o, char *err, size_t errsize, const char **flag)
{
    static const char *const defaults[][2] = {
        { "enable.idempotence", "true" }, { "acks", "all" }, { "linger.ms", "5" },
        { "compression.codec", "none" }, { "message.timeout.ms", "30000" },
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    *flag = "--brokers";
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, err, errsize) != RD_KAFKA_CONF_OK)
        goto fail_conf;
    *flag = "defaults";
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, errsize) != RD_KAFKA_CONF_OK)
            goto fail_conf;
    *flag = "--transactional-id";
    if (o->txn_id != NULL &&
        rd_kafka_conf_set(conf, "transactional.id", o->txn_id, err, errsize) != RD_KAFKA_CONF_OK)
        goto fail_conf;
    *flag = "-X";
    for (int i = 0; i < o->nx; i++) {
        const char *eq = strchr(o->xprops[i], '='); /* parse_args checked */
        char name[256];

        snprintf(name, sizeof(name), "%.*s", (int)(eq - o->xprops[i]), o->xprops[i]);
        if (rd_kafka_conf_set(conf, name, eq + 1, err, errsize) != RD_KAFKA_CONF_OK)
            goto fail_conf;
    }
    *flag = "--txn-messages";
    if (o->txn_id != NULL && check_txn_pace(conf, o, err, errsize) != 0)
        goto fail_conf;
    *flag = "-X";
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errsize);
    if (rk == NULL)
        goto fail_conf; /* conflicting properties */
    transactional = o->txn_id != NULL;
    return rk; /* conf is owned by rk */

fail_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Produces one slot; on a full queue serves delivery reports and retries the
 * same message. */
static rd_kafka_resp_err_t produce_one(struct gen *g, rd_kafka_t *rk, rd_kafka_topic_t *rkt)
{
    struct msg *m = gen_next(g);
    rd_kafka_resp_err_t err;

    do {
        err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(m->key, strlen(m->key)),
                                RD_KAFKA_V_VALUE(m->value, m->len), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL); /* drains by delivery or timeout */
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_poll(rk, 0);
    return err;
}

/* Produces slots until seq reaches `end` or a signal comes, paced by a token
 * bucket refilled at --rate (checked every ~1 ms). Returns the error of a
 * failed produce call, which ends it, or NO_ERROR. */
static rd_kafka_resp_err_t produce_until(struct gen *g, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                         struct pace *p, uint64_t end)
{
    static const struct timespec tick = { 0, 1000000 };
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    while (g->seq < end && !stop_signal && err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        double el = seconds_since(&p->t0);

        if (g->o->rate > 0 && (double)g->seq >= g->o->rate * el + 1) {
            rd_kafka_poll(rk, 0);
            clock_nanosleep(CLOCK_MONOTONIC, 0, &tick, NULL);
            continue;
        }
        if (el >= p->next_progress) {
            fprintf(stderr, "camjoin-gen: %llu/%llu produced, %llu delivered\n",
                    (unsigned long long)g->seq, (unsigned long long)g->o->total,
                    (unsigned long long)delivered);
            p->next_progress += 5;
            while (transactional && p->next_progress <= el) /* after a long commit: one line */
                p->next_progress += 5;
        }
        err = produce_one(g, rk, rkt);
    }
    return err;
}

/* Waits for every outstanding delivery. Returns 0, or -1 on a fatal
 * producer error (its reason in why). */
static int drain(rd_kafka_t *rk, char *why, size_t n)
{
    while (rd_kafka_flush(rk, 5000) == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        if (rd_kafka_fatal_error(rk, why, n) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return -1;
        fprintf(stderr, "camjoin-gen: waiting for %d deliveries\n", rd_kafka_outq_len(rk));
    }
    return 0;
}

/* One transactional call, repeated while it fails with a retriable error
 * (for init, only until a signal comes). Returns NULL or the last error. */
static rd_kafka_error_t *txn_call(rd_kafka_t *rk, enum txn_op op)
{
    for (;;) {
        rd_kafka_error_t *e = op == TXN_INIT     ? rd_kafka_init_transactions(rk, TXN_TIMEOUT_MS)
                              : op == TXN_COMMIT ? rd_kafka_commit_transaction(rk, TXN_TIMEOUT_MS)
                                                 : rd_kafka_abort_transaction(rk, TXN_TIMEOUT_MS);

        if (e == NULL || rd_kafka_error_is_fatal(e) || rd_kafka_error_txn_requires_abort(e) ||
            !rd_kafka_error_is_retriable(e) || (op == TXN_INIT && stop_signal))
            return e;
        fprintf(stderr, "camjoin-gen: %s: %s; retrying\n", txn_op_names[op],
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_poll(rk, RETRY_PAUSE_MS);
    }
}

/* Formats "op: error" into why and destroys e. */
static void txn_why(rd_kafka_error_t *e, enum txn_op op, char *why, size_t n)
{
    snprintf(why, n, "%s: %s", txn_op_names[op], rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
}

/* Ends the open transaction: commits it, unless want_abort is set or the
 * commit fails with an abortable error (then *forced is set and why says
 * why). A planned abort flushes first; one already *forced (a produce call
 * failed) does not. Returns the outcome; TXN_UNKNOWN is a fatal error,
 * described in why. */
static enum txn_outcome txn_end(rd_kafka_t *rk, int want_abort, int *forced, char *why, size_t n)
{
    rd_kafka_error_t *e;

    if (!want_abort) {
        e = txn_call(rk, TXN_COMMIT);
        if (e == NULL)
            return TXN_COMMITTED;
        *forced = rd_kafka_error_txn_requires_abort(e);
        txn_why(e, TXN_COMMIT, why, n);
        if (!*forced)
            return TXN_UNKNOWN;
    } else if (!*forced && drain(rk, why, n) != 0) {
        return TXN_UNKNOWN;
    }
    e = txn_call(rk, TXN_ABORT);
    if (e == NULL)
        return TXN_ABORTED;
    txn_why(e, TXN_ABORT, why, n);
    return TXN_UNKNOWN;
}

/* All slots in transactions (top of file). Returns 0, 1 if Kafka forced an
 * abort, or -1 on a fatal error (described in why). */
static int run_txns(struct gen *g, rd_kafka_t *rk, rd_kafka_topic_t *rkt, struct pace *p,
                    char *why, size_t n)
{
    const struct opts *o = g->o;
    rd_kafka_error_t *e = txn_call(rk, TXN_INIT);
    uint64_t k = 0;
    int rc = 0;

    if (e != NULL && stop_signal && rd_kafka_error_is_retriable(e)) {
        rd_kafka_error_destroy(e); /* interrupted while retrying */
        return 0;
    }
    if (e != NULL) {
        txn_why(e, TXN_INIT, why, n);
        return -1;
    }
    while (g->seq < o->total && !stop_signal) {
        uint64_t end = o->total - g->seq < o->txn_messages ? o->total : g->seq + o->txn_messages;
        int want_abort, forced = 0;
        enum txn_outcome how;
        rd_kafka_resp_err_t err;

        k++;
        want_abort = o->abort_every > 0 && k % o->abort_every == 0; /* planned */
        e = rd_kafka_begin_transaction(rk);
        if (e != NULL) {
            snprintf(why, n, "begin_transaction: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return -1;
        }
        gen_txn_begin(g);
        err = produce_until(g, rk, rkt, p, end);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            char fatal[400];

            if (rd_kafka_fatal_error(rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                gen_txn_end(g, TXN_UNKNOWN);
                snprintf(why, n, "produce: %s", fatal);
                return -1;
            }
            snprintf(why, n, "produce: %s", rd_kafka_err2str(err));
            want_abort = forced = 1; /* the message is not in the transaction */
        }
        how = txn_end(rk, want_abort, &forced, why, n);
        gen_txn_end(g, how);
        if (how == TXN_UNKNOWN)
            return -1;
        if (forced) {
            fprintf(stderr, "camjoin-gen: transaction %llu aborted: %s\n", (unsigned long long)k, why);
            rc = 1;
        }
    }
    return rc;
}

/* Produces all slots, then waits for every delivery report. Returns 0 or 1. */
int gen_run(struct gen *g, rd_kafka_t *rk, rd_kafka_topic_t *rkt, double *elapsed)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
    struct pace p = { .next_progress = 5 };
    rd_kafka_resp_err_t err;
    char why[512];
    int rc = 0;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    if (g->o->txn_id != NULL) {
        rc = run_txns(g, rk, rkt, &p, why, sizeof(why));
        if (rc < 0) { /* the one line, and nothing more to wait for */
            fprintf(stderr, "camjoin-gen: fatal producer error: %s\n", why);
            *elapsed = seconds_since(&p.t0);
            return 1;
        }
    } else if ((err = produce_until(g, rk, rkt, &p, g->o->total)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "camjoin-gen: produce: %s\n", rd_kafka_err2str(err));
        rc = 1;
    }
    if (drain(rk, why, sizeof(why)) != 0) {
        fprintf(stderr, "camjoin-gen: fatal producer error: %s\n", why);
        rc = 1;
    }
    *elapsed = seconds_since(&p.t0);
    if (stop_signal) {
        fprintf(stderr, "camjoin-gen: interrupted after %llu messages\n", (unsigned long long)g->seq);
        rc = 1;
    }
    if (failed > 0) {
        fprintf(stderr, "camjoin-gen: %llu of %llu deliveries failed\n",
                (unsigned long long)failed, (unsigned long long)g->seq);
        rc = 1;
    }
    return rc;
}
