/* config_util.h — what test_config.c and test_config_text.c share: the
 * environment reset, config_parse on an argument list, temporary files. */
#ifndef CAMJOIN_TEST_CONFIG_UTIL_H
#define CAMJOIN_TEST_CONFIG_UTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "camjoin/config.h"
#include "camjoin/log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS 40

static const char *const env_vars[] __attribute__((unused)) = {"CAMJOIN_BROKERS", "CAMJOIN_TOPIC", "CAMJOIN_GROUP",
                                       "CAMJOIN_PG", "CAMJOIN_REFERENCE"};

static inline int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(env_vars); i++)
        unsetenv(env_vars[i]);
    return 0;
}

/* Runs config_parse on "camjoin" + args (NULL-terminated); the --help /
 * --version text lands in *info when info is not NULL. */
static inline enum config_status parse(const char *const *args, camjoin_config **out, char *err,
                                size_t errlen, char **info)
{
    char *argv[MAX_ARGS + 2] = {"camjoin"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) {
        assert_true(argc <= MAX_ARGS);
        argv[argc] = strdup(args[argc - 1]);
    }
    size_t info_len;
    char *info_buf = NULL;
    FILE *f = open_memstream(&info_buf, &info_len);
    assert_non_null(f);
    enum config_status st = config_parse(argc, argv, f, out, err, errlen);
    fclose(f);
    for (int i = 1; i < argc; i++)
        free(argv[i]);
    if (info)
        *info = info_buf;
    else
        free(info_buf);
    return st;
}

static inline camjoin_config *parse_ok(const char *const *args)
{
    camjoin_config *cfg = NULL;
    char err[512] = "";
    enum config_status st = parse(args, &cfg, err, sizeof err, NULL);
    if (st != CONFIG_OK)
        fail_msg("unexpected error: %s", err);
    assert_non_null(cfg);
    return cfg;
}

static inline char *write_temp(const char *content)
{
    char *path = strdup("/tmp/camjoin-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}


/* Every field the parser fills (run-only flags excluded). */
static inline void assert_same_config(const camjoin_config *a, const camjoin_config *b)
{
    assert_string_equal(a->brokers, b->brokers);
    assert_string_equal(a->topic, b->topic);
    assert_string_equal(a->group, b->group);
    assert_string_equal(a->pg_conninfo, b->pg_conninfo);
    assert_string_equal(a->table, b->table);
    assert_int_equal(a->pg_retry_max_ms, b->pg_retry_max_ms);
    assert_int_equal(a->write_mode, b->write_mode);
    assert_int_equal(a->partitions_ahead, b->partitions_ahead);
    assert_int_equal(a->retention_days, b->retention_days);
    assert_int_equal(a->retention_interval_ms, b->retention_interval_ms);
    assert_string_equal(a->archive_dir, b->archive_dir);
    assert_string_equal(a->reference, b->reference);
    assert_int_equal(a->reference_watch, b->reference_watch);
    assert_int_equal(a->on_miss, b->on_miss);
    assert_int_equal(a->dedup_window_ms, b->dedup_window_ms);
    assert_int_equal(a->dedup_warm_up, b->dedup_warm_up);
    assert_int_equal(a->max_future_ms, b->max_future_ms);
    assert_int_equal(a->max_age_ms, b->max_age_ms);
    assert_int_equal(a->batch_max_rows, b->batch_max_rows);
    assert_int_equal(a->batch_max_wait_ms, b->batch_max_wait_ms);
    assert_int_equal(a->batch_max_buffered, b->batch_max_buffered);
    assert_int_equal(a->max_message_bytes, b->max_message_bytes);
    assert_string_equal(a->http_listen, b->http_listen);
    assert_int_equal(a->ready_max_pause_ms, b->ready_max_pause_ms);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->log_format, b->log_format);
    assert_int_equal(a->n_kafka_props, b->n_kafka_props);
    for (size_t i = 0; i < a->n_kafka_props; i++) {
        assert_string_equal(a->kafka_props[i].key, b->kafka_props[i].key);
        assert_string_equal(a->kafka_props[i].value, b->kafka_props[i].value);
    }
}

#endif
