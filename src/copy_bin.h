/*
 * copy_bin — writers of PostgreSQL's binary COPY format, shared by the two
 * modules that encode rows: batch (events, dead letters) and rollup (the
 * per-minute aggregates). Private to src/.
 *
 * Each writer stores one field at w (its int32 length word, then the value
 * in the type's binary "send" form, big-endian) and returns the end. The
 * caller has reserved the room: these never allocate and never fail.
 * copy_bin_header is the 19-byte stream header every stream starts with.
 */
#ifndef CAMJOIN_COPY_BIN_H
#define CAMJOIN_COPY_BIN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/* Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch. */
#define PG_EPOCH_OFFSET_US UINT64_C(946684800000000)

#define JSONB_VERSION 1

/* Signature "PGCOPY\n\377\r\n\0", flags 0, header-extension length 0. */
static const unsigned char copy_bin_header[] = {
    'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0,
    0, 0, 0, 0,
    0, 0, 0, 0,
};

/* ---- field writers: each stores at w and returns the end ---------------- */

static inline char *put_u16(char *w, uint16_t v)
{
    v = htobe16(v);
    memcpy(w, &v, sizeof v);
    return w + sizeof v;
}

static inline char *put_u32(char *w, uint32_t v)
{
    v = htobe32(v);
    memcpy(w, &v, sizeof v);
    return w + sizeof v;
}

static inline char *put_u64(char *w, uint64_t v)
{
    v = htobe64(v);
    memcpy(w, &v, sizeof v);
    return w + sizeof v;
}

static inline char *put_null(char *w)
{
    return put_u32(w, UINT32_MAX); /* length -1 */
}

/* text, bytea: length, then the raw bytes (the caller checked n <= INT32_MAX). */
static inline char *put_bytes(char *w, const void *p, size_t n)
{
    w = put_u32(w, (uint32_t)n);
    if (n)
        memcpy(w, p, n);
    return w + n;
}

static inline char *put_int4(char *w, int32_t v)
{
    return put_u32(put_u32(w, 4), (uint32_t)v);
}

static inline char *put_int8(char *w, int64_t v)
{
    return put_u64(put_u32(w, 8), (uint64_t)v);
}

static inline char *put_float4(char *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return put_u32(put_u32(w, 4), bits);
}

static inline char *put_float8(char *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return put_u64(put_u32(w, 8), bits);
}

/* timestamptz: int64 microseconds since 2000-01-01 00:00:00 UTC. Unsigned
 * arithmetic: the same bits as the signed difference, without overflow. */
static inline char *put_timestamptz(char *w, int64_t unix_us)
{
    return put_u64(put_u32(w, 8), (uint64_t)unix_us - PG_EPOCH_OFFSET_US);
}

/* jsonb: the version byte, then the JSON text (the caller checked n < INT32_MAX). */
static inline char *put_jsonb(char *w, const char *json, size_t n)
{
    w = put_u32(w, (uint32_t)(1 + n));
    *w++ = JSONB_VERSION;
    memcpy(w, json, n);
    return w + n;
}

#endif
