/*
 * camjoin — Kafka camera events → dedup → join → PostgreSQL.
 *
 * main() is the only place that may end the process: it turns the config,
 * the reference table and the replay spec into a pipeline, runs the loop,
 * and maps failures to exit codes (2: usage or configuration, 1: runtime).
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "camjoin/config.h"
#include "camjoin/log.h"
#include "camjoin/pipeline.h"
#include "camjoin/redrive.h"
#include "camjoin/refdata.h"
#include "camjoin/source_kafka.h"

static int fail_usage(const char *msg)
{
    log_plain(LOG_ERROR, "camjoin: %s", msg);
    return 2;
}

/* The configuration summary, one line: what a reader of the log needs to know
 * which run this is. Secrets are masked (config_mask_conninfo). */
static void log_started(const camjoin_config *cfg, const refdata_t *ref)
{
    char brokers[512], topic[300], group[300], masked[1024], pg[1100], table[300];
    char reference[1100], http[300], replay[300];
    config_mask_conninfo(cfg->pg_conninfo, masked, sizeof masked);
    log_info("started", "version=%s librdkafka=%s brokers=%s topic=%s group=%s pg=%s "
             "table=%s write_mode=%s reference=%s reference_rows=%zu "
             "reference_hash=%016llx dedup_window_ms=%lld batch_max_rows=%lld "
             "batch_max_wait_ms=%lld batch_max_buffered=%lld max_message_bytes=%lld "
             "http=%s ready_max_pause_ms=%lld log_level=%s log_format=%s replay_from=%s "
             "until_end=%d", CAMJOIN_VERSION, rd_kafka_version_str(),
             log_quote(brokers, sizeof brokers, cfg->brokers),
             log_quote(topic, sizeof topic, cfg->topic),
             log_quote(group, sizeof group, cfg->group), log_quote(pg, sizeof pg, masked),
             log_quote(table, sizeof table, cfg->table),
             cfg->write_mode == WRITE_STAGED ? "staged" : "auto",
             log_quote(reference, sizeof reference, cfg->reference), refdata_count(ref),
             (unsigned long long)refdata_hash(ref), (long long)cfg->dedup_window_ms,
             (long long)cfg->batch_max_rows, (long long)cfg->batch_max_wait_ms,
             (long long)cfg->batch_max_buffered, (long long)cfg->max_message_bytes,
             log_quote(http, sizeof http, cfg->http_listen),
             (long long)cfg->ready_max_pause_ms,
             log_level_name((enum log_level)cfg->log_level),
             log_format_name((enum log_format)cfg->log_format),
             log_quote(replay, sizeof replay, cfg->replay_from ? cfg->replay_from : "-"),
             (int)cfg->until_end);
}

int main(int argc, char **argv)
{
    char err[1024];
    camjoin_config *cfg = NULL;
    refdata_t *ref = NULL;
    replay_spec_t replay, until;
    int code;

    switch (config_parse(argc, argv, stdout, &cfg, err, sizeof err)) {
    case CONFIG_EXIT:
        return 0;
    case CONFIG_ERROR:
        return fail_usage(err);
    case CONFIG_OK:
        break;
    }
    config_scrub_argv(argc, argv); /* cfg holds copies; ps must not show them */
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);
    if (replay_parse(cfg->replay_from, &replay, err, sizeof err) != 0) {
        config_free(cfg);
        return fail_usage(err);
    }
    if (replay_parse_until(cfg->replay_until, &until, err, sizeof err) != 0) {
        replay_spec_clear(&replay);
        config_free(cfg);
        return fail_usage(err);
    }
    int64_t since_ms;
    if (redrive_parse_since(cfg->redrive_since, &since_ms, err, sizeof err) != 0) {
        replay_spec_clear(&replay);
        replay_spec_clear(&until);
        config_free(cfg);
        return fail_usage(err);
    }
    /* for --dry-run: the same specs; they alias the arrays the pipeline takes
     * over, so they are read only before pipeline_free() and never freed */
    const replay_spec_t dry_from = replay, dry_until = until;
    if (refdata_load(&ref, cfg->reference, err, sizeof err) != 0) {
        replay_spec_clear(&replay);
        replay_spec_clear(&until);
        config_free(cfg);
        return fail_usage(err);
    }
    if (cfg->redrive) { /* PostgreSQL only: no loop, no Kafka */
        code = 0;
        if (redrive_run(cfg, ref, since_ms, stdout, err, sizeof err) != 0) {
            log_plain(LOG_ERROR, "camjoin: --redrive-dead-letters: %s", err);
            code = 1;
        }
        refdata_free(ref);
        config_free(cfg);
        return code;
    }
    /* a peer closing an HTTP socket mid-write must not kill the daemon */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pipeline_t *p = pipeline_new(&loop, cfg, ref, &replay, &until, err, sizeof err);
    if (!p) {
        refdata_free(ref);
        replay_spec_clear(&replay);
        replay_spec_clear(&until);
        code = fail_usage(err); /* a bad kafka property is a config error */
        goto out;
    }
    if (cfg->dry_run) { /* where a run would start and stop; nothing written */
        code = 0;
        if (pipeline_dry_run(p, &dry_from, &dry_until, stdout, err, sizeof err) != 0) {
            log_plain(LOG_ERROR, "camjoin: --dry-run: %s", err);
            code = 1;
        }
        pipeline_free(p);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto out;
    }
    if (cfg->check_config || cfg->print_config) { /* all a start checks, short of connecting */
        if (cfg->print_config)
            config_print(cfg, stdout);
        else
            printf("configuration ok; reference table %s: %zu cameras\n",
                   cfg->reference, refdata_count(ref));
        pipeline_free(p);
        uv_run(&loop, UV_RUN_DEFAULT);
        code = 0;
        goto out;
    }
    if (pipeline_start(p, err, sizeof err) != 0) {
        log_plain(LOG_ERROR, "camjoin: %s", err);
        code = 1;
    } else {
        log_started(cfg, ref);
        uv_run(&loop, UV_RUN_DEFAULT);
        code = pipeline_exit_code(p);
    }
    pipeline_free(p);
    uv_run(&loop, UV_RUN_DEFAULT); /* let closing handles finish */
out:
    if (uv_loop_close(&loop) != 0)
        log_warn("loop closed with handles still open", NULL);
    log_flush_repeats(); /* the counts of suppressed repeats still pending */
    config_free(cfg);
    return code;
}
