/* Unit tests for config: types, precedence, file errors, run flags
 * (--help and printing: test_config_text.c). */
#include "config_util.h"

static void expect_error(const char *const *args, const char *want)
{
    camjoin_config *cfg = (camjoin_config *)&cfg; /* must be reset to NULL */
    char err[512] = "";
    assert_int_equal(parse(args, &cfg, err, sizeof err, NULL), CONFIG_ERROR);
    assert_null(cfg);
    assert_string_equal(err, want);
}


static char *data_path(const char *rel)
{
    const char *dir = getenv("CAMJOIN_TESTDATA");
    char *path;
    if (!dir)
        fail_msg("CAMJOIN_TESTDATA is not set");
    assert_true(asprintf(&path, "%s/%s", dir, rel) > 0);
    return path;
}


/* The defaults written in config.h, independently of config.c's table. */
static void assert_defaults(const camjoin_config *c)
{
    camjoin_config want = {
        .brokers = "localhost:9092", .topic = "camera-events", .group = "camjoin",
        .pg_conninfo = "", .table = "camera_events", .pg_retry_max_ms = 10000,
        .write_mode = WRITE_AUTO, .partitions_ahead = 7, .retention_days = 0,
        .retention_interval_ms = 3600000, .archive_dir = "",
        .reference = "/etc/camjoin/cameras.csv", .reference_watch = 1, .on_miss = JOIN_KEEP,
        .dedup_window_ms = 600000, .dedup_warm_up = 1, .batch_max_rows = 20000,
        .batch_max_wait_ms = 0,
        .batch_max_buffered = 200000, .max_message_bytes = 1048576, .http_listen = "",
        .ready_max_pause_ms = 30000, .log_level = LOG_INFO, .log_format = LOG_FORMAT_LOGFMT};
    assert_same_config(c, &want);
}

static void test_defaults(void **state)
{
    (void)state;
    camjoin_config *c = parse_ok(NULL);
    assert_defaults(c);
    assert_null(c->config_file);
    assert_null(c->replay_from);
    assert_false(c->until_end || c->check_config || c->print_config);
    config_free(c);
}

static void test_shipped_config_is_defaults(void **state)
{
    (void)state;
    char *path = data_path("../../config/camjoin.conf");
    camjoin_config *c = parse_ok((const char *[]){"-c", path, NULL});
    assert_defaults(c);
    assert_string_equal(c->config_file, path);
    config_free(c);
    free(path);
}

static const struct {
    const char *text;
    int rc;
    int64_t ms;
} duration_cases[] = {
    {"250ms", 0, 250}, {"10s", 0, 10000}, {"10m", 0, 600000}, {"2h", 0, 7200000},
    {"0", 0, 0}, {"0ms", 0, 0}, {"007s", 0, 7000},
    {"", -1, 0}, {"10", -1, 0}, {"10 m", -1, 0}, {" 10m", -1, 0}, {"-5s", -1, 0},
    {"+5s", -1, 0}, {"1.5s", -1, 0}, {"10min", -1, 0}, {"10M", -1, 0}, {"ms", -1, 0},
    {"9223372036854775807ms", 0, INT64_MAX}, {"9223372036854775808ms", -1, 0},
    {"2562047788015216h", -1, 0}, /* * 3600000 overflows */
};

static void test_duration(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(duration_cases); i++) {
        int64_t ms = -42;
        int rc = config_parse_duration(duration_cases[i].text, &ms);
        if (rc != duration_cases[i].rc)
            fail_msg("duration \"%s\": rc %d", duration_cases[i].text, rc);
        assert_int_equal(ms, rc == 0 ? duration_cases[i].ms : -42);
    }
}

static const struct {
    const char *text;
    int rc;
    int64_t bytes;
} size_cases[] = {
    {"1048576", 0, 1048576}, {"512KiB", 0, 524288}, {"1MiB", 0, 1048576},
    {"3GiB", 0, 3221225472}, {"2G", 0, 2000000000}, {"5M", 0, 5000000}, {"3k", 0, 3000},
    {"0", 0, 0},
    {"", -1, 0}, {"1KB", -1, 0}, {"1kib", -1, 0}, {"1K", -1, 0}, {"-1", -1, 0},
    {"1.5MiB", -1, 0}, {"MiB", -1, 0}, {"1 MiB", -1, 0}, {"18446744073709551616", -1, 0},
    {"9007199254740992GiB", -1, 0},
};

static void test_size(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(size_cases); i++) {
        int64_t b = -42;
        int rc = config_parse_size(size_cases[i].text, &b);
        if (rc != size_cases[i].rc)
            fail_msg("size \"%s\": rc %d", size_cases[i].text, rc);
        assert_int_equal(b, rc == 0 ? size_cases[i].bytes : -42);
    }
}

/* One --set (or flag) per row: the field it lands in, or the exact error. */
enum kind { ERR, I64, INT, STR };
static const struct {
    const char *args[3];
    enum kind kind;
    size_t off;
    int64_t num;
    const char *str; /* STR: the value; ERR: the message */
} value_cases[] = {
#define F(f) offsetof(camjoin_config, f)
    {{"--set", "batch.max_rows=1"}, I64, F(batch_max_rows), 1, NULL},
    {{"--set", "batch.max_rows=10000000"}, I64, F(batch_max_rows), 10000000, NULL},
    {{"--set", "batch.max_rows=0"}, ERR, 0, 0,
     "--set: batch.max_rows: must be between 1 and 10000000, got \"0\""},
    {{"--set", "batch.max_rows=10000001"}, ERR, 0, 0,
     "--set: batch.max_rows: must be between 1 and 10000000, got \"10000001\""},
    {{"--set", "batch.max_rows=-3"}, ERR, 0, 0,
     "--set: batch.max_rows: must be between 1 and 10000000, got \"-3\""},
    {{"--set", "batch.max_rows=12k"}, ERR, 0, 0, "--set: batch.max_rows: bad integer \"12k\""},
    {{"--set", "batch.max_buffered=5000"}, I64, F(batch_max_buffered), 5000, NULL},
    {{"--set", "dedup.window=250ms"}, I64, F(dedup_window_ms), 250, NULL},
    {{"--set", "dedup.window=24h"}, I64, F(dedup_window_ms), 86400000, NULL},
    {{"--set", "dedup.window=0"}, ERR, 0, 0,
     "--set: dedup.window: must be between 1ms and 24h, got \"0\""},
    {{"--set", "dedup.window=10 minutes"}, ERR, 0, 0,
     "--set: dedup.window: bad duration \"10 minutes\" (use e.g. 250ms, 10s, 10m, 2h)"},
    {{"--set", "batch.max_wait=0"}, I64, F(batch_max_wait_ms), 0, NULL},
    {{"--set", "batch.max_wait=61s"}, ERR, 0, 0,
     "--set: batch.max_wait: must be between 0 and 1m, got \"61s\""},
    {{"--set", "postgres.retry_max=2m"}, I64, F(pg_retry_max_ms), 120000, NULL},
    {{"--set", "event.max_message_bytes=512KiB"}, I64, F(max_message_bytes), 524288, NULL},
    {{"--set", "event.max_message_bytes=1000"}, ERR, 0, 0,
     "--set: event.max_message_bytes: must be between 1KiB and 1GiB, got \"1000\""},
    {{"--set", "event.max_message_bytes=2X"}, ERR, 0, 0,
     "--set: event.max_message_bytes: bad size \"2X\" (use e.g. 1048576, 512KiB, 1MiB, 2G)"},
    {{"--set", "join.on_miss=drop"}, INT, F(on_miss), JOIN_DROP, NULL},
    {{"--set", "dedup.warm_up=off"}, INT, F(dedup_warm_up), 0, NULL},
    {{"--set", "postgres.write_mode=staged"}, INT, F(write_mode), WRITE_STAGED, NULL},
    {{"--set", "postgres.write_mode=direct"}, ERR, 0, 0,
     "--set: postgres.write_mode: bad value \"direct\" (one of: auto, staged)"},
    {{"--set", "dedup.warm_up=yes"}, ERR, 0, 0,
     "--set: dedup.warm_up: bad value \"yes\" (one of: off, on)"},
    {{"--set", "event.max_future=5m"}, I64, F(max_future_ms), 300000, NULL},
    {{"--set", "event.max_age=7d"}, ERR, 0, 0,
     "--set: event.max_age: bad duration \"7d\" (use e.g. 250ms, 10s, 10m, 2h)"},
    {{"--set", "join.on_miss=dead-letter"}, INT, F(on_miss), JOIN_DEAD_LETTER, NULL},
    {{"--set", "join.on_miss=DROP"}, ERR, 0, 0,
     "--set: join.on_miss: bad value \"DROP\" (one of: keep, drop, dead-letter)"},
    {{"--set", "log.level=warn"}, INT, F(log_level), LOG_WARN, NULL},
    {{"--set", "log.level=verbose"}, ERR, 0, 0,
     "--set: log.level: bad value \"verbose\" (one of: error, warn, info, debug)"},
    {{"--set", "log.format=json"}, INT, F(log_format), LOG_FORMAT_JSON, NULL},
    {{"--log-format", "json"}, INT, F(log_format), LOG_FORMAT_JSON, NULL},
    {{"--log-format", "logfmt"}, INT, F(log_format), LOG_FORMAT_LOGFMT, NULL},
    {{"--log-format", "JSON"}, ERR, 0, 0,
     "--log-format: bad value \"JSON\" (one of: logfmt, json)"},
    {{"--set", "log.format=text"}, ERR, 0, 0,
     "--set: log.format: bad value \"text\" (one of: logfmt, json)"},
    {{"--log-format"}, ERR, 0, 0, "--log-format: requires a value"},
    {{"--set", "http.ready_max_pause=0"}, I64, F(ready_max_pause_ms), 0, NULL},
    {{"--set", "postgres.partitions_ahead=0"}, I64, F(partitions_ahead), 0, NULL},
    {{"--set", "postgres.partitions_ahead=367"}, ERR, 0, 0,
     "--set: postgres.partitions_ahead: must be between 0 and 366, got \"367\""},
    {{"--set", "retention.days=30"}, I64, F(retention_days), 30, NULL},
    {{"--set", "retention.interval=10s"}, I64, F(retention_interval_ms), 10000, NULL},
    {{"--set", "retention.interval=999ms"}, ERR, 0, 0,
     "--set: retention.interval: must be between 1s and 24h, got \"999ms\""},
    {{"--set", "archive.dir=/srv/archive"}, STR, F(archive_dir), 0, "/srv/archive"},
    {{"--set", "http.ready_max_pause=90s"}, I64, F(ready_max_pause_ms), 90000, NULL},
    {{"--set", "http.ready_max_pause=24h"}, I64, F(ready_max_pause_ms), 86400000, NULL},
    {{"--set", "http.ready_max_pause=86400001ms"}, ERR, 0, 0,
     "--set: http.ready_max_pause: must be between 0 and 24h, got \"86400001ms\""},
    {{"--set", "http.ready_max_pause=30"}, ERR, 0, 0,
     "--set: http.ready_max_pause: bad duration \"30\" (use e.g. 250ms, 10s, 10m, 2h)"},
    {{"--set", "kafka.topic=a=b"}, STR, F(topic), 0, "a=b"},
    {{"--set", "kafka.topic="}, ERR, 0, 0, "--set: kafka.topic: must not be empty"},
    {{"--set", "postgres.table="}, ERR, 0, 0, "--set: postgres.table: must not be empty"},
    {{"--set", "http.listen=127.0.0.1:9464"}, STR, F(http_listen), 0, "127.0.0.1:9464"},
    {{"--http", "0.0.0.0:80"}, STR, F(http_listen), 0, "0.0.0.0:80"},
    {{"--table", "t2"}, STR, F(table), 0, "t2"},
    {{"--group="}, ERR, 0, 0, "--group: must not be empty"},
    {{"--brokers", ""}, ERR, 0, 0, "--brokers: must not be empty"},
    {{"--pg", ""}, STR, F(pg_conninfo), 0, ""},
    {{"-v"}, INT, F(log_level), LOG_DEBUG, NULL},
    {{"--verbose"}, INT, F(log_level), LOG_DEBUG, NULL},
#undef F
};

static void test_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(value_cases); i++) {
        if (value_cases[i].kind == ERR) {
            expect_error(value_cases[i].args, value_cases[i].str);
            continue;
        }
        camjoin_config *c = parse_ok(value_cases[i].args);
        const char *p = (const char *)c + value_cases[i].off;
        if (value_cases[i].kind == I64)
            assert_int_equal(*(const int64_t *)p, value_cases[i].num);
        else if (value_cases[i].kind == INT)
            assert_int_equal(*(const int *)p, value_cases[i].num);
        else
            assert_string_equal(*(char *const *)p, value_cases[i].str);
        config_free(c);
    }
}

static const struct {
    const char *args[4];
    const char *err;
} cli_error_cases[] = {
    {{"--frob"}, "unknown option --frob (see --help)"},
    {{"--frob=1"}, "unknown option --frob (see --help)"},
    {{"-q"}, "unknown option -q (see --help)"},
    {{"--brokers"}, "--brokers: requires a value"},
    {{"--brokers", "--topic", "t"}, "--brokers: requires a value"},
    {{"-c"}, "-c: requires a value"},
    {{"--until-end=yes"}, "--until-end: takes no value"},
    {{"--verbose=1"}, "--verbose: takes no value"},
    {{"-X", "foo"}, "-X: expected key=value, got \"foo\""},
    {{"-X", "=v"}, "-X: expected key=value, got \"=v\""},
    {{"--set", "batch.max_rows"}, "--set: expected key=value, got \"batch.max_rows\""},
    {{"--set", "batch.max_rowz=1"}, "--set: unknown key \"batch.max_rowz\""},
    {{"--set", "kafka=1"}, "--set: unknown key \"kafka\""},
    {{"extra"}, "unexpected argument \"extra\" (see --help)"},
    {{"--topic", "t", "extra"}, "unexpected argument \"extra\" (see --help)"},
    {{"-c", "/nonexistent/camjoin.conf"},
     "/nonexistent/camjoin.conf: cannot open: No such file or directory"},
    {{"-c", "/"}, "/: cannot read: Is a directory"},
    /* a syntax error wins over --help that follows it */
    {{"--frob", "--help"}, "unknown option --frob (see --help)"},
    /* librdkafka properties camjoin owns: each names what to use instead */
    {{"-X", "group.id=other"},
     "-X group.id: set by camjoin; use --group (kafka.group), which also keys camjoin_offsets"},
    {{"-X", "bootstrap.servers=h:9092"},
     "-X bootstrap.servers: set by camjoin; use --brokers (kafka.brokers)"},
    {{"-X", "metadata.broker.list=h:9092"},
     "-X metadata.broker.list: set by camjoin; use --brokers (kafka.brokers)"},
    {{"-X", "enable.auto.commit=true"},
     "-X enable.auto.commit: set by camjoin; camjoin commits offsets in PostgreSQL, with each batch"},
    {{"-X", "enable.auto.offset.store=true"},
     "-X enable.auto.offset.store: set by camjoin; camjoin commits offsets in PostgreSQL, with "
     "each batch"},
    {{"-X", "enable.partition.eof=false"},
     "-X enable.partition.eof: set by camjoin; camjoin's offsets need the end-of-partition events"},
};

static void test_cli_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cli_error_cases); i++)
        expect_error(cli_error_cases[i].args, cli_error_cases[i].err);
}

/* File contents and the error after "<path>:". */
static const struct {
    const char *text;
    const char *err;
} file_error_cases[] = {
    {"[kafka]\nbrokers = a:1\n\n# comment\n[batch]\nmax_rowz = 5\n",
     "6: unknown key \"batch.max_rowz\""},
    {"; c\n[dedup]\n\nwindow = 10 minutes\n",
     "4: dedup.window: bad duration \"10 minutes\" (use e.g. 250ms, 10s, 10m, 2h)"},
    {"[batch]\nmax_rows = 20000 ; inline comments are values\n",
     "2: batch.max_rows: bad integer \"20000 ; inline comments are values\""},
    {"[kafak]\nbrokers = x\n", "2: unknown section [kafak]"},
    {"brokers = x\n", "1: key \"brokers\" is outside any [section]"},
    {"[kafka]\nbrokers\n", "2: syntax error (expected [section] or name = value)"},
    {"[kafka\nbrokers = x\n", "1: syntax error (expected [section] or name = value)"},
    {"[kafka.properties]\nclient.id = a\n = b\n", "3: missing key before '='"},
    {"[kafka]\nbrokers = x\n  topic = y\ngroup =\n", "4: kafka.group: must not be empty"},
    {"[kafka.properties]\nclient.id = a\ngroup.id = b\n",
     "3: group.id: set by camjoin; use --group (kafka.group), which also keys camjoin_offsets"},
    {"[join]\non_miss = skip\n[log]\nlevel = loud\n",
     "2: join.on_miss: bad value \"skip\" (one of: keep, drop, dead-letter)"},
};

static void test_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(file_error_cases); i++) {
        char *path = write_temp(file_error_cases[i].text);
        char want[512];
        snprintf(want, sizeof want, "%s:%s", path, file_error_cases[i].err);
        expect_error((const char *[]){"-c", path, NULL}, want);
        unlink(path);
        free(path);
    }
}

/* tests/data/config/full.conf sets every key to a non-default value. */
static void test_full_file(void **state)
{
    (void)state;
    char *path = data_path("config/full.conf");
    camjoin_config *c = parse_ok((const char *[]){"-c", path, NULL});
    char conninfo[600];
    snprintf(conninfo, sizeof conninfo, "host=db dbname=camjoin sslmode=verify-full "
             "sslrootcert=/etc/ssl/%0400d/root.crt application_name=camjoin", 0);
    camjoin_kv props[] = {{"client.id", "camjoin-test"}, {"auto.offset.reset", "latest"},
                          {"sasl.password", "s3;cret # x"}};
    camjoin_config want = {
        .brokers = "k1:9092,k2:9092", .topic = "cams", .group = "g1", .pg_conninfo = conninfo,
        .table = "events_t", .pg_retry_max_ms = 30000, .write_mode = WRITE_STAGED,
        .partitions_ahead = 3, .retention_days = 90, .retention_interval_ms = 900000,
        .archive_dir = "/var/lib/camjoin/archive",
        .reference = "/srv/cameras.csv", .reference_watch = 0,
        .on_miss = JOIN_DEAD_LETTER, .dedup_window_ms = 5400000, .dedup_warm_up = 0,
        .max_future_ms = 300000, .max_age_ms = 604800000, .batch_max_rows = 500,
        .batch_max_wait_ms = 250, .batch_max_buffered = 1000, .max_message_bytes = 65536,
        .http_listen = "127.0.0.1:9464", .ready_max_pause_ms = 120000, .log_level = LOG_WARN,
        .log_format = LOG_FORMAT_JSON, .kafka_props = props,
        .n_kafka_props = ARRAY_LEN(props)};
    assert_same_config(c, &want);
    config_free(c);
    free(path);
}

/* For each env-backed key: default < file < env < CLI. */
static const struct {
    const char *flag, *env, *section, *name;
    size_t off;
    const char *def;
} precedence_cases[] = {
    {"--brokers", "CAMJOIN_BROKERS", "kafka", "brokers", offsetof(camjoin_config, brokers),
     "localhost:9092"},
    {"--topic", "CAMJOIN_TOPIC", "kafka", "topic", offsetof(camjoin_config, topic),
     "camera-events"},
    {"--group", "CAMJOIN_GROUP", "kafka", "group", offsetof(camjoin_config, group), "camjoin"},
    {"--pg", "CAMJOIN_PG", "postgres", "conninfo", offsetof(camjoin_config, pg_conninfo), ""},
    {"--reference", "CAMJOIN_REFERENCE", "reference", "path",
     offsetof(camjoin_config, reference), "/etc/camjoin/cameras.csv"},
};

static void test_precedence(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(precedence_cases); i++) {
        char ini[128];
        snprintf(ini, sizeof ini, "[%s]\n%s = from-file\n", precedence_cases[i].section,
                 precedence_cases[i].name);
        char *path = write_temp(ini);
        const char *const steps[][5] = {
            {NULL},
            {"-c", path, NULL},
            {"-c", path, NULL},
            {"-c", path, precedence_cases[i].flag, "from-cli", NULL},
            /* -c after the flag: the file is still read first */
            {precedence_cases[i].flag, "from-cli", "-c", path, NULL},
        };
        const char *want[] = {precedence_cases[i].def, "from-file", "from-env", "from-cli",
                              "from-cli"};
        for (size_t s = 0; s < ARRAY_LEN(steps); s++) {
            if (s == 2)
                setenv(precedence_cases[i].env, "from-env", 1);
            camjoin_config *c = parse_ok(steps[s]);
            assert_string_equal(*(char **)((char *)c + precedence_cases[i].off), want[s]);
            config_free(c);
        }
        clear_env(NULL);
        unlink(path);
        free(path);
    }
}

static void test_kafka_props_order(void **state)
{
    (void)state;
    char *path = write_temp("[kafka.properties]\nclient.id = f\nfetch.wait.max.ms = 2\n"
                            "[kafka]\ntopic = t\n[kafka.properties]\nsocket.timeout.ms = 3\n");
    camjoin_config *c = parse_ok((const char *[]){"-X", "fetch.wait.max.ms=30", "-c", path, "-X",
                                                  "debug=all", "-X", "x=a=b", NULL});
    static const char *const want[][2] = {{"client.id", "f"}, {"fetch.wait.max.ms", "30"},
                                          {"socket.timeout.ms", "3"}, {"debug", "all"},
                                          {"x", "a=b"}};
    assert_int_equal(c->n_kafka_props, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        assert_string_equal(c->kafka_props[i].key, want[i][0]);
        assert_string_equal(c->kafka_props[i].value, want[i][1]);
    }
    assert_string_equal(c->topic, "t");
    config_free(c);
    unlink(path);
    free(path);
}

static void test_run_flags(void **state)
{
    (void)state;
    camjoin_config *c = parse_ok((const char *[]){"--replay-from", "0:5,1:7", "--until-end",
                                                  "--check-config", "--print-config", "-v",
                                                  "--set", "log.level=error", NULL});
    assert_string_equal(c->replay_from, "0:5,1:7");
    assert_true(c->until_end && c->check_config && c->print_config);
    assert_int_equal(c->log_level, LOG_ERROR); /* later flag wins */
    config_free(c);
    c = parse_ok((const char *[]){"--replay-from", "-1", NULL}); /* stored, not parsed */
    assert_string_equal(c->replay_from, "-1");
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_shipped_config_is_defaults, clear_env),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test_setup(test_values, clear_env),
        cmocka_unit_test_setup(test_cli_errors, clear_env),
        cmocka_unit_test_setup(test_file_errors, clear_env),
        cmocka_unit_test_setup(test_full_file, clear_env),
        cmocka_unit_test_setup(test_precedence, clear_env),
        cmocka_unit_test_setup(test_kafka_props_order, clear_env),
        cmocka_unit_test_setup(test_run_flags, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
