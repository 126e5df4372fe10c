/* Unit tests for refdata: one table of CSV inputs with their exact expected
 * rows or error line, plus lookups, the shipped camera table and a big file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <xxhash.h>

#include "camjoin/refdata.h"

#define H "camera_id,site_id,site_name,zone,latitude,longitude\n"

/* Table rows: an input that loads, with its exact rows in file order, or an
 * input that fails, with the exact message after "<path>". */
#define LOADS(name_, lit, n_, ...) { .name = name_, .csv = lit, \
    .len = sizeof(lit) - 1, .count = n_, .rows = { __VA_ARGS__ } }
#define FAILS(name_, lit, err_) { .name = name_, .csv = lit, \
    .len = sizeof(lit) - 1, .err = err_ }
#define QUOTE_ERR "misplaced quote (inside an unquoted field, or text after a closing quote)"

struct want_row {
    const char *id, *site_id, *site_name, *zone;
    int has_lat; double lat;
    int has_lon; double lon;
};

struct load_case {
    const char *name;
    const char *csv;
    size_t len;
    const char *err;             /* NULL: the input loads */
    size_t count;
    struct want_row rows[3];
};

static const struct load_case cases[] = {
    LOADS("plain", H "cam-1,s1,Site One,lobby,47.5,-122.25\ncam-2,s2,Site Two,,,\n", 2,
          { "cam-1", "s1", "Site One", "lobby", 1, 47.5, 1, -122.25 },
          { "cam-2", "s2", "Site Two", "", 0, 0, 0, 0 }),
    LOADS("quoted comma, quote, newline",
          H "cam-1,s1,\"Depot, Pier 7\",\"a \"\"b\"\" c\",1,2\n"
            "cam-2,s1,\"line1\nline2\",\"\",,\n"
            "\"cam-3\",\"s3\",\"\"\"\",z,\"-3.25\",\"4\"\n", 3,
          { "cam-1", "s1", "Depot, Pier 7", "a \"b\" c", 1, 1, 1, 2 },
          { "cam-2", "s1", "line1\nline2", "", 0, 0, 0, 0 },
          { "cam-3", "s3", "\"", "z", 1, -3.25, 1, 4 }),
    LOADS("CRLF line ends",
          "camera_id,site_id,site_name,zone,latitude,longitude\r\n"
          "cam-1,s1,n,z,1.5,2.5\r\ncam-2,s2,\"x\r\ny\",z,,\r\n", 2,
          { "cam-1", "s1", "n", "z", 1, 1.5, 1, 2.5 },
          { "cam-2", "s2", "x\r\ny", "z", 0, 0, 0, 0 }),
    LOADS("UTF-8 BOM and multibyte text",
          "\xEF\xBB\xBF" H "cam-1,s1,Montr\xC3\xA9" "al,\xE2\x82\xAC \xF0\x9F\x98\x80,1,2\n", 1,
          { "cam-1", "s1", "Montr\xC3\xA9" "al", "\xE2\x82\xAC \xF0\x9F\x98\x80", 1, 1, 1, 2 }),
    LOADS("columns reordered, extra ignored, header trimmed",
          "notes, longitude ,zone,camera_id,latitude,site_name,extra,site_id\n"
          "hello,10.5,dock,cam-9,-20.25,Name,\"x,y\",s9\n", 1,
          { "cam-9", "s9", "Name", "dock", 1, -20.25, 1, 10.5 }),
    LOADS("blanks: text kept, numbers trimmed or empty",
          H "cam-1, s ,  ,z,  ,\t\ncam-2,s,n,z, 12.5 ,\t-7\t\n", 2,
          { "cam-1", " s ", "  ", "z", 0, 0, 0, 0 },
          { "cam-2", "s", "n", "z", 1, 12.5, 1, -7 }),
    LOADS("range limits, exponents, long numbers",
          H "a,s,n,z,-90,180\nb,s,n,z,90.0,-180\n"
            "c,s,n,z,1e1,-1.500000000000000000000000000000000000000000000000000000E+2\n", 3,
          { "a", "s", "n", "z", 1, -90, 1, 180 },
          { "b", "s", "n", "z", 1, 90, 1, -180 },
          { "c", "s", "n", "z", 1, 10, 1, -150 }),
    LOADS("blank lines, no final newline",
          H "\ncam-1,s,n,z,1,2\n\n\r\n\ncam-2,s,n,z,3,4", 2,
          { "cam-1", "s", "n", "z", 1, 1, 1, 2 },
          { "cam-2", "s", "n", "z", 1, 3, 1, 4 }),
    LOADS("header only", H, 0, { NULL, NULL, NULL, NULL, 0, 0, 0, 0 }),

    FAILS("empty file", "", ": empty file (no header)"),
    FAILS("only blank lines and a BOM", "\xEF\xBB\xBF\n\r\n\n", ": empty file (no header)"),
    FAILS("missing column", "camera_id,site_id,site_name,zone,longitude\n",
          ":1: missing column \"latitude\""),
    FAILS("missing column after blank lines", "\n\ncamera_id,site_id\n",
          ":3: missing column \"site_name\""),
    FAILS("duplicate column", "camera_id,site_id,zone,site_name,zone,latitude,longitude\n",
          ":1: duplicate column \"zone\""),
    FAILS("too many fields", H "cam-1,s,n,z,1,2\ncam-2,s,n,z,1,2,extra\n",
          ":3: expected 6 fields, got 7"),
    FAILS("too few fields after blank lines", H "\n\ncam-1,s,n,z,1\n",
          ":4: expected 6 fields, got 5"),
    FAILS("fields are counted before values", H "cam-1,s,n,z,abc\n",
          ":2: expected 6 fields, got 5"),
    FAILS("empty camera_id", H ",s,n,z,1,2\n", ":2: empty camera_id"),
    FAILS("quoted empty camera_id", H "\"\",s,n,z,1,2\n", ":2: empty camera_id"),
    FAILS("duplicate camera_id", H "cam-1,s,n,z,1,2\ncam-2,s,n,z,1,2\ncam-1,t,n,z,,\n",
          ":4: duplicate camera_id \"cam-1\" (first on line 2)"),
    FAILS("duplicate camera_id with CRLF",
          "camera_id,site_id,site_name,zone,latitude,longitude\r\n"
          "cam-1,s,n,z,1,2\r\ncam-1,s,n,z,1,2\r\n",
          ":3: duplicate camera_id \"cam-1\" (first on line 2)"),
    FAILS("error line after a multi-line record",
          H "cam-1,s,\"multi\nline\nname\",z,1,2\ncam-2,s,n,z,abc,2\n",
          ":5: bad latitude \"abc\""),
    FAILS("error on a multi-line record names its first line",
          H "cam-1,s,n,z,1,2\r\ncam-2,s,\"a\r\nb\",z,1,999\r\n",
          ":3: bad longitude \"999\""),
    FAILS("latitude out of range", H "cam-1,s,n,z,90.5,2\n", ":2: bad latitude \"90.5\""),
    FAILS("longitude out of range", H "cam-1,s,n,z,1,-180.000001\n",
          ":2: bad longitude \"-180.000001\""),
    FAILS("latitude nan", H "cam-1,s,n,z,nan,2\n", ":2: bad latitude \"nan\""),
    FAILS("latitude hex", H "cam-1,s,n,z,0x10,2\n", ":2: bad latitude \"0x10\""),
    FAILS("latitude overflow", H "cam-1,s,n,z,1e999,2\n", ":2: bad latitude \"1e999\""),
    FAILS("latitude trailing junk", H "cam-1,s,n,z,1.2.3,2\n", ":2: bad latitude \"1.2.3\""),
    FAILS("latitude inner blank", H "cam-1,s,n,z,1 2,2\n", ":2: bad latitude \"1 2\""),
    FAILS("long value is cut in the message",
          H "cam-1,s,n,z,1234567890123456789012345678901234567890123456789012345,2\n",
          ":2: bad latitude \"1234567890123456789012345678901234567890...\""),
    FAILS("message cut does not split a character",
          H "cam-1,s,n,z,1,123456789012345678901234567890123456789\xC3\xA9\n",
          ":2: bad longitude \"123456789012345678901234567890123456789...\""),
    FAILS("control bytes in a message", H "cam-1,s,n,z,\"1\n2\",2\n",
          ":2: bad latitude \"1?2\""),
    FAILS("unterminated quoted field", H "cam-1,s,n,z,1,2\ncam-2,s,\"never closed,z,1,2\n\n",
          ":3: unterminated quoted field"),
    FAILS("quote inside unquoted field", H "cam-1,s,ab\"c,z,1,2\n", ":2: " QUOTE_ERR),
    FAILS("text after closing quote", H "cam-1,s,\"ab\" c,z,1,2\n", ":2: " QUOTE_ERR),
    FAILS("invalid UTF-8", H "cam-1,s,\xC3\x28,z,1,2\n", ":2: invalid UTF-8"),
    FAILS("overlong UTF-8", H "cam-1,s,\xC0\xAF,z,1,2\n", ":2: invalid UTF-8"),
    FAILS("overlong 3-byte UTF-8", H "cam-1,s,\xE0\x80\xAF,z,1,2\n", ":2: invalid UTF-8"),
    FAILS("UTF-8 above U+10FFFF", H "cam-1,s,\xF4\x90\x80\x80,z,1,2\n", ":2: invalid UTF-8"),
    FAILS("UTF-8 surrogate", H "cam-1,s,n,\xED\xA0\x80,1,2\n", ":2: invalid UTF-8"),
    FAILS("truncated UTF-8 in an ignored column",
          "camera_id,site_id,site_name,zone,latitude,longitude,x\ncam-1,s,n,z,1,2,\xE2\x82\n",
          ":2: invalid UTF-8"),
    FAILS("NUL byte", H "cam-1,s,a\0b,z,1,2\n", ":2: NUL byte"),
};

static char tmpdir[] = "/tmp/test_refdata.XXXXXX";

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void assert_text(const char *what, const char *got, size_t got_len,
                        const char *want)
{
    if (got_len != strlen(want) || memcmp(got, want, got_len) != 0 || got[got_len] != '\0')
        fail_msg("%s: got \"%.*s\" (%zu bytes), want \"%s\"", what, (int)got_len,
                 got, got_len, want);
}

static void assert_row(const refdata_row_t *row, const struct want_row *w)
{
    assert_non_null(row);
    assert_text("camera_id", row->camera_id, row->camera_id_len, w->id);
    assert_text("site_id", row->site_id, row->site_id_len, w->site_id);
    assert_text("site_name", row->site_name, row->site_name_len, w->site_name);
    assert_text("zone", row->zone, row->zone_len, w->zone);
    assert_int_equal(row->has_latitude, w->has_lat);
    assert_int_equal(row->has_longitude, w->has_lon);
    if (w->has_lat)
        assert_true(row->latitude == w->lat);
    if (w->has_lon)
        assert_true(row->longitude == w->lon);
}

static void run_case(void **state)
{
    const struct load_case *c = *state;
    char path[256], err[512], want[512];
    snprintf(path, sizeof path, "%s/case.csv", tmpdir);
    write_file(path, c->csv, c->len);

    refdata_t *r = (refdata_t *)&r;     /* must be reset to NULL on failure */
    memset(err, 'x', sizeof err);
    int rc = refdata_load(&r, path, err, sizeof err);
    if (c->err) {
        snprintf(want, sizeof want, "%s%s", path, c->err);
        assert_int_equal(rc, -1);
        assert_null(r);
        assert_string_equal(err, want);
    } else {
        if (rc != 0)
            fail_msg("load failed: %s", err);
        assert_non_null(r);
        assert_int_equal(refdata_count(r), c->count);
        assert_true(refdata_hash(r) == XXH3_64bits(c->csv, c->len));
        for (size_t i = 0; i < c->count; i++) {
            assert_row(refdata_row(r, i), &c->rows[i]);
            assert_ptr_equal(refdata_lookup(r, c->rows[i].id, strlen(c->rows[i].id)),
                             refdata_row(r, i));
        }
        refdata_free(r);
    }
    unlink(path);
}

static void test_cannot_open(void **state)
{
    (void)state;
    char path[256], err[512], want[512];
    snprintf(path, sizeof path, "%s/absent.csv", tmpdir);
    refdata_t *r = (refdata_t *)&r;
    assert_int_equal(refdata_load(&r, path, err, sizeof err), -1);
    assert_null(r);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
}

static void test_error_truncated_to_buffer(void **state)
{
    (void)state;
    char path[256], err[8];
    snprintf(path, sizeof path, "%s/absent.csv", tmpdir);
    refdata_t *r;
    assert_int_equal(refdata_load(&r, path, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(refdata_load(&r, path, NULL, 0), -1);
}

static void test_lookup(void **state)
{
    (void)state;
    static const char csv[] = H "cam-1,s,n,z,1,2\ncam-10,s,n,z,,\n\"c,\"\"q\",s,n,z,,\n";
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/lookup.csv", tmpdir);
    write_file(path, csv, sizeof csv - 1);
    refdata_t *r;
    if (refdata_load(&r, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    static const struct { const char *key; size_t len; int row; } lookups[] = {
        { "cam-1", 5, 0 }, { "cam-10", 6, 1 }, { "cam-1x", 5, 0 }, /* len counts */
        { "c,\"q", 4, 2 }, { "cam-", 4, -1 }, { "cam-100", 7, -1 },
        { "CAM-1", 5, -1 }, { "", 0, -1 },
    };
    for (size_t i = 0; i < sizeof lookups / sizeof lookups[0]; i++) {
        const refdata_row_t *got = refdata_lookup(r, lookups[i].key, lookups[i].len);
        const refdata_row_t *want = lookups[i].row < 0 ? NULL : refdata_row(r, (size_t)lookups[i].row);
        if (got != want)
            fail_msg("lookup \"%.*s\": got %p, want %p", (int)lookups[i].len,
                     lookups[i].key, (const void *)got, (const void *)want);
    }
    assert_int_equal(refdata_count(r), 3);
    refdata_free(r);
    unlink(path);
}

static void test_shipped_cameras(void **state)
{
    (void)state;
    const char *dir = getenv("CAMJOIN_TESTDATA");
    assert_non_null(dir);
    char path[1024], err[512], id[16];
    snprintf(path, sizeof path, "%s/../../config/cameras.csv", dir);
    refdata_t *r;
    if (refdata_load(&r, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(refdata_count(r), 400);

    char sites[32][16];
    size_t nsites = 0;
    for (size_t i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "cam-%04zu", i + 1);
        const refdata_row_t *row = refdata_lookup(r, id, strlen(id));
        assert_ptr_equal(row, refdata_row(r, i));
        assert_true(row->has_latitude && row->has_longitude);
        size_t k = 0;
        while (k < nsites && strcmp(sites[k], row->site_id) != 0)
            k++;
        if (k == nsites) {
            assert_true(nsites < 32);
            assert_true(row->site_id_len < sizeof sites[0]);
            strcpy(sites[nsites++], row->site_id);
        }
    }
    assert_int_equal(nsites, 32);

    static const struct want_row known[] = {
        { "cam-0001", "site-01", "Harbor Depot, Pier 7", "entrance", 1, 47.609461, 1, -122.329600 },
        { "cam-0064", "site-06", "The \"Old Mill\" Yard", "lobby", 1, 32.718369, 1, -117.158415 },
        { "cam-0376", "site-31", "Montr\xC3\xA9" "al Vieux-Port Store", "parking", 1, 45.501030, 1, -73.564011 },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        assert_row(refdata_lookup(r, known[i].id, strlen(known[i].id)), &known[i]);
    refdata_free(r);
}

static void test_big_file(void **state)
{
    (void)state;
    enum { N = 200000 };
    char path[256], err[512], id[32];
    snprintf(path, sizeof path, "%s/big.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("site_id,camera_id,zone,site_name,latitude,longitude\r\n", f);
    for (unsigned i = 0; i < N; i++)
        fprintf(f, "site-%u,cam-%07u,z%u,\"Site %u, \"\"main\"\"\",%d,%d\r\n",
                i % 997, i, i % 7, i % 997, (int)(i % 181) - 90, (int)(i % 361) - 180);
    assert_int_equal(fclose(f), 0);

    refdata_t *r;
    if (refdata_load(&r, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(refdata_count(r), N);
    char name[64];
    for (unsigned i = 0; i < N; i++) {
        snprintf(id, sizeof id, "cam-%07u", i);
        const refdata_row_t *row = refdata_lookup(r, id, strlen(id));
        if (row != refdata_row(r, i))
            fail_msg("%s not found at row %u", id, i);
        snprintf(name, sizeof name, "Site %u, \"main\"", i % 997);
        assert_text("site_name", row->site_name, row->site_name_len, name);
        assert_true(row->latitude == (double)((int)(i % 181) - 90));
        assert_true(row->longitude == (double)((int)(i % 361) - 180));
    }
    assert_null(refdata_lookup(r, "cam-0200000", 11));
    refdata_free(r);
    unlink(path);
}

static int make_tmpdir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

int main(void)
{
    enum { NC = sizeof cases / sizeof cases[0], NX = 5 };
    struct CMUnitTest tests[NC + NX];
    for (size_t i = 0; i < NC; i++)
        tests[i] = (struct CMUnitTest){ .name = cases[i].name, .test_func = run_case,
                                        .initial_state = (void *)&cases[i] };
    const struct CMUnitTest extra[NX] = {
        cmocka_unit_test(test_cannot_open),
        cmocka_unit_test(test_error_truncated_to_buffer),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_shipped_cameras),
        cmocka_unit_test(test_big_file),
    };
    memcpy(tests + NC, extra, sizeof extra);
    return _cmocka_run_group_tests("refdata", tests, NC + NX, make_tmpdir, remove_tmpdir);
}
