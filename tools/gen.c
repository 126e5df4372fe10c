/*
 * camjoin-gen — deterministic Dataset A traffic for tests and benchmarks.
 *
 * Every message slot draws from one splitmix64 stream seeded by --seed, so
 * the sequence of kinds, ids, cameras and field shapes is a pure function of
 * (seed, ratios, cameras CSV, count). Only event_ts (wall clock at
 * production) varies between runs. Per slot:
 *   - with probability malformed-ratio, the next malformed kind in a fixed
 *     cycle, keyed `bad-<seed>-<m>`; each kind breaks exactly one rule, so
 *     the reason camjoin must assign (event.h) is known in advance;
 *   - else with probability dup-ratio (once a valid event exists), a
 *     byte-for-byte re-send of one of the last RING_SIZE valid events;
 *   - else a new valid event `<prefix>-<seed>-<n>`, n counting from 0.
 * The summary line on stdout and the optional manifest CSV (one row per
 * message, in production order) let a test compute the exact expected
 * outcome independently.
 *
 * Producing (gen_kafka.c) is idempotent (acks=all), so librdkafka's retries
 * never add a Kafka-level duplicate: the only duplicates are the ones
 * counted here.
 *
 * With --transactional-id the slots are cut into transactions of
 * --txn-messages, and transaction k (from 1) is aborted when k is a multiple
 * of --abort-every. Every slot is still drawn and produced as above, so the
 * stream of kinds is the same function of the flags; but an aborted
 * transaction must leave no trace in what a read_committed consumer can
 * expect. So each transaction is generated as if it would commit, after a
 * snapshot (gen_txn_begin) of everything it can change: the counters and
 * the ring position, plus an undo copy of each ring slot it overwrites.
 * gen_txn_end() keeps that on commit, and on abort (planned, or forced by
 * an abortable Kafka error) puts it all back, so a later re-send always
 * repeats a committed event and every counter counts committed messages
 * only. The key counters are never taken back, so an aborted event's id is
 * never reused. Manifest rows of a transaction are held until its outcome is
 * known, then written with their kind, or as `aborted`. One code path for
 * both kinds of abort keeps the manifest truthful even when Kafka aborts.
 *
 * Cost: one snprintf-built value per message (~150-200 bytes) and a ring of
 * RING_SIZE copies (~0.7 MB) for re-sends; in transactional mode a second
 * ring for undo, one extra copy per new valid event, and ~270 bytes per
 * held manifest row (--txn-messages of them at most).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"

#define RING_SIZE 1000
#define PREFIX_MAX 64
#define UNKNOWN_CAM "unknown-cam-"

enum kind { KIND_VALID, KIND_DUPLICATE, KIND_MALFORMED };
static const char *const kind_names[] = { "valid", "duplicate", "malformed" };

static const char *const event_types[] = {
    "person", "vehicle", "bicycle", "animal", "package", "motion",
};

/* The malformed cycle, in summary order. A kind is either a fixed `raw`
 * value or a base event {event_id, camera_id, event_ts, event_type} with one
 * field omitted, event_ts replaced, or a tail appended. */
static const struct malformed_kind {
    const char *reason, *raw, *omit, *ts, *tail;
} malformed_kinds[] = {
    { "invalid_json", "{\"event_id\": \"x\"", NULL, NULL, NULL },
    { "not_object", "[1,2]", NULL, NULL, NULL },
    { "missing_field:event_ts", NULL, "event_ts", NULL, "" },
    { "missing_field:camera_id", NULL, "camera_id", NULL, "" },
    { "bad_type:confidence", NULL, NULL, NULL, ",\"confidence\":\"high\"" },
    { "bad_value:confidence", NULL, NULL, NULL, ",\"confidence\":1.5" },
    { "bad_value:event_ts", NULL, NULL, "\"2026-13-01T00:00:00Z\"", "" },
    { "bad_type:object_count", NULL, NULL, NULL, ",\"object_count\":1.5" },
    { "empty", "", NULL, NULL, NULL },
    { "duplicate_key", NULL, NULL, NULL, ",\"event_type\":\"vehicle\"" },
};
_Static_assert(sizeof(malformed_kinds) / sizeof(malformed_kinds[0]) == N_MALFORMED,
               "N_MALFORMED (gen.h) must match malformed_kinds");

struct row {
    char key[EVENT_ID_MAX + 1];
    char camera[EVENT_CAMERA_MAX + 1]; /* empty for malformed */
    enum kind kind;
    const char *reason;
};

/* ---- options ------------------------------------------------------------ */

static const char usage_text[] =
    "usage: camjoin-gen --brokers LIST --topic NAME (--count N | --rate R --duration S)\n"
    "                   [--seed N] [--dup-ratio F] [--unknown-camera-ratio F] [--malformed-ratio F]\n"
    "                   [--cameras CSV] [--id-prefix STR] [--manifest FILE] [--ts-text]\n"
    "                   [-X prop=value]...\n"
    "                   [--transactional-id ID [--txn-messages N] [--abort-every N]] [--help]\n";

static int usage_error(const char *flag, const char *what, const char *got)
{
    fprintf(stderr, "camjoin-gen: %s: %s%s%s%s\n", flag, what, got ? ", got '" : "",
            got ? got : "", got ? "'" : "");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

static int parse_real(const char *s, double min, double max, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(*out))
        return -1;
    return *out < min || *out > max ? -1 : 0;
}

static int prefix_ok(const char *p)
{
    size_t n = strlen(p);

    return n > 0 && n <= PREFIX_MAX &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._") == n;
}

/* Returns -1 to continue, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_STR, O_U64, O_REAL, O_FLAG, O_HELP };
    double duration = 0;
    uint64_t count = 0;
    const struct optdef {
        const char *name;
        int type;
        void *dst;
        double min, max;
        const char *what;
    } defs[] = {
        { "brokers", O_STR, &o->brokers, 0, 0, NULL },
        { "topic", O_STR, &o->topic, 0, 0, NULL },
        { "count", O_U64, &count, 0, 0, "expected a non-negative integer" },
        { "rate", O_REAL, &o->rate, 1e-9, 1e9, "expected a number > 0 (messages/s)" },
        { "duration", O_REAL, &duration, 1e-9, 1e9, "expected a number > 0 (seconds)" },
        { "seed", O_U64, &o->seed, 0, 0, "expected a non-negative integer" },
        { "dup-ratio", O_REAL, &o->dup_ratio, 0, 1, "expected a number in [0,1]" },
        { "unknown-camera-ratio", O_REAL, &o->unknown_ratio, 0, 1, "expected a number in [0,1]" },
        { "malformed-ratio", O_REAL, &o->malformed_ratio, 0, 1, "expected a number in [0,1]" },
        { "cameras", O_STR, &o->cameras, 0, 0, NULL },
        { "id-prefix", O_STR, &o->id_prefix, 0, 0, NULL },
        { "manifest", O_STR, &o->manifest, 0, 0, NULL },
        { "transactional-id", O_STR, &o->txn_id, 0, 0, NULL },
        { "txn-messages", O_U64, &o->txn_messages, 1, 0, "expected an integer >= 1" },
        { "abort-every", O_U64, &o->abort_every, 1, 0, "expected an integer >= 1" },
        { "ts-text", O_FLAG, &o->ts_text, 0, 0, NULL },
        { "help", O_HELP, NULL, 0, 0, NULL },
    };
    enum { NDEFS = sizeof(defs) / sizeof(defs[0]) };
    struct option lo[NDEFS + 1] = { { NULL, 0, NULL, 0 } };
    char flag[64];
    int c, idx, have_count = 0, have_txn_messages = 0;

    *o = (struct opts){ .cameras = "config/cameras.csv", .id_prefix = "ev", .seed = 1,
                        .txn_messages = 100 };
    o->xprops = calloc((size_t)argc, sizeof(*o->xprops));
    if (o->xprops == NULL)
        return 1;
    for (int i = 0; i < NDEFS; i++)
        lo[i] = (struct option){ defs[i].name, defs[i].type >= O_FLAG ? no_argument : required_argument,
                                 NULL, 0x100 + i };
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":X:", lo, &idx)) != -1) {
        const struct optdef *d = c >= 0x100 ? &defs[c - 0x100] : NULL;
        int bad = 0;

        if (c == 'X') {
            if (strchr(optarg, '=') == NULL)
                return usage_error("-X", "expected prop=value", optarg);
            if (strncmp(optarg, "transactional.id=", 17) == 0)
                return usage_error("-X", "use --transactional-id for transactional.id", optarg);
            o->xprops[o->nx++] = optarg;
            continue;
        }
        if (d == NULL)
            return usage_error(argv[optind - 1], c == ':' ? "missing value" : "unknown option", NULL);
        snprintf(flag, sizeof(flag), "--%s", d->name);
        switch (d->type) {
        case O_STR: *(const char **)d->dst = optarg; break;
        case O_U64: bad = parse_u64(optarg, d->dst) != 0 || *(uint64_t *)d->dst < d->min; break;
        case O_REAL: bad = parse_real(optarg, d->min, d->max, d->dst); break;
        case O_FLAG: *(int *)d->dst = 1; break;
        default:
            fputs(usage_text, stdout);
            return 0;
        }
        if (bad)
            return usage_error(flag, d->what, optarg);
        have_count |= d->dst == &count;
        have_txn_messages |= d->dst == &o->txn_messages;
    }
    if (optind < argc)
        return usage_error(argv[optind], "unexpected argument", NULL);
    if (o->brokers == NULL)
        return usage_error("--brokers", "required", NULL);
    if (o->topic == NULL)
        return usage_error("--topic", "required", NULL);
    if (!prefix_ok(o->id_prefix))
        return usage_error("--id-prefix", "expected 1-64 chars of [A-Za-z0-9._]", o->id_prefix);
    if (have_count && (o->rate > 0 || duration > 0))
        return usage_error("--count", "cannot be combined with --rate/--duration", NULL);
    if (!have_count && o->rate <= 0 && duration <= 0)
        return usage_error("--count", "required (or --rate R --duration S)", NULL);
    if (!have_count && (o->rate <= 0 || duration <= 0))
        return usage_error(o->rate > 0 ? "--duration" : "--rate",
                           o->rate > 0 ? "required with --rate" : "required with --duration", NULL);
    if (o->txn_id != NULL && o->txn_id[0] == '\0')
        return usage_error("--transactional-id", "expected a non-empty id", NULL);
    if (o->txn_id == NULL && have_txn_messages)
        return usage_error("--txn-messages", "needs --transactional-id", NULL);
    if (o->txn_id == NULL && o->abort_every > 0)
        return usage_error("--abort-every", "needs --transactional-id", NULL);
    o->total = have_count ? count : (uint64_t)(o->rate * duration + 0.5);
    return -1;
}

/* ---- deterministic generation ------------------------------------------- */

static uint64_t next_u64(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }
static unsigned next_below(uint64_t *s, unsigned n) { return (unsigned)(next_u64(s) % n); }

/* Appends to buf of capacity cap; the callers' bounds keep it in range. */
static void append_cap(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append_cap(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    *len += n > 0 ? (size_t)n : 0;
    if (*len >= cap)
        abort(); /* unreachable: inputs are length-checked */
}
#define append(buf, len, ...) append_cap(buf, VALUE_MAX, len, __VA_ARGS__)

/* event_ts of wall-clock now: 60% RFC 3339 "Z", 20% with an offset (same
 * instant), 20% integer epoch milliseconds; with `text` (--ts-text) those
 * 20% are RFC 3339 "Z" too, for a consumer whose schema gives the field one
 * type (the same draws, so the rest of the stream does not change). */
static void format_now(uint64_t *prng, int text, char out[48])
{
    static const struct { int minutes; const char *suffix; } zones[] = {
        { 0, "Z" }, { 120, "+02:00" }, { -300, "-05:00" },
    };
    unsigned form = next_below(prng, 10), z = form < 6 ? 0 : form == 6 ? 1 : 2;
    struct timespec now;
    struct tm tm;
    int64_t ms;
    time_t t;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (form >= 8 && !text) {
        snprintf(out, 48, "%lld", (long long)ms);
        return;
    }
    if (form >= 8)
        z = 0;
    t = (time_t)(ms / 1000) + zones[z].minutes * 60;
    gmtime_r(&t, &tm);
    snprintf(out, 48, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03d%s\"", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000), zones[z].suffix);
}

/* Writes {event_id, camera_id, event_ts, event_type}+tail+"}" into m->value;
 * `omit` names a base field to leave out (or NULL). */
static void build_event(struct msg *m, const char *omit, const char *ts,
                        const char *type, const char *tail)
{
    m->len = 0;
    append(m->value, &m->len, "{\"event_id\":\"%s\"", m->key);
    if (omit == NULL || strcmp(omit, "camera_id") != 0)
        append(m->value, &m->len, ",\"camera_id\":\"%s\"", m->camera);
    if (omit == NULL || strcmp(omit, "event_ts") != 0)
        append(m->value, &m->len, ",\"event_ts\":%s", ts);
    append(m->value, &m->len, ",\"event_type\":\"%s\"%s}", type, tail);
}

static struct msg *gen_valid(struct gen *g)
{
    struct msg *m = &g->ring[g->c.ring_next];
    uint64_t added = g->c.valid_new - g->saved.valid_new; /* by the open transaction */
    char ts[48], tail[VALUE_MAX];
    size_t tlen = 0;
    unsigned extra;
    const char *type;

    if (g->undo != NULL && added < RING_SIZE) /* after RING_SIZE, it overwrites its own */
        g->undo[added] = *m;
    snprintf(m->key, sizeof(m->key), "%s-%llu-%llu", g->o->id_prefix,
             (unsigned long long)g->o->seed, (unsigned long long)g->next_id++);
    if (next_unit(&g->prng) < g->o->unknown_ratio) {
        snprintf(m->camera, sizeof(m->camera), UNKNOWN_CAM "%u", next_below(&g->prng, 100000));
        g->c.unknown++;
    } else {
        const refdata_row_t *row = refdata_row(g->ref, next_below(&g->prng, (unsigned)refdata_count(g->ref)));
        memcpy(m->camera, row->camera_id, row->camera_id_len + 1);
    }
    type = event_types[next_below(&g->prng, sizeof(event_types) / sizeof(event_types[0]))];
    format_now(&g->prng, g->o->ts_text, ts);
    tail[0] = '\0';
    if (next_unit(&g->prng) < 0.9) {
        unsigned c = next_below(&g->prng, 101);
        append(tail, &tlen, ",\"confidence\":%u.%02u", c / 100, c % 100);
    }
    if (next_unit(&g->prng) < 0.9)
        append(tail, &tlen, ",\"object_count\":%u", next_below(&g->prng, 21));
    extra = next_below(&g->prng, 10);
    if (extra < 5) { /* draws are sequenced: argument order is unspecified */
        unsigned v[4];

        for (int i = 0; i < (extra < 3 ? 2 : 4); i++)
            v[i] = next_below(&g->prng, extra < 3 ? 10 : 1000);
        if (extra < 3)
            append(tail, &tlen, ",\"fw\":\"2.%u.%u\"", v[0] % 6, v[1]);
        else
            append(tail, &tlen, ",\"bbox\":[%u,%u,%u,%u]", v[0], v[1], v[2] + 1, v[3] + 1);
    }
    build_event(m, NULL, ts, type, tail);
    g->c.ring_next = (g->c.ring_next + 1) % RING_SIZE;
    if (g->c.ring_len < RING_SIZE)
        g->c.ring_len++;
    g->c.valid_new++;
    return m;
}

static struct msg *gen_malformed(struct gen *g, const char **reason)
{
    const struct malformed_kind *k = &malformed_kinds[g->c.malformed % N_MALFORMED];
    struct msg *m = &g->scratch;
    char ts[48];

    snprintf(m->key, sizeof(m->key), "bad-%llu-%llu", (unsigned long long)g->o->seed,
             (unsigned long long)g->next_bad++);
    if (k->raw != NULL) {
        m->len = strlen(k->raw);
        memcpy(m->value, k->raw, m->len);
    } else {
        const refdata_row_t *row = refdata_row(g->ref, 0); /* a known camera */

        memcpy(m->camera, row->camera_id, row->camera_id_len + 1);
        format_now(&g->prng, g->o->ts_text, ts);
        build_event(m, k->omit, k->ts ? k->ts : ts, "person", k->tail);
    }
    g->c.by_reason[g->c.malformed % N_MALFORMED]++;
    g->c.malformed++;
    *reason = k->reason;
    return m;
}

/* Chooses and builds the message for the next slot. */
static struct msg *gen_slot(struct gen *g, enum kind *kind, const char **reason)
{
    *reason = "";
    g->c.sent++;
    if (next_unit(&g->prng) < g->o->malformed_ratio) {
        *kind = KIND_MALFORMED;
        return gen_malformed(g, reason);
    }
    if (next_unit(&g->prng) < g->o->dup_ratio && g->c.ring_len > 0) {
        size_t back = next_below(&g->prng, (unsigned)g->c.ring_len);

        *kind = KIND_DUPLICATE;
        g->c.duplicates++;
        return &g->ring[(g->c.ring_next + RING_SIZE - 1 - back) % RING_SIZE];
    }
    *kind = KIND_VALID;
    return gen_valid(g);
}

/* ---- manifest rows and transactions ------------------------------------ */

static void write_row(FILE *f, uint64_t seq, const char *kind, const char *key,
                      const char *camera, const char *reason)
{
    fprintf(f, "%llu,%s,%s,%s,%s\n", (unsigned long long)seq, kind, key, camera, reason);
}

/* The next slot's message, with its manifest row written, or held until its
 * transaction ends. */
struct msg *gen_next(struct gen *g)
{
    enum kind kind;
    const char *reason;
    struct msg *m = gen_slot(g, &kind, &reason);
    const char *camera = kind == KIND_MALFORMED ? "" : m->camera;

    if (g->rows != NULL) {
        struct row *r;

        if (g->seq - g->txn_seq0 >= g->rows_cap)
            abort(); /* unreachable: gen_run ends a transaction at --txn-messages */
        r = &g->rows[g->seq - g->txn_seq0];
        memcpy(r->key, m->key, strlen(m->key) + 1);
        memcpy(r->camera, camera, strlen(camera) + 1);
        r->kind = kind;
        r->reason = reason;
    } else if (g->manifest != NULL) {
        write_row(g->manifest, g->seq, kind_names[kind], m->key, camera, reason);
    }
    g->seq++;
    return m;
}

void gen_txn_begin(struct gen *g)
{
    g->saved = g->c;
    g->txn_seq0 = g->seq;
}

/* Keeps the open transaction's effects, or takes them back (see the top of
 * the file); writes its held manifest rows unless the outcome is unknown
 * (after a fatal error its messages are in neither the manifest nor any
 * count). */
void gen_txn_end(struct gen *g, enum txn_outcome how)
{
    uint64_t n = g->seq - g->txn_seq0;

    if (how != TXN_COMMITTED) {
        uint64_t added = g->c.valid_new - g->saved.valid_new;

        for (uint64_t i = 0; i < added && i < RING_SIZE; i++)
            g->ring[(g->saved.ring_next + i) % RING_SIZE] = g->undo[i];
        g->c = g->saved;
    }
    if (how == TXN_COMMITTED)
        g->txns_committed++;
    if (how == TXN_ABORTED) {
        g->txns_aborted++;
        g->aborted += n;
    }
    for (uint64_t i = 0; g->rows != NULL && how != TXN_UNKNOWN && i < n; i++) {
        const struct row *r = &g->rows[i];

        write_row(g->manifest, g->txn_seq0 + i, how == TXN_ABORTED ? "aborted" : kind_names[r->kind],
                  r->key, r->camera, how == TXN_ABORTED ? "" : r->reason);
    }
}

/* Every camera_id must be usable verbatim in JSON and CSV, fit event.h's
 * limit, and not collide with the unknown-camera names. */
static int check_cameras(const refdata_t *ref, const char *path)
{
    if (refdata_count(ref) == 0) {
        fprintf(stderr, "camjoin-gen: --cameras: %s: no cameras\n", path);
        return -1;
    }
    for (size_t i = 0; i < refdata_count(ref); i++) {
        const refdata_row_t *r = refdata_row(ref, i);
        int bad = r->camera_id_len > EVENT_CAMERA_MAX ||
                  strncmp(r->camera_id, UNKNOWN_CAM, strlen(UNKNOWN_CAM)) == 0;

        for (size_t j = 0; j < r->camera_id_len && !bad; j++)
            bad = (unsigned char)r->camera_id[j] < 0x20 || strchr("\",\\", r->camera_id[j]) != NULL;
        if (bad) {
            fprintf(stderr, "camjoin-gen: --cameras: %s: camera_id \"%s\" is too long, "
                    "reserved, or has a quote, comma, backslash or control character\n",
                    path, r->camera_id);
            return -1;
        }
    }
    return 0;
}

static void print_summary(const struct gen *g, double elapsed)
{
    char buf[1024];
    size_t len = 0;

    append_cap(buf, sizeof(buf), &len,
               "{\"sent\":%llu,\"valid_new\":%llu,\"duplicates\":%llu,\"malformed\":%llu,"
               "\"unknown_camera\":%llu,\"malformed_by_reason\":{",
               (unsigned long long)g->c.sent, (unsigned long long)g->c.valid_new,
               (unsigned long long)g->c.duplicates, (unsigned long long)g->c.malformed,
               (unsigned long long)g->c.unknown);
    for (size_t i = 0; i < N_MALFORMED; i++)
        append_cap(buf, sizeof(buf), &len, "%s\"%s\":%llu", i ? "," : "",
                   malformed_kinds[i].reason, (unsigned long long)g->c.by_reason[i]);
    append_cap(buf, sizeof(buf), &len, "}");
    if (g->o->txn_id != NULL)
        append_cap(buf, sizeof(buf), &len,
                   ",\"aborted\":%llu,\"transactions_committed\":%llu,\"transactions_aborted\":%llu",
                   (unsigned long long)g->aborted, (unsigned long long)g->txns_committed,
                   (unsigned long long)g->txns_aborted);
    /* rate counts every message produced: aborted ones too, as --rate does */
    append_cap(buf, sizeof(buf), &len, ",\"elapsed_s\":%.3f,\"rate\":%.0f}\n", elapsed,
               elapsed > 0 ? (double)g->seq / elapsed : 0.0);
    fputs(buf, stdout);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct gen g = { .o = &o };
    refdata_t *ref = NULL;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    const char *flag;
    double elapsed = 0;
    char err[512];
    int rc;

    rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        goto out_opts;
    rc = 2;
    if (refdata_load(&ref, o.cameras, err, sizeof(err)) != 0) {
        usage_error("--cameras", err, NULL);
        goto out_opts;
    }
    if (check_cameras(ref, o.cameras) != 0)
        goto out_ref;
    g.ref = ref;
    g.prng = o.seed;
    if (o.manifest != NULL) {
        g.manifest = fopen(o.manifest, "w");
        if (g.manifest == NULL) {
            fprintf(stderr, "camjoin-gen: --manifest: %s: %s\n", o.manifest, strerror(errno));
            goto out_ref;
        }
        fputs("seq,kind,event_id,camera_id,reason\n", g.manifest);
    }
    rc = 1;
    g.ring = malloc(RING_SIZE * sizeof(*g.ring));
    if (g.ring == NULL)
        goto out_ring;
    if (o.txn_id != NULL) { /* gen.h: undo ring, held rows */
        g.undo = malloc(RING_SIZE * sizeof(*g.undo));
        g.rows_cap = g.manifest == NULL ? 0 : o.txn_messages < o.total ? o.txn_messages : o.total;
        g.rows = g.rows_cap > 0 ? calloc(g.rows_cap, sizeof(*g.rows)) : NULL;
        if (g.undo == NULL || (g.rows_cap > 0 && g.rows == NULL)) {
            fprintf(stderr, "camjoin-gen: --txn-messages: no memory to hold %llu manifest rows\n",
                    (unsigned long long)g.rows_cap);
            goto out_ring;
        }
    }
    rk = gen_producer_new(&o, err, sizeof(err), &flag);
    if (rk == NULL) {
        usage_error(flag, err, NULL);
        rc = 2;
        goto out_ring;
    }
    rkt = rd_kafka_topic_new(rk, o.topic, NULL);
    if (rkt == NULL) {
        usage_error("--topic", rd_kafka_err2str(rd_kafka_last_error()), o.topic);
        rc = 2;
        goto out_rk;
    }

    rc = gen_run(&g, rk, rkt, &elapsed);
    print_summary(&g, elapsed);

    rd_kafka_topic_destroy(rkt);
out_rk:
    rd_kafka_destroy(rk);
out_ring:
    free(g.rows);
    free(g.undo);
    free(g.ring);
    if (g.manifest != NULL && fclose(g.manifest) != 0) {
        fprintf(stderr, "camjoin-gen: --manifest: %s: %s\n", o.manifest, strerror(errno));
        rc = rc == 0 ? 1 : rc;
    }
out_ref:
    refdata_free(ref);
out_opts:
    free(o.xprops);
    return rc;
}
