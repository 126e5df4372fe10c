/* pipeline_dry — --dry-run: where a run with these flags would start and
 * stop on every partition of the topic, without consuming or writing.
 *
 * It asks what positioning asks, in one pass and without joining the group:
 * the stored offsets (camjoin_offsets, read only: no DDL, a missing table
 * means none), the watermarks and the offsets at the --replay-from and
 * --replay-until times (source_kafka_survey), and then decides each start
 * and end with the assignment's own rule (assignment_plan). So the printed
 * start is the one a run started now would take, on partitions it is
 * assigned. A relative time (@-1h) is resolved once, here: the line shows
 * the absolute time, to pass to the real run so that both agree.
 *
 * Output: one logfmt line per partition, then a total; the runbook
 * (README, "Runbook: replay") reads them.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/calendar.h"
#include "camjoin/pg_conn.h"
#include "pipeline_int.h"

/* The stored next offset of each partition (BATCH_OFFSET_NONE when none)
 * into stored[0..nparts). 0, or -1 with err set. */
static int read_stored(const camjoin_config *cfg, const int32_t *parts, size_t nparts,
                       int64_t *stored, char *err, size_t errlen)
{
    char m[512];
    for (size_t i = 0; i < nparts; i++)
        stored[i] = BATCH_OFFSET_NONE;
    PGconn *c = pg_conn_open(cfg->pg_conninfo, "camjoin --dry-run",
                             PG_CONN_FORCE_APP | PG_CONN_QUIET);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pg_conn_first_line(m, sizeof m, c ? PQerrorMessage(c) : "out of memory");
        snprintf(err, errlen, "PostgreSQL unreachable (the stored offsets): %s", m);
        PQfinish(c);
        return -1;
    }
    const char *params[2] = {cfg->group, cfg->topic};
    PGresult *r = PQexecParams(c, "SELECT kafka_partition, next_offset FROM camjoin_offsets "
                               "WHERE consumer_group = $1 AND topic = $2",
                               2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int row = 0; row < PQntuples(r); row++) {
            int32_t part = (int32_t)strtol(PQgetvalue(r, row, 0), NULL, 10);
            for (size_t i = 0; i < nparts; i++)
                if (parts[i] == part)
                    stored[i] = strtoll(PQgetvalue(r, row, 1), NULL, 10);
        }
    } else if (!state || strcmp(state, "42P01") != 0) { /* no table yet: nothing stored */
        pg_conn_first_line(m, sizeof m, PQresultErrorMessage(r));
        snprintf(err, errlen, "PostgreSQL, reading camjoin_offsets: %s", m);
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* The spec as given, except a time: as epoch milliseconds (what a relative
 * @-1h resolved to, for the real run), and UTC in a quoted second field. */
static const char *spec_text(const replay_spec_t *r, const char *given, char *buf, size_t len)
{
    char ts[32];
    if (r->kind == REPLAY_NONE)
        return "-";
    if (r->kind != REPLAY_TIME)
        return given;
    calendar_format_ts(r->time_ms * 1000, ts);
    snprintf(buf, len, "@%lld utc=\"%s\"", (long long)r->time_ms, ts);
    return buf;
}

int pipeline_dry_run(pipeline_t *p, const replay_spec_t *from, const replay_spec_t *until,
                     FILE *out, char *err, size_t errlen)
{
    const camjoin_config *cfg = p->cfg;
    source_resolved_t sv;
    char fb[80], ub[80];
    if (source_kafka_survey(p->src, from->kind == REPLAY_TIME ? from->time_ms : -1,
                            until->kind == REPLAY_TIME ? until->time_ms : -1, &sv, err,
                            errlen) != 0)
        return -1;
    int64_t *stored = malloc((sv.n ? sv.n : 1) * sizeof *stored);
    if (!stored || read_stored(cfg, sv.partitions, sv.n, stored, err, errlen) != 0) {
        if (!stored)
            snprintf(err, errlen, "out of memory");
        free(stored);
        source_kafka_survey_free(&sv);
        return -1;
    }
    int stops = cfg->until_end || until->kind != REPLAY_NONE;
    fprintf(out, "dry-run topic=%s group=%s from=%s until=%s partitions=%zu\n", cfg->topic,
            cfg->group, spec_text(from, cfg->replay_from, fb, sizeof fb),
            spec_text(until, cfg->replay_until, ub, sizeof ub), sv.n);
    int64_t total = 0;
    for (size_t i = 0; i < sv.n; i++) {
        assignment_start_t st = assignment_plan(from, 1, until, p->reset_latest,
                                                sv.partitions[i], stored[i], sv.low[i],
                                                sv.high[i], sv.at_time[i], sv.at_until[i]);
        int64_t end = st.end >= 0 ? st.end : sv.high[i];
        total += end - st.offset;
        fprintf(out, "partition=%d start=%lld end=%lld messages=%lld stored=%lld low=%lld "
                "high=%lld\n", (int)sv.partitions[i], (long long)st.offset, (long long)end,
                (long long)(end - st.offset), (long long)stored[i], (long long)sv.low[i],
                (long long)sv.high[i]);
    }
    fprintf(out, "dry-run total_messages=%lld then=%s (nothing was consumed or written; "
            "messages counts offsets, transaction markers included)\n", (long long)total,
            stops ? "exit" : "live");
    free(stored);
    source_kafka_survey_free(&sv);
    return 0;
}
