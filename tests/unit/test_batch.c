/*
 * Unit tests for batch: binary COPY encoding of event rows and dead letters,
 * the "failed add leaves no trace" rule, per-partition offsets, reset.
 *
 * The streams are read back by copy_decode.h, a small binary-COPY decoder
 * written from the PostgreSQL documentation ("COPY ... Binary Format"),
 * independent of src/. Expected fields are spelled out as big-endian bytes; the
 * float bit patterns were computed with Python's struct.pack('>f'/'>d', x),
 * the timestamps by hand (arithmetic in comments) and checked with Python's
 * datetime.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/batch.h"
#include "copy_decode.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TOPIC "cam.events"

static int setup(void **state)
{
    *state = batch_new(TOPIC);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    batch_free(*state);
    return 0;
}

/* An event built by hand (the batch must not depend on event_parse). */
static event_t make_event(const char *id, const char *cam, const char *type,
                          int64_t ts_us)
{
    return (event_t){.event_id = id, .event_id_len = strlen(id),
                     .camera_id = cam, .camera_id_len = strlen(cam),
                     .event_type = type, .event_type_len = strlen(type),
                     .event_ts_us = ts_us};
}

/* ---- streams of a fresh batch --------------------------------------------- */

static void test_new_has_headers(void **state)
{
    batch_t *b = *state;
    size_t len;
    const char *data = batch_event_data(b, &len);
    assert_int_equal(len, HEADER_LEN);
    assert_memory_equal(data, copy_header, HEADER_LEN);
    data = batch_dead_data(b, &len);
    assert_int_equal(len, HEADER_LEN);
    assert_memory_equal(data, copy_header, HEADER_LEN);
    assert_int_equal(batch_rows(b), 0);
    assert_int_equal(batch_dead(b), 0);
    assert_int_equal(batch_messages(b), 0);
}

/* ---- event rows ---------------------------------------------------------- */

static const refdata_row_t full_ref = {
    .camera_id = "cam-1", .camera_id_len = 5,
    .site_id = "s1", .site_id_len = 2,
    .site_name = "Site \xc3\xa9\n", .site_name_len = 8,
    .zone = "", .zone_len = 0,
    .has_latitude = true, .latitude = 52.52,
    .has_longitude = true, .longitude = 13.405,
};

static const refdata_row_t no_coords_ref = {
    .camera_id = "c", .camera_id_len = 1,
    .site_id = "s\\2", .site_id_len = 3,
    .site_name = "North", .site_name_len = 5,
    .zone = "z", .zone_len = 1,
};

static const refdata_row_t latitude_only_ref = {
    .camera_id = "c", .camera_id_len = 1,
    .site_id = "\\N", .site_id_len = 2, /* text that looks like NULL in COPY text */
    .site_name = "a\r\nb", .site_name_len = 4,
    .zone = "\\x00", .zone_len = 4,
    .has_latitude = true, .latitude = -33.8688,
};

/* 2024-03-01T12:34:56.789012Z:
 *   2000-01-01 .. 2024-01-01: 24 * 365 + 6 leap days (2000, 04, 08, 12, 16, 20)
 *                             = 8766 days
 *   + January (31) + February 2024 (29, a leap year)    = 8826 days
 *   8826 * 86400 s = 762,566,400 s; 12:34:56 = 12 * 3600 + 34 * 60 + 56
 *   = 45,296 s; total 762,611,696 s since 2000-01-01
 *   -> 762,611,696,789,012 us = 0x0002B5975F49E614 (PostgreSQL's int64)
 *   Unix: 762,611,696 + 946,684,800 (1970 -> 2000) = 1,709,296,496 s
 *   -> event_ts_us 1,709,296,496,789,012. */
#define TS_2024_UNIX_US INT64_C(1709296496789012)
#define TS_2024_PG "\x00\x02\xb5\x97\x5f\x49\xe6\x14"
/* Unix epoch: -946,684,800,000,000 us = 0xFFFCA2FEC4C82000; +1 us = ...001 */
#define TS_1970_PG "\xff\xfc\xa2\xfe\xc4\xc8\x20\x00"
#define TS_1970_1US_PG "\xff\xfc\xa2\xfe\xc4\xc8\x20\x01"

struct row_case {
    const char *name;
    event_t ev;
    const refdata_row_t *ref;
    int32_t partition;
    int64_t offset;
    struct want want[14];
};

static void test_event_rows(void **state)
{
    batch_t *b = *state;
    const struct row_case cases[] = {
        {"all fields + ref",
         {.event_id = "e\t1", .event_id_len = 3, .camera_id = "cam-1",
          .camera_id_len = 5, .event_type = "motion", .event_type_len = 6,
          .event_ts_us = TS_2024_UNIX_US, .has_confidence = true,
          .confidence = 0.87, .has_object_count = true, .object_count = 3,
          .attributes = "{\"k\":\"a\\\\b\",\"n\":[1,2]}"},
         &full_ref, 7, INT64_C(1234567890123),
         {W("e\t1"), W(TS_2024_PG), W("cam-1"), W("motion"),
          W("\x3f\x5e\xb8\x52"),                 /* 0.87f = 0x3f5eb852 */
          W("\x00\x00\x00\x03"),
          W("\x01" "{\"k\":\"a\\\\b\",\"n\":[1,2]}"), /* jsonb version 1 */
          W("s1"), W("Site \xc3\xa9\n"), W(""),   /* empty zone is not NULL */
          W("\x40\x4a\x42\x8f\x5c\x28\xf5\xc3"), /* 52.52 = 0x404a428f5c28f5c3 */
          W("\x40\x2a\xcf\x5c\x28\xf5\xc2\x8f"), /* 13.405 = 0x402acf5c28f5c28f */
          W("\x00\x00\x00\x07"),
          W("\x00\x00\x01\x1f\x71\xfb\x04\xcb")}}, /* 1234567890123 */
        {"optional absent, no ref", make_event("e2", "c", "t", 0), NULL, 0, 0,
         {W("e2"), W(TS_1970_PG), W("c"), W("t"), WNULL, WNULL, WNULL,
          WNULL, WNULL, WNULL, WNULL, WNULL,
          W("\x00\x00\x00\x00"), W("\x00\x00\x00\x00\x00\x00\x00\x00")}},
        {"ref without coordinates, limits",
         {.event_id = "e3", .event_id_len = 2, .camera_id = "c", .camera_id_len = 1,
          .event_type = "t", .event_type_len = 1, .event_ts_us = 1,
          .has_confidence = true, .confidence = 0.123456789123,
          .has_object_count = true, .object_count = 0},
         &no_coords_ref, 2147483647, INT64_C(9223372036854775806),
         {W("e3"), W(TS_1970_1US_PG), W("c"), W("t"),
          W("\x3d\xfc\xd6\xea"), /* (float)0.123456789123 = 0x3dfcd6ea */
          W("\x00\x00\x00\x00"), WNULL, W("s\\2"), W("North"), W("z"), WNULL, WNULL,
          W("\x7f\xff\xff\xff"), W("\x7f\xff\xff\xff\xff\xff\xff\xfe")}},
        {"control characters and backslashes pass through, latitude only",
         {.event_id = "a\\b\\\\c", .event_id_len = 6, .camera_id = "c\tc\n",
          .camera_id_len = 4, .event_type = "\b\f\v\x01\x7f", .event_type_len = 5,
          .event_ts_us = TS_2024_UNIX_US, .has_confidence = true, .confidence = 1.0,
          .has_object_count = true, .object_count = 2147483647, .attributes = "{}"},
         &latitude_only_ref, -1, -1,
         {W("a\\b\\\\c"), W(TS_2024_PG), W("c\tc\n"), W("\b\f\v\x01\x7f"),
          W("\x3f\x80\x00\x00"), W("\x7f\xff\xff\xff"), W("\x01{}"),
          W("\\N"), W("a\r\nb"), W("\\x00"),
          W("\xc0\x40\xef\x34\xd6\xa1\x61\xe5"), /* -33.8688 = 0xc040ef34d6a161e5 */
          WNULL, W("\xff\xff\xff\xff"), W("\xff\xff\xff\xff\xff\xff\xff\xff")}},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len;
        struct tuple t[2];
        batch_reset(b);
        assert_int_equal(batch_add_event(b, &cases[i].ev, cases[i].ref,
                                         cases[i].partition, cases[i].offset), 0);
        const char *data = batch_event_data(b, &len);
        assert_int_equal(decode(data, len, 14, t, ARRAY_LEN(t)), 1);
        check_tuple(cases[i].name, &t[0], cases[i].want, 14);
        assert_int_equal(batch_rows(b), 1);
        assert_int_equal(batch_messages(b), 1);
        assert_int_equal(batch_dead(b), 0);
        data = batch_dead_data(b, &len);
        assert_int_equal(len, HEADER_LEN); /* no dead letter rows */
    }
}

/* Text that PostgreSQL cannot hold: NUL in any text field fails the add and
 * leaves the stream byte for byte as it was, even though the other fields of
 * the row were fine. */
static void test_event_nul_rejected(void **state)
{
    batch_t *b = *state;
    event_t good = make_event("e", "c", "t", 0);
    assert_int_equal(batch_add_event(b, &good, &full_ref, 1, 10), 0);

    size_t before_len;
    const char *data = batch_event_data(b, &before_len);
    char *before = malloc(before_len);
    assert_non_null(before);
    memcpy(before, data, before_len);

    for (int field = 0; field < 6; field++) {
        event_t ev = good;
        refdata_row_t ref = full_ref;
        switch (field) {
        case 0: ev.event_id = "a\0b"; ev.event_id_len = 3; break;
        case 1: ev.camera_id = "\0"; ev.camera_id_len = 1; break;
        case 2: ev.event_type = "t\0"; ev.event_type_len = 2; break;
        case 3: ref.site_id = "\0s"; ref.site_id_len = 2; break;
        case 4: ref.site_name = "n\0n"; ref.site_name_len = 3; break;
        case 5: ref.zone = "z\0"; ref.zone_len = 2; break;
        }
        if (batch_add_event(b, &ev, &ref, 2, 20 + field) != -1)
            fail_msg("NUL in field %d accepted", field);
        size_t len;
        data = batch_event_data(b, &len);
        assert_int_equal(len, before_len);
        assert_memory_equal(data, before, len);
    }
    free(before);

    assert_int_equal(batch_rows(b), 1);
    assert_int_equal(batch_messages(b), 1);
    size_t n;
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(off[0].partition, 1);
    assert_int_equal(off[0].next, 11);

    /* the next good row follows the first directly */
    assert_int_equal(batch_add_event(b, &good, NULL, 1, 11), 0);
    size_t len;
    struct tuple t[3];
    data = batch_event_data(b, &len);
    assert_int_equal(decode(data, len, 14, t, ARRAY_LEN(t)), 2);
    check_field("second row", 13, t[1].f[13], (struct want)W("\0\0\0\0\0\0\0\x0b"));
}

/* A field longer than an int32 length word can announce is refused without
 * being read (the pointers below are far shorter than the lengths). */
static void test_oversized_field_rejected(void **state)
{
    batch_t *b = *state;
    if (SIZE_MAX <= INT32_MAX)
        skip();
    size_t huge = (size_t)INT32_MAX + 1, len;
    event_t ev = make_event("e", "c", "t", 0);
    ev.event_id_len = huge;
    assert_int_equal(batch_add_event(b, &ev, NULL, 0, 1), -1);
    refdata_row_t ref = full_ref;
    ref.site_name_len = huge;
    ev = make_event("e", "c", "t", 0);
    assert_int_equal(batch_add_event(b, &ev, &ref, 0, 2), -1);
    assert_int_equal(batch_add_dead(b, 0, 3, "x", huge, "too_large"), -1);
    batch_event_data(b, &len);
    assert_int_equal(len, HEADER_LEN);
    batch_dead_data(b, &len);
    assert_int_equal(len, HEADER_LEN);
    assert_int_equal(batch_messages(b), 0);
    size_t n;
    batch_offsets(b, &n);
    assert_int_equal(n, 0);
}

/* Many rows: the buffer grows well past its initial size and every row
 * decodes back to what was added. */
static void test_event_growth(void **state)
{
    batch_t *b = *state;
    const size_t rows = 5000;
    char id[32], attrs[48];
    for (size_t i = 0; i < rows; i++) {
        snprintf(id, sizeof id, "id-%zu", i);
        snprintf(attrs, sizeof attrs, "{\"i\":%zu}", i);
        event_t ev = make_event(id, "cam", "type", (int64_t)i * 1000003);
        ev.has_confidence = i % 2;
        ev.confidence = (double)i / rows;
        ev.has_object_count = i % 3 == 0;
        ev.object_count = (int32_t)i;
        ev.attributes = i % 5 ? attrs : NULL;
        assert_int_equal(batch_add_event(b, &ev, i % 7 ? &full_ref : NULL,
                                         (int32_t)(i % 4), (int64_t)i), 0);
    }
    assert_int_equal(batch_rows(b), rows);

    size_t len;
    const char *data = batch_event_data(b, &len);
    assert_true(len > 4096 * 16);
    struct tuple *t = malloc((rows + 1) * sizeof *t);
    assert_non_null(t);
    assert_int_equal(decode(data, len, 14, t, rows + 1), rows);
    for (size_t i = 0; i < rows; i++) {
        const struct field *f = t[i].f;
        snprintf(id, sizeof id, "id-%zu", i);
        assert_int_equal(f[0].len, strlen(id));
        assert_memory_equal(f[0].p, id, strlen(id));
        assert_int_equal(f[1].len, 8);
        assert_int_equal((int64_t)rd64(f[1].p),
                         (int64_t)i * 1000003 - INT64_C(946684800000000));
        assert_int_equal(f[2].len, 3);
        assert_memory_equal(f[2].p, "cam", 3);
        if (i % 2) {
            float want = (float)((double)i / rows), got;
            uint32_t bits = rd32(f[4].p);
            assert_int_equal(f[4].len, 4);
            memcpy(&got, &bits, 4);
            assert_true(got == want);
        } else {
            assert_int_equal(f[4].len, -1);
        }
        if (i % 3 == 0) {
            assert_int_equal(f[5].len, 4);
            assert_int_equal(rd32(f[5].p), i);
        } else {
            assert_int_equal(f[5].len, -1);
        }
        if (i % 5) {
            snprintf(attrs, sizeof attrs, "{\"i\":%zu}", i);
            assert_int_equal(f[6].len, 1 + strlen(attrs));
            assert_int_equal(f[6].p[0], 1);
            assert_memory_equal(f[6].p + 1, attrs, strlen(attrs));
        } else {
            assert_int_equal(f[6].len, -1);
        }
        assert_int_equal(f[7].len, i % 7 ? 2 : -1);
        assert_int_equal(f[10].len, i % 7 ? 8 : -1);
        assert_int_equal(f[12].len, 4);
        assert_int_equal(rd32(f[12].p), i % 4);
        assert_int_equal(f[13].len, 8);
        assert_int_equal(rd64(f[13].p), i);
    }
    free(t);
}

/* ---- dead letters -------------------------------------------------------- */

static const struct {
    const char *name;
    const void *payload;
    size_t len;
    const char *reason;
    struct want payload_want, reason_want;
} dead_cases[] = {
    {"binary payload", "\x00\xff\t", 3, "invalid_json",
     W("\x00\xff\t"), W("invalid_json")},
    {"NULL payload", NULL, 0, "empty", WNULL, W("empty")},
    {"zero-length payload", "", 0, "empty", W(""), W("empty")},
    {"text payload, tab and backslash in reason", "{\"a\":1}", 7, "bad\ttab\\",
     W("{\"a\":1}"), W("bad\ttab\\")},
};

static void test_dead_letters(void **state)
{
    batch_t *b = *state;
    struct tuple t[ARRAY_LEN(dead_cases) + 1];
    size_t len;
    for (size_t i = 0; i < ARRAY_LEN(dead_cases); i++) {
        batch_reset(b);
        assert_int_equal(batch_add_dead(b, 2, 99, dead_cases[i].payload,
                                        dead_cases[i].len, dead_cases[i].reason), 0);
        const char *data = batch_dead_data(b, &len);
        assert_int_equal(decode(data, len, 5, t, ARRAY_LEN(t)), 1);
        const struct want want[5] = {
            W(TOPIC), W("\x00\x00\x00\x02"), W("\0\0\0\0\0\0\0\x63"),
            dead_cases[i].payload_want, dead_cases[i].reason_want,
        };
        check_tuple(dead_cases[i].name, &t[0], want, 5);
        assert_int_equal(batch_dead(b), 1);
        assert_int_equal(batch_rows(b), 0);
        assert_int_equal(batch_messages(b), 1);
        batch_event_data(b, &len);
        assert_int_equal(len, HEADER_LEN);
    }

    /* all of them in one stream, in order */
    batch_reset(b);
    for (size_t i = 0; i < ARRAY_LEN(dead_cases); i++)
        assert_int_equal(batch_add_dead(b, 3, (int64_t)i, dead_cases[i].payload,
                                        dead_cases[i].len, dead_cases[i].reason), 0);
    const char *data = batch_dead_data(b, &len);
    assert_int_equal(decode(data, len, 5, t, ARRAY_LEN(t)), ARRAY_LEN(dead_cases));
    for (size_t i = 0; i < ARRAY_LEN(dead_cases); i++) {
        check_field(dead_cases[i].name, 3, t[i].f[3], dead_cases[i].payload_want);
        check_field(dead_cases[i].name, 4, t[i].f[4], dead_cases[i].reason_want);
        assert_int_equal(rd64(t[i].f[2].p), i);
    }
    assert_int_equal(batch_dead(b), ARRAY_LEN(dead_cases));
}

/* The topic goes out as it is: no COPY text escaping any more. */
static void test_dead_topic_raw(void **state)
{
    (void)state;
    batch_t *b = batch_new("odd\\topic\t\n");
    assert_non_null(b);
    assert_int_equal(batch_add_dead(b, 0, 1, NULL, 0, "r"), 0);
    size_t len;
    struct tuple t[2];
    const char *data = batch_dead_data(b, &len);
    assert_int_equal(decode(data, len, 5, t, ARRAY_LEN(t)), 1);
    const struct want want[5] = {
        W("odd\\topic\t\n"), W("\0\0\0\0"), W("\0\0\0\0\0\0\0\x01"), WNULL, W("r"),
    };
    check_tuple("topic", &t[0], want, 5);
    batch_free(b);
}

/* A gap is the dead letter batch_add_dead() would write for its payload,
 * and moves the partition's next offset to the end of the range. */
static void test_gap(void **state)
{
    batch_t *b = *state, *ref = batch_new(TOPIC);
    static const char payload[] = "{\"from_offset\":100,\"to_offset\":250,\"offsets\":150}";
    assert_non_null(ref);
    assert_int_equal(batch_add_gap(b, 4, 100, 250), 0);
    assert_int_equal(batch_add_dead(ref, 4, 100, payload, strlen(payload), "offset_gap"), 0);
    size_t len, ref_len, n;
    const char *data = batch_dead_data(b, &len), *want = batch_dead_data(ref, &ref_len);
    assert_int_equal(len, ref_len);
    assert_memory_equal(data, want, len);
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(off[0].partition, 4);
    assert_int_equal(off[0].next, 250);
    assert_int_equal(batch_messages(b), 1);
    assert_int_equal(batch_dead(b), 1);
    /* an empty or reversed range is refused and changes nothing */
    assert_int_equal(batch_add_gap(b, 4, 250, 250), -1);
    assert_int_equal(batch_add_gap(b, 5, 9, 3), -1);
    assert_int_equal(batch_add_gap(b, 5, -1, 3), -1);
    assert_int_equal(batch_messages(b), 1);
    batch_offsets(b, &n);
    assert_int_equal(n, 1);
    batch_free(ref);
}

/* ---- offsets ------------------------------------------------------------- */

static void test_offsets(void **state)
{
    batch_t *b = *state;
    event_t ev = make_event("e", "c", "t", 0);
    assert_int_equal(batch_note_offset(b, 0, 10), 0);
    assert_int_equal(batch_add_event(b, &ev, NULL, 1, 5), 0);
    assert_int_equal(batch_add_dead(b, 0, 11, "x", 1, "invalid_json"), 0);
    assert_int_equal(batch_note_offset(b, 2, 100), 0);
    assert_int_equal(batch_note_offset(b, 1, 7), 0);
    assert_int_equal(batch_note_offset(b, 0, 9), 0); /* lower: next stays 12 */
    assert_int_equal(batch_add_event(b, &ev, NULL, 2, 101), 0);
    assert_int_equal(batch_note_offset(b, 2, 102), 0);
    /* Kafka timestamps: the latest per partition; partition 1 gets none, and
     * a partition not in the batch is ignored */
    batch_note_time(b, 0, 5000);
    batch_note_time(b, 2, 7000);
    batch_note_time(b, 0, 4000); /* older: 5000 stays */
    batch_note_time(b, 2, 7001);
    batch_note_time(b, 9, 9999);

    static const batch_offset_t want[] = {
        {0, 12, 5000},
        {1, 8, -1},
        {2, 103, 7001},
    };
    size_t n;
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(off[i].partition, want[i].partition);
        assert_int_equal(off[i].next, want[i].next);
        assert_int_equal(off[i].last_ts_ms, want[i].last_ts_ms);
    }
    assert_int_equal(batch_rows(b), 2);
    assert_int_equal(batch_dead(b), 1);
    assert_int_equal(batch_messages(b), 8);

    assert_int_equal(batch_note_offset(b, 1, 8), 0);
    off = batch_offsets(b, &n);
    assert_int_equal(off[1].next, 9);
}

/* Many partitions: the array grows and each keeps its own range. */
static void test_offsets_many_partitions(void **state)
{
    batch_t *b = *state;
    const int32_t parts = 100;
    for (int round = 0; round < 3; round++)
        for (int32_t p = parts - 1; p >= 0; p--)
            assert_int_equal(batch_note_offset(b, p, (int64_t)p * 1000 + round), 0);
    size_t n;
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, (size_t)parts);
    for (size_t i = 0; i < n; i++) {
        int32_t p = parts - 1 - (int32_t)i; /* first-touched order */
        assert_int_equal(off[i].partition, p);
        assert_int_equal(off[i].next, (int64_t)p * 1000 + 3);
    }
    assert_int_equal(batch_messages(b), 3 * (size_t)parts);
}

static void test_reset(void **state)
{
    batch_t *b = *state;
    event_t ev = make_event("e", "c", "t", 0);
    assert_int_equal(batch_add_event(b, &ev, NULL, 4, 40), 0);
    assert_int_equal(batch_add_dead(b, 5, 50, "p", 1, "r"), 0);
    assert_int_equal(batch_note_offset(b, 6, 60), 0);
    size_t len;
    const char *events_before = batch_event_data(b, &len);
    const char *dead_before = batch_dead_data(b, &len);
    /* Scribble over both headers (the memory is the batch's own, writable):
     * reset must write them again, not just shorten the streams. */
    memset((char *)events_before, 'x', HEADER_LEN);
    memset((char *)dead_before, 'x', HEADER_LEN);

    batch_reset(b);
    size_t n;
    assert_int_equal(batch_rows(b), 0);
    assert_int_equal(batch_dead(b), 0);
    assert_int_equal(batch_messages(b), 0);
    batch_offsets(b, &n);
    assert_int_equal(n, 0);
    assert_ptr_equal(batch_event_data(b, &len), events_before); /* memory kept */
    assert_int_equal(len, HEADER_LEN);
    assert_memory_equal(events_before, copy_header, HEADER_LEN);
    assert_ptr_equal(batch_dead_data(b, &len), dead_before);
    assert_int_equal(len, HEADER_LEN);
    assert_memory_equal(dead_before, copy_header, HEADER_LEN);

    /* Nothing from before the reset leaks into the next batch. */
    assert_int_equal(batch_note_offset(b, 4, 3), 0);
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(off[0].partition, 4);
    assert_int_equal(off[0].next, 4);

    struct tuple t[2];
    assert_int_equal(batch_add_event(b, &ev, NULL, 4, 41), 0);
    const char *data = batch_event_data(b, &len);
    assert_int_equal(decode(data, len, 14, t, ARRAY_LEN(t)), 1);
    check_field("after reset", 13, t[0].f[13], (struct want)W("\0\0\0\0\0\0\0\x29"));
    data = batch_dead_data(b, &len);
    assert_int_equal(decode(data, len, 5, t, ARRAY_LEN(t)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_has_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_nul_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_field_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
        cmocka_unit_test(test_dead_topic_raw),
        cmocka_unit_test_setup_teardown(test_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_many_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
