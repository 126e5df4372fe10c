/*
 * event — JSON message value → validated event (see include/camjoin/event.h).
 *
 * The jansson tree is kept in ev->root_ and the event's strings point into
 * it; event_clear() releases it. Timestamps are parsed by the calendar
 * module (RFC 3339 on glibc's timegm, whatever TZ says).
 */
#include "camjoin/event.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/calendar.h"


/* ---- jansson's memory: a bump arena -----------------------------------
 * jansson allocates every node, key and string of a parse separately: about
 * twenty malloc/free pairs an event, a tenth of camjoin's CPU at 10k
 * events/s. Parsed events are short-lived and used on one thread, so jansson
 * gets a bump allocator instead: blocks are carved from a static arena,
 * freeing one is a no-op, and the arena rewinds whenever no parsed event is
 * alive (event_parse checks at its start). A block that does not fit (a
 * large message) comes from malloc and is freed normally. jansson is used
 * by this file only, so nothing else sees the allocator. */
#define ARENA_BYTES (256 * 1024)
static _Alignas(16) unsigned char arena[ARENA_BYTES];
static size_t arena_used;
static size_t events_alive; /* parsed events not yet cleared */

static void *arena_alloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need >= n && need <= ARENA_BYTES - arena_used) {
        void *p = arena + arena_used;
        arena_used += need;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    unsigned char *c = p;
    if (c >= arena && c < arena + ARENA_BYTES)
        return;
    free(p);
}

static const char *const known_keys[] = {
    "event_id", "camera_id", "event_ts", "event_type", "confidence", "object_count",
};

/* ---- validation -------------------------------------------------------- */

static enum event_status invalid(char reason[EVENT_REASON_MAX], const char *code,
                                 const char *field)
{
    if (field)
        snprintf(reason, EVENT_REASON_MAX, "%s:%s", code, field);
    else
        snprintf(reason, EVENT_REASON_MAX, "%s", code);
    return EVENT_INVALID;
}

static const char *parse_error_reason(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_invalid_utf8:      return "invalid_utf8";
    case json_error_null_character:
    case json_error_null_byte_in_key:  return "nul_character";
    case json_error_duplicate_key:     return "duplicate_key";
    case json_error_stack_overflow:    return "too_deep";
    case json_error_numeric_overflow:  return "number_out_of_range";
    case json_error_out_of_memory:     return "out_of_memory";
    default:                           return "invalid_json";
    }
}

/* A required string of 1..max bytes. */
static enum event_status get_string(json_t *root, const char *name, size_t max,
                                    const char **s, size_t *n,
                                    char reason[EVENT_REASON_MAX])
{
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return invalid(reason, "missing_field", name);
    if (!json_is_string(v))
        return invalid(reason, "bad_type", name);
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (*n == 0 || *n > max)
        return invalid(reason, "bad_value", name);
    return EVENT_OK;
}

static enum event_status get_ts(json_t *root, int64_t *us, char reason[EVENT_REASON_MAX])
{
    static const char name[] = "event_ts";
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return invalid(reason, "missing_field", name);
    if (json_is_string(v)) {
        if (calendar_parse_rfc3339(json_string_value(v), json_string_length(v), us) < 0)
            return invalid(reason, "bad_value", name);
        return EVENT_OK;
    }
    if (!json_is_integer(v))
        return invalid(reason, "bad_type", name);
    json_int_t ms = json_integer_value(v);
    if (ms < 0 || ms > CALENDAR_TS_MAX_US / 1000)
        return invalid(reason, "bad_value", name);
    *us = (int64_t)ms * 1000;
    return EVENT_OK;
}

static enum event_status get_optional(json_t *root, event_t *ev,
                                      char reason[EVENT_REASON_MAX])
{
    json_t *v = json_object_get(root, "confidence");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v))
            return invalid(reason, "bad_type", "confidence");
        ev->confidence = json_number_value(v);
        if (!(ev->confidence >= 0.0 && ev->confidence <= 1.0))
            return invalid(reason, "bad_value", "confidence");
        ev->has_confidence = true;
    }
    v = json_object_get(root, "object_count");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v))
            return invalid(reason, "bad_type", "object_count");
        json_int_t c = json_integer_value(v);
        if (c < 0 || c > INT32_MAX)
            return invalid(reason, "bad_value", "object_count");
        ev->object_count = (int32_t)c;
        ev->has_object_count = true;
    }
    return EVENT_OK;
}

static bool is_known_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(known_keys); i++)
        if (strcmp(key, known_keys[i]) == 0)
            return true;
    return false;
}

/* Fewest significant digits (1..17) with which %g reproduces d exactly. */
static int real_digits(double d)
{
    char tmp[32];
    for (int p = 1; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            return p;
    }
    return 17;
}

/* The precision every real under v needs to be dumped without artefacts
 * such as 0.1 → 0.10000000000000001 (jansson's default is 17 digits). */
static int max_real_digits(json_t *v)
{
    int best = 1;
    size_t i;
    const char *key;
    json_t *child;

    if (json_is_real(v))
        return real_digits(json_real_value(v));
    if (json_is_array(v)) {
        json_array_foreach(v, i, child) {
            int p = max_real_digits(child);
            best = p > best ? p : best;
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, child) {
            int p = max_real_digits(child);
            best = p > best ? p : best;
        }
    }
    return best;
}

/* ev->attributes = compact JSON of the unknown keys in input order, or NULL. */
static enum event_status dump_attributes(json_t *root, event_t *ev,
                                         char reason[EVENT_REASON_MAX])
{
    const char *key;
    json_t *v, *attrs = NULL;

    json_object_foreach(root, key, v) {
        if (is_known_key(key))
            continue;
        if (!attrs && !(attrs = json_object()))
            return invalid(reason, "out_of_memory", NULL);
        if (json_object_set_nocheck(attrs, key, v) < 0)
            goto fail_attrs;
    }
    if (!attrs)
        return EVENT_OK;
    size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER |
                   JSON_REAL_PRECISION(max_real_digits(attrs));
    ev->attributes = json_dumps(attrs, flags);
    if (!ev->attributes)
        goto fail_attrs;
    json_decref(attrs);
    return EVENT_OK;

fail_attrs:
    json_decref(attrs);
    return invalid(reason, "out_of_memory", NULL);
}

enum event_status event_parse(event_t *ev, const void *buf, size_t len,
                              size_t max_bytes, char reason[EVENT_REASON_MAX])
{
    json_error_t err;
    json_t *root;

    static bool arena_installed;
#if defined(__SANITIZE_ADDRESS__)
    arena_installed = true; /* sanitizer builds keep malloc, so ASan sees jansson's use */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    arena_installed = true;
#endif
#endif
    if (!arena_installed) {
        json_set_alloc_funcs(arena_alloc, arena_free);
        arena_installed = true;
    }
    if (events_alive == 0)
        arena_used = 0;

    memset(ev, 0, sizeof *ev);
    reason[0] = '\0';
    if (!buf || len == 0)
        return invalid(reason, "empty", NULL);
    if (len > max_bytes)
        return invalid(reason, "too_large", NULL);

    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root)
        return invalid(reason, parse_error_reason(&err), NULL);
    if (!json_is_object(root)) {
        invalid(reason, "not_object", NULL);
        goto fail_root;
    }
    if (get_string(root, "event_id", EVENT_ID_MAX, &ev->event_id, &ev->event_id_len,
                   reason) != EVENT_OK ||
        get_string(root, "camera_id", EVENT_CAMERA_MAX, &ev->camera_id,
                   &ev->camera_id_len, reason) != EVENT_OK ||
        get_ts(root, &ev->event_ts_us, reason) != EVENT_OK ||
        get_string(root, "event_type", EVENT_TYPE_MAX, &ev->event_type,
                   &ev->event_type_len, reason) != EVENT_OK ||
        get_optional(root, ev, reason) != EVENT_OK ||
        dump_attributes(root, ev, reason) != EVENT_OK)
        goto fail_root;

    ev->root_ = root; /* owned by ev until event_clear() */
    events_alive++;
    return EVENT_OK;

fail_root:
    json_decref(root);
    memset(ev, 0, sizeof *ev);
    return EVENT_INVALID;
}

void event_clear(event_t *ev)
{
    if (ev->root_)
        events_alive--;
    json_decref(ev->root_);
    arena_free(ev->attributes); /* json_dumps allocated it */
    memset(ev, 0, sizeof *ev);
}
