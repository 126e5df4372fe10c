/*
 * copy_decode — a binary COPY decoder for the unit tests, written from the
 * PostgreSQL documentation ("COPY ... Binary Format"), independent of the
 * encoders in src/ (batch.c, rollup.c). Include after cmocka.h.
 */
#ifndef CAMJOIN_TEST_COPY_DECODE_H
#define CAMJOIN_TEST_COPY_DECODE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Signature "PGCOPY\n\377\r\n\0", int32 flags 0, int32 extension length 0. */
static const char copy_header[] = "PGCOPY\n\377\r\n\0"
                                  "\0\0\0\0"
                                  "\0\0\0\0";
#define HEADER_LEN (sizeof copy_header - 1) /* 19 */

/* ---- a binary COPY decoder ------------------------------------------------ */

#define MAX_FIELDS 16

struct field {
    int32_t len; /* -1 = NULL */
    const unsigned char *p;
};

struct tuple {
    int n;
    struct field f[MAX_FIELDS];
};

static inline uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

/* Decodes a whole stream into at most `max` tuples of `nfields` fields each
 * and returns how many there were. Fails the test on anything malformed: a
 * wrong header, a short tuple or field, a wrong field count, a length below
 * -1, a trailer or bytes after the last tuple. */
static inline size_t decode(const char *data, size_t len, int nfields,
                     struct tuple *out, size_t max)
{
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    if (len < HEADER_LEN || memcmp(p, copy_header, HEADER_LEN) != 0)
        fail_msg("bad header (stream of %zu bytes)", len);
    p += HEADER_LEN;
    size_t n = 0;
    while (p < end) {
        if (end - p < 2)
            fail_msg("tuple %zu: truncated field count", n);
        int16_t nf = (int16_t)rd16(p);
        p += 2;
        if (nf != nfields)
            fail_msg("tuple %zu: %d fields, want %d", n, nf, nfields);
        if (n == max)
            fail_msg("more than %zu tuples", max);
        struct tuple *t = &out[n];
        t->n = nf;
        for (int i = 0; i < nf; i++) {
            if (end - p < 4)
                fail_msg("tuple %zu field %d: truncated length", n, i);
            int32_t fl = (int32_t)rd32(p);
            p += 4;
            if (fl < -1 || (fl > 0 && end - p < fl))
                fail_msg("tuple %zu field %d: bad length %d", n, i, (int)fl);
            t->f[i].len = fl;
            t->f[i].p = p;
            if (fl > 0)
                p += fl;
        }
        n++;
    }
    return n;
}

/* What a field must hold: len -1 = NULL, else `len` bytes at `bytes`. */
struct want {
    int32_t len;
    const char *bytes;
};
#define W(s) {(int32_t)(sizeof(s) - 1), s}
#define WNULL {-1, NULL}

static inline void check_field(const char *what, int i, struct field got, struct want w)
{
    if (got.len != w.len)
        fail_msg("%s field %d: length %d, want %d", what, i, (int)got.len, (int)w.len);
    if (w.len > 0 && memcmp(got.p, w.bytes, (size_t)w.len) != 0) {
        char hex[3 * 64 + 1] = "";
        for (int j = 0; j < got.len && j < 64; j++)
            snprintf(hex + 3 * j, 4, "%02x ", got.p[j]);
        fail_msg("%s field %d: got %s", what, i, hex);
    }
}

static inline void check_tuple(const char *what, const struct tuple *t,
                        const struct want *want, int n)
{
    assert_int_equal(t->n, n);
    for (int i = 0; i < n; i++)
        check_field(what, i, t->f[i], want[i]);
}

#endif
