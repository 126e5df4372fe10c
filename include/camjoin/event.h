/*
 * event — one Kafka message value → one validated camera event.
 *
 * The value must be a single JSON object (Dataset A in docs/ARCHITECTURE.md §3):
 *   event_id     string, 1..128 bytes, required (the dedup key)
 *   camera_id    string, 1..128 bytes, required (the join key)
 *   event_ts     RFC 3339 string with an offset ("Z" or ±hh:mm, optional
 *                fraction up to microseconds), or integer epoch milliseconds;
 *                required
 *   event_type   string, 1..64 bytes, required
 *   confidence   number in [0, 1], optional (JSON null = absent)
 *   object_count integer >= 0 and <= INT32_MAX, optional (null = absent)
 *   anything else: kept, in input order, in `attributes` (a JSON object)
 *
 * Timestamps must fall in [1970-01-01, 9999-12-31]; anything outside is
 * `bad_value:event_ts`. Strings must be valid UTF-8 without NUL (jansson
 * enforces both), because PostgreSQL text and jsonb accept neither.
 *
 * A message that breaks a rule is not an event: event_parse() returns
 * EVENT_INVALID and writes a stable reason code, which becomes the `reason`
 * column of camjoin_dead_letters. Reason codes:
 *   empty                      value absent (tombstone) or zero bytes
 *   too_large                  value longer than max_bytes
 *   invalid_json               not parseable JSON (syntax, trailing garbage)
 *   invalid_utf8               bytes that are not UTF-8
 *   nul_character              \u0000 inside a string
 *   duplicate_key              the same key twice in one object
 *   too_deep                   nesting beyond jansson's limit
 *   number_out_of_range        an integer or real that overflows
 *   not_object                 top level is not an object
 *   missing_field:<name>       a required field is absent or null
 *   bad_type:<name>            a field has the wrong JSON type
 *   bad_value:<name>           right type, value out of the allowed range
 *
 * Ownership: on EVENT_OK the event borrows strings from a jansson tree it
 * holds; the caller must call event_clear() once it has copied what it needs
 * (the batch encodes the row at once). On EVENT_INVALID nothing is held.
 *
 * Cost: one jansson parse and one json_dumps of the attributes object when
 * there is one. jansson's allocations come from a 256 KiB bump arena that
 * rewinds when no parsed event is alive (malloc beyond it, and in sanitizer
 * builds), so event_parse() and event_clear() must be called from one
 * thread — the loop thread in camjoin.
 */
#ifndef CAMJOIN_EVENT_H
#define CAMJOIN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_MAX 128
#define EVENT_CAMERA_MAX 128
#define EVENT_TYPE_MAX 64
#define EVENT_REASON_MAX 64

enum event_status { EVENT_OK = 0, EVENT_INVALID = 1 };

typedef struct event {
    const char *event_id;   size_t event_id_len;
    const char *camera_id;  size_t camera_id_len;
    const char *event_type; size_t event_type_len;
    int64_t event_ts_us;    /* microseconds since the Unix epoch, UTC */
    bool has_confidence;    double confidence;
    bool has_object_count;  int32_t object_count;
    char *attributes;       /* compact JSON object text, or NULL if no extra keys */
    void *root_;            /* private: the json_t tree the strings point into */
} event_t;

/* Parses `len` bytes at `buf` (need not be NUL-terminated; may be NULL when
 * len is 0). `reason` receives the reason code on EVENT_INVALID (at least
 * EVENT_REASON_MAX bytes). */
enum event_status event_parse(event_t *ev, const void *buf, size_t len,
                              size_t max_bytes, char reason[EVENT_REASON_MAX]);

/* Releases what a successful event_parse() holds. Safe on a zeroed event. */
void event_clear(event_t *ev);

/* Timestamps: camjoin/calendar.h (calendar_parse_rfc3339, calendar_format_ts). */

#endif
