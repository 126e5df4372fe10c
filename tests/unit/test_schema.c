/* config/schema.sql must be exactly what the daemon creates at startup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/sink_sql.h"
#include "camjoin/batch.h"
#include "camjoin/rollup.h"
#include "camjoin/sink_pg.h"
#include "camjoin/strbuf.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void schema_file_matches_daemon(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/../../config/schema.sql",
             getenv("CAMJOIN_TESTDATA"));
    char *file = slurp(path);
    char *ddl = sink_pg_schema_sql("\"camera_events\"",
                                   "\"camera_events_ingested_at_idx\"");
    const char *body = strstr(file, "CREATE TABLE"); /* after the comment */
    assert_non_null(body);
    assert_string_equal(body, ddl);
    free(ddl);
    free(file);
}

static void schema_quotes_the_table_name(void **state)
{
    (void)state;
    char *ddl = sink_pg_schema_sql("\"my events\"", "\"my events_ingested_at_idx\"");
    assert_non_null(strstr(ddl, "CREATE TABLE IF NOT EXISTS \"my events\" ("));
    assert_non_null(strstr(ddl, "CREATE INDEX IF NOT EXISTS "
                                "\"my events_ingested_at_idx\" ON \"my events\" "
                                "(ingested_at);"));
    /* every name derived from the table's, quoted the same way */
    static const char *const want[] = {
        "SELECT camjoin_ensure_default_partition('\"my events\"');\n",
        "CREATE TABLE IF NOT EXISTS \"my events_minute\" (\n",
        "CONSTRAINT \"my events_minute_key\" UNIQUE NULLS NOT DISTINCT\n",
        "DROP TRIGGER IF EXISTS camjoin_rollup_insert ON \"my events\";\n",
        "AFTER DELETE ON \"my events\"\n",
        "AFTER UPDATE ON \"my events\"\n",
        "INSERT INTO \"my events_minute\" (minute,",
        "FROM \"my events\" WHERE NOT EXISTS (SELECT FROM \"my events_minute\")\n",
        "CREATE OR REPLACE VIEW \"my events_site_minute\" AS\n",
        "CREATE OR REPLACE VIEW \"my events_top_cameras_1h\" AS\n",
        "CREATE OR REPLACE VIEW \"my events_join_misses_minute\" AS\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_non_null(strstr(ddl, want[i]));
    assert_null(strstr(ddl, "camera_events"));
    free(ddl);
}

/* A quote, an apostrophe and a backslash in the name: the identifier keeps
 * its doubled quote, and the literal that names it doubles the apostrophe
 * and the backslash in an E'' string (as PQescapeLiteral would). */
static void schema_escapes_odd_names(void **state)
{
    (void)state;
    const char *t = "\"a\"\"b'c\\d\"", *i = "\"a\"\"b'c\\d_ingested_at_idx\"";
    char *ddl = sink_pg_schema_sql(t, i);
    assert_non_null(ddl);
    assert_non_null(strstr(ddl, "CREATE TABLE IF NOT EXISTS \"a\"\"b'c\\d_minute\" (\n"));
    assert_non_null(strstr(ddl, "SELECT camjoin_ensure_default_partition("
                                " E'\"a\"\"b''c\\\\d\"');\n"));
    free(ddl);
    strbuf_t q = {0};
    sink_sql_schema_present(&q, t, i);
    assert_false(q.oom);
    assert_non_null(strstr(q.data, "to_regclass( E'\"a\"\"b''c\\\\d_join_misses_minute\"')"));
    assert_non_null(strstr(q.data, "to_regclass( E'\"a\"\"b''c\\\\d_ingested_at_idx\"')"));
    strbuf_free(&q);
}

/* Names must come quoted: a bare one builds nothing. */
static void schema_refuses_unquoted_names(void **state)
{
    (void)state;
    assert_null(sink_pg_schema_sql("camera_events", "\"camera_events_ingested_at_idx\""));
    strbuf_t q = {0};
    sink_sql_schema_present(&q, "camera_events", "\"camera_events_ingested_at_idx\"");
    assert_true(q.oom);
    strbuf_free(&q);
}

/* The name after "CREATE [...] <kind> [IF NOT EXISTS]" on a DDL line, or
 * NULL for any other line. */
static char *created_name(const char *line)
{
    static const char *const heads[] = {
        "CREATE TABLE IF NOT EXISTS ", "CREATE UNIQUE INDEX IF NOT EXISTS ",
        "CREATE INDEX IF NOT EXISTS ", "CREATE OR REPLACE FUNCTION ",
        "CREATE OR REPLACE TRIGGER ", "CREATE OR REPLACE VIEW ",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t n = strlen(heads[i]);
        if (strncmp(line, heads[i], n) != 0)
            continue;
        const char *name = line + n, *end = name + strcspn(name, " (\n");
        char *out = malloc((size_t)(end - name) + 1);
        assert_non_null(out);
        memcpy(out, name, (size_t)(end - name));
        out[end - name] = '\0';
        return out;
    }
    return NULL;
}

/* The startup check names every object the DDL creates (else a role
 * without DDL rights could not start, or a missing object would go
 * unnoticed), and the default partition, which a function creates. */
static void schema_present_names_every_object(void **state)
{
    (void)state;
    char *ddl = sink_pg_schema_sql("\"camera_events\"", "\"camera_events_ingested_at_idx\"");
    strbuf_t q = {0};
    sink_sql_schema_present(&q, "\"camera_events\"", "\"camera_events_ingested_at_idx\"");
    assert_false(q.oom);
    int objects = 0;
    for (const char *line = ddl; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char *name = created_name(line);
        if (!name)
            continue;
        objects++;
        if (!strstr(q.data, name))
            fail_msg("the presence check does not name %s", name);
        free(name);
    }
    /* 5 tables, 2 indexes, 6 functions, 2 triggers, 4 views */
    assert_int_equal(objects, 19);
    assert_non_null(strstr(q.data, "partdefid = 0"));
    strbuf_free(&q);
    free(ddl);
}

/* The warm-up's COPY lines: hex(event_id) TAB partition TAB offset. */
static void warm_line_parses_and_refuses(void **state)
{
    (void)state;
    struct { const char *line; int rc; const char *id; int32_t part; int64_t off; } cases[] = {
        {"6576\t3\t42\n", 0, "ev", 3, 42},              /* "ev" */
        {"c3a9\t0\t9007199254740993", 0, "\xc3\xa9", 0, 9007199254740993LL},
        {"6576\t3\t42x", -1, NULL, 0, 0},               /* junk after the offset */
        {"657\t3\t42", -1, NULL, 0, 0},                 /* odd hex */
        {"\t3\t42", -1, NULL, 0, 0},                    /* empty id */
        {"6576\t-1\t42", -1, NULL, 0, 0},               /* negative partition */
        {"6576\t3", -1, NULL, 0, 0},                     /* no offset */
        {"6576 3 42", -1, NULL, 0, 0},                    /* no tabs */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[8];
        size_t n = 99;
        int32_t part = -7;
        int64_t off = -7;
        int rc = sink_sql_warm_line(cases[i].line, strlen(cases[i].line), id, sizeof id,
                                    &n, &part, &off);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(n, strlen(cases[i].id));
            assert_memory_equal(id, cases[i].id, n);
            assert_int_equal(part, cases[i].part);
            assert_int_equal(off, cases[i].off);
        }
    }
    /* an id longer than the buffer is refused */
    char small[1];
    size_t n;
    int32_t part;
    int64_t off;
    assert_int_equal(sink_sql_warm_line("6576\t1\t2", 9, small, sizeof small, &n, &part, &off), -1);
}

/* A batch of one row (partition 3, offset 10) and one dead letter (11). */
static batch_t *one_row_one_dead(void)
{
    batch_t *b = batch_new("t");
    assert_non_null(b);
    event_t ev = {.event_id = "e1", .event_id_len = 2, .camera_id = "c", .camera_id_len = 1,
                  .event_type = "x", .event_type_len = 1, .event_ts_us = 0};
    assert_int_equal(batch_add_event(b, &ev, NULL, 3, 10), 0);
    assert_int_equal(batch_add_dead(b, 3, 11, "{", 1, "malformed_json"), 0);
    return b;
}

/* A batch's write, direct path: the rows, the dead letters, then the rollup
 * (its stage COPY and upsert), then the fenced offsets. The upsert locks
 * rollup rows that other consumers' batches need too, so it must follow
 * every COPY that waits for this client's data (see sink_sql_write()). */
static void write_direct_locks_rollup_after_every_copy(void **state)
{
    (void)state;
    batch_t *b = one_row_one_dead();
    int64_t expected[1] = {10};
    strbuf_t q = {0};
    sink_write_plan plan;
    sink_sql_write(&q, b, expected, "\"ev\"", "'g'", "'t'", 0, 0, &plan);
    assert_false(q.oom);
    assert_string_equal(q.data,
        "BEGIN;"
        "COPY \"ev\" (" BATCH_EVENT_COLUMNS ") FROM STDIN (FORMAT binary);"
        "COPY camjoin_dead_letters (" BATCH_DEAD_COLUMNS ") FROM STDIN (FORMAT binary);"
        "COPY camjoin_stage_minute (" ROLLUP_COLUMNS ") FROM STDIN (FORMAT binary);"
        "INSERT INTO \"ev_minute\" AS r (" ROLLUP_COLUMNS ") SELECT " ROLLUP_COLUMNS
        " FROM camjoin_stage_minute ORDER BY minute, site_id, zone, camera_id, event_type"
        SQL_ROLLUP_UPSERT ";"
        "UPDATE camjoin_offsets o SET next_offset = v.n, updated_at = now() FROM "
        "(VALUES (3, 10::bigint, 12::bigint)) v(p, e, n) WHERE o.consumer_group = 'g' "
        "AND o.topic = 't' AND o.kafka_partition = v.p AND o.next_offset = v.e;");
    /* the payloads in the COPYs' order, and each statement's result index */
    size_t len;
    assert_int_equal(plan.ncopy, 3);
    assert_ptr_equal(plan.copy[0], batch_event_data(b, &len));
    assert_int_equal(plan.copy_len[0], len);
    assert_ptr_equal(plan.copy[1], batch_dead_data(b, &len));
    assert_int_equal(plan.copy_len[1], len);
    assert_ptr_equal(plan.copy[2], batch_rollup_data(b, &len));
    assert_int_equal(plan.copy_len[2], len);
    assert_int_equal(plan.idx_insert, 1);
    assert_int_equal(plan.idx_dead, 2);
    assert_int_equal(plan.idx_upd, 5);
    assert_int_equal(plan.n_upd, 1);
    assert_int_equal(plan.idx_ins, -1);
    assert_int_equal(plan.n_ins, 0);
    strbuf_free(&q);
    batch_free(b);
}

static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* Behind a transaction-pooling PgBouncer, each write carries what the
 * session setup would have given it, for the transaction only: the timeout
 * as SET LOCAL and the staging tables it uses, created ON COMMIT DROP. The
 * result indexes move by as many statements. */
static void write_txn_pool_sets_up_each_transaction(void **state)
{
    (void)state;
    batch_t *b = one_row_one_dead();
    int64_t expected[1] = {10};
    strbuf_t q = {0};
    sink_write_plan plan;
    const char *set = "BEGIN;SET LOCAL idle_in_transaction_session_timeout = '10s';";

    /* direct: 0 BEGIN, 1 SET LOCAL, 2 CREATE minute stage, 3 COPY rows,
     * 4 COPY dead letters, 5 COPY groups, 6 upsert, 7 fenced UPDATE */
    sink_sql_write(&q, b, expected, "\"ev\"", "'g'", "'t'", 0, 1, &plan);
    assert_false(q.oom);
    assert_memory_equal(q.data, set, strlen(set));
    assert_non_null(strstr(q.data, "CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_minute ("));
    assert_int_equal(count_of(q.data, "CREATE TEMP TABLE"), 1);
    assert_int_equal(count_of(q.data, " ON COMMIT DROP;"), 1);
    assert_int_equal(plan.idx_insert, 3);
    assert_int_equal(plan.idx_dead, 4);
    assert_int_equal(plan.idx_upd, 7);
    assert_int_equal(count_of(q.data, ";"), 8); /* one per result */

    /* staged: 0 BEGIN, 1 SET LOCAL, 2-3 CREATE both stages, 4-5 COPYs,
     * 6 INSERT of rows (counted), 7 INSERT of dead letters, 8 UPDATE */
    sink_sql_write(&q, b, expected, "\"ev\"", "'g'", "'t'", 1, 1, &plan);
    assert_false(q.oom);
    assert_memory_equal(q.data, set, strlen(set));
    assert_non_null(strstr(q.data, "CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_events ("));
    assert_non_null(strstr(q.data, "CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_dead ("));
    assert_int_equal(count_of(q.data, " ON COMMIT DROP;"), 2);
    assert_int_equal(plan.idx_insert, 6);
    assert_true(plan.insert_counted);
    assert_int_equal(plan.idx_dead, 7);
    assert_int_equal(plan.idx_upd, 8);
    assert_int_equal(count_of(q.data, ";"), 9);

    /* and the session setup for such a pool sets nothing up */
    assert_null(strstr(sink_sql_setup_txn_pool, "SET"));
    assert_null(strstr(sink_sql_setup_txn_pool, "CREATE"));
    strbuf_free(&q);
    batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_file_matches_daemon),
        cmocka_unit_test(schema_quotes_the_table_name),
        cmocka_unit_test(schema_escapes_odd_names),
        cmocka_unit_test(schema_refuses_unquoted_names),
        cmocka_unit_test(schema_present_names_every_object),
        cmocka_unit_test(warm_line_parses_and_refuses),
        cmocka_unit_test(write_direct_locks_rollup_after_every_copy),
        cmocka_unit_test(write_txn_pool_sets_up_each_transaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
