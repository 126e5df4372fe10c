/*
 * Unit tests for upkeep's pure parts: the calendar against libc's gmtime_r
 * and timegm (an independent implementation) over every day of years
 * 1-9999, known fixed points, day parsing, archive file names, the
 * manifest's JSON (parsed back with jansson, member by member), and the
 * durable-file helpers (a file's XXH64 against the one-shot XXH64 of the
 * same bytes). The run itself needs PostgreSQL: t_retention.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../../src/upkeep_int.h"
#include "camjoin/calendar.h"
#include "camjoin/upkeep.h"

static void test_fixed_points(void **state)
{
    (void)state;
    static const struct { int64_t y; unsigned m, d; int64_t days; } t[] = {
        {1970, 1, 1, 0},        {1970, 1, 2, 1},      {1969, 12, 31, -1},
        {2000, 3, 1, 11017},    {2024, 2, 29, 19782}, {2024, 5, 1, 19844},
        {1, 1, 1, -719162},     {9999, 12, 31, 2932896},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(calendar_days(t[i].y, t[i].m, t[i].d), t[i].days);
        int64_t y;
        unsigned m, d;
        calendar_date(t[i].days, &y, &m, &d);
        assert_int_equal(y, t[i].y);
        assert_int_equal(m, t[i].m);
        assert_int_equal(d, t[i].d);
    }
}

static void test_day_of(void **state)
{
    (void)state;
    static const int64_t t[][2] = {
        {0, 0}, {86399, 0}, {86400, 1}, {-1, -1}, {-86400, -1}, {-86401, -2},
        {1714521600, 19844}, {1714607999, 19844}, {1714608000, 19845},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_int_equal(calendar_day_of(t[i][0]), t[i][1]);
}

static void test_parse_day(void **state)
{
    (void)state;
    static const struct { const char *s; int rc; int64_t y; unsigned m, d; } t[] = {
        {"2024-05-01", 0, 2024, 5, 1},   {"2024-02-29", 0, 2024, 2, 29},
        {"2000-02-29", 0, 2000, 2, 29},  {"0001-01-01", 0, 1, 1, 1},
        {"9999-12-31", 0, 9999, 12, 31}, {"2023-02-29", -1, 0, 0, 0},
        {"1900-02-29", -1, 0, 0, 0},     {"2024-04-31", -1, 0, 0, 0},
        {"2024-13-01", -1, 0, 0, 0},     {"2024-00-10", -1, 0, 0, 0},
        {"2024-01-00", -1, 0, 0, 0},     {"0000-01-01", -1, 0, 0, 0},
        {"2024-1-01", -1, 0, 0, 0},      {"2024-01-01x", -1, 0, 0, 0},
        {"2024/01/01", -1, 0, 0, 0},     {"", -1, 0, 0, 0},
        {"12345-01-01", -1, 0, 0, 0},    {"2024-01-1", -1, 0, 0, 0},
        {"infinity", -1, 0, 0, 0},       {" 2024-01-01", -1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t day = 4242;
        int rc = upkeep_parse_day(t[i].s, &day);
        if (rc != t[i].rc)
            fail_msg("\"%s\": rc %d, want %d", t[i].s, rc, t[i].rc);
        if (rc == 0)
            assert_int_equal(day, calendar_days(t[i].y, t[i].m, t[i].d));
        else
            assert_int_equal(day, 4242); /* untouched */
    }
}

static void test_format_day(void **state)
{
    (void)state;
    char buf[16];
    upkeep_format_day(buf, sizeof buf, 19844);
    assert_string_equal(buf, "2024-05-01");
    upkeep_format_day(buf, sizeof buf, calendar_days(7, 3, 9));
    assert_string_equal(buf, "0007-03-09");
    for (int64_t z = -719162; z <= 2932896; z += 997) {
        int64_t back;
        upkeep_format_day(buf, sizeof buf, z);
        assert_int_equal(upkeep_parse_day(buf, &back), 0);
        assert_int_equal(back, z);
    }
}

static void test_archive_paths(void **state)
{
    (void)state;
    char dir[256], data[256], man[256];
    int64_t day = calendar_days(2024, 5, 1);
    static const struct { const char *adir, *table; unsigned n; const char *dir, *data, *man; } t[] = {
        {"/srv/arch", "camera_events", 0, "/srv/arch/camera_events/2024/05",
         "/srv/arch/camera_events/2024/05/camera_events_p20240501.csv.gz",
         "/srv/arch/camera_events/2024/05/camera_events_p20240501.manifest.json"},
        {"/srv/arch//", "camera_events", 2, "/srv/arch/camera_events/2024/05",
         "/srv/arch/camera_events/2024/05/camera_events_p20240501.2.csv.gz",
         "/srv/arch/camera_events/2024/05/camera_events_p20240501.2.manifest.json"},
        {"/", "ev", 0, "/ev/2024/05", "/ev/2024/05/ev_p20240501.csv.gz",
         "/ev/2024/05/ev_p20240501.manifest.json"},
        {"rel", "a/b", 0, "rel/a_b/2024/05", "rel/a_b/2024/05/a_b_p20240501.csv.gz",
         "rel/a_b/2024/05/a_b_p20240501.manifest.json"},
        {"rel", "..x", 1, "rel/_.x/2024/05", "rel/_.x/2024/05/_.x_p20240501.1.csv.gz",
         "rel/_.x/2024/05/_.x_p20240501.1.manifest.json"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(upkeep_archive_paths(t[i].adir, t[i].table, day, t[i].n, dir, data,
                                              man, sizeof dir), 0);
        assert_string_equal(dir, t[i].dir);
        assert_string_equal(data, t[i].data);
        assert_string_equal(man, t[i].man);
    }
    /* the longest name, the manifest's, is 62 bytes: it needs 63 */
    static const char want[] = "/a/camera_events/2024/05/camera_events_p20240501.manifest.json";
    assert_int_equal(sizeof want, 63);
    assert_int_equal(upkeep_archive_paths("/a", "camera_events", day, 0, dir, data, man, 62), -1);
    assert_int_equal(upkeep_archive_paths("/a", "camera_events", day, 0, dir, data, man, 63), 0);
    assert_string_equal(man, want);
}

static void test_manifest_json(void **state)
{
    (void)state;
    const char *cols[] = {"event_id", "we\"ird\\co\nl\x01", "ingested_at"};
    upkeep_manifest_t m = {
        .table = "camera_events", .partition = "camera_events_p20240501",
        .file = "camera_events_p20240501.csv.gz", .day = 19844, .rows = 300,
        .bytes = 12345, .xxh64 = 0x00ab0000000000ffULL, .columns = cols, .ncolumns = 3,
        .min_event_ts = "2024-05-01T00:00:00.000000Z",
        .max_event_ts = "2024-05-01T23:59:59.999999Z",
        .created_ms = 1714521600123LL, .version = "0.1.0",
    };
    char *text = upkeep_manifest_json(&m);
    assert_non_null(text);
    assert_int_equal(text[strlen(text) - 1], '\n');
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (!o)
        fail_msg("manifest is not JSON: %s\n%s", e.text, text);
    assert_string_equal(json_string_value(json_object_get(o, "table")), "camera_events");
    assert_string_equal(json_string_value(json_object_get(o, "partition")),
                        "camera_events_p20240501");
    assert_string_equal(json_string_value(json_object_get(o, "day")), "2024-05-01");
    assert_string_equal(json_string_value(json_object_get(o, "file")),
                        "camera_events_p20240501.csv.gz");
    assert_string_equal(json_string_value(json_object_get(o, "format")), "csv, header, gzip");
    assert_int_equal(json_integer_value(json_object_get(o, "rows")), 300);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 12345);
    assert_string_equal(json_string_value(json_object_get(o, "xxh64")), "00ab0000000000ff");
    json_t *c = json_object_get(o, "columns");
    assert_int_equal(json_array_size(c), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_array_get(c, i)), cols[i]);
    assert_string_equal(json_string_value(json_object_get(o, "min_event_ts")),
                        "2024-05-01T00:00:00.000000Z");
    assert_string_equal(json_string_value(json_object_get(o, "max_event_ts")),
                        "2024-05-01T23:59:59.999999Z");
    assert_string_equal(json_string_value(json_object_get(o, "created_at")),
                        "2024-05-01T00:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "camjoin_version")), "0.1.0");
    assert_int_equal(json_object_size(o), 13);
    json_decref(o);
    free(text);

    /* an empty partition: no range */
    m.min_event_ts = m.max_event_ts = NULL;
    m.rows = 0;
    m.ncolumns = 0;
    m.created_ms = 1714608000000LL - 1; /* the last millisecond of the day */
    text = upkeep_manifest_json(&m);
    assert_non_null(text);
    o = json_loads(text, 0, &e);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "min_event_ts")));
    assert_true(json_is_null(json_object_get(o, "max_event_ts")));
    assert_int_equal(json_array_size(json_object_get(o, "columns")), 0);
    assert_string_equal(json_string_value(json_object_get(o, "created_at")),
                        "2024-05-01T23:59:59.999Z");
    json_decref(o);
    free(text);
}

static void test_files(void **state)
{
    (void)state;
    char root[] = "/tmp/test_upkeep.XXXXXX", path[256], file[300], tmp[320];
    assert_non_null(mkdtemp(root));
    snprintf(path, sizeof path, "%s/a/b/c", root);
    assert_int_equal(upkeep_make_dirs(path), 0);
    assert_int_equal(upkeep_make_dirs(path), 0); /* exists: fine */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0750); /* umask 022 (main) leaves it */

    snprintf(file, sizeof file, "%s/m.json", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    assert_int_equal(upkeep_file_state(file), 0);
    const char *text = "{\"rows\": 3}\n";
    assert_int_equal(upkeep_write_durable(tmp, text), 0);
    assert_int_equal(upkeep_publish(tmp, file, path), 0);
    assert_int_equal(upkeep_file_state(tmp), 0);
    assert_int_equal(upkeep_file_state(file), 1);
    uint64_t h = 0;
    assert_int_equal(upkeep_hash_file(file, &h), 0);
    assert_int_equal(h, XXH64(text, strlen(text), 0));
    assert_int_equal(XXH64("abc", 3, 0), 0x44bc2cf5ad770999ULL); /* = xxhsum -H1 */

    /* a path through a regular file: cannot tell, and cannot make */
    snprintf(tmp, sizeof tmp, "%s/x/y", file);
    assert_int_equal(upkeep_file_state(tmp), -1);
    assert_int_equal(upkeep_make_dirs(tmp), -1);
    assert_int_equal(upkeep_hash_file(tmp, &h), -1);

    unlink(file);
    for (int i = 0; i < 3; i++) {
        rmdir(path);
        *strrchr(path, '/') = '\0';
    }
    assert_int_equal(rmdir(root), 0); /* nothing else was left behind */
}

int main(void)
{
    umask(022);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_points),
        cmocka_unit_test(test_day_of),          cmocka_unit_test(test_parse_day),
        cmocka_unit_test(test_format_day),      cmocka_unit_test(test_archive_paths),
        cmocka_unit_test(test_manifest_json),   cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
