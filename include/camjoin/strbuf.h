/*
 * strbuf — the one growable byte buffer: NUL-terminated text built with
 * printf-style appends (SQL, HTTP bodies), or raw bytes written in place
 * after strbuf_reserve() (batch's binary COPY streams).
 *
 * The NUL: strbuf_addf() leaves data[len] == '\0' unless oom is set, and
 * strbuf_reset() writes it when data is allocated. strbuf_reserve() writes
 * nothing: a caller that writes at data + len itself and advances len gets
 * no NUL unless it writes one, and len, not strlen(), is the length.
 *
 * Growth: the capacity starts at 256 bytes and doubles until the request
 * fits. Allocation failure is sticky: the buffer sets `oom` and ignores
 * further appends (strbuf_reserve() fails), so a caller builds a whole
 * text and checks once at the end. strbuf_reset() keeps the memory and
 * clears oom.
 */
#ifndef CAMJOIN_STRBUF_H
#define CAMJOIN_STRBUF_H

#include <stddef.h>

#include "camjoin/base.h"

typedef struct strbuf {
    char *data;
    size_t len, cap;
    int oom;
} strbuf_t;

void strbuf_addf(strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* strbuf_reserve's slow path: grows b until cap - len >= extra. */
CJ_MUSTCHECK int strbuf_grow(strbuf_t *b, size_t extra);
/* Room for `extra` more bytes at data + len (cap - len >= extra; no room
 * for a NUL is implied). Returns 0, or -1 with oom set (also when oom was
 * set already). Inline: the check alone is on batch's per-row path. */
CJ_MUSTCHECK static inline int strbuf_reserve(strbuf_t *b, size_t extra)
{
    if (!b->oom && b->cap - b->len >= extra)
        return 0;
    return strbuf_grow(b, extra);
}
void strbuf_reset(strbuf_t *b);
/* Hands the text to the caller (malloc'd, may be NULL) and empties b. */
char *strbuf_take(strbuf_t *b);
void strbuf_free(strbuf_t *b);

#endif
