/* log — see include/camjoin/log.h. */
#include "camjoin/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "camjoin/base.h"

#define LINE_BYTES 8192     /* one rendered line, either format */
#define KV_BYTES 4096       /* the caller's pairs, formatted */
#define KV_SPARE 32         /* kept free in the pairs for " repeated=<n>" */
#define JSON_SPARE 32       /* kept free at a JSON line's end for ,"truncated":true}\n */
#define REPEAT_SLOTS 64
#define REPEAT_MSG_MAX 128

static enum log_level current = LOG_INFO;
static enum log_format format = LOG_FORMAT_LOGFMT;
static int64_t repeat_ms = 10000;
static const char *const names[] = {"error", "warn", "info", "debug"};

/* One recently written warn/error msg (see "Repeats" in log.h). */
struct repeat_slot {
    bool used;
    enum log_level level;
    char msg[REPEAT_MSG_MAX];
    int64_t written_ms;           /* monotonic time of its last written line */
    unsigned long long suppressed; /* lines not written since then */
};
static struct repeat_slot repeats[REPEAT_SLOTS];

void log_set_level(enum log_level level) { current = level; }
enum log_level log_get_level(void) { return current; }
void log_set_format(enum log_format f) { format = f; }
const char *log_level_name(enum log_level level)
{
    return (unsigned)level < 4 ? names[level] : "unknown";
}
const char *log_format_name(enum log_format f) { return f == LOG_FORMAT_JSON ? "json" : "logfmt"; }

void log_set_repeat_interval_ms(int64_t ms)
{
    repeat_ms = ms > 0 ? ms : 0;
    memset(repeats, 0, sizeof repeats);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *log_ids(char *buf, size_t size, const int32_t *ids, size_t n)
{
    size_t len = 0;
    if (!size)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%d", i ? "," : "", (int)ids[i]);
        if (w < 0 || (size_t)w >= size - len) {
            snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
            break;
        }
        len += (size_t)w;
    }
    return buf;
}

const char *log_quote(char *buf, size_t size, const char *s)
{
    size_t o = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\')
            n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            n = (size_t)snprintf(esc, sizeof esc, "\\n");
        else if (c < 0x20 || c == 0x7f)
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            esc[0] = (char)c, n = 1;
        if (o + n + 5 > size) { /* room for `..."` and NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, esc, n);
        o += n;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* ---- JSON ------------------------------------------------------------- */

/* A line being built; members stop at `lim`, the rest is JSON_SPARE. */
struct jbuf {
    char *p;
    size_t len, lim;
    bool truncated; /* something did not fit: nothing more is added */
};

static void jb_raw(struct jbuf *b, const char *s, size_t n)
{
    if (b->truncated || b->len + n > b->lim) {
        b->truncated = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Length of the valid UTF-8 sequence (2-4 bytes) at s, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
        return 0;
    return len;
}

/* Appends s[0..n) as a JSON string, cut with "..." when the line is full. */
static void jb_str(struct jbuf *b, const char *s, size_t n)
{
    if (b->truncated || b->len + 5 > b->lim) { /* `"` + room for `..."` */
        b->truncated = true;
        return;
    }
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n;) {
        const unsigned char *c = (const unsigned char *)s + i;
        char esc[8];
        const char *out = esc;
        size_t k, used = 1;
        if (*c == '"' || *c == '\\')
            k = (size_t)snprintf(esc, sizeof esc, "\\%c", *c);
        else if (*c == '\n' || *c == '\t' || *c == '\r')
            k = (size_t)snprintf(esc, sizeof esc, "\\%c",
                                 *c == '\n' ? 'n' : *c == '\t' ? 't' : 'r');
        else if (*c < 0x20 || *c == 0x7f)
            k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *c);
        else if (*c < 0x80)
            out = (const char *)c, k = 1;
        else if ((used = utf8_seq(c, n - i)) > 0)
            out = (const char *)c, k = used;
        else
            out = "\\ufffd", k = 6, used = 1;
        if (b->len + k + 4 > b->lim) {
            memcpy(b->p + b->len, "...", 3);
            b->len += 3;
            b->truncated = true;
            break;
        }
        memcpy(b->p + b->len, out, k);
        b->len += k;
        i += used;
    }
    b->p[b->len++] = '"';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON number of at most 15 digits and a 1-2 digit exponent: any JSON
 * parser reads it as a double without losing a digit or overflowing. */
static bool is_json_number(const char *v, size_t n)
{
    size_t i = v[0] == '-', digits = 0, exp = 0;
    if (i >= n || !is_digit(v[i]))
        return false;
    if (v[i] == '0')
        i++, digits++;
    else
        for (; i < n && is_digit(v[i]); i++)
            digits++;
    if (i < n && v[i] == '.') {
        if (++i >= n || !is_digit(v[i]))
            return false;
        for (; i < n && is_digit(v[i]); i++)
            digits++;
    }
    if (i < n && (v[i] == 'e' || v[i] == 'E')) {
        i++;
        if (i < n && (v[i] == '+' || v[i] == '-'))
            i++;
        for (; i < n && is_digit(v[i]); i++)
            exp++;
        if (exp == 0 || exp > 2)
            return false;
    }
    return i == n && digits <= 15;
}

/* Appends `,"key":value`; a member that does not fit is left out whole,
 * except a string value, which is cut (still valid JSON). */
static void jb_member(struct jbuf *b, const char *k, size_t klen, const char *v, size_t vlen,
                      bool number)
{
    size_t mark = b->len, value_at;
    jb_raw(b, ",", 1);
    jb_str(b, k, klen);
    jb_raw(b, ":", 1);
    value_at = b->len;
    if (number)
        jb_raw(b, v, vlen);
    else
        jb_str(b, v, vlen);
    if (b->truncated && (number || b->len <= value_at))
        b->len = mark;
}

static int hex_value(char c)
{
    return is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes the log_quote() value starting at the '"' at q into out (at least
 * strlen(q) bytes). Returns the end: past the closing quote, or at the NUL
 * when there is none (*closed false). An unknown escape is kept as is. */
static const char *unquote(const char *q, char *out, size_t *outlen, bool *closed)
{
    size_t o = 0;
    const char *p = q + 1;
    while (*p && *p != '"') {
        if (*p != '\\' || !p[1]) {
            out[o++] = *p++;
            continue;
        }
        char c = p[1];
        if (c == '"' || c == '\\')
            out[o++] = c, p += 2;
        else if (c == 'n' || c == 't' || c == 'r')
            out[o++] = c == 'n' ? '\n' : c == 't' ? '\t' : '\r', p += 2;
        else if (c == 'x' && hex_value(p[2]) >= 0 && hex_value(p[3]) >= 0)
            out[o++] = (char)(hex_value(p[2]) << 4 | hex_value(p[3])), p += 4;
        else
            out[o++] = *p++;
    }
    *outlen = o;
    *closed = *p == '"';
    return *closed ? p + 1 : p;
}

/* The caller's logfmt pairs as members; what is not a pair goes, with a
 * space between pieces, to "kv_error" (see log.h). */
static void jb_pairs(struct jbuf *b, const char *kv)
{
    char val[KV_BYTES], stray[KV_BYTES];
    size_t nstray = 0;
    for (const char *s = kv; *s;) {
        if (*s == ' ') {
            s++;
            continue;
        }
        const char *end = s;
        size_t klen = strcspn(s, "= ");
        if (klen > 0 && s[klen] == '=') {
            const char *v = s + klen + 1;
            size_t vlen;
            bool closed;
            if (*v != '"') {
                vlen = strcspn(v, " ");
                jb_member(b, s, klen, v, vlen, is_json_number(v, vlen));
                s = v + vlen;
                continue;
            }
            end = unquote(v, val, &vlen, &closed);
            if (closed && (*end == ' ' || *end == '\0')) {
                jb_member(b, s, klen, val, vlen, false);
                s = end;
                continue;
            }
        }
        size_t n = (size_t)(end - s) + strcspn(end, " "); /* the malformed word */
        if (nstray + 1 + n < sizeof stray) {
            if (nstray)
                stray[nstray++] = ' ';
            memcpy(stray + nstray, s, n);
            nstray += n;
        }
        s += n;
    }
    if (nstray)
        jb_member(b, "kv_error", 8, stray, nstray, false);
}

static size_t render_json(char *line, const char *ts, enum log_level level, const char *msg,
                          const char *kv)
{
    struct jbuf b = {.p = line, .lim = LINE_BYTES - JSON_SPARE};
    jb_raw(&b, "{\"ts\":\"", 7);
    jb_raw(&b, ts, strlen(ts));
    jb_raw(&b, "\",\"level\":\"", 11);
    jb_raw(&b, names[level], strlen(names[level]));
    jb_raw(&b, "\",\"msg\":", 8);
    jb_str(&b, msg, strlen(msg));
    jb_pairs(&b, kv);
    static const char cut[] = ",\"truncated\":true";
    if (b.truncated) { /* JSON_SPARE holds it */
        memcpy(line + b.len, cut, sizeof cut - 1);
        b.len += sizeof cut - 1;
    }
    memcpy(line + b.len, "}\n", 2);
    return b.len + 2;
}

/* ---- lines ------------------------------------------------------------ */

static size_t render_logfmt(char *line, const char *ts, enum log_level level, const char *msg,
                            const char *kv)
{
    char qmsg[1024];
    int n = snprintf(line, LINE_BYTES - 1, "ts=%s level=%s msg=%s%s%s", ts, names[level],
                     log_quote(qmsg, sizeof qmsg, msg), *kv ? " " : "", kv);
    if (n < 0)
        return 0;
    size_t len = (size_t)n < LINE_BYTES - 1 ? (size_t)n : LINE_BYTES - 2;
    line[len++] = '\n';
    return len;
}

/* ---- journald ----------------------------------------------------------- */

/* 1 when stderr is systemd's journal stream: $JOURNAL_STREAM ("DEV:INODE",
 * set by systemd for a unit's stdout/stderr) names the very file stderr is.
 * A shell or pipe that redirected stderr does not match. Decided once. */
static int journal_stream(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *v = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char end;
        cached = v && sscanf(v, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
                 fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                 (unsigned long long)st.st_ino == ino;
    }
    return cached;
}

/* sd-daemon(3)'s "<N>" prefix: journald strips it and records priority N. */
static const char *const journal_prefix[] = {
    [LOG_ERROR] = "<3>", [LOG_WARN] = "<4>", [LOG_INFO] = "<6>", [LOG_DEBUG] = "<7>"};
#define PREFIX_BYTES 3

/* One write(2) of line[PREFIX_BYTES..n) with, on the journal, the level's
 * prefix in front (the caller leaves PREFIX_BYTES free at line's start). */
static void write_prefixed(enum log_level level, char *line, size_t n)
{
    size_t from = PREFIX_BYTES;
    if (journal_stream()) {
        memcpy(line, journal_prefix[level], PREFIX_BYTES);
        from = 0;
    }
    ssize_t w = write(STDERR_FILENO, line + from, n - from);
    (void)w;
}

void log_plain(enum log_level level, const char *fmt, ...)
{
    char line[PREFIX_BYTES + 1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + PREFIX_BYTES, sizeof line - PREFIX_BYTES - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = PREFIX_BYTES + ((size_t)n < sizeof line - PREFIX_BYTES - 2
                                     ? (size_t)n : sizeof line - PREFIX_BYTES - 2);
    line[len++] = '\n';
    write_prefixed(level, line, len);
}

/* Renders one line in the current format and writes it with one write(2). */
static void write_line(enum log_level level, const char *msg, const char *kv)
{
    char ts[96], buf[PREFIX_BYTES + LINE_BYTES]; /* ts: 24 bytes for years 0-9999; room
                                                    for gcc's worst case */
    char *line = buf + PREFIX_BYTES;
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
    size_t n = format == LOG_FORMAT_JSON ? render_json(line, ts, level, msg, kv)
                                         : render_logfmt(line, ts, level, msg, kv);
    if (n == 0)
        return;
    write_prefixed(level, buf, PREFIX_BYTES + n);
}

/* ---- repeats ---------------------------------------------------------- */

static void write_summary(struct repeat_slot *r, const char *why)
{
    char kv[64];
    snprintf(kv, sizeof kv, "repeated=%llu summary=%s", r->suppressed, why);
    r->suppressed = 0;
    write_line(r->level, r->msg, kv);
}

void log_flush_repeats(void)
{
    for (size_t i = 0; i < REPEAT_SLOTS; i++)
        if (repeats[i].used && repeats[i].suppressed)
            write_summary(&repeats[i], "flush");
}

/* false: a repeat within the interval, counted and not to be written.
 * true: write it, with *repeated = the lines suppressed before it. */
static bool repeat_admit(enum log_level level, const char *msg, unsigned long long *repeated)
{
    size_t len = strlen(msg);
    if (len >= REPEAT_MSG_MAX)
        return true;
    uint64_t h = 14695981039346656037ULL; /* FNV-1a over msg, then level */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)msg[i]) * 1099511628211ULL;
    h = (h ^ (unsigned)level) * 1099511628211ULL;
    struct repeat_slot *r = &repeats[h % REPEAT_SLOTS];
    int64_t now = clock_mono_ms();
    if (r->used && r->level == level && strcmp(r->msg, msg) == 0) {
        if (now - r->written_ms < repeat_ms) {
            r->suppressed++;
            return false;
        }
        *repeated = r->suppressed;
    } else {
        if (r->used && r->suppressed)
            write_summary(r, "evicted");
        r->used = true;
        r->level = level;
        memcpy(r->msg, msg, len + 1);
    }
    r->suppressed = 0;
    r->written_ms = now;
    return true;
}

__attribute__((format(printf, 4, 0)))
static void vemit(enum log_level level, bool limit, const char *msg, const char *kvfmt,
                  va_list ap)
{
    unsigned long long repeated = 0;
    char kv[KV_BYTES] = "";
    if (level > current)
        return;
    msg = msg ? msg : "";
    if (limit && level <= LOG_WARN && repeat_ms > 0 && !repeat_admit(level, msg, &repeated))
        return;
    if (kvfmt && *kvfmt)
        vsnprintf(kv, sizeof kv - KV_SPARE, kvfmt, ap);
    if (repeated) {
        size_t n = strlen(kv);
        snprintf(kv + n, sizeof kv - n, "%srepeated=%llu", n ? " " : "", repeated);
    }
    write_line(level, msg, kv);
}

void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
{
    va_list ap;
    va_start(ap, kvfmt);
    vemit(level, true, msg, kvfmt, ap);
    va_end(ap);
}

void log_emit_each(enum log_level level, const char *msg, const char *kvfmt, ...)
{
    va_list ap;
    va_start(ap, kvfmt);
    vemit(level, false, msg, kvfmt, ap);
    va_end(ap);
}
