/* route — see include/camjoin/route.h.
 *
 * Why the order is what it is: a message that does not parse has no id to
 * deduplicate on, so validation comes first; the timestamp policy comes
 * before dedup so that a rejected event does not occupy the window (a later,
 * valid retry of it must be written); the join comes last because a
 * duplicate of an unknown camera is still a duplicate, counted once as a
 * join miss when it first arrived.
 */
#include "camjoin/route.h"

#include <stdio.h>
#include <string.h>

static const char *ts_policy(const route_rules *r, int64_t ts_us, int64_t now_ms)
{
    int64_t ts_ms = ts_us / 1000;
    if (r->max_future_ms && ts_ms > now_ms + r->max_future_ms)
        return "event_ts_in_future";
    if (r->max_age_ms && ts_ms < now_ms - r->max_age_ms)
        return "event_ts_too_old";
    return NULL;
}

static void dead(route_result *out, const char *reason)
{
    event_clear(&out->ev);
    memset(&out->ev, 0, sizeof out->ev);
    out->kind = ROUTE_DEAD;
    snprintf(out->reason, sizeof out->reason, "%s", reason);
}

void route_message(const route_rules *rules, dedup_t *dedup, const refdata_t *ref,
                   const void *value, size_t len, int32_t partition,
                   int64_t offset, int64_t now_wall_ms, int64_t now_ms,
                   route_result *out)
{
    memset(out, 0, sizeof *out);
    if (event_parse(&out->ev, value, len, rules->max_message_bytes,
                    out->reason) != EVENT_OK) {
        memset(&out->ev, 0, sizeof out->ev);
        out->kind = ROUTE_DEAD;
        return;
    }
    const char *policy = ts_policy(rules, out->ev.event_ts_us, now_wall_ms);
    if (policy) {
        dead(out, policy);
        return;
    }
    int d = dedup ? dedup_check(dedup, out->ev.event_id, out->ev.event_id_len, partition,
                                offset, now_ms)
                  : DEDUP_NEW;
    if (d == DEDUP_DUPLICATE) {
        route_clear(out);
        out->kind = ROUTE_DUPLICATE;
        return;
    }
    out->dedup_full = d < 0;
    out->row = refdata_lookup(ref, out->ev.camera_id, out->ev.camera_id_len);
    if (!out->row) {
        out->join_miss = 1;
        if (rules->on_miss == JOIN_DROP) {
            route_clear(out);
            out->kind = ROUTE_DROPPED;
            return;
        }
        if (rules->on_miss == JOIN_DEAD_LETTER) {
            dead(out, "unknown_camera");
            return;
        }
    }
    out->kind = ROUTE_ROW;
}

void route_clear(route_result *r)
{
    event_clear(&r->ev);
    memset(&r->ev, 0, sizeof r->ev);
}
