/*
 * config — the one place where settings come from.
 *
 * Sources, highest precedence first: command-line flags, environment
 * (CAMJOIN_BROKERS, CAMJOIN_TOPIC, CAMJOIN_GROUP, CAMJOIN_PG,
 * CAMJOIN_REFERENCE), the INI file named by -c, built-in defaults. The result
 * is one camjoin_config, filled once at startup and read-only afterwards.
 *
 * A single table of {name, type, default, reloadable, flag, env, help} rows in
 * config.c drives everything: INI parsing (inih), the CLI, --help and
 * --print-config, so the three cannot drift apart. Keys are written
 * `section.name` (INI `[section]` + `name = value`). Any key inside the
 * `[kafka.properties]` section, and any `-X key=value` flag, is passed unchanged
 * to rd_kafka_conf_set(); -X wins over the file for the same key.
 *
 * Value types: string; integer (decimal, range-checked); duration (an integer
 * with a unit: ms, s, m, h, e.g. "10m", "250ms"; "0" alone is allowed); size
 * (bytes, with an optional unit: KiB, MiB, GiB, or k/M/G = 1000^n); enum.
 *
 * Errors: an unknown key, a malformed line, a bad value or an unknown flag is
 * reported in `err` as one line that names where it came from (`file:line:`,
 * `--flag`, or `CAMJOIN_X`), and config_parse() returns CONFIG_ERROR; main
 * prints it and exits 2. Nothing is printed from here except the --help and
 * --version texts, which go to the FILE given.
 *
 * Ownership: config_parse() allocates *out; config_free() releases it and
 * every string inside it.
 */
#ifndef CAMJOIN_CONFIG_H
#define CAMJOIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "camjoin/base.h"

enum join_on_miss { JOIN_KEEP = 0, JOIN_DROP = 1, JOIN_DEAD_LETTER = 2 };
enum write_mode { WRITE_AUTO = 0, WRITE_STAGED = 1 };
enum pool_mode { POOL_SESSION = 0, POOL_TRANSACTION = 1 };

typedef struct camjoin_kv {
    char *key;
    char *value;
} camjoin_kv;

typedef struct camjoin_config {
    char *config_file;        /* -c; NULL when none */
    /* [kafka] */
    char *brokers;            /* kafka.brokers, --brokers, CAMJOIN_BROKERS; default "localhost:9092" */
    char *topic;              /* kafka.topic, --topic, CAMJOIN_TOPIC; default "camera-events" */
    char *group;              /* kafka.group, --group, CAMJOIN_GROUP; default "camjoin" */
    /* [postgres] */
    char *pg_conninfo;        /* postgres.conninfo, --pg, CAMJOIN_PG; default "" (libpq PG* env) */
    char *table;              /* postgres.table, --table; default "camera_events" */
    int64_t pg_retry_max_ms;  /* postgres.retry_max; default 10s: cap of reconnect backoff */
    enum write_mode write_mode; /* postgres.write_mode: auto | staged; default auto:
                                 COPY straight into the tables, and on a unique
                                 violation redo that batch (and the next ones,
                                 until one meets no conflict) through staging
                                 tables with ON CONFLICT DO NOTHING */
    enum pool_mode pool_mode; /* postgres.pool_mode: session | transaction; default
                                 session (a direct connection, or a pooler's
                                 session pool); transaction: nothing of the
                                 session is relied on (a transaction-pooling
                                 PgBouncer) */
    char *upkeep_conninfo;    /* postgres.upkeep_conninfo; default "" = conninfo.
                                 Required with pool_mode=transaction: upkeep
                                 holds a session lock and settings */
    int64_t partitions_ahead; /* postgres.partitions_ahead; default 7, range 0..366:
                                 daily partitions (UTC, on event_ts) kept ahead of today */
    /* [retention], [archive] */
    int64_t retention_days;   /* retention.days; default 0 = keep; 1..36500: drop
                                 partitions whose day ended longer ago than this */
    int64_t retention_interval_ms; /* retention.interval; default 1h, 1s..24h:
                                 period of the partition upkeep */
    char *archive_dir;        /* archive.dir; default "" = drop without archiving */
    /* [reference] */
    char *reference;          /* reference.path, --reference, CAMJOIN_REFERENCE; default "/etc/camjoin/cameras.csv" */
    int reference_watch;      /* reference.watch: off | on; default on: reload when
                                 the file is replaced or rewritten */
    /* [join] */
    enum join_on_miss on_miss;/* join.on_miss: keep | drop | dead-letter; default keep */
    /* [dedup] */
    int64_t dedup_window_ms;  /* dedup.window; default 10m */
    int dedup_warm_up;        /* dedup.warm_up: off | on; default on: load the
                                 window's event_ids of newly assigned partitions
                                 from PostgreSQL before consuming them */
    /* [batch] */
    int64_t batch_max_rows;   /* batch.max_rows; default 20000, range 1..10000000 */
    int64_t batch_max_wait_ms;/* batch.max_wait; default 0ms: how long an idle
                                 connection waits for more rows before flushing
                                 (0 = flush as soon as the previous commit returns) */
    int64_t batch_max_buffered; /* batch.max_buffered; default 200000: pause partitions above this */
    /* [event] */
    int64_t max_message_bytes;/* event.max_message_bytes; default 1MiB */
    int64_t max_future_ms;    /* event.max_future; default 0 = no limit: event_ts
                                 further ahead of the clock → dead letter
                                 event_ts_in_future */
    int64_t max_age_ms;       /* event.max_age; default 0 = no limit: event_ts
                                 older than this → dead letter event_ts_too_old */
    /* [http] */
    char *http_listen;        /* http.listen, --http; default "" (off) */
    int64_t ready_max_pause_ms; /* http.ready_max_pause; default 30s, range 0..24h:
                                 /readyz answers 503 once partitions have been
                                 paused by back-pressure for longer than this */
    /* [log] */
    int log_level;            /* log.level: error|warn|info|debug; default info; -v = debug */
    int log_format;           /* log.format, --log-format: logfmt|json (enum log_format);
                                 default logfmt */
    /* run-only flags (CLI) */
    char *replay_from;        /* --replay-from SPEC; NULL when absent */
    char *replay_until;       /* --replay-until SPEC; NULL when absent */
    bool until_end;           /* --until-end */
    bool dry_run;             /* --dry-run */
    bool redrive;             /* --redrive-dead-letters */
    char *redrive_reason;     /* --reason REASON; NULL when absent */
    char *redrive_since;      /* --since @TIME; NULL when absent */
    bool check_config;        /* --check-config */
    bool print_config;        /* --print-config */
    /* [kafka.properties] then -X, in order; later entries win */
    camjoin_kv *kafka_props;
    size_t n_kafka_props;
} camjoin_config;

enum config_status {
    CONFIG_OK = 0,      /* *out is filled; run */
    CONFIG_EXIT = 1,    /* --help or --version was printed to `info`; exit 0 */
    CONFIG_ERROR = -1,  /* err holds one line; exit 2 */
};

/* Parses argv (getopt_long), the environment (getenv) and the file named by
 * -c. `info` receives the --help / --version text. */
enum config_status config_parse(int argc, char **argv, FILE *info,
                                camjoin_config **out, char *err, size_t errlen);

/* Writes every key with its effective value as INI (the --print-config
 * output). Secrets are masked: the `password=` part of a conninfo string or
 * URI, and any kafka property whose name contains "password" or "secret",
 * print as "****". The output parses back with config_parse(-c). */
void config_print(const camjoin_config *cfg, FILE *f);

/* Writes the camjoin(1) man page (roff, man(7) macros) generated from the
 * same key and flag tables: every flag, every key with its type, range,
 * default, flag and environment variable (config_man.c).
 * Used at build time by camjoin-gen-man. */
void config_print_man(FILE *f);

/* A librdkafka property whose value must not be printed (a password, a
 * secret, a private key): --print-config and every error message mask it. */
bool config_secret_property(const char *key);

/* Writes `conninfo` (keyword string or URI) into buf with every password
 * masked as "****" (the --print-config form), truncated to fit and always
 * NUL-terminated when len > 0. Returns the length of the whole masked text,
 * like snprintf: a result >= len means buf was too small. */
size_t config_mask_conninfo(const char *conninfo, char *buf, size_t len);

/* Parses a duration ("250ms", "10s", "10m", "2h", "0") into milliseconds.
 * Returns 0 or -1. Exposed for tests and for other modules' options. */
CJ_MUSTCHECK int config_parse_duration(const char *s, int64_t *ms);
/* Parses a size ("1048576", "512KiB", "1MiB", "2G") into bytes. */
CJ_MUSTCHECK int config_parse_size(const char *s, int64_t *bytes);

/* After config_parse() has copied what it needs: overwrites, in place, the
 * secrets among the arguments (conninfo passwords, secret -X properties)
 * with '*', so `ps` and /proc/PID/cmdline no longer show them. */
void config_scrub_argv(int argc, char **argv);

void config_free(camjoin_config *cfg);

#endif
