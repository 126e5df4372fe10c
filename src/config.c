/* config — see include/camjoin/config.h. */
#include "camjoin/config.h"
#include "camjoin/log.h"

#include "config_table.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 512

/* Enums are stored through an int pointer. */
_Static_assert(sizeof(enum join_on_miss) == sizeof(int), "on_miss stored as int");
_Static_assert(sizeof(enum write_mode) == sizeof(int), "write_mode stored as int");

static const char *const on_miss_names[] = {
    [JOIN_KEEP] = "keep", [JOIN_DROP] = "drop", [JOIN_DEAD_LETTER] = "dead-letter", NULL};
static const char *const write_mode_names[] = {
    [WRITE_AUTO] = "auto", [WRITE_STAGED] = "staged", NULL};
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
     .reloadable = true, .flag = "reference", .metavar = "CSV", .env = "CAMJOIN_REFERENCE",
     .offset = OFF(reference), .min = 1, .help = "CSV file of cameras (the reference table)"},
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
     .help = "ADDR:PORT serving /metrics, /healthz and /readyz; empty = no HTTP server"},
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
    {"until-end", OPT_UNTIL_END, NULL, false,
     "read each assigned partition up to its high watermark at assignment, commit, exit 0"},
    {"check-config", OPT_CHECK, NULL, false, "check the configuration and exit (2 if invalid)"},
    {"print-config", OPT_PRINT, NULL, false,
     "print the effective configuration as INI, secrets masked, and exit"},
    {"verbose", 'v', NULL, false, "same as --set log.level=debug"},
    {"version", OPT_VERSION, NULL, false, "print the version and exit"},
    {"help", OPT_HELP, NULL, false, "print this help and exit"},
};
const size_t config_n_run_flags = ARRAY_LEN(config_run_flags);

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

static __attribute__((format(printf, 3, 4))) int problem(char *msg, size_t len,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct key_row *find_row(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++)
        if (strlen(config_rows[i].name) == len && memcmp(config_rows[i].name, name, len) == 0)
            return &config_rows[i];
    return NULL;
}

/* ---- numbers ---------------------------------------------------------- */

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

static int parse_int(const char *s, int64_t *v)
{
    static const struct unit none = {"", 1};
    int64_t mag;
    if (parse_with_unit(s + (*s == '-'), &none, 1, &mag) < 0)
        return -1;
    *v = *s == '-' ? -mag : mag;
    return 0;
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

/* ---- setting one key -------------------------------------------------- */

static int set_string(char **slot, const char *v, char *msg, size_t len)
{
    char *dup = strdup(v);
    if (!dup)
        return problem(msg, len, "out of memory");
    free(*slot);
    *slot = dup;
    return 0;
}

/* "keep, drop, dead-letter" (sep ", ") for an ENUM row. */
void config_join_choices(const struct key_row *r, const char *sep, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; r->choices[i] && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? sep : "", r->choices[i]);
}

static int set_enum(int *slot, const struct key_row *r, const char *v, char *msg, size_t len)
{
    char names[128];
    for (int i = 0; r->choices[i]; i++)
        if (strcmp(v, r->choices[i]) == 0) {
            *slot = i;
            return 0;
        }
    config_join_choices(r, ", ", names, sizeof names);
    return problem(msg, len, "bad value \"%s\" (one of: %s)", v, names);
}

/* Parses v into r's field; on failure writes the problem (no location). */
static int set_value(camjoin_config *cfg, const struct key_row *r, const char *v,
                     char *msg, size_t len)
{
    int64_t n = 0;
    char lo[32], hi[32];
    switch (r->type) {
    case T_STRING:
        if (r->min > 0 && *v == '\0')
            return problem(msg, len, "must not be empty");
        return set_string(config_field(cfg, r), v, msg, len);
    case T_ENUM:
        return set_enum(config_field(cfg, r), r, v, msg, len);
    case T_INT:
        if (parse_int(v, &n) < 0)
            return problem(msg, len, "bad integer \"%s\"", v);
        break;
    case T_DURATION:
        if (config_parse_duration(v, &n) < 0)
            return problem(msg, len, "bad duration \"%s\" (use e.g. 250ms, 10s, 10m, 2h)", v);
        break;
    case T_SIZE:
        if (config_parse_size(v, &n) < 0)
            return problem(msg, len, "bad size \"%s\" (use e.g. 1048576, 512KiB, 1MiB, 2G)", v);
        break;
    }
    if (n < r->min || n > r->max) {
        config_format_number(r->type, r->min, lo, sizeof lo);
        config_format_number(r->type, r->max, hi, sizeof hi);
        return problem(msg, len, "must be between %s and %s, got \"%s\"", lo, hi, v);
    }
    *(int64_t *)config_field(cfg, r) = n;
    return 0;
}

/* set_value() that reports "<where>: <problem>" in err. */
static int set_from(camjoin_config *cfg, const struct key_row *r, const char *v,
                    const char *where, char *err, size_t errlen)
{
    char msg[MSG_MAX];
    if (set_value(cfg, r, v, msg, sizeof msg) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", where, msg);
    return -1;
}

/* Adds or replaces a kafka property; an existing key keeps its place. */
static int kv_set(camjoin_config *cfg, const char *key, size_t keylen, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -1;
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        camjoin_kv *kv = &cfg->kafka_props[i];
        if (strlen(kv->key) == keylen && memcmp(kv->key, key, keylen) == 0) {
            free(kv->value);
            kv->value = v;
            return 0;
        }
    }
    camjoin_kv *grown = realloc(cfg->kafka_props, (cfg->n_kafka_props + 1) * sizeof *grown);
    if (!grown)
        goto fail_grow;
    cfg->kafka_props = grown;
    char *k = strndup(key, keylen);
    if (!k)
        goto fail_grow;
    grown[cfg->n_kafka_props++] = (camjoin_kv){.key = k, .value = v}; /* owned by cfg */
    return 0;
fail_grow:
    free(v);
    return -1;
}

/* ---- file ------------------------------------------------------------- */

struct file_ctx {
    camjoin_config *cfg;
    char msg[MSG_MAX]; /* the handler's error, without file:line */
};

static bool section_known(const char *section)
{
    size_t n = strlen(section);
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++)
        if (strncmp(config_rows[i].name, section, n) == 0 && config_rows[i].name[n] == '.')
            return true;
    return false;
}

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *ctx = user;
    char full[256], msg[MSG_MAX - 128]; /* leaves room for the key in ctx->msg */
    if (!*name) {
        snprintf(ctx->msg, sizeof ctx->msg, "missing key before '='");
        return 0;
    }
    if (strcmp(section, KAFKA_PROPS) == 0) {
        if (kv_set(ctx->cfg, name, strlen(name), value) == 0)
            return 1;
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        return 0;
    }
    int n = snprintf(full, sizeof full, "%s.%s", section, name);
    const struct key_row *r = find_row(full, (size_t)n);
    if (!*section)
        snprintf(ctx->msg, sizeof ctx->msg, "key \"%s\" is outside any [section]", name);
    else if (!section_known(section))
        snprintf(ctx->msg, sizeof ctx->msg, "unknown section [%s]", section);
    else if (!r)
        snprintf(ctx->msg, sizeof ctx->msg, "unknown key \"%s\"", full);
    else if (set_value(ctx->cfg, r, value, msg, sizeof msg) < 0)
        snprintf(ctx->msg, sizeof ctx->msg, "%s: %s", r->name, msg);
    else
        return 1;
    return 0;
}

/* Debian's inih (libinih 55) exposes its build options as globals; camjoin
 * is their only user in the process. */
static void configure_inih(void)
{
    ini_allow_multiline = false;       /* an indented line is not a continuation */
    ini_allow_inline_comments = false; /* "a ;b" is a value: passwords may hold ';' */
    ini_stop_on_first_error = true;    /* the return value is then our error's line */
    ini_use_stack = false;             /* heap line buffer, grown up to ini_max_line */
    ini_allow_realloc = true;
    ini_max_line = 65536;
}

/* inih splits a line longer than its buffer and parses the rest as another
 * line; refuse such a file up front, naming the line. Returns its number. */
static int overlong_line(FILE *fp)
{
    int c, line = 1;
    long len = 0;
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') {
            line++;
            len = 0;
        } else if (++len >= ini_max_line - 1) {
            return line;
        }
    }
    rewind(fp);
    return 0;
}

static int load_file(camjoin_config *cfg, char *err, size_t errlen)
{
    const char *path = cfg->config_file;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    configure_inih();
    int longline = overlong_line(fp);
    if (longline) {
        fclose(fp);
        snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, longline,
                 ini_max_line - 2);
        return -1;
    }
    struct file_ctx ctx = {.cfg = cfg};
    int line = ini_parse_file(fp, on_ini_pair, &ctx);
    int read_errno = ferror(fp) ? errno : 0;
    fclose(fp);
    if (read_errno)
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(read_errno));
    else if (line < 0)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 ctx.msg[0] ? ctx.msg : "syntax error (expected [section] or name = value)");
    return read_errno || line ? -1 : 0;
}

/* ---- environment and command line ------------------------------------- */

static int apply_defaults(camjoin_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++)
        if (set_from(cfg, &config_rows[i], config_rows[i].def, config_rows[i].name, err,
                     errlen) < 0)
            return -1;
    return 0;
}

static int apply_env(camjoin_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++) {
        const char *v = config_rows[i].env ? getenv(config_rows[i].env) : NULL;
        if (v && set_from(cfg, &config_rows[i], v, config_rows[i].env, err, errlen) < 0)
            return -1;
    }
    return 0;
}

struct cli {
    char shortopts[16];
    struct option longopts[ARRAY_LEN(config_rows) + ARRAY_LEN(config_run_flags) + 1];
};

static void build_cli(struct cli *cli)
{
    size_t s = 0, l = 0;
    memset(cli, 0, sizeof *cli);
    cli->shortopts[s++] = ':'; /* report a missing value as ':' */
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++)
        if (config_rows[i].flag)
            cli->longopts[l++] = (struct option){config_rows[i].flag, required_argument, NULL,
                                                 OPT_ROW + (int)i};
    for (size_t i = 0; i < ARRAY_LEN(config_run_flags); i++) {
        const struct run_flag *f = &config_run_flags[i];
        int has_arg = f->metavar ? required_argument : no_argument;
        if (f->name)
            cli->longopts[l++] = (struct option){f->name, has_arg, NULL, f->val};
        if (f->val < OPT_SET) {
            cli->shortopts[s++] = (char)f->val;
            if (f->metavar)
                cli->shortopts[s++] = ':';
        }
    }
}

static const struct option *long_option(const struct cli *cli, int val)
{
    for (const struct option *o = cli->longopts; o->name; o++)
        if (o->val == val)
            return o;
    return NULL;
}

/* "--brokers" or "-c" for an option's getopt value. */
static const char *flag_name(const struct cli *cli, int val, char *buf, size_t len)
{
    const struct option *o = long_option(cli, val);
    if (o)
        snprintf(buf, len, "--%s", o->name);
    else
        snprintf(buf, len, "-%c", val);
    return buf;
}

/* Pass 1: checks the syntax of argv, finds -c, and handles --help and
 * --version, before anything else is read. */
static enum config_status scan_args(int argc, char **argv, const struct cli *cli, FILE *info,
                                    camjoin_config *cfg, char *err, size_t errlen)
{
    char name[64];
    int c;
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    while ((c = getopt_long(argc, argv, cli->shortopts, cli->longopts, NULL)) != -1) {
        if (c == ':' || (optarg && strncmp(optarg, "--", 2) == 0)) {
            snprintf(err, errlen, "%s: requires a value",
                     flag_name(cli, c == ':' ? optopt : c, name, sizeof name));
            return CONFIG_ERROR;
        }
        if (c == '?' && optopt && long_option(cli, optopt)) { /* --verbose=x */
            snprintf(err, errlen, "%s: takes no value", flag_name(cli, optopt, name, sizeof name));
            return CONFIG_ERROR;
        }
        if (c == '?' && optopt) {
            snprintf(err, errlen, "unknown option -%c (see --help)", optopt);
            return CONFIG_ERROR;
        }
        if (c == '?') {
            const char *arg = argv[optind - 1];
            snprintf(err, errlen, "unknown option %.*s (see --help)", (int)strcspn(arg, "="), arg);
            return CONFIG_ERROR;
        }
        if (c == 'c' && set_string(&cfg->config_file, optarg, err, errlen) < 0)
            return CONFIG_ERROR;
        if (c == OPT_HELP || c == OPT_VERSION) {
            if (c == OPT_HELP)
                config_print_help(info);
            else
                fprintf(info, "camjoin %s\n", CAMJOIN_VERSION);
            return CONFIG_EXIT;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* Splits "key=value" at the first '='; the key must not be empty. */
static int split_kv(const char *arg, const char *flag, size_t *keylen, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (eq && eq != arg) {
        *keylen = (size_t)(eq - arg);
        return 0;
    }
    snprintf(err, errlen, "%s: expected key=value, got \"%s\"", flag, arg);
    return -1;
}

static int apply_set(camjoin_config *cfg, const char *arg, char *err, size_t errlen)
{
    size_t klen;
    char where[256];
    if (split_kv(arg, "--set", &klen, err, errlen) < 0)
        return -1;
    const struct key_row *r = find_row(arg, klen);
    if (!r) {
        snprintf(err, errlen, "--set: unknown key \"%.*s\"", (int)klen, arg);
        return -1;
    }
    snprintf(where, sizeof where, "--set: %s", r->name);
    return set_from(cfg, r, arg + klen + 1, where, err, errlen);
}

/* Pass 2: applies the flags, in order, over defaults, file and environment. */
static int apply_args(int argc, char **argv, const struct cli *cli, camjoin_config *cfg,
                      char *err, size_t errlen)
{
    char where[64];
    size_t klen;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, cli->shortopts, cli->longopts, NULL)) != -1) {
        if (c >= OPT_ROW) {
            rc = set_from(cfg, &config_rows[c - OPT_ROW], optarg,
                          flag_name(cli, c, where, sizeof where), err, errlen);
            continue;
        }
        switch (c) {
        case 'X':
            rc = split_kv(optarg, "-X", &klen, err, errlen);
            if (rc == 0 && (rc = kv_set(cfg, optarg, klen, optarg + klen + 1)) < 0)
                snprintf(err, errlen, "-X: out of memory");
            break;
        case OPT_SET:
            rc = apply_set(cfg, optarg, err, errlen);
            break;
        case OPT_REPLAY:
            rc = set_string(&cfg->replay_from, optarg, err, errlen);
            break;
        case OPT_UNTIL_END:
            cfg->until_end = true;
            break;
        case OPT_CHECK:
            cfg->check_config = true;
            break;
        case OPT_PRINT:
            cfg->print_config = true;
            break;
        case 'v':
            cfg->log_level = LOG_DEBUG;
            break;
        }
    }
    return rc;
}

enum config_status config_parse(int argc, char **argv, FILE *info, camjoin_config **out,
                                char *err, size_t errlen)
{
    struct cli cli;
    enum config_status st = CONFIG_ERROR;
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    build_cli(&cli);
    camjoin_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_ERROR;
    }
    st = scan_args(argc, argv, &cli, info, cfg, err, errlen);
    if (st != CONFIG_OK)
        goto fail_cfg;
    st = CONFIG_ERROR;
    if (apply_defaults(cfg, err, errlen) < 0 ||
        (cfg->config_file && load_file(cfg, err, errlen) < 0) ||
        apply_env(cfg, err, errlen) < 0 || apply_args(argc, argv, &cli, cfg, err, errlen) < 0)
        goto fail_cfg;
    *out = cfg; /* owned by the caller */
    return CONFIG_OK;
fail_cfg:
    config_free(cfg);
    return st;
}

void config_free(camjoin_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < ARRAY_LEN(config_rows); i++)
        if (config_rows[i].type == T_STRING)
            free(*(char **)config_field(cfg, &config_rows[i]));
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    free(cfg->config_file);
    free(cfg->replay_from);
    free(cfg);
}
