/*
 * strbuf — a growable, NUL-terminated text buffer for building SQL and HTTP
 * bodies with printf-style appends.
 *
 * Allocation failure is sticky: the buffer sets `oom` and ignores further
 * appends, so a caller builds a whole text and checks once at the end.
 * strbuf_reset() keeps the memory for the next text.
 */
#ifndef CAMJOIN_STRBUF_H
#define CAMJOIN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;   /* NUL-terminated once anything was appended */
    size_t len, cap;
    int oom;
} strbuf_t;

void strbuf_addf(strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void strbuf_reset(strbuf_t *b);
/* Hands the text to the caller (malloc'd, may be NULL) and empties b. */
char *strbuf_take(strbuf_t *b);
void strbuf_free(strbuf_t *b);

#endif
