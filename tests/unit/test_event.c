/*
 * Unit tests for event: JSON → event, reason codes, RFC 3339, ts formatting.
 * Expected microsecond values were computed independently (Python datetime).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/calendar.h"
#include "camjoin/event.h"

#define NO_LIMIT ((size_t)1 << 20)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A valid event with `extra` spliced in before the closing brace. */
#define EV(extra)                                                             \
    "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":"                 \
    "\"2024-01-01T00:00:00Z\",\"event_type\":\"motion\"" extra "}"
#define EV_TS(ts) "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":" ts \
                  ",\"event_type\":\"motion\"}"
#define TS_2024 INT64_C(1704067200000000) /* 2024-01-01T00:00:00Z */

/* Parses an exact-length heap copy (no NUL after it, so ASan sees overreads). */
static enum event_status parse_copy(event_t *ev, const char *data, size_t len,
                                    size_t max_bytes, char reason[EVENT_REASON_MAX])
{
    char *copy = len ? malloc(len) : NULL;
    if (len)
        memcpy(copy, data, len);
    enum event_status st = event_parse(ev, copy, len, max_bytes, reason);
    free(copy);
    return st;
}

/* ---- valid events ------------------------------------------------------ */

struct valid_case {
    const char *name, *json;
    const char *event_id, *camera_id, *event_type;
    int64_t ts_us;
    int has_conf;  double conf;
    int has_count; int32_t count;
    const char *attributes; /* NULL = none */
};

static const struct valid_case valid_cases[] = {
    {"minimal", EV(""), "e1", "c1", "motion", TS_2024, 0, 0, 0, 0, NULL},
    {"all optional", EV(",\"confidence\":0.75,\"object_count\":3"),
     "e1", "c1", "motion", TS_2024, 1, 0.75, 1, 3, NULL},
    {"optional null", EV(",\"confidence\":null,\"object_count\":null"),
     "e1", "c1", "motion", TS_2024, 0, 0, 0, 0, NULL},
    {"confidence int 0", EV(",\"confidence\":0"), "e1", "c1", "motion", TS_2024,
     1, 0.0, 0, 0, NULL},
    {"confidence int 1", EV(",\"confidence\":1"), "e1", "c1", "motion", TS_2024,
     1, 1.0, 0, 0, NULL},
    {"object_count 0", EV(",\"object_count\":0"), "e1", "c1", "motion", TS_2024,
     0, 0, 1, 0, NULL},
    {"object_count max", EV(",\"object_count\":2147483647"), "e1", "c1", "motion",
     TS_2024, 0, 0, 1, INT32_MAX, NULL},
    {"ts Z", EV_TS("\"2023-06-15T12:34:56Z\""), "e1", "c1", "motion",
     INT64_C(1686832496000000), 0, 0, 0, 0, NULL},
    {"ts +hh:mm", EV_TS("\"2024-02-29T23:59:59.123456+02:00\""), "e1", "c1", "motion",
     INT64_C(1709243999123456), 0, 0, 0, 0, NULL},
    {"ts -hh:mm", EV_TS("\"2023-06-15T12:34:56-05:30\""), "e1", "c1", "motion",
     INT64_C(1686852296000000), 0, 0, 0, 0, NULL},
    {"ts fraction 1", EV_TS("\"2023-06-15T12:34:56.5Z\""), "e1", "c1", "motion",
     INT64_C(1686832496500000), 0, 0, 0, 0, NULL},
    {"ts fraction 3", EV_TS("\"2023-06-15T12:34:56.123Z\""), "e1", "c1", "motion",
     INT64_C(1686832496123000), 0, 0, 0, 0, NULL},
    {"ts fraction 6", EV_TS("\"2023-06-15T12:34:56.123456Z\""), "e1", "c1", "motion",
     INT64_C(1686832496123456), 0, 0, 0, 0, NULL},
    {"ts fraction 9 truncates", EV_TS("\"2023-06-15T12:34:56.123456999Z\""), "e1",
     "c1", "motion", INT64_C(1686832496123456), 0, 0, 0, 0, NULL},
    {"ts epoch ms", EV_TS("1704067200123"), "e1", "c1", "motion",
     INT64_C(1704067200123000), 0, 0, 0, 0, NULL},
    {"ts epoch ms 0", EV_TS("0"), "e1", "c1", "motion", 0, 0, 0, 0, 0, NULL},
    {"ts epoch ms max", EV_TS("253402300799999"), "e1", "c1", "motion",
     INT64_C(253402300799999000), 0, 0, 0, 0, NULL},
    {"ts max string", EV_TS("\"9999-12-31T23:59:59.999999Z\""), "e1", "c1", "motion",
     INT64_C(253402300799999999), 0, 0, 0, 0, NULL},
    {"unicode strings", "{\"event_id\":\"caf\xc3\xa9-\xf0\x9f\x98\x80\","
     "\"camera_id\":\"\\u00e9\",\"event_ts\":\"2024-01-01T00:00:00Z\","
     "\"event_type\":\"\xe6\x97\xa5\"}",
     "caf\xc3\xa9-\xf0\x9f\x98\x80", "\xc3\xa9", "\xe6\x97\xa5", TS_2024, 0, 0, 0, 0,
     NULL},
    {"attributes in input order",
     "{\"zeta\":1,\"event_id\":\"e1\",\"alpha\":{\"b\":[1,2.5,null,true]},"
     "\"camera_id\":\"c1\",\"event_ts\":\"2024-01-01T00:00:00Z\",\"mid\":\"x\\ty\","
     "\"event_type\":\"motion\",\"confidence\":0.5, \"note\" : \"\xc3\xa9\"}",
     "e1", "c1", "motion", TS_2024, 1, 0.5, 0, 0,
     "{\"zeta\":1,\"alpha\":{\"b\":[1,2.5,null,true]},\"mid\":\"x\\ty\","
     "\"note\":\"\xc3\xa9\"}"},
    {"attribute null and empty", EV(",\"a\":null,\"b\":{},\"c\":[]"), "e1", "c1",
     "motion", TS_2024, 0, 0, 0, 0, "{\"a\":null,\"b\":{},\"c\":[]}"},
    {"attribute reals shortest", EV(",\"r\":0.1,\"s\":[1e300,-0.0,2.0]"), "e1", "c1",
     "motion", TS_2024, 0, 0, 0, 0, "{\"r\":0.1,\"s\":[1e300,-0.0,2.0]}"},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++) {
        const struct valid_case *c = &valid_cases[i];
        char reason[EVENT_REASON_MAX];
        event_t ev;
        if (parse_copy(&ev, c->json, strlen(c->json), NO_LIMIT, reason) != EVENT_OK)
            fail_msg("%s: rejected with %s", c->name, reason);
        if (ev.event_id_len != strlen(c->event_id) ||
            memcmp(ev.event_id, c->event_id, ev.event_id_len) != 0 ||
            ev.camera_id_len != strlen(c->camera_id) ||
            memcmp(ev.camera_id, c->camera_id, ev.camera_id_len) != 0 ||
            ev.event_type_len != strlen(c->event_type) ||
            memcmp(ev.event_type, c->event_type, ev.event_type_len) != 0)
            fail_msg("%s: wrong string field", c->name);
        if (ev.event_ts_us != c->ts_us)
            fail_msg("%s: ts %lld, want %lld", c->name, (long long)ev.event_ts_us,
                     (long long)c->ts_us);
        if (ev.has_confidence != (c->has_conf != 0) ||
            (c->has_conf && ev.confidence != c->conf) ||
            ev.has_object_count != (c->has_count != 0) ||
            (c->has_count && ev.object_count != c->count))
            fail_msg("%s: wrong optional field", c->name);
        if (c->attributes)
            assert_non_null(ev.attributes);
        if (c->attributes && strcmp(ev.attributes, c->attributes) != 0)
            fail_msg("%s: attributes %s, want %s", c->name, ev.attributes, c->attributes);
        if (!c->attributes && ev.attributes)
            fail_msg("%s: unexpected attributes %s", c->name, ev.attributes);
        event_clear(&ev);
        assert_null(ev.root_);
        assert_null(ev.attributes);
    }
}

/* ---- invalid events ---------------------------------------------------- */

struct invalid_case {
    const char *name, *data;
    size_t len; /* 0 = strlen(data) */
    const char *reason;
};

static const struct invalid_case invalid_cases[] = {
    {"empty non-NULL", "", 0, "empty"},
    {"syntax", "{\"event_id\":", 0, "invalid_json"},
    {"trailing garbage", EV("") " x", 0, "invalid_json"},
    {"whitespace only", "   ", 0, "invalid_json"},
    {"single quotes", "{'event_id':'e1'}", 0, "invalid_json"},
    {"raw NUL byte in string", "{\"event_id\":\"a\0b\"}", 18, "invalid_json"},
    {"bad utf8 in value", "{\"event_id\":\"\xff\"}", 0, "invalid_utf8"},
    {"overlong utf8", "{\"x\":\"\xc0\xaf\"}", 0, "invalid_utf8"},
    {"\\u0000 in value", "{\"event_id\":\"a\\u0000b\"}", 0, "nul_character"},
    {"\\u0000 in key", "{\"a\\u0000\":1}", 0, "nul_character"},
    {"duplicate key", "{\"event_id\":\"a\",\"event_id\":\"b\"}", 0, "duplicate_key"},
    {"duplicate nested key", EV(",\"x\":{\"k\":1,\"k\":2}"), 0, "duplicate_key"},
    {"integer overflow", EV(",\"x\":99999999999999999999"), 0, "number_out_of_range"},
    {"real overflow", EV(",\"x\":1e400"), 0, "number_out_of_range"},
    {"top-level array", "[1,2]", 0, "not_object"},
    {"top-level string", "\"s\"", 0, "not_object"},
    {"top-level number", "12", 0, "not_object"},
    {"top-level null", "null", 0, "not_object"},
    {"no event_id", "{\"camera_id\":\"c1\",\"event_ts\":0,\"event_type\":\"m\"}", 0,
     "missing_field:event_id"},
    {"null event_id", "{\"event_id\":null,\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "missing_field:event_id"},
    {"no camera_id", "{\"event_id\":\"e1\",\"event_ts\":0,\"event_type\":\"m\"}", 0,
     "missing_field:camera_id"},
    {"null camera_id", "{\"event_id\":\"e1\",\"camera_id\":null,\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "missing_field:camera_id"},
    {"no event_ts", "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_type\":\"m\"}", 0,
     "missing_field:event_ts"},
    {"null event_ts", EV_TS("null"), 0, "missing_field:event_ts"},
    {"no event_type", "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":0}", 0,
     "missing_field:event_type"},
    {"null event_type", "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":null}", 0, "missing_field:event_type"},
    {"event_id number", "{\"event_id\":1,\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "bad_type:event_id"},
    {"camera_id bool", "{\"event_id\":\"e1\",\"camera_id\":true,\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "bad_type:camera_id"},
    {"event_ts real", EV_TS("1704067200000.0"), 0, "bad_type:event_ts"},
    {"event_ts array", EV_TS("[]"), 0, "bad_type:event_ts"},
    {"event_type object", "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":{}}", 0, "bad_type:event_type"},
    {"confidence string", EV(",\"confidence\":\"0.5\""), 0, "bad_type:confidence"},
    {"confidence bool", EV(",\"confidence\":true"), 0, "bad_type:confidence"},
    {"object_count real", EV(",\"object_count\":1.0"), 0, "bad_type:object_count"},
    {"object_count string", EV(",\"object_count\":\"3\""), 0, "bad_type:object_count"},
    {"event_id empty", "{\"event_id\":\"\",\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "bad_value:event_id"},
    {"camera_id empty", "{\"event_id\":\"e1\",\"camera_id\":\"\",\"event_ts\":0,"
     "\"event_type\":\"m\"}", 0, "bad_value:camera_id"},
    {"event_type empty", "{\"event_id\":\"e1\",\"camera_id\":\"c1\",\"event_ts\":0,"
     "\"event_type\":\"\"}", 0, "bad_value:event_type"},
    {"confidence -0.1", EV(",\"confidence\":-0.1"), 0, "bad_value:confidence"},
    {"confidence 1.1", EV(",\"confidence\":1.1"), 0, "bad_value:confidence"},
    {"confidence 2", EV(",\"confidence\":2"), 0, "bad_value:confidence"},
    {"object_count -1", EV(",\"object_count\":-1"), 0, "bad_value:object_count"},
    {"object_count 2^31", EV(",\"object_count\":2147483648"), 0,
     "bad_value:object_count"},
    {"epoch ms negative", EV_TS("-1"), 0, "bad_value:event_ts"},
    {"epoch ms past 9999", EV_TS("253402300800000"), 0, "bad_value:event_ts"},
    {"ts year 10000", EV_TS("\"10000-01-01T00:00:00Z\""), 0, "bad_value:event_ts"},
    {"ts month 13", EV_TS("\"2023-13-01T00:00:00Z\""), 0, "bad_value:event_ts"},
    {"ts Feb 30", EV_TS("\"2024-02-30T00:00:00Z\""), 0, "bad_value:event_ts"},
    {"ts 2023-02-29", EV_TS("\"2023-02-29T00:00:00Z\""), 0, "bad_value:event_ts"},
    {"ts hour 24", EV_TS("\"2023-06-15T24:00:00Z\""), 0, "bad_value:event_ts"},
    {"ts no offset", EV_TS("\"2023-06-15T12:00:00\""), 0, "bad_value:event_ts"},
    {"ts before 1970", EV_TS("\"1969-12-31T23:59:59Z\""), 0, "bad_value:event_ts"},
    {"ts garbage", EV_TS("\"yesterday\""), 0, "bad_value:event_ts"},
    {"missing field reported first", "{\"camera_id\":1}", 0, "missing_field:event_id"},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(invalid_cases); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        size_t len = c->len ? c->len : strlen(c->data);
        char reason[EVENT_REASON_MAX];
        event_t ev;
        if (parse_copy(&ev, c->data, len, NO_LIMIT, reason) != EVENT_INVALID)
            fail_msg("%s: accepted", c->name);
        if (strcmp(reason, c->reason) != 0)
            fail_msg("%s: reason %s, want %s", c->name, reason, c->reason);
        assert_null(ev.root_);
        assert_null(ev.attributes);
        event_clear(&ev); /* safe on what an invalid parse leaves */
    }
}

static void test_empty_null_buffer(void **state)
{
    (void)state;
    char reason[EVENT_REASON_MAX];
    event_t ev;
    assert_int_equal(event_parse(&ev, NULL, 0, NO_LIMIT, reason), EVENT_INVALID);
    assert_string_equal(reason, "empty");
}

static void test_max_bytes_boundary(void **state)
{
    (void)state;
    static const char json[] = EV("");
    const size_t len = sizeof json - 1;
    static const struct { size_t max; int ok; } rows[] = {
        {sizeof json - 1, 1}, {sizeof json, 1}, {sizeof json - 2, 0}, {1, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        char reason[EVENT_REASON_MAX];
        event_t ev;
        enum event_status st = parse_copy(&ev, json, len, rows[i].max, reason);
        assert_int_equal(st, rows[i].ok ? EVENT_OK : EVENT_INVALID);
        if (!rows[i].ok)
            assert_string_equal(reason, "too_large");
        event_clear(&ev);
    }
}

static void test_too_deep(void **state)
{
    (void)state;
    static const char head[] = "{\"event_id\":";
    const size_t depth = 100000, len = sizeof head - 1 + depth;
    char *buf = malloc(len), reason[EVENT_REASON_MAX];
    event_t ev;
    assert_non_null(buf);
    memcpy(buf, head, sizeof head - 1);
    memset(buf + sizeof head - 1, '[', depth);
    assert_int_equal(event_parse(&ev, buf, len, NO_LIMIT, reason), EVENT_INVALID);
    assert_string_equal(reason, "too_deep");
    free(buf);
}

/* String lengths are bytes: "é" is 2 bytes. */
struct length_case {
    const char *field;
    const char *unit; /* repeated */
    size_t reps;
    const char *reason; /* NULL = valid */
};

static const struct length_case length_cases[] = {
    {"event_id", "a", 1, NULL},
    {"event_id", "a", 128, NULL},
    {"event_id", "a", 129, "bad_value:event_id"},
    {"event_id", "\xc3\xa9", 64, NULL},
    {"event_id", "\xc3\xa9", 65, "bad_value:event_id"},
    {"camera_id", "a", 1, NULL},
    {"camera_id", "a", 128, NULL},
    {"camera_id", "a", 129, "bad_value:camera_id"},
    {"event_type", "a", 1, NULL},
    {"event_type", "a", 64, NULL},
    {"event_type", "a", 65, "bad_value:event_type"},
    {"event_type", "\xf0\x9f\x98\x80", 16, NULL},
    {"event_type", "\xf0\x9f\x98\x80", 17, "bad_value:event_type"},
};

static void test_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(length_cases); i++) {
        const struct length_case *c = &length_cases[i];
        char value[1024] = "", json[2048], reason[EVENT_REASON_MAX];
        for (size_t r = 0; r < c->reps; r++)
            strcat(value, c->unit);
        const char *f = c->field;
        int n = snprintf(json, sizeof json,
                         "{\"event_id\":\"%s\",\"camera_id\":\"%s\",\"event_ts\":0,"
                         "\"event_type\":\"%s\"}",
                         strcmp(f, "event_id") == 0 ? value : "e",
                         strcmp(f, "camera_id") == 0 ? value : "c",
                         strcmp(f, "event_type") == 0 ? value : "t");
        assert_true(n > 0 && (size_t)n < sizeof json);
        event_t ev;
        enum event_status st = parse_copy(&ev, json, strlen(json), NO_LIMIT, reason);
        if (!c->reason && st != EVENT_OK)
            fail_msg("%s x%zu: rejected with %s", f, c->reps, reason);
        if (c->reason && (st != EVENT_INVALID || strcmp(reason, c->reason) != 0))
            fail_msg("%s x%zu: got %d %s, want %s", f, c->reps, st, reason, c->reason);
        if (!c->reason) {
            const char *got = strcmp(f, "event_id") == 0    ? ev.event_id
                              : strcmp(f, "camera_id") == 0 ? ev.camera_id
                                                            : ev.event_type;
            size_t got_len = strcmp(f, "event_id") == 0    ? ev.event_id_len
                             : strcmp(f, "camera_id") == 0 ? ev.camera_id_len
                                                           : ev.event_type_len;
            assert_int_equal(got_len, strlen(value));
            assert_memory_equal(got, value, got_len);
        }
        event_clear(&ev);
    }
}

/* ---- RFC 3339 and formatting -------------------------------------------- */

struct ts_case {
    const char *s;
    int ok;
    int64_t us;
};

static const struct ts_case ts_cases[] = {
    {"1970-01-01T00:00:00Z", 1, 0},
    {"1970-01-01T01:00:00+01:00", 1, 0},
    {"2023-06-15T12:34:56Z", 1, INT64_C(1686832496000000)},
    {"2023-06-15t12:34:56z", 1, INT64_C(1686832496000000)},
    {"2023-06-15 12:34:56Z", 1, INT64_C(1686832496000000)},
    {"2023-06-15T12:34:56+00:00", 1, INT64_C(1686832496000000)},
    {"2023-06-15T12:34:56-00:00", 1, INT64_C(1686832496000000)},
    {"2023-06-15T12:34:56-05:30", 1, INT64_C(1686852296000000)},
    {"2023-06-15T12:34:56+23:59", 1, INT64_C(1686746156000000)},
    {"2023-06-15T12:34:56.5Z", 1, INT64_C(1686832496500000)},
    {"2023-06-15T12:34:56.123Z", 1, INT64_C(1686832496123000)},
    {"2023-06-15T12:34:56.123456Z", 1, INT64_C(1686832496123456)},
    {"2023-06-15T12:34:56.123456789Z", 1, INT64_C(1686832496123456)},
    {"2024-02-29T23:59:59.123456+02:00", 1, INT64_C(1709243999123456)},
    {"2000-02-29T00:00:00Z", 1, INT64_C(951782400000000)},
    {"9999-12-31T23:59:59.999999Z", 1, INT64_C(253402300799999999)},
    {"2023-06-15T12:34:56.1234567890Z", 0, 0}, /* 10 fraction digits */
    {"2023-06-15T12:34:56.Z", 0, 0},
    {"2023-06-15T12:34:56", 0, 0},
    {"2023-06-15T12:34Z", 0, 0},
    {"2023-6-15T12:34:56Z", 0, 0},
    {"2023-06-15X12:34:56Z", 0, 0},
    {"2023-06-15T12:34:56ZZ", 0, 0},
    {"2023-06-15T12:34:56+0100", 0, 0},
    {"2023-06-15T12:34:56+24:00", 0, 0},
    {"2023-06-15T12:34:56+05:60", 0, 0},
    {"2023-00-15T12:34:56Z", 0, 0},
    {"2023-13-15T12:34:56Z", 0, 0},
    {"2023-06-00T12:34:56Z", 0, 0},
    {"2023-04-31T12:34:56Z", 0, 0},
    {"2023-02-29T12:34:56Z", 0, 0},
    {"2100-02-29T12:34:56Z", 0, 0},
    {"2023-06-15T24:00:00Z", 0, 0},
    {"2023-06-15T12:60:00Z", 0, 0},
    {"2023-06-15T12:34:60Z", 0, 0},
    {"1969-12-31T23:59:59.999999Z", 0, 0},
    {"1970-01-01T00:30:00+01:00", 0, 0},
    {"9999-12-31T23:00:00-02:00", 0, 0},
    {"10000-01-01T00:00:00Z", 0, 0},
    {"+2023-06-15T12:34:56Z", 0, 0},
    {"", 0, 0},
};

static void test_rfc3339(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ts_cases); i++) {
        const struct ts_case *c = &ts_cases[i];
        size_t len = strlen(c->s);
        char *copy = malloc(len + 1); /* exact length, no terminator read */
        assert_non_null(copy);
        memcpy(copy, c->s, len);
        int64_t us = -42;
        int rc = calendar_parse_rfc3339(copy, len, &us);
        free(copy);
        if (rc != (c->ok ? 0 : -1))
            fail_msg("%s: rc %d", c->s, rc);
        if (c->ok && us != c->us)
            fail_msg("%s: %lld, want %lld", c->s, (long long)us, (long long)c->us);
    }
}

static const struct {
    int64_t us;
    const char *text;
} format_cases[] = {
    {0, "1970-01-01 00:00:00.000000+00"},
    {1, "1970-01-01 00:00:00.000001+00"},
    {-1, "1969-12-31 23:59:59.999999+00"},
    {INT64_C(951782400000000), "2000-02-29 00:00:00.000000+00"},
    {INT64_C(1700000000000000), "2023-11-14 22:13:20.000000+00"},
    {INT64_C(1709243999123456), "2024-02-29 21:59:59.123456+00"},
    {INT64_C(253402300799999999), "9999-12-31 23:59:59.999999+00"},
};

static void test_format_ts(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
        char out[32];
        size_t n = calendar_format_ts(format_cases[i].us, out);
        assert_string_equal(out, format_cases[i].text);
        assert_int_equal(n, strlen(format_cases[i].text));
    }
}

/* parse(format(x)) == x, with format's "+00" written as RFC 3339 "+00:00". */
static void test_format_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
        if (format_cases[i].us < 0)
            continue;
        char out[40];
        size_t n = calendar_format_ts(format_cases[i].us, out);
        memcpy(out + n, ":00", 4);
        int64_t us;
        assert_int_equal(calendar_parse_rfc3339(out, n + 3, &us), 0);
        assert_int_equal(us, format_cases[i].us);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_empty_null_buffer),
        cmocka_unit_test(test_max_bytes_boundary),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_format_ts),
        cmocka_unit_test(test_format_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
