/* libFuzzer target: one Kafka message value through the event parser and,
 * when it is valid, through the binary COPY encoder (the path every message
 * takes); an invalid one becomes a dead letter. Either way the stream must
 * decode back to exactly the one row added, with the parsed values in it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "camjoin/batch.h"
#include "camjoin/event.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c))                                                             \
            __builtin_trap();                                                 \
    } while (0)

static const unsigned char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks a binary COPY stream of tuples with `nfields` fields each; traps on
 * anything malformed. Returns the number of tuples and, for the first one,
 * where each field starts (NULL for SQL NULL) and its length. */
static size_t walk(const char *data, size_t len, int nfields,
                   const unsigned char **fp, int32_t *fl)
{
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    CHECK(len >= sizeof header && memcmp(p, header, sizeof header) == 0);
    p += sizeof header;
    size_t n = 0;
    while (p < end) {
        CHECK(end - p >= 2 && p[0] == 0 && p[1] == nfields);
        p += 2;
        for (int i = 0; i < nfields; i++) {
            CHECK(end - p >= 4);
            int32_t l = (int32_t)rd32(p);
            p += 4;
            CHECK(l >= -1 && (l < 0 || end - p >= l));
            if (n == 0) {
                fp[i] = l < 0 ? NULL : p;
                fl[i] = l;
            }
            if (l > 0)
                p += l;
        }
        n++;
    }
    return n;
}

static int same(const unsigned char *p, int32_t l, const void *want, size_t n)
{
    return p && l >= 0 && (size_t)l == n && memcmp(p, want, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static batch_t *b;
    char reason[EVENT_REASON_MAX];
    event_t ev;
    const unsigned char *fp[14];
    int32_t fl[14];
    size_t len;
    if (!b)
        b = batch_new("fuzz");
    if (event_parse(&ev, data, size, 1 << 20, reason) == EVENT_OK) {
        refdata_row_t row = {.camera_id = ev.camera_id,
                             .camera_id_len = ev.camera_id_len,
                             .site_id = "s", .site_id_len = 1,
                             .has_latitude = 1, .latitude = 1.5};
        /* the parser lets no NUL through, so the encoder must take it */
        CHECK(batch_add_event(b, &ev, size & 1 ? &row : NULL, 0, (int64_t)size) == 0);
        const char *s = batch_event_data(b, &len);
        CHECK(walk(s, len, 14, fp, fl) == 1 && batch_rows(b) == 1);
        CHECK(same(fp[0], fl[0], ev.event_id, ev.event_id_len));
        CHECK(fl[1] == 8);
        CHECK(same(fp[2], fl[2], ev.camera_id, ev.camera_id_len));
        CHECK(same(fp[3], fl[3], ev.event_type, ev.event_type_len));
        CHECK(fl[4] == (ev.has_confidence ? 4 : -1));
        CHECK(fl[5] == (ev.has_object_count ? 4 : -1));
        if (ev.attributes)
            CHECK(fp[6] && fl[6] >= 1 && fp[6][0] == 1 &&
                  same(fp[6] + 1, fl[6] - 1, ev.attributes, strlen(ev.attributes)));
        else
            CHECK(fl[6] == -1);
        CHECK(fl[7] == (size & 1 ? 1 : -1) && fl[11] == -1);
        event_clear(&ev);
    } else {
        /* every rejection must carry a reason code */
        if (reason[0] == '\0' || memchr(reason, '\0', EVENT_REASON_MAX) == NULL)
            __builtin_trap();
        CHECK(batch_add_dead(b, 0, (int64_t)size, data, size, reason) == 0);
        const char *s = batch_dead_data(b, &len);
        CHECK(walk(s, len, 5, fp, fl) == 1 && batch_dead(b) == 1);
        CHECK(same(fp[0], fl[0], "fuzz", 4));
        CHECK(same(fp[3], fl[3], data, size));
        CHECK(same(fp[4], fl[4], reason, strlen(reason)));
    }
    batch_reset(b);
    return 0;
}
