/* upkeep_archive — the upkeep module's calendar, archive names, manifest
 * text and durable files; see include/camjoin/upkeep.h and upkeep_int.h.
 * Nothing here knows PostgreSQL. jansson is deliberately not used: the
 * manifest is written on the thread pool, and event.c gives jansson a
 * process-wide allocator that is not thread-safe. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "camjoin/calendar.h"
#include "camjoin/strbuf.h"
#include "camjoin/upkeep.h"
#include "upkeep_int.h"

/* ---- pure helpers ---------------------------------------------------- */

int upkeep_parse_day(const char *s, int64_t *day)
{
    unsigned v[3] = {0, 0, 0};
    static const int width[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < width[f]; i++, s++) {
            if (*s < '0' || *s > '9')
                return -1;
            v[f] = v[f] * 10 + (unsigned)(*s - '0');
        }
        if (*s++ != (f < 2 ? '-' : '\0'))
            return -1;
    }
    if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31)
        return -1;
    int64_t z = calendar_days(v[0], v[1], v[2]), y;
    unsigned m, d;
    calendar_date(z, &y, &m, &d);
    if (y != v[0] || m != v[1] || d != v[2]) /* 31 April, 29 Feb 2023 */
        return -1;
    *day = z;
    return 0;
}

void upkeep_format_day(char *buf, size_t len, int64_t day)
{
    int64_t y;
    unsigned m, d;
    calendar_date(day, &y, &m, &d);
    /* only a day past year 9999 needs more than 11 bytes: it is cut short,
     * never overflowed (and the result is checked, so -O2's
     * -Wformat-truncation has nothing to warn about) */
    int n = snprintf(buf, len, "%04lld-%02u-%02u", (long long)y, m, d);
    if (n < 0 && len)
        buf[0] = '\0';
}

int upkeep_archive_paths(const char *archive_dir, const char *table, int64_t day,
                         unsigned n, char *dir, char *data, char *manifest,
                         size_t len)
{
    char t[256], copy[16] = "";
    size_t i, alen = strlen(archive_dir);
    for (i = 0; table[i] && i < sizeof t - 1; i++)
        t[i] = table[i] == '/' || (i == 0 && table[i] == '.') ? '_' : table[i];
    t[i] = '\0';
    if (table[i])
        return -1;
    while (alen > 0 && archive_dir[alen - 1] == '/')
        alen--; /* "/srv/a/" -> "/srv/a"; "/" -> "" (the paths start "/T") */
    int64_t y;
    unsigned m, d;
    calendar_date(day, &y, &m, &d);
    if (n)
        snprintf(copy, sizeof copy, ".%u", n);
    int a = snprintf(dir, len, "%.*s/%s/%04lld/%02u", (int)alen, archive_dir, t,
                     (long long)y, m);
    int b = snprintf(data, len, "%s/%s_p%04lld%02u%02u%s.csv.gz", dir, t,
                     (long long)y, m, d, copy);
    int c = snprintf(manifest, len, "%s/%s_p%04lld%02u%02u%s.manifest.json", dir, t,
                     (long long)y, m, d, copy);
    return a < 0 || b < 0 || c < 0 || (size_t)a >= len || (size_t)b >= len ||
                   (size_t)c >= len ? -1 : 0;
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes
 * as they are (PostgreSQL sends UTF-8: the session's client_encoding). */
static void json_str(strbuf_t *b, const char *s)
{
    if (!s) {
        strbuf_addf(b, "null");
        return;
    }
    strbuf_addf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            strbuf_addf(b, "\\%c", c);
        else if (c == '\n')
            strbuf_addf(b, "\\n");
        else if (c == '\t')
            strbuf_addf(b, "\\t");
        else if (c == '\r')
            strbuf_addf(b, "\\r");
        else if (c < 0x20)
            strbuf_addf(b, "\\u%04x", c);
        else
            strbuf_addf(b, "%c", c);
    }
    strbuf_addf(b, "\"");
}

char *upkeep_manifest_json(const upkeep_manifest_t *m)
{
    strbuf_t b = {0};
    char day[16], created[40];
    upkeep_format_day(day, sizeof day, m->day);
    int64_t s = m->created_ms >= 0 ? m->created_ms / 1000 : (m->created_ms - 999) / 1000;
    int64_t ms = m->created_ms - s * 1000, y;
    unsigned mo, d;
    calendar_date(calendar_day_of(s), &y, &mo, &d);
    int64_t sec = s - calendar_day_of(s) * 86400;
    snprintf(created, sizeof created, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
             (long long)y, mo, d, (int)(sec / 3600), (int)(sec / 60 % 60),
             (int)(sec % 60), (int)ms);
    strbuf_addf(&b, "{\n  \"table\": ");
    json_str(&b, m->table);
    strbuf_addf(&b, ",\n  \"partition\": ");
    json_str(&b, m->partition);
    strbuf_addf(&b, ",\n  \"day\": \"%s\",\n  \"file\": ", day);
    json_str(&b, m->file);
    strbuf_addf(&b, ",\n  \"format\": \"csv, header, gzip\",\n  \"rows\": %llu,\n"
                "  \"bytes\": %llu,\n  \"xxh64\": \"%016llx\",\n  \"columns\": [",
                (unsigned long long)m->rows, (unsigned long long)m->bytes,
                (unsigned long long)m->xxh64);
    for (size_t i = 0; i < m->ncolumns; i++) {
        strbuf_addf(&b, "%s", i ? ", " : "");
        json_str(&b, m->columns[i]);
    }
    strbuf_addf(&b, "],\n  \"min_event_ts\": ");
    json_str(&b, m->min_event_ts);
    strbuf_addf(&b, ",\n  \"max_event_ts\": ");
    json_str(&b, m->max_event_ts);
    strbuf_addf(&b, ",\n  \"created_at\": \"%s\",\n  \"camjoin_version\": ", created);
    json_str(&b, m->version);
    strbuf_addf(&b, "\n}\n");
    if (b.oom) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_take(&b);
}
/* ---- durable files ---- */


int upkeep_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int upkeep_make_dirs(const char *path)
{
    char p[4096];
    size_t n = strlen(path);
    if (n >= sizeof p)
        return errno = ENAMETOOLONG, -1;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char keep = p[i];
        p[i] = '\0';
        if (mkdir(p, 0750) == 0) { /* the new name is durable once its parent is synced */
            char *slash = strrchr(p, '/');
            int rc;
            if (slash && slash != p) {
                *slash = '\0';
                rc = upkeep_fsync_dir(p);
                *slash = '/';
            } else {
                rc = upkeep_fsync_dir(slash ? "/" : ".");
            }
            if (rc != 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        p[i] = keep;
    }
    return 0;
}

int upkeep_publish(const char *tmp, const char *final, const char *dir)
{
    if (rename(tmp, final) != 0)
        return -1;
    return upkeep_fsync_dir(dir);
}

int upkeep_write_durable(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

int upkeep_hash_file(const char *path, uint64_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    XXH64_state_t *st = XXH64_createState();
    unsigned char *buf = malloc(1 << 16);
    int rc = -1;
    if (st && buf && XXH64_reset(st, 0) == XXH_OK) {
        ssize_t n;
        while ((n = read(fd, buf, 1 << 16)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0)
                XXH64_update(st, buf, (size_t)n);
        if (n == 0) {
            *out = XXH64_digest(st);
            rc = 0;
        }
    }
    free(buf);
    XXH64_freeState(st);
    close(fd);
    return rc;
}

int upkeep_file_state(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 1;
    return errno == ENOENT ? 0 : -1;
}
