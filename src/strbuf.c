/* strbuf — see include/camjoin/strbuf.h. */
#include "camjoin/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STRBUF_INITIAL 256

int strbuf_grow(strbuf_t *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : STRBUF_INITIAL;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d)
        goto fail;
    b->data = d;
    b->cap = cap;
    return 0;
fail:
    b->oom = 1;
    return -1;
}

void strbuf_addf(strbuf_t *b, const char *fmt, ...)
{
    while (!b->oom) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        if (strbuf_grow(b, (size_t)n + 1) != 0) /* the text and its NUL */
            return; /* oom is set */
    }
}

void strbuf_reset(strbuf_t *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *strbuf_take(strbuf_t *b)
{
    char *d = b->oom ? NULL : b->data;
    if (b->oom)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
    return d;
}

void strbuf_free(strbuf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
