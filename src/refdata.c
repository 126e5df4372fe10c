/*
 * refdata — camera reference table from CSV (see include/camjoin/refdata.h).
 *
 * Loading: the file is read in blocks, hashed with a streaming XXH3-64 and fed
 * to libcsv (strict mode, no space trimming) one piece at a time, each piece
 * ending at a CR or LF. libcsv reports a record only at a terminator, i.e. at
 * the end of a piece, so "a record starts in this piece" is exactly "the
 * previous record has ended and the piece holds a byte other than CR/LF";
 * counting LFs then gives the line every record starts on.
 *
 * Storage: strings are copied, NUL-terminated, into large arena chunks that
 * never move; rows live in one array in file order; the index is open
 * addressing (linear probing, load <= 0.5) of {hash, row, line}, so a lookup
 * compares strings only when the 64-bit hashes match.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/refdata.h"

enum col {
    COL_CAMERA_ID, COL_SITE_ID, COL_SITE_NAME, COL_ZONE,   /* text */
    COL_LATITUDE, COL_LONGITUDE,                           /* numbers */
    NCOLS,
    NTEXT = COL_LATITUDE,
    COL_IGNORED = -1,
};

static const char *const col_names[NCOLS] = {
    "camera_id", "site_id", "site_name", "zone", "latitude", "longitude",
};
static const double col_limits[NCOLS] = { [COL_LATITUDE] = 90, [COL_LONGITUDE] = 180 };

#define CHUNK_MIN   ((size_t)64 << 10)
#define CHUNK_MAX   ((size_t)16 << 20)
#define EXCERPT_MAX  40         /* bytes of a value quoted in an error */
#define EXCERPT_SIZE (EXCERPT_MAX + sizeof "...")

struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
};

struct slot {
    uint64_t hash;
    size_t row;                 /* row index + 1, 0 = empty */
    size_t line;                /* line the row starts on, for duplicates */
};

struct refdata {
    refdata_row_t *rows;
    size_t count, cap;
    struct slot *index;
    size_t imask;
    struct chunk *arena;        /* newest chunk first */
    uint64_t hash;
};

/* State of one load, shared with the libcsv callbacks. */
struct loader {
    refdata_t *r;
    const char *path;
    char *err;
    size_t errlen;
    bool failed;
    size_t line;                /* line of the next byte fed */
    size_t rec_line;            /* line the current record starts on */
    bool want_start;            /* no record is open */
    bool have_header;
    signed char *role;          /* header column -> enum col, COL_IGNORED */
    size_t ncols, role_cap;
    size_t col_of[NCOLS];       /* enum col -> header column, SIZE_MAX if absent */
    size_t nfields;             /* fields so far in the current record */
    const char *text[NTEXT];    /* current record, in the arena */
    size_t text_len[NTEXT];
    bool num_ok[NCOLS - NTEXT], num_has[NCOLS - NTEXT];
    double num[NCOLS - NTEXT];
    char num_bad[NCOLS - NTEXT][EXCERPT_SIZE];   /* the text, if !num_ok */
};

__attribute__((format(printf, 3, 4)))
static void fail_at(struct loader *ld, size_t line, const char *fmt, ...)
{
    if (ld->failed)
        return;
    ld->failed = true;
    if (ld->errlen == 0)
        return;
    int n = line ? snprintf(ld->err, ld->errlen, "%s:%zu: ", ld->path, line)
                 : snprintf(ld->err, ld->errlen, "%s: ", ld->path);
    if (n < 0 || (size_t)n >= ld->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A printable, one-line copy of a (valid UTF-8) value, cut after
 * EXCERPT_MAX bytes with "...". */
static const char *excerpt(char out[EXCERPT_SIZE], const char *s, size_t len)
{
    size_t n = len;
    if (n > EXCERPT_MAX) {
        n = EXCERPT_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;                            /* do not split a character */
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    strcpy(out + n, n < len ? "..." : "");
    return out;
}

/* Well-formed UTF-8: shortest form, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    static const uint32_t min_cp[4] = { 0, 0x80, 0x800, 0x10000 };
    for (size_t i = 0; i < len;) {
        unsigned c = s[i++];
        if (c < 0x80)
            continue;
        size_t more = c < 0xC0 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : c < 0xF8 ? 3 : 0;
        if (more == 0 || len - i < more)
            return false;
        uint32_t cp = c & (0x3Fu >> more);
        for (size_t end = i + more; i < end; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if (cp < min_cp[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
    }
    return true;
}

/* Drops spaces and tabs at both ends. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* Copies s[0..len) plus a NUL into the arena; NULL when out of memory. */
static const char *arena_copy(refdata_t *r, const char *s, size_t len)
{
    struct chunk *c = r->arena;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = c ? (c->cap < CHUNK_MAX ? 2 * c->cap : CHUNK_MAX) : CHUNK_MIN;
        if (cap < len + 1)
            cap = len + 1;
        struct chunk *n = malloc(sizeof *n + cap);
        if (!n)
            return NULL;
        *n = (struct chunk){ .next = c, .cap = cap };
        r->arena = c = n;
    }
    char *p = c->data + c->used;
    memcpy(p, s, len);
    p[len] = '\0';
    c->used += len + 1;
    return p;
}

/* The slot holding camera_id, or the empty slot where it would go. */
static struct slot *find_slot(const refdata_t *r, uint64_t h, const char *id,
                              size_t len)
{
    for (size_t i = h & r->imask;; i = (i + 1) & r->imask) {
        struct slot *s = &r->index[i];
        if (s->row == 0)
            return s;
        const refdata_row_t *row = &r->rows[s->row - 1];
        if (s->hash == h && row->camera_id_len == len
            && memcmp(row->camera_id, id, len) == 0)
            return s;
    }
}

static int index_grow(refdata_t *r)
{
    size_t cap = 2 * (r->imask + 1);
    struct slot *index = calloc(cap, sizeof *index);
    if (!index)
        return -1;
    for (size_t i = 0; i <= r->imask; i++) {
        if (r->index[i].row == 0)
            continue;
        size_t j = r->index[i].hash & (cap - 1);
        while (index[j].row != 0)
            j = (j + 1) & (cap - 1);
        index[j] = r->index[i];
    }
    free(r->index);
    r->index = index;
    r->imask = cap - 1;
    return 0;
}

/* Header cell i: which column it is. */
static void header_field(struct loader *ld, const char *s, size_t len)
{
    if (ld->ncols == ld->role_cap) {
        size_t cap = ld->role_cap ? 2 * ld->role_cap : 16;
        signed char *role = realloc(ld->role, cap);
        if (!role) {
            fail_at(ld, ld->rec_line, "out of memory");
            return;
        }
        ld->role = role;
        ld->role_cap = cap;
    }
    trim(&s, &len);
    signed char role = COL_IGNORED;
    for (int c = 0; c < NCOLS; c++) {
        if (strlen(col_names[c]) == len && memcmp(col_names[c], s, len) == 0) {
            if (ld->col_of[c] != SIZE_MAX) {
                fail_at(ld, ld->rec_line, "duplicate column \"%s\"", col_names[c]);
                return;
            }
            ld->col_of[c] = ld->ncols;
            role = (signed char)c;
        }
    }
    ld->role[ld->ncols++] = role;
}

/* Blank -> *has = false. Otherwise a finite decimal number in [-limit, limit],
 * blanks around it allowed. s[len] is a NUL (CSV_APPEND_NULL). */
static bool parse_coord(const char *s, size_t len, double limit, bool *has,
                        double *out)
{
    trim(&s, &len);
    *has = len > 0;
    if (!*has)
        return true;
    if (strspn(s, "0123456789+-.eE") < len)
        return false;
    char *end;
    double v = strtod(s, &end);
    if (end != s + len || !isfinite(v) || fabs(v) > limit)
        return false;
    *out = v;
    return true;
}

static void on_field(void *data, size_t len, void *arg)
{
    struct loader *ld = arg;
    const char *s = data;
    size_t i = ld->nfields++;
    if (ld->failed)
        return;
    if (memchr(s, '\0', len)) {
        fail_at(ld, ld->rec_line, "NUL byte");
    } else if (!utf8_valid(data, len)) {
        fail_at(ld, ld->rec_line, "invalid UTF-8");
    } else if (!ld->have_header) {
        header_field(ld, s, len);
    } else if (i < ld->ncols && ld->role[i] >= NTEXT) {
        int k = ld->role[i] - NTEXT;
        ld->num_ok[k] = parse_coord(s, len, col_limits[ld->role[i]],
                                    &ld->num_has[k], &ld->num[k]);
        if (!ld->num_ok[k])
            excerpt(ld->num_bad[k], s, len);
    } else if (i < ld->ncols && ld->role[i] != COL_IGNORED) {
        int k = ld->role[i];
        ld->text[k] = arena_copy(ld->r, s, len);
        ld->text_len[k] = len;
        if (!ld->text[k])
            fail_at(ld, ld->rec_line, "out of memory");
    }
}

static void finish_header(struct loader *ld)
{
    for (int c = 0; c < NCOLS; c++) {
        if (ld->col_of[c] == SIZE_MAX) {
            fail_at(ld, ld->rec_line, "missing column \"%s\"", col_names[c]);
            return;
        }
    }
    ld->have_header = true;
}

static void finish_row(struct loader *ld)
{
    refdata_t *r = ld->r;
    char ex[EXCERPT_SIZE];
    if (ld->nfields != ld->ncols) {
        fail_at(ld, ld->rec_line, "expected %zu fields, got %zu", ld->ncols, ld->nfields);
        return;
    }
    refdata_row_t row = {
        .camera_id = ld->text[COL_CAMERA_ID], .camera_id_len = ld->text_len[COL_CAMERA_ID],
        .site_id = ld->text[COL_SITE_ID],     .site_id_len = ld->text_len[COL_SITE_ID],
        .site_name = ld->text[COL_SITE_NAME], .site_name_len = ld->text_len[COL_SITE_NAME],
        .zone = ld->text[COL_ZONE],           .zone_len = ld->text_len[COL_ZONE],
    };
    if (row.camera_id_len == 0) {
        fail_at(ld, ld->rec_line, "empty camera_id");
        return;
    }
    for (int k = 0; k < NCOLS - NTEXT; k++) {
        if (!ld->num_ok[k]) {
            fail_at(ld, ld->rec_line, "bad %s \"%s\"", col_names[NTEXT + k],
                    ld->num_bad[k]);
            return;
        }
    }
    row.has_latitude = ld->num_has[0];
    row.latitude = ld->num[0];
    row.has_longitude = ld->num_has[1];
    row.longitude = ld->num[1];

    uint64_t h = XXH3_64bits(row.camera_id, row.camera_id_len);
    struct slot *s = find_slot(r, h, row.camera_id, row.camera_id_len);
    if (s->row != 0) {
        fail_at(ld, ld->rec_line, "duplicate camera_id \"%s\" (first on line %zu)",
                excerpt(ex, row.camera_id, row.camera_id_len), s->line);
        return;
    }
    if (2 * (r->count + 1) > r->imask + 1) {
        if (index_grow(r) != 0)
            goto fail_oom;
        s = find_slot(r, h, row.camera_id, row.camera_id_len);
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        refdata_row_t *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows)
            goto fail_oom;
        r->rows = rows;
        r->cap = cap;
    }
    r->rows[r->count++] = row;
    *s = (struct slot){ .hash = h, .row = r->count, .line = ld->rec_line };
    return;

fail_oom:
    fail_at(ld, ld->rec_line, "out of memory");
}

static void on_record(int c, void *arg)
{
    struct loader *ld = arg;
    (void)c;
    if (!ld->failed) {
        if (ld->have_header)
            finish_row(ld);
        else
            finish_header(ld);
    }
    ld->nfields = 0;
    ld->want_start = true;
}

static int no_space(unsigned char c)
{
    (void)c;
    return 0;   /* RFC 4180: spaces are part of the field */
}

/* Feeds s[0..n) to libcsv one CR/LF-terminated piece at a time. */
static void feed(struct loader *ld, struct csv_parser *p, const char *s, size_t n)
{
    while (n > 0 && !ld->failed) {
        size_t k = 0;
        while (k < n && s[k] != '\n' && s[k] != '\r')
            k++;
        bool terminated = k < n;
        if (terminated)
            k++;
        if (ld->want_start && (k > 1 || !terminated)) {
            ld->rec_line = ld->line;
            ld->want_start = false;
        }
        if (csv_parse(p, s, k, on_field, on_record, ld) != k)
            fail_at(ld, ld->rec_line, csv_error(p) == CSV_EPARSE
                    ? "misplaced quote (inside an unquoted field, or text after a closing quote)"
                    : "out of memory");
        if (s[k - 1] == '\n')
            ld->line++;
        s += k;
        n -= k;
    }
}

/* Reads and parses the whole file into ld->r; returns with ld->failed set on
 * any error. */
static void parse_file(struct loader *ld, FILE *f)
{
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fail_at(ld, 0, "out of memory");
        return;
    }
    csv_set_space_func(&p, no_space);
    XXH3_state_t hs;
    XXH3_64bits_reset(&hs);

    char buf[32768];
    size_t n;
    bool first = true;
    while (!ld->failed && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        XXH3_64bits_update(&hs, buf, n);
        size_t skip = first && n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        first = false;
        feed(ld, &p, buf + skip, n - skip);
    }
    if (!ld->failed && ferror(f))
        fail_at(ld, 0, "read error: %s", strerror(errno));
    if (!ld->failed && csv_fini(&p, on_field, on_record, ld) != 0)
        fail_at(ld, ld->rec_line, "unterminated quoted field");
    if (!ld->failed && !ld->have_header)
        fail_at(ld, 0, "empty file (no header)");
    ld->r->hash = XXH3_64bits_digest(&hs);
    csv_free(&p);
}

int refdata_load(refdata_t **out, const char *path, char *err, size_t errlen)
{
    struct loader ld = {
        .path = path, .err = err, .errlen = errlen,
        .line = 1, .rec_line = 1, .want_start = true,
    };
    for (int c = 0; c < NCOLS; c++)
        ld.col_of[c] = SIZE_MAX;
    *out = NULL;

    FILE *f = fopen(path, "rb");
    if (!f) {
        fail_at(&ld, 0, "cannot open: %s", strerror(errno));
        goto fail_open;
    }
    ld.r = calloc(1, sizeof *ld.r);
    if (!ld.r || !(ld.r->index = calloc(64, sizeof *ld.r->index))) {
        fail_at(&ld, 0, "out of memory");
        goto fail_alloc;
    }
    ld.r->imask = 63;

    parse_file(&ld, f);
    if (ld.failed)
        goto fail_alloc;
    fclose(f);
    free(ld.role);
    *out = ld.r;    /* owned by the caller */
    return 0;

fail_alloc:
    refdata_free(ld.r);
    free(ld.role);
    fclose(f);
fail_open:
    return -1;
}

const refdata_row_t *refdata_lookup(const refdata_t *r, const char *camera_id,
                                    size_t len)
{
    const struct slot *s = find_slot(r, XXH3_64bits(camera_id, len), camera_id, len);
    return s->row ? &r->rows[s->row - 1] : NULL;
}

size_t refdata_count(const refdata_t *r)
{
    return r->count;
}

uint64_t refdata_hash(const refdata_t *r)
{
    return r->hash;
}

const refdata_row_t *refdata_row(const refdata_t *r, size_t i)
{
    return i < r->count ? &r->rows[i] : NULL;
}

void refdata_free(refdata_t *r)
{
    if (!r)
        return;
    for (struct chunk *c = r->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(r->rows);
    free(r->index);
    free(r);
}
