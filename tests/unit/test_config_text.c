/* Unit tests for config_text: --help, --version, --print-config and its
 * masking, conninfo masking. */
#include "config_util.h"

/* s with every run of spaces and newlines made one space (malloc'd). */
static char *squeeze(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++)
        if (*s != ' ' && *s != '\n')
            *o++ = *s;
        else if (o > out && o[-1] != ' ')
            *o++ = ' ';
    *o = '\0';
    return out;
}

static const char *const whole_texts[] = {
    "auto: COPY rows straight into the tables; a batch that meets an existing row (a "
    "replay) is rolled back and redone through staging tables with ON CONFLICT DO NOTHING, "
    "as are the next batches until one meets no conflict. staged: always stage (slower, "
    "never redoes a batch)",
    "CSV file of cameras (the reference table). SIGHUP reads the file again; a bad file "
    "keeps the old table. The configuration itself, this path included, is read only at "
    "startup",
    "where to serve /metrics, /healthz and /readyz: PORT (loopback), :PORT (every "
    "interface), HOST:PORT (an address or a host name) or [V6ADDR]:PORT; empty = no HTTP "
    "server",
};

static void test_help_and_version(void **state)
{
    (void)state;
    static const char *const must_mention[] = {
        "kafka.brokers", "kafka.topic", "kafka.group", "postgres.conninfo", "postgres.table",
        "postgres.retry_max", "postgres.write_mode", "auto|staged", "reference.path", "join.on_miss", "dedup.window",
        "batch.max_rows", "batch.max_wait", "batch.max_buffered", "event.max_message_bytes",
        "dedup.warm_up", "event.max_future", "event.max_age", "off|on",
        "http.listen", "log.level", "[kafka.properties]", "-c FILE", "--brokers LIST",
        "--topic NAME", "--group ID", "--pg CONNINFO", "--reference CSV", "--table NAME",
        "-X KEY=VALUE", "--replay-from SPEC", "--until-end", "--http ADDR:PORT",
        "--check-config", "--print-config", "-v, --verbose", "--version", "-h, --help",
        "--set KEY=VALUE", "CAMJOIN_BROKERS", "CAMJOIN_TOPIC", "CAMJOIN_GROUP", "CAMJOIN_PG",
        "CAMJOIN_REFERENCE", "keep|drop|dead-letter", "error|warn|info|debug",
        "dedup.window = 10m", "event.max_message_bytes = 1MiB", "batch.max_rows = 20000",
        "http.ready_max_pause = 30s  (duration 0..24h)", "log.format = logfmt  (logfmt|json)",
        "--log-format FORMAT", "[--log-format FORMAT]"};
    camjoin_config *c = (camjoin_config *)&c;
    char err[256] = "x", *text;
    assert_int_equal(parse((const char *[]){"--topic", "t", "--help", "--frob", NULL}, &c, err,
                           sizeof err, &text),
                     CONFIG_EXIT);
    assert_null(c);
    assert_string_equal(err, "");
    assert_true(strncmp(text, "usage: camjoin [-c FILE] [--brokers LIST]", 41) == 0);
    for (size_t i = 0; i < ARRAY_LEN(must_mention); i++)
        if (!strstr(text, must_mention[i]))
            fail_msg("--help does not mention %s", must_mention[i]);
    for (const char *line = text; *line; line += strcspn(line, "\n") + 1)
        assert_true(strcspn(line, "\n") < 80);
    /* the longest texts whole, however they wrap (a 256-byte buffer once cut
     * write_mode's mid-sentence) */
    char *flat = squeeze(text);
    for (size_t i = 0; i < ARRAY_LEN(whole_texts); i++)
        if (!strstr(flat, whole_texts[i]))
            fail_msg("--help does not carry the whole text: %s", whole_texts[i]);
    free(flat);

    char *short_text;
    assert_int_equal(parse((const char *[]){"-h", NULL}, &c, err, sizeof err, &short_text),
                     CONFIG_EXIT);
    assert_string_equal(short_text, text); /* -h is --help */
    free(short_text);
    free(text);

    /* the versions pkg-config gave the build (CMake), against the ones the
     * libraries report at run time */
    assert_int_equal(parse((const char *[]){"--version", NULL}, &c, err, sizeof err, &text),
                     CONFIG_EXIT);
    assert_string_equal(text, "camjoin " CAMJOIN_VERSION "\nlibrdkafka " BUILD_RDKAFKA_VERSION
                              "\nlibpq " BUILD_PQ_VERSION "\nlibuv " BUILD_UV_VERSION
                              "\njansson " BUILD_JANSSON_VERSION "\n");
    free(text);
}

static char *print_to_string(const camjoin_config *c)
{
    char *buf = NULL;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(c, f);
    fclose(f);
    return buf;
}

static const struct {
    const char *conninfo;
    const char *printed;
} mask_cases[] = {
    {"host=db password=hunter2 user=u", "conninfo = host=db password=**** user=u"},
    {"password = 'a b\\'c' host=db", "conninfo = password = **** host=db"},
    {"host=db sslpassword=k3y user=password", "conninfo = host=db sslpassword=**** user=password"},
    {"host=db sslmode=require user=password", "conninfo = host=db sslmode=require user=password"},
    {"postgresql://u@db/x?sslpassword=k3y&sslmode=require",
     "conninfo = postgresql://u@db/x?sslpassword=****&sslmode=require"},
    {"postgresql://u:hunter2@db:5432/camjoin", "conninfo = postgresql://u:****@db:5432/camjoin"},
    {"postgres://u@db/x?sslmode=require&password=pw&application_name=a",
     "conninfo = postgres://u@db/x?sslmode=require&password=****&application_name=a"},
    {"postgresql://u:p%40ss@[::1]:5432", "conninfo = postgresql://u:****@[::1]:5432"},
    {"postgresql://db/x", "conninfo = postgresql://db/x"},
    {"", "conninfo ="},
};

static void test_print_masks_secrets(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(mask_cases); i++) {
        camjoin_config *c = parse_ok((const char *[]){"--pg", mask_cases[i].conninfo, "-X",
                                                      "sasl.password=pw1", "-X",
                                                      "ssl.key.password=pw2", "-X",
                                                      "sasl.oauthbearer.client.secret=pw3", "-X",
                                                      "ssl.key.pem=PRIVATEKEY", "-X",
                                                      "client.id=visible", NULL});
        char *text = print_to_string(c);
        char want[256];
        snprintf(want, sizeof want, "\n%s\n", mask_cases[i].printed);
        if (!strstr(text, want))
            fail_msg("case %zu: want %s in:\n%s", i, mask_cases[i].printed, text);
        assert_null(strstr(text, "hunter2"));
        assert_non_null(strstr(text, "\n[kafka.properties]\nsasl.password = ****\n"
                                     "ssl.key.password = ****\n"
                                     "sasl.oauthbearer.client.secret = ****\n"
                                     "ssl.key.pem = ****\n"
                                     "client.id = visible\n"));
        assert_null(strstr(text, "PRIVATEKEY"));
        free(text);
        config_free(c);
    }
}

/* config_mask_conninfo: the same text as --print-config, snprintf-like. */
static void test_mask_conninfo(void **state)
{
    (void)state;
    char buf[256];
    for (size_t i = 0; i < ARRAY_LEN(mask_cases); i++) {
        const char *want = mask_cases[i].printed + strlen("conninfo =");
        want += *want == ' ';
        size_t n = config_mask_conninfo(mask_cases[i].conninfo, buf, sizeof buf);
        assert_string_equal(buf, want);
        assert_int_equal(n, strlen(want));
    }
    /* "host=db password=****" is 21 bytes: a 10-byte buffer gets 9 and NUL */
    memset(buf, 'Z', sizeof buf);
    assert_int_equal(config_mask_conninfo("host=db password=hunter2", buf, 10), 21);
    assert_string_equal(buf, "host=db p");
    assert_int_equal(buf[10], 'Z');
    memset(buf, 'Z', sizeof buf);
    assert_int_equal(config_mask_conninfo("postgresql://u:hunter2@h/d", buf, 19), 23);
    assert_string_equal(buf, "postgresql://u:***");
    assert_int_equal(config_mask_conninfo("password=x", buf, 0), 13);
    assert_int_equal(buf[0], 'p'); /* len 0: nothing written */
    assert_int_equal(config_mask_conninfo(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
}

/* A conninfo longer than --print-config's 1 KiB stack buffer. */
static void test_print_masks_long_conninfo(void **state)
{
    (void)state;
    char conninfo[2200], want[2300];
    snprintf(conninfo, sizeof conninfo, "application_name=%02000d password=hunter2 host=h", 7);
    snprintf(want, sizeof want, "\nconninfo = application_name=%02000d password=**** host=h\n", 7);
    camjoin_config *c = parse_ok((const char *[]){"--pg", conninfo, NULL});
    char *text = print_to_string(c);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "hunter2"));
    free(text);
    config_free(c);
}

static void test_print_defaults(void **state)
{
    (void)state;
    camjoin_config *c = parse_ok(NULL);
    char *text = print_to_string(c);
    assert_string_equal(text, "# camjoin effective configuration; secrets are masked as ****\n"
                              "\n[kafka]\nbrokers = localhost:9092\ntopic = camera-events\n"
                              "group = camjoin\n"
                              "\n[postgres]\nconninfo =\ntable = camera_events\nretry_max = 10s\n"
                              "write_mode = auto\npool_mode = session\nupkeep_conninfo =\npartitions_ahead = 7\n"
                              "\n[retention]\ndays = 0\ninterval = 1h\n"
                              "\n[archive]\ndir =\n"
                              "\n[reference]\npath = /etc/camjoin/cameras.csv\nwatch = on\n"
                              "\n[join]\non_miss = keep\n"
                              "\n[dedup]\nwindow = 10m\nwarm_up = on\n"
                              "\n[batch]\nmax_rows = 20000\nmax_wait = 0\n"
                              "max_buffered = 200000\n"
                              "\n[event]\nmax_message_bytes = 1MiB\nmax_future = 0\n"
                              "max_age = 0\n"
                              "\n[http]\nlisten =\nready_max_pause = 30s\n"
                              "\n[log]\nlevel = info\nformat = logfmt\n"
                              "\n[kafka.properties]\n");
    free(text);
    config_free(c);
}

static void test_print_parse_round_trip(void **state)
{
    (void)state;
    const char *const args[] = {
        "--brokers", "b1:1,b2:2", "--topic", "tt", "--group", "gg", "--pg",
        "host=h port=5433 dbname=d", "--table", "tbl", "--reference", "/r.csv", "--http",
        ":8080", "--set", "postgres.retry_max=1500ms", "--set", "join.on_miss=drop", "--set",
        "dedup.window=90s", "--set", "batch.max_rows=7", "--set", "batch.max_wait=0", "--set",
        "batch.max_buffered=70", "--set", "event.max_message_bytes=2000k", "-v", "--set",
        "http.ready_max_pause=45s", "--log-format", "json", "-X",
        "client.id=rt ; x", "-X", "linger.ms=5", NULL};
    camjoin_config *a = parse_ok(args);
    char *text = print_to_string(a);
    char *path = write_temp(text);
    camjoin_config *b = parse_ok((const char *[]){"-c", path, NULL});
    assert_same_config(a, b);
    assert_int_equal(b->max_message_bytes, 2000000);
    assert_int_equal(b->pg_retry_max_ms, 1500);
    assert_int_equal(b->ready_max_pause_ms, 45000);
    assert_int_equal(b->log_format, LOG_FORMAT_JSON);
    config_free(a);
    config_free(b);
    unlink(path);
    free(path);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_help_and_version, clear_env),
        cmocka_unit_test_setup(test_print_masks_secrets, clear_env),
        cmocka_unit_test_setup(test_mask_conninfo, clear_env),
        cmocka_unit_test_setup(test_print_masks_long_conninfo, clear_env),
        cmocka_unit_test_setup(test_print_defaults, clear_env),
        cmocka_unit_test_setup(test_print_parse_round_trip, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
