/* config/schema.sql must be exactly what the daemon creates at startup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "camjoin/sink_pg.h"

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
    assert_null(strstr(ddl, "camera_events"));
    free(ddl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_file_matches_daemon),
        cmocka_unit_test(schema_quotes_the_table_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
