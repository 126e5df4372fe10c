/*
 * Unit tests for log: the exact logfmt and JSON lines (stderr captured in a
 * temporary file; the timestamp is checked against the clock, the rest of
 * the line compared byte for byte), every JSON line parsed back with jansson
 * and its members compared, truncation, and the suppression of repeats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "camjoin/log.h"

#define MAX_LINES 512
#define TS_LEN 24 /* 2024-05-01T12:34:56.789Z */

static FILE *sink;
static int saved_stderr = -1;

/* Sends fd 2 to the sink; cmocka's own messages go to stdout meanwhile
 * (assertions are made only after capture_end()). */
static void capture_start(void)
{
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(fileno(sink), STDERR_FILENO), STDERR_FILENO);
}

/* Restores fd 2 and returns (malloc'd) what was written since capture_start. */
static char *capture_end(void)
{
    assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    int fd = fileno(sink);
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    text[size] = '\0';
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return text;
}

/* Splits text at '\n' (in place); every line must end with one. */
static size_t split_lines(char *text, char **lines)
{
    size_t n = 0;
    for (char *p = text; *p; n++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(n < MAX_LINES);
        *nl = '\0';
        lines[n] = p;
        p = nl + 1;
    }
    return n;
}

/* ts is "YYYY-MM-DDTHH:MM:SS.mmmZ" and within 5 s of now. */
static void check_ts(const char *ts)
{
    struct tm tm = {0};
    char tail[8];
    memcpy(tail, ts + 19, 5);
    tail[5] = '\0';
    const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || end != ts + 19 || tail[0] != '.' || tail[4] != 'Z' ||
        tail[1] < '0' || tail[1] > '9' || tail[2] < '0' || tail[2] > '9' || tail[3] < '0' ||
        tail[3] > '9')
        fail_msg("bad timestamp: %.30s", ts);
    time_t t = timegm(&tm), now = time(NULL);
    if (t < now - 5 || t > now + 5)
        fail_msg("timestamp %.24s is not now", ts);
}

/* A logfmt line without its "ts=... " prefix (which is checked). */
static const char *logfmt_rest(const char *line)
{
    if (strncmp(line, "ts=", 3) != 0 || line[3 + TS_LEN] != ' ')
        fail_msg("no ts= prefix: %s", line);
    check_ts(line + 3);
    return line + 3 + TS_LEN + 1;
}

/* A JSON line after `{"ts":"<ts>",` (checked). */
static const char *json_rest(const char *line)
{
    if (strncmp(line, "{\"ts\":\"", 7) != 0 || strncmp(line + 7 + TS_LEN, "\",", 2) != 0)
        fail_msg("no ts member first: %s", line);
    check_ts(line + 7);
    return line + 7 + TS_LEN + 2;
}

static json_t *parse_json(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("not JSON (%s at %d): %s", e.text, e.position, line);
    assert_true(json_is_object(j));
    return j;
}

static void assert_member_str(json_t *o, const char *key, const char *want, size_t want_len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("member %s is not a string", key);
    assert_int_equal(json_string_length(v), want_len);
    assert_memory_equal(json_string_value(v), want, want_len);
}

static void assert_member_int(json_t *o, const char *key, json_int_t want)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("member %s is not an integer", key);
    assert_int_equal(json_integer_value(v), want);
}

static void assert_member_real(json_t *o, const char *key, double want)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_real(v))
        fail_msg("member %s is not a real", key);
    assert_true(json_real_value(v) == want);
}

#define STR(o, k, s) assert_member_str(o, k, s, sizeof(s) - 1)

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_DEBUG);
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_repeat_interval_ms(0);
    return 0;
}

/* Runs first: the state of a fresh process. */
static void test_defaults(void **state)
{
    (void)state;
    char *lines[MAX_LINES];
    assert_int_equal(log_get_level(), LOG_INFO);
    assert_string_equal(log_level_name(LOG_WARN), "warn");
    assert_string_equal(log_format_name(LOG_FORMAT_JSON), "json");
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("verbose"), -1);
    capture_start();
    log_debug("not shown", NULL);
    log_error("twice within 10 s", NULL);
    log_error("twice within 10 s", NULL);
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 1);
    assert_string_equal(logfmt_rest(lines[0]), "level=error msg=\"twice within 10 s\"");
    free(out);
}

static void test_quote(void **state)
{
    (void)state;
    char buf[64], tiny[12];
    assert_string_equal(log_quote(buf, sizeof buf, "a \"b\" \\ c\nd\te\x7f"),
                        "\"a \\\"b\\\" \\\\ c\\nd\\x09e\\x7f\"");
    assert_string_equal(log_quote(buf, sizeof buf, NULL), "\"\"");
    /* 12 bytes: `"` + 6 chars + `..."` + NUL */
    assert_string_equal(log_quote(tiny, sizeof tiny, "abcdefghijkl"), "\"abcdef...\"");
}

static void test_ids(void **state)
{
    (void)state;
    char buf[32], tiny[10];
    const int32_t ids[] = {0, 3, 5, 12, 130};
    assert_string_equal(log_ids(buf, sizeof buf, ids, 5), "0,3,5,12,130");
    assert_string_equal(log_ids(buf, sizeof buf, ids, 0), "");
    assert_string_equal(log_ids(buf, sizeof buf, ids + 4, 1), "130");
    /* "10,11,12,13" needs 12 bytes: the last 3 of the 10 become "..." */
    const int32_t more[] = {10, 11, 12, 13};
    assert_string_equal(log_ids(tiny, sizeof tiny, more, 4), "10,11,...");
}

static void test_logfmt(void **state)
{
    (void)state;
    char q[128], *lines[MAX_LINES];
    log_set_level(LOG_WARN);
    capture_start();
    log_warn("hello world", "a=1 b=%s", log_quote(q, sizeof q, "x \"y\"\n\x1f"));
    log_info("filtered out", "a=1");
    log_error("no pairs", NULL);
    log_error("empty pairs", "%s", "");
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 3);
    assert_string_equal(logfmt_rest(lines[0]),
                        "level=warn msg=\"hello world\" a=1 b=\"x \\\"y\\\"\\n\\x1f\"");
    assert_string_equal(logfmt_rest(lines[1]), "level=error msg=\"no pairs\"");
    assert_string_equal(logfmt_rest(lines[2]), "level=error msg=\"empty pairs\"");
    free(out);
}

static void test_json_values(void **state)
{
    (void)state;
    char q1[64], q2[64], q3[64], q4[64], *lines[MAX_LINES];
    log_set_format(LOG_FORMAT_JSON);
    capture_start();
    log_info("with \"quotes\"\n", "n=42 neg=-7 dec=3.25 exp=1.5e-3 zero=0 max15=123456789012345 "
             "lead=007 plus=+5 hex=0x1f big=1234567890123456 dot=1. e3=1e100 b=true minus=- "
             "empty= eq=a=b q=%s ctl=%s nl=%s utf=%s",
             log_quote(q1, sizeof q1, "a \"b\" \\ c"),
             log_quote(q2, sizeof q2, "\x01\x1f\x7ftab\tend"),
             log_quote(q3, sizeof q3, "l1\nl2"), log_quote(q4, sizeof q4, "caf\xc3\xa9"));
    log_warn("not utf-8", "bad=\xff trunc=\xc3 overlong=\xc0\xaf surrogate=\xed\xa0\x80 "
             "nul=\"a\\x00b\" unknown=\"\\q\"");
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 2);

    assert_string_equal(json_rest(lines[0]),
        "\"level\":\"info\",\"msg\":\"with \\\"quotes\\\"\\n\",\"n\":42,\"neg\":-7,"
        "\"dec\":3.25,\"exp\":1.5e-3,\"zero\":0,\"max15\":123456789012345,\"lead\":\"007\","
        "\"plus\":\"+5\",\"hex\":\"0x1f\",\"big\":\"1234567890123456\",\"dot\":\"1.\","
        "\"e3\":\"1e100\",\"b\":\"true\",\"minus\":\"-\",\"empty\":\"\",\"eq\":\"a=b\","
        "\"q\":\"a \\\"b\\\" \\\\ c\",\"ctl\":\"\\u0001\\u001f\\u007ftab\\tend\","
        "\"nl\":\"l1\\nl2\",\"utf\":\"caf\xc3\xa9\"}");
    json_t *j = parse_json(lines[0]);
    assert_int_equal(json_object_size(j), 23);
    STR(j, "level", "info");
    STR(j, "msg", "with \"quotes\"\n");
    assert_member_int(j, "n", 42);
    assert_member_int(j, "neg", -7);
    assert_member_real(j, "dec", 3.25);
    assert_member_real(j, "exp", 0.0015);
    assert_member_int(j, "zero", 0);
    assert_member_int(j, "max15", 123456789012345LL);
    STR(j, "lead", "007");
    STR(j, "plus", "+5");
    STR(j, "hex", "0x1f");
    STR(j, "big", "1234567890123456");
    STR(j, "dot", "1.");
    STR(j, "e3", "1e100");
    STR(j, "b", "true");
    STR(j, "minus", "-");
    STR(j, "empty", "");
    STR(j, "eq", "a=b");
    STR(j, "q", "a \"b\" \\ c");
    STR(j, "ctl", "\x01\x1f\x7ftab\tend");
    STR(j, "nl", "l1\nl2");
    STR(j, "utf", "caf\xc3\xa9");
    json_decref(j);

    assert_string_equal(json_rest(lines[1]),
        "\"level\":\"warn\",\"msg\":\"not utf-8\",\"bad\":\"\\ufffd\",\"trunc\":\"\\ufffd\","
        "\"overlong\":\"\\ufffd\\ufffd\",\"surrogate\":\"\\ufffd\\ufffd\\ufffd\","
        "\"nul\":\"a\\u0000b\",\"unknown\":\"\\\\q\"}");
    j = parse_json(lines[1]);
    STR(j, "bad", "\xef\xbf\xbd");
    STR(j, "surrogate", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    STR(j, "nul", "a\0b");
    STR(j, "unknown", "\\q");
    json_decref(j);
    free(out);
}

/* What is not a pair ends up, in order, in "kv_error". */
static void test_json_malformed(void **state)
{
    (void)state;
    char *lines[MAX_LINES];
    static const char *const kvs[] = {
        "a=1 stray b=\"x\"y c=2 =v d=\"open end",
        "  lead  =x \"q\"=1 k=\"\\\"\" ",
        "x",
    };
    static const char *const want[] = {
        "\"level\":\"error\",\"msg\":\"m\",\"a\":1,\"c\":2,"
        "\"kv_error\":\"stray b=\\\"x\\\"y =v d=\\\"open end\"}",
        "\"level\":\"error\",\"msg\":\"m\",\"\\\"q\\\"\":1,\"k\":\"\\\"\","
        "\"kv_error\":\"lead =x\"}",
        "\"level\":\"error\",\"msg\":\"m\",\"kv_error\":\"x\"}",
    };
    log_set_format(LOG_FORMAT_JSON);
    capture_start();
    for (size_t i = 0; i < 3; i++)
        log_error("m", "%s", kvs[i]);
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(json_rest(lines[i]), want[i]);
        json_decref(parse_json(lines[i]));
    }
    json_t *j = parse_json(lines[0]);
    STR(j, "kv_error", "stray b=\"x\"y =v d=\"open end");
    assert_member_int(j, "c", 2);
    json_decref(j);
    free(out);
}

/* 4000 bytes that are not UTF-8 (6 bytes each as \ufffd) overflow the 8 KiB
 * line: the string is cut at the last whole escape that leaves room for
 * `..."` before byte 8160 (8192 less the 32 kept for the end), the members
 * after it are dropped, "truncated":true closes the object. A member that
 * does not fit before its string value opens is dropped whole. */
static void test_json_truncated(void **state)
{
    (void)state;
    char big[4001], *lines[MAX_LINES];
    memset(big, 0xff, 4000);
    big[4000] = '\0';
    log_set_format(LOG_FORMAT_JSON);
    capture_start();
    log_info("m", "v=%s after=1", big);
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 1);
    /* {"ts":"<24>","level":"info","msg":"m" = 57 bytes, ,"v":" = 6: the
     * value starts at 63; escape k (6 bytes) fits while 63 + 6k + 4 <= 8160 */
    size_t n = 0;
    while (63 + 6 * (n + 1) + 4 <= 8160)
        n++;
    assert_int_equal(n, 1348);
    assert_int_equal(strlen(lines[0]), 63 + 6 * n + 4 + strlen(",\"truncated\":true}"));
    assert_string_equal(lines[0] + 63 + 6 * n, "...\",\"truncated\":true}");
    json_t *j = parse_json(lines[0]);
    json_t *v = json_object_get(j, "v");
    assert_int_equal(json_string_length(v), 3 * n + 3);
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(json_string_value(v) + 3 * i, "\xef\xbf\xbd", 3);
    assert_string_equal(json_string_value(v) + 3 * n, "...");
    assert_null(json_object_get(j, "after"));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(out);

    /* A value that ends at byte 8151 fits whole; the number member after it
     * (20 bytes: ,"n":123456789012345) does not and is left out whole. */
    char fit[1341 + 47];
    memset(fit, 0xff, 1340);
    memset(fit + 1340, 'a', 47);
    fit[1387] = '\0';
    capture_start();
    log_info("m", "v=%s n=123456789012345", fit);
    out = capture_end();
    assert_int_equal(split_lines(out, lines), 1);
    assert_int_equal(strlen(lines[0]), 63 + 6 * 1340 + 47 + 1 + strlen(",\"truncated\":true}"));
    assert_string_equal(lines[0] + 63 + 6 * 1340,
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"truncated\":true}");
    j = parse_json(lines[0]);
    assert_int_equal(json_string_length(json_object_get(j, "v")), 3 * 1340 + 47);
    assert_null(json_object_get(j, "n"));
    json_decref(j);
    free(out);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void test_repeats(void **state)
{
    (void)state;
    char *lines[MAX_LINES];
    log_set_repeat_interval_ms(100);
    capture_start();
    for (int i = 0; i < 5; i++) {
        log_error("db down", "attempt=%d", i);
        log_error("other", "attempt=%d", i);  /* a different msg: its own count */
        log_warn("db down", "attempt=%d", i); /* the same msg at another level too */
        log_info("db down", "attempt=%d", i); /* info: never suppressed */
    }
    sleep_ms(150);
    log_error("db down", "attempt=5");
    log_error("db down", "attempt=6"); /* within 100 ms of attempt=5 */
    log_error("db down", "attempt=7");
    log_flush_repeats();
    log_flush_repeats(); /* nothing left */
    char *out = capture_end();
    static const char *const want[] = {
        "level=error msg=\"db down\" attempt=0",
        "level=error msg=\"other\" attempt=0",
        "level=warn msg=\"db down\" attempt=0",
        "level=info msg=\"db down\" attempt=0",
        "level=info msg=\"db down\" attempt=1",
        "level=info msg=\"db down\" attempt=2",
        "level=info msg=\"db down\" attempt=3",
        "level=info msg=\"db down\" attempt=4",
        "level=error msg=\"db down\" attempt=5 repeated=4",
        /* the flush, in slot order: compared as a set below */
        "level=error msg=\"db down\" repeated=2 summary=flush",
        "level=error msg=\"other\" repeated=4 summary=flush",
        "level=warn msg=\"db down\" repeated=4 summary=flush",
    };
    size_t n = split_lines(out, lines);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(logfmt_rest(lines[i]), want[i]);
    for (size_t w = 9; w < 12; w++) {
        size_t found = 0;
        for (size_t i = 9; i < 12; i++)
            found += strcmp(logfmt_rest(lines[i]), want[w]) == 0;
        if (found != 1)
            fail_msg("flush line %s found %zu times", want[w], found);
    }
    free(out);
}

/* log_emit_each: every line written, and it neither counts as a repeat
 * nor resets the window of the suppressed msg. */
static void test_emit_each(void **state)
{
    (void)state;
    char *lines[MAX_LINES];
    log_set_repeat_interval_ms(10000);
    capture_start();
    log_error("reload failed", "try=1");
    log_emit_each(LOG_ERROR, "reload failed", "try=2");
    log_emit_each(LOG_ERROR, "reload failed", "try=3");
    log_error("reload failed", "try=4"); /* limited: within 10 s of try=1 */
    log_flush_repeats();
    char *out = capture_end();
    static const char *const want[] = {
        "level=error msg=\"reload failed\" try=1",
        "level=error msg=\"reload failed\" try=2",
        "level=error msg=\"reload failed\" try=3",
        "level=error msg=\"reload failed\" repeated=1 summary=flush",
    };
    assert_int_equal(split_lines(out, lines), 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(logfmt_rest(lines[i]), want[i]);
    free(out);
}

static void test_repeats_json_and_disabled(void **state)
{
    (void)state;
    char *lines[MAX_LINES], long_msg[129];
    memset(long_msg, 'x', 128);
    long_msg[128] = '\0';
    log_set_repeat_interval_ms(10000);
    log_set_format(LOG_FORMAT_JSON);
    capture_start();
    for (int i = 0; i < 3; i++)
        log_warn("lag", "p=%d", i);
    log_flush_repeats();
    log_error(long_msg, NULL); /* 128 bytes: never suppressed */
    log_error(long_msg, NULL);
    log_set_repeat_interval_ms(0); /* disabled */
    log_error("lag", NULL);
    log_error("lag", NULL);
    char *out = capture_end();
    assert_int_equal(split_lines(out, lines), 6);
    assert_string_equal(json_rest(lines[0]), "\"level\":\"warn\",\"msg\":\"lag\",\"p\":0}");
    assert_string_equal(json_rest(lines[1]),
                        "\"level\":\"warn\",\"msg\":\"lag\",\"repeated\":2,\"summary\":\"flush\"}");
    json_t *j = parse_json(lines[1]);
    assert_member_int(j, "repeated", 2);
    STR(j, "summary", "flush");
    json_decref(j);
    for (size_t i = 2; i < 4; i++) {
        j = parse_json(lines[i]);
        assert_member_str(j, "msg", long_msg, 128);
        json_decref(j);
    }
    assert_string_equal(json_rest(lines[4]), "\"level\":\"error\",\"msg\":\"lag\"}");
    assert_string_equal(json_rest(lines[5]), "\"level\":\"error\",\"msg\":\"lag\"}");
    free(out);
}

/* More msgs than slots: whatever collides, no occurrence is lost. Each msg
 * is logged twice in a row (the second suppressed); a msg that takes over a
 * slot writes the count it held (summary=evicted) and the flush writes the
 * rest, so for every msg lines written + sum of repeated = 2. */
static void test_repeats_eviction(void **state)
{
    (void)state;
    enum { MSGS = 65 }; /* 64 slots: at least two share one */
    char *lines[MAX_LINES], msg[16];
    int seen[MSGS] = {0}, evicted = 0;
    log_set_repeat_interval_ms(60000);
    capture_start();
    for (int m = 0; m < MSGS; m++)
        for (int k = 0; k < 2; k++) {
            snprintf(msg, sizeof msg, "m%02d", m);
            log_error(msg, NULL);
        }
    log_flush_repeats();
    char *out = capture_end();
    size_t n = split_lines(out, lines);
    for (size_t i = 0; i < n; i++) {
        int m, rep;
        char why[16];
        const char *rest = logfmt_rest(lines[i]);
        if (sscanf(rest, "level=error msg=\"m%d\" repeated=%d summary=%15s", &m, &rep, why) == 3) {
            assert_true(strcmp(why, "evicted") == 0 || strcmp(why, "flush") == 0);
            evicted += strcmp(why, "evicted") == 0;
        } else {
            assert_int_equal(sscanf(rest, "level=error msg=\"m%d\"", &m), 1);
            rep = 1;
        }
        assert_true(m >= 0 && m < MSGS);
        seen[m] += rep;
    }
    for (int m = 0; m < MSGS; m++)
        assert_int_equal(seen[m], 2);
    assert_true(evicted >= 1);
    free(out);
}

int main(void)
{
    sink = tmpfile();
    if (!sink)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), /* first: nothing set yet */
        cmocka_unit_test_setup(test_quote, setup),
        cmocka_unit_test(test_ids),
        cmocka_unit_test_setup(test_logfmt, setup),
        cmocka_unit_test_setup(test_json_values, setup),
        cmocka_unit_test_setup(test_json_malformed, setup),
        cmocka_unit_test_setup(test_json_truncated, setup),
        cmocka_unit_test_setup(test_repeats, setup),
        cmocka_unit_test_setup(test_emit_each, setup),
        cmocka_unit_test_setup(test_repeats_json_and_disabled, setup),
        cmocka_unit_test_setup(test_repeats_eviction, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fclose(sink);
    return rc;
}
