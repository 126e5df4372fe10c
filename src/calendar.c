/* calendar — see include/camjoin/calendar.h.
 *
 * Days and dates are glibc's: timegm() and gmtime_r() on a 64-bit time_t,
 * which work in UTC whatever TZ says. The RFC 3339 reader is strict (a
 * fixed layout, a real date, no leap second, at most 9 fraction digits,
 * truncated to microseconds) because the same text must mean the same
 * instant to camjoin, to PostgreSQL and to the producer.
 */
#include "camjoin/calendar.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (86400 * US_PER_SEC)

/* ---- days and dates ---------------------------------------------------- */

int64_t calendar_day_of(int64_t s)
{
    return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}

int64_t calendar_days(int64_t y, unsigned m, unsigned d)
{
    struct tm tm = {.tm_year = (int)(y - 1900), .tm_mon = (int)m - 1, .tm_mday = (int)d};
    return calendar_day_of((int64_t)timegm(&tm));
}

void calendar_date(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    time_t s = (time_t)(days * 86400);
    struct tm tm = {0};
    gmtime_r(&s, &tm);
    *y = (int64_t)tm.tm_year + 1900;
    *m = (unsigned)tm.tm_mon + 1;
    *d = (unsigned)tm.tm_mday;
}

unsigned calendar_month_days(int64_t y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m < 1 || m > 12 ? 0 : m == 2 && leap ? 29 : days[m - 1];
}

/* ---- RFC 3339 ---------------------------------------------------------- */

/* Reads exactly n decimal digits at s; returns -1 if any is not a digit. */
static int read_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Reads separator `sep` at s[*pos], then `n` digits; advances *pos past them. */
static int read_field(const char *s, size_t len, size_t *pos, char sep, size_t n,
                      int *out)
{
    if (*pos + 1 + n > len || s[*pos] != sep)
        return -1;
    if (read_digits(s + *pos + 1, n, out) < 0)
        return -1;
    *pos += 1 + n;
    return 0;
}

/* Optional ".d{1,9}" at s[*pos]; microseconds (truncated) into *us. */
static int read_fraction(const char *s, size_t len, size_t *pos, int64_t *us)
{
    *us = 0;
    if (*pos >= len || s[*pos] != '.')
        return 0;
    size_t i = *pos + 1, ndigits = 0;
    int64_t scale = 100000;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (++ndigits > 9)
            return -1;
        *us += (s[i] - '0') * scale;
        scale /= 10;
        i++;
    }
    if (ndigits == 0)
        return -1;
    *pos = i;
    return 0;
}

/* "Z", "z" or "±hh:mm" ending the string; offset east of UTC in seconds. */
static int read_offset(const char *s, size_t len, size_t pos, int64_t *off)
{
    int hh, mm;
    if (pos + 1 == len && (s[pos] == 'Z' || s[pos] == 'z')) {
        *off = 0;
        return 0;
    }
    if (pos + 6 != len || (s[pos] != '+' && s[pos] != '-') || s[pos + 3] != ':' ||
        read_digits(s + pos + 1, 2, &hh) < 0 || read_digits(s + pos + 4, 2, &mm) < 0 ||
        hh > 23 || mm > 59)
        return -1;
    *off = (int64_t)(s[pos] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    return 0;
}

int calendar_parse_rfc3339(const char *s, size_t len, int64_t *ts_us)
{
    int y, mo, d, h, mi, sec;
    int64_t frac_us, off;
    size_t pos = 4;

    if (len < 20 || read_digits(s, 4, &y) < 0 ||
        read_field(s, len, &pos, '-', 2, &mo) < 0 ||
        read_field(s, len, &pos, '-', 2, &d) < 0)
        return -1;
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')
        return -1;
    pos++;
    if (read_digits(s + pos, 2, &h) < 0)
        return -1;
    pos += 2;
    if (read_field(s, len, &pos, ':', 2, &mi) < 0 ||
        read_field(s, len, &pos, ':', 2, &sec) < 0 ||
        read_fraction(s, len, &pos, &frac_us) < 0 ||
        read_offset(s, len, pos, &off) < 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > (int)calendar_month_days(y, (unsigned)mo) || h > 23 || mi > 59 ||
        sec > 59)
        return -1;

    int64_t secs = calendar_days(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
    int64_t us = secs * US_PER_SEC + frac_us;
    if (us < 0 || us > CALENDAR_TS_MAX_US)
        return -1;
    *ts_us = us;
    return 0;
}

size_t calendar_format_ts(int64_t ts_us, char out[32])
{
    int64_t days = ts_us / US_PER_DAY, rem = ts_us % US_PER_DAY, y;
    unsigned m, d;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    calendar_date(days, &y, &m, &d);
    int64_t secs = rem / US_PER_SEC;
    int n = snprintf(out, 32, "%04" PRId64 "-%02u-%02u %02d:%02d:%02d.%06d+00", y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
                     (int)(rem % US_PER_SEC));
    return n < 32 ? (size_t)n : 31; /* only years beyond ±99999 truncate */
}
