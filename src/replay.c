/* replay — see include/camjoin/replay.h.
 *
 * Numbers are parsed strictly (the whole token, no sign, no overflow), so
 * a typo is refused rather than read as 0. @TIME is epoch milliseconds when
 * it is all digits, RFC 3339 otherwise (calendar_parse_rfc3339, the same rules
 * as event_ts); @-DURATION uses the configuration's duration syntax.
 */
#include "camjoin/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/calendar.h"
#include "camjoin/config.h"

static int parse_i64(const char *s, const char *end, int64_t *out)
{
    int64_t v = 0;
    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_partitions(const char *spec, replay_spec_t *r)
{
    size_t n = 1;
    for (const char *c = spec; *c; c++)
        n += *c == ',';
    r->partitions = malloc(n * sizeof *r->partitions);
    r->offsets = malloc(n * sizeof *r->offsets);
    if (!r->partitions || !r->offsets)
        return -1;
    const char *p = spec;
    for (r->n = 0; r->n < n; r->n++) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(end - p));
        int64_t part, off;
        if (!colon || parse_i64(p, colon, &part) || part > INT32_MAX ||
            parse_i64(colon + 1, end, &off))
            return -1;
        for (size_t i = 0; i < r->n; i++)
            if (r->partitions[i] == (int32_t)part)
                return -1;
        r->partitions[r->n] = (int32_t)part;
        r->offsets[r->n] = off;
        p = end + 1;
    }
    return 0;
}

/* Any spec: 0, or -1 (r cleared) when it is not one. */
static int parse_any(const char *spec, replay_spec_t *r)
{
    memset(r, 0, sizeof *r);
    if (!spec || !*spec)
        return 0;
    size_t len = strlen(spec);
    int64_t us;
    if (strcmp(spec, "earliest") == 0) {
        r->kind = REPLAY_EARLIEST;
    } else if (strcmp(spec, "latest") == 0) {
        r->kind = REPLAY_LATEST;
    } else if (spec[0] == '@' && spec[1] == '-') {
        /* @-DURATION: that long before now (the start of this run) */
        int64_t ago;
        r->kind = REPLAY_TIME;
        if (config_parse_duration(spec + 2, &ago) != 0 || ago <= 0)
            goto bad;
        r->time_ms = clock_wall_ms() - ago;
        if (r->time_ms < 0)
            r->time_ms = 0;
    } else if (spec[0] == '@') {
        r->kind = REPLAY_TIME;
        if (parse_i64(spec + 1, spec + len, &r->time_ms) != 0) {
            if (calendar_parse_rfc3339(spec + 1, len - 1, &us) != 0 || us < 0)
                goto bad;
            r->time_ms = us / 1000;
        }
    } else if (strchr(spec, ':')) {
        r->kind = REPLAY_PARTITIONS;
        if (parse_partitions(spec, r) != 0)
            goto bad;
    } else {
        r->kind = REPLAY_OFFSET;
        if (parse_i64(spec, spec + len, &r->offset) != 0)
            goto bad;
    }
    return 0;
bad:
    replay_spec_clear(r);
    return -1;
}

int replay_parse(const char *spec, replay_spec_t *r, char *err, size_t errlen)
{
    if (parse_any(spec, r) == 0)
        return 0;
    snprintf(err, errlen,
             "--replay-from: bad spec \"%s\" (use earliest, latest, OFFSET, "
             "P:OFFSET[,P:OFFSET...], @RFC3339, @EPOCH_MS or @-DURATION)", spec);
    return -1;
}

int replay_parse_until(const char *spec, replay_spec_t *r, char *err, size_t errlen)
{
    if (parse_any(spec, r) == 0 && r->kind != REPLAY_EARLIEST && r->kind != REPLAY_LATEST)
        return 0;
    replay_spec_clear(r);
    snprintf(err, errlen,
             "--replay-until: bad spec \"%s\" (use OFFSET, P:OFFSET[,P:OFFSET...], "
             "@RFC3339, @EPOCH_MS or @-DURATION)", spec);
    return -1;
}

void replay_spec_clear(replay_spec_t *r)
{
    free(r->partitions);
    free(r->offsets);
    memset(r, 0, sizeof *r);
}
