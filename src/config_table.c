/* config_table — see config_table.h: the tables of keys and flags that the
 * parser (config.c), --help and --print-config (config_text.c) and the man
 * page (config_man.c) all read, and the value types' parsing and formatting,
 * which they share, so that no two of them can disagree. Constant data and
 * pure functions.
 */
#include "config_table.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "camjoin/log.h"

/* Enums are stored through an int pointer. */
_Static_assert(sizeof(enum join_on_miss) == sizeof(int), "on_miss stored as int");
_Static_assert(sizeof(enum write_mode) == sizeof(int), "write_mode stored as int");
_Static_assert(sizeof(enum pool_mode) == sizeof(int), "pool_mode stored as int");

static const char *const on_miss_names[] = {
    [JOIN_KEEP] = "keep", [JOIN_DROP] = "drop", [JOIN_DEAD_LETTER] = "dead-letter", NULL};
static const char *const write_mode_names[] = {
    [WRITE_AUTO] = "auto", [WRITE_STAGED] = "staged", NULL};
static const char *const pool_mode_names[] = {
    [POOL_SESSION] = "session", [POOL_TRANSACTION] = "transaction", NULL};
static const char *const off_on_names[] = {"off", "on", NULL};
static const char *const level_names[] = {
    [LOG_ERROR] = "error", [LOG_WARN] = "warn", [LOG_INFO] = "info", [LOG_DEBUG] = "debug", NULL};
static const char *const format_names[] = {
    [LOG_FORMAT_LOGFMT] = "logfmt", [LOG_FORMAT_JSON] = "json", NULL};

#define OFF(f) offsetof(camjoin_config, f)
const struct key_row config_rows[] = {
    {.name = "kafka.brokers", .type = T_STRING, .def = "localhost:9092", .flag = "brokers",
     .metavar = "LIST", .env = "CAMJOIN_BROKERS", .offset = OFF(brokers), .min = 1,
     .help = "Kafka bootstrap servers, a comma-separated host:port list"},
    {.name = "kafka.topic", .type = T_STRING, .def = "camera-events", .flag = "topic",
     .metavar = "NAME", .env = "CAMJOIN_TOPIC", .offset = OFF(topic), .min = 1,
     .help = "topic to consume camera events from"},
    {.name = "kafka.group", .type = T_STRING, .def = "camjoin", .flag = "group",
     .metavar = "ID", .env = "CAMJOIN_GROUP", .offset = OFF(group), .min = 1,
     .help = "consumer group id; also keys the offsets stored in camjoin_offsets"},
    {.name = "postgres.conninfo", .type = T_STRING, .def = "", .flag = "pg",
     .metavar = "CONNINFO", .env = "CAMJOIN_PG", .offset = OFF(pg_conninfo), .secret = true,
     .help = "libpq connection string or postgresql:// URI; empty = libpq defaults and PG* variables"},
    {.name = "postgres.table", .type = T_STRING, .def = "camera_events", .flag = "table",
     .metavar = "NAME", .offset = OFF(table), .min = 1,
     .help = "table that receives the joined rows"},
    {.name = "postgres.retry_max", .type = T_DURATION, .def = "10s", .offset = OFF(pg_retry_max_ms),
     .min = 100, .max = 3600000, .help = "cap of the reconnect/retry backoff"},
    {.name = "postgres.write_mode", .type = T_ENUM, .def = "auto", .offset = OFF(write_mode),
     .choices = write_mode_names,
     .help = "auto: COPY rows straight into the tables; a batch that meets an existing "
             "row (a replay) is rolled back and redone through staging tables with ON "
             "CONFLICT DO NOTHING, as are the next batches until one meets no conflict. "
             "staged: always stage (slower, never redoes a batch)"},
    {.name = "postgres.pool_mode", .type = T_ENUM, .def = "session", .offset = OFF(pool_mode),
     .choices = pool_mode_names,
     .help = "session: camjoin's connections keep their settings and temporary staging "
             "tables (PostgreSQL itself, or a pooler's session pool). transaction: "
             "behind a transaction-pooling PgBouncer, each transaction sets them up "
             "again (SET LOCAL, staging tables ON COMMIT DROP); needs "
             "postgres.upkeep_conninfo"},
    {.name = "postgres.upkeep_conninfo", .type = T_STRING, .def = "",
     .offset = OFF(upkeep_conninfo), .secret = true,
     .help = "connection of the partition upkeep and retention, which hold a session "
             "advisory lock: PostgreSQL itself or a session pool; empty = "
             "postgres.conninfo"},
    {.name = "postgres.partitions_ahead", .type = T_INT, .def = "7",
     .offset = OFF(partitions_ahead), .min = 0, .max = 366,
     .help = "the events table is partitioned by day (UTC) on event_ts: keep daily "
             "partitions from today to this many days ahead (rows outside them land in "
             "the default partition until their day's partition is made)"},
    {.name = "retention.days", .type = T_INT, .def = "0",
     .offset = OFF(retention_days), .min = 0, .max = 36500,
     .help = "drop event partitions (and default-partition rows) whose day ended more "
             "than this many days ago; 0 = keep everything. Rollups keep their history"},
    {.name = "retention.interval", .type = T_DURATION, .def = "1h",
     .offset = OFF(retention_interval_ms), .min = 1000, .max = 86400000,
     .help = "how often partition upkeep runs (partitions ahead, rows moved out of "
             "the default partition, retention); also once at startup"},
    {.name = "archive.dir", .type = T_STRING, .def = "", .offset = OFF(archive_dir),
     .help = "before a partition is dropped by retention, write its rows here as "
             "gzip-compressed CSV with a manifest; empty = drop without archiving"},
    {.name = "reference.path", .type = T_STRING, .def = "/etc/camjoin/cameras.csv",
     .flag = "reference", .metavar = "CSV", .env = "CAMJOIN_REFERENCE",
     .offset = OFF(reference), .min = 1,
     .help = "CSV file of cameras (the reference table). SIGHUP reads the file again; a "
             "bad file keeps the old table. The configuration itself, this path "
             "included, is read only at startup"},
    {.name = "reference.watch", .type = T_ENUM, .def = "on", .offset = OFF(reference_watch),
     .choices = off_on_names,
     .help = "watch the CSV's directory and load the file again, as SIGHUP does, once it "
             "has been replaced (renamed over) or rewritten and then left alone for half "
             "a second; a bad file keeps the old table"},
    {.name = "join.on_miss", .type = T_ENUM, .def = "keep", .offset = OFF(on_miss),
     .choices = on_miss_names,
     .help = "event whose camera_id is not in the reference table: keep it with NULL "
             "reference columns, drop it, or make it a dead letter"},
    {.name = "dedup.window", .type = T_DURATION, .def = "10m", .offset = OFF(dedup_window_ms),
     .min = 1, .max = 86400000,
     .help = "a repeated event_id is dropped within this time of its first sighting"},
    {.name = "dedup.warm_up", .type = T_ENUM, .def = "on", .offset = OFF(dedup_warm_up),
     .choices = off_on_names,
     .help = "on assignment, load the event_ids of the partitions' last window from "
             "PostgreSQL, so a retry arriving right after a rebalance or restart is "
             "still dropped in memory"},
    {.name = "batch.max_rows", .type = T_INT, .def = "20000", .offset = OFF(batch_max_rows),
     .min = 1, .max = 10000000, .help = "a batch holds at most this many messages; a full batch is sealed and queued"},
    {.name = "batch.max_wait", .type = T_DURATION, .def = "0", .offset = OFF(batch_max_wait_ms),
     .min = 0, .max = 60000,
     .help = "how long an idle connection lingers for more rows before flushing; "
             "0 = flush as soon as the previous commit returns"},
    {.name = "batch.max_buffered", .type = T_INT, .def = "200000",
     .offset = OFF(batch_max_buffered), .min = 1, .max = 100000000,
     .help = "pause the Kafka partitions while more rows than this await their commit"},
    {.name = "event.max_message_bytes", .type = T_SIZE, .def = "1MiB",
     .offset = OFF(max_message_bytes), .min = 1024, .max = 1073741824,
     .help = "a longer Kafka message becomes a dead letter (reason too_large)"},
    {.name = "event.max_future", .type = T_DURATION, .def = "0",
     .offset = OFF(max_future_ms), .min = 0, .max = 31536000000,
     .help = "an event_ts further than this ahead of the clock becomes a dead letter "
             "(event_ts_in_future); 0 = no limit"},
    {.name = "event.max_age", .type = T_DURATION, .def = "0",
     .offset = OFF(max_age_ms), .min = 0, .max = 3153600000000,
     .help = "an event_ts older than this becomes a dead letter (event_ts_too_old); "
             "0 = no limit"},
    {.name = "http.listen", .type = T_STRING, .def = "", .flag = "http", .metavar = "ADDR:PORT",
     .offset = OFF(http_listen),
     .help = "where to serve /metrics, /healthz and /readyz: PORT (loopback), :PORT "
             "(every interface), HOST:PORT (an address or a host name) or [V6ADDR]:PORT; "
             "empty = no HTTP server"},
    {.name = "http.ready_max_pause", .type = T_DURATION, .def = "30s",
     .offset = OFF(ready_max_pause_ms), .min = 0, .max = 86400000,
     .help = "/readyz answers 503 once partitions have been paused by back-pressure "
             "for longer than this"},
    {.name = "log.level", .type = T_ENUM, .def = "info", .offset = OFF(log_level),
     .choices = level_names, .help = "log lines up to this level (-v = debug)"},
    {.name = "log.format", .type = T_ENUM, .def = "logfmt", .flag = "log-format",
     .metavar = "FORMAT", .offset = OFF(log_format), .choices = format_names,
     .help = "stderr lines as logfmt (ts=... level=... msg=\"...\" key=value) or as one "
             "JSON object a line"},
};
const size_t config_n_rows = ARRAY_LEN(config_rows);

const struct run_flag config_run_flags[] = {
    {NULL, 'c', "FILE", false, "read settings from the INI file FILE"},
    {NULL, 'X', "KEY=VALUE", true,
     "set a librdkafka property (wins over [kafka.properties])"},
    {"set", OPT_SET, "KEY=VALUE", true, "set any config key below, e.g. --set batch.max_rows=5000"},
    {"replay-from", OPT_REPLAY, "SPEC", false,
     "this run only, start from SPEC instead of the stored offsets: earliest, latest, "
     "OFFSET, P:OFFSET[,P:OFFSET...] or @TIME (RFC 3339, epoch ms, or a duration "
     "before now such as @-1h); each partition starts at its first offset whose "
     "timestamp is >= TIME"},
    {"replay-until", OPT_REPLAY_UNTIL, "SPEC", false,
     "this run only, stop each partition at SPEC: OFFSET, P:OFFSET[,P:OFFSET...] "
     "(partitions not listed stop at their end) or @TIME (before its first offset whose "
     "timestamp is >= TIME), at most the end it had at assignment; then commit and exit 0"},
    {"until-end", OPT_UNTIL_END, NULL, false,
     "read each assigned partition up to its high watermark at assignment, commit, exit 0"},
    {"dry-run", OPT_DRY_RUN, NULL, false,
     "print, for each partition of the topic, the offset this run would start at, the one "
     "it would stop at and the messages between, then exit 0 without consuming or writing"},
    {"redrive-dead-letters", OPT_REDRIVE, NULL, false,
     "run the topic's stored dead letters that were never re-driven through the current "
     "rules once more, write what becomes rows (each dead letter once, marked in "
     "camjoin_redriven in the same transaction), print what became rows and what is "
     "still dead, and exit 0"},
    {"reason", OPT_REASON, "REASON", false,
     "with --redrive-dead-letters: only dead letters of this reason (e.g. event_ts_too_old)"},
    {"since", OPT_SINCE, "@TIME", false,
     "with --redrive-dead-letters: only dead letters stored at or after TIME (RFC 3339, "
     "epoch ms, or a duration before now such as @-1h)"},
    {"check-config", OPT_CHECK, NULL, false, "check the configuration and exit (2 if invalid)"},
    {"print-config", OPT_PRINT, NULL, false,
     "print the effective configuration as INI, secrets masked, and exit"},
    {"verbose", 'v', NULL, false, "same as --set log.level=debug"},
    {"version", OPT_VERSION, NULL, false,
     "print camjoin's version and the versions of the libraries it runs with, and exit"},
    {"help", 'h', NULL, false, "print this help and exit"},
};
const size_t config_n_run_flags = ARRAY_LEN(config_run_flags);
_Static_assert(ARRAY_LEN(config_rows) <= CONFIG_ROWS_MAX, "raise CONFIG_ROWS_MAX");
_Static_assert(ARRAY_LEN(config_run_flags) <= CONFIG_RUN_FLAGS_MAX,
               "raise CONFIG_RUN_FLAGS_MAX");

/* ---- value types ---- */

struct unit {
    const char *suffix;
    int64_t mult;
};
/* Largest first: formatting picks the first unit that divides exactly. */
static const struct unit duration_units[] = {
    {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
static const struct unit size_units[] = {
    {"GiB", 1073741824}, {"G", 1000000000}, {"MiB", 1048576}, {"M", 1000000},
    {"KiB", 1024}, {"k", 1000}, {"", 1}};

static int parse_with_unit(const char *s, const struct unit *u, size_t n, int64_t *out)
{
    int64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (p == s)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p, u[i].suffix) != 0)
            continue;
        if (v > INT64_MAX / u[i].mult)
            return -1;
        *out = v * u[i].mult;
        return 0;
    }
    return -1;
}

int config_parse_uint(const char *s, int64_t *v)
{
    static const struct unit none = {"", 1};
    return parse_with_unit(s, &none, 1, v);
}

int config_parse_duration(const char *s, int64_t *ms)
{
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    return parse_with_unit(s, duration_units, ARRAY_LEN(duration_units), ms);
}

int config_parse_size(const char *s, int64_t *bytes)
{
    return parse_with_unit(s, size_units, ARRAY_LEN(size_units), bytes);
}

/* Writes v as the type's text: "10m", "1MiB", "20000". */
void config_format_number(enum value_type t, int64_t v, char *buf, size_t len)
{
    const struct unit *u = t == T_DURATION ? duration_units : size_units;
    size_t n = t == T_DURATION ? ARRAY_LEN(duration_units) : ARRAY_LEN(size_units);
    if (t == T_INT || v == 0) {
        snprintf(buf, len, "%lld", (long long)v);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (v % u[i].mult == 0) {
            snprintf(buf, len, "%lld%s", (long long)(v / u[i].mult), u[i].suffix);
            return;
        }
}

/* "keep, drop, dead-letter" (sep ", ") for an ENUM row. */
void config_join_choices(const struct key_row *r, const char *sep, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; r->choices[i] && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? sep : "", r->choices[i]);
}

const char *config_type_name(const struct key_row *r)
{
    static const char *const names[] = {
        [T_STRING] = "string", [T_INT] = "integer", [T_DURATION] = "duration",
        [T_SIZE] = "size", [T_ENUM] = "one of"};
    return r->type == T_STRING && r->min ? "string, non-empty" : names[r->type];
}
