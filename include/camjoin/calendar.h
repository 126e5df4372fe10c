/*
 * calendar — days since the Unix epoch and proleptic Gregorian dates, and
 * RFC 3339 timestamps: the one calendar of event, upkeep and replay.
 *
 * Pure functions on glibc's timegm/gmtime_r (UTC, TZ ignored); any thread.
 */
#ifndef CAMJOIN_CALENDAR_H
#define CAMJOIN_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"

/* 9999-12-31T23:59:59.999999Z: the last instant a timestamp may name. */
#define CALENDAR_TS_MAX_US INT64_C(253402300799999999)

/* Days since 1970-01-01 of the date y-m-d, and back. */
int64_t calendar_days(int64_t y, unsigned m, unsigned d);
void calendar_date(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* The UTC day (days since the epoch) holding this Unix time (floor). */
int64_t calendar_day_of(int64_t unix_s);
/* 28 to 31; 0 for a month outside 1-12. */
unsigned calendar_month_days(int64_t y, unsigned m);

/* Parses an RFC 3339 timestamp (YYYY-MM-DD, 'T', 't' or ' ', hh:mm:ss, an
 * optional fraction, 'Z' or ±hh:mm; a real date, 1970 to 9999) into
 * microseconds since the epoch. Returns 0 or -1. */
CJ_MUSTCHECK int calendar_parse_rfc3339(const char *s, size_t len, int64_t *ts_us);

/* Formats microseconds since the epoch as "YYYY-MM-DD HH:MM:SS.ffffff+00"
 * (what PostgreSQL's timestamptz input accepts). `out` needs 32 bytes.
 * Returns the length written. */
size_t calendar_format_ts(int64_t ts_us, char out[32]);

#endif
