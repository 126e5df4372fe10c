/* config_text — the --help and --print-config texts, generated from the key
 * table in config_table.h. See include/camjoin/config.h. */
#include "camjoin/config.h"
#include "config_table.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- --help ----------------------------------------------------------- */

/* Appends one "[...]" item to the usage line, wrapping before column 80. */
static void usage_item(FILE *f, int *col, const char *item, bool repeat)
{
    int n = (int)strlen(item) + (repeat ? 3 : 0);
    if (*col + 1 + n > 79) {
        fputs("\n       ", f);
        *col = 7;
    }
    fprintf(f, " %s%s", item, repeat ? "..." : "");
    *col += 1 + n;
}

/* "-c FILE", "--set KEY=VALUE", "-v, --verbose" (sep ", ") or "-v|--verbose". */
static void run_flag_label(const struct run_flag *r, const char *sep, char *buf, size_t len)
{
    char shortname[8] = "";
    if (r->val < OPT_SET)
        snprintf(shortname, sizeof shortname, "-%c%s", r->val, r->name ? sep : "");
    snprintf(buf, len, "%s%s%s%s%s", shortname, r->name ? "--" : "", r->name ? r->name : "",
             r->metavar ? " " : "", r->metavar ? r->metavar : "");
}

static void run_flag_usage(FILE *f, int *col, const struct run_flag *r)
{
    char label[64], item[70];
    run_flag_label(r, "|", label, sizeof label);
    snprintf(item, sizeof item, "[%s]", label);
    usage_item(f, col, item, r->repeat);
}

static void print_usage(FILE *f)
{
    char item[70];
    int col = 14;
    fputs("usage: camjoin", f);
    run_flag_usage(f, &col, &config_run_flags[0]);
    for (size_t i = 0; i < config_n_rows; i++) {
        if (!config_rows[i].flag)
            continue;
        snprintf(item, sizeof item, "[--%s %s]", config_rows[i].flag, config_rows[i].metavar);
        usage_item(f, &col, item, false);
    }
    for (size_t i = 1; i < config_n_run_flags; i++)
        run_flag_usage(f, &col, &config_run_flags[i]);
    fputc('\n', f);
}

/* Prints text from column col, wrapping at spaces to column indent. */
static void print_wrapped(FILE *f, int col, int indent, const char *text)
{
    int start = col;
    for (const char *w = text + strspn(text, " "); *w; w += strspn(w, " ")) {
        int n = (int)strcspn(w, " ");
        if (col > start && col + 1 + n > 79) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            start = indent;
        } else if (col > start) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", n, w);
        col += n;
        w += n;
    }
    fputc('\n', f);
}

static void help_line(FILE *f, const char *label, const char *text)
{
    print_wrapped(f, fprintf(f, "  %-22s ", label), 25, text);
}

static void run_flag_help(FILE *f, const struct run_flag *r)
{
    char label[64];
    run_flag_label(r, ", ", label, sizeof label);
    help_line(f, label, r->help);
}

static void key_type_text(const struct key_row *r, char *buf, size_t len)
{
    char lo[24], hi[24];
    if (r->type == T_ENUM)
        config_join_choices(r, "|", buf, len);
    else if (r->type == T_STRING)
        snprintf(buf, len, "%s", config_type_name(r));
    else {
        config_format_number(r->type, r->min, lo, sizeof lo);
        config_format_number(r->type, r->max, hi, sizeof hi);
        snprintf(buf, len, "%s %s..%s", config_type_name(r), lo, hi);
    }
}

void config_print_help(FILE *f)
{
    char label[64], text[64], type[96];
    print_usage(f);
    fputs("\nOptions:\n", f);
    run_flag_help(f, &config_run_flags[0]);
    for (size_t i = 0; i < config_n_rows; i++) {
        if (!config_rows[i].flag)
            continue;
        snprintf(label, sizeof label, "--%s %s", config_rows[i].flag, config_rows[i].metavar);
        snprintf(text, sizeof text, "set %s", config_rows[i].name);
        help_line(f, label, text);
    }
    for (size_t i = 1; i < config_n_run_flags; i++)
        run_flag_help(f, &config_run_flags[i]);

    fputs("\nConfig keys (INI: [section] then name = value; CLI: --set section.name=VALUE):\n",
          f);
    for (size_t i = 0; i < config_n_rows; i++) {
        const struct key_row *r = &config_rows[i];
        key_type_text(r, type, sizeof type);
        fprintf(f, "  %s =%s%s  (%s)\n      ", r->name, *r->def ? " " : "", r->def, type);
        print_wrapped(f, 6, 6, r->help);
    }
    fputs("  [" KAFKA_PROPS "]\n      any librdkafka property, passed unchanged to "
          "rd_kafka_conf_set (also -X)\n", f);
    fputs("\nDurations: an integer with ms, s, m or h (\"0\" alone is allowed). Sizes: bytes,\n"
          "or an integer with KiB, MiB, GiB (1024^n) or k, M, G (1000^n).\n", f);

    fputs("\nEnvironment:\n", f);
    for (size_t i = 0; i < config_n_rows; i++)
        if (config_rows[i].env)
            help_line(f, config_rows[i].env, config_rows[i].name);
    help_line(f, "PGHOST, PGUSER, ...", "libpq's own variables fill in what postgres.conninfo omits");
    fputs("\nPrecedence: command line > environment > config file > defaults.\n"
          "Exit status: 0 success, 1 runtime failure, 2 usage or configuration error.\n", f);
}

/* The libraries' versions are the ones loaded at run time, which is what a
 * bug report needs (the package may have been upgraded under the binary). */
void config_print_version(FILE *f)
{
    int pq = PQlibVersion(); /* 150010 = 15.10 */
    fprintf(f, "camjoin %s\nlibrdkafka %s\nlibpq %d.%d\nlibuv %s\njansson %s\n",
            CAMJOIN_VERSION, rd_kafka_version_str(), pq / 10000, pq % 10000,
            uv_version_string(), jansson_version_str());
}

/* ---- --print-config --------------------------------------------------- */

/* snprintf-like output: writes what fits, counts everything. */
struct out {
    char *buf;
    size_t len, pos;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->pos + 1 < o->len) {
        size_t room = o->len - 1 - o->pos;
        memcpy(o->buf + o->pos, s, n < room ? n : room);
    }
    o->pos += n;
}

static void out_puts(struct out *o, const char *s) { out_put(o, s, strlen(s)); }

/* End of a conninfo value: 'quoted with \ escapes' or up to whitespace. */
static const char *conninfo_value_end(const char *v)
{
    if (*v != '\'')
        return v + strcspn(v, " \t\n\r\f\v");
    for (v++; *v && *v != '\''; v++)
        if (*v == '\\' && v[1])
            v++;
    return *v ? v + 1 : v;
}

static void mask_keyword_conninfo(struct out *o, const char *s)
{
    static const char ws[] = " \t\n\r\f\v";
    while (*s) {
        size_t n = strspn(s, ws);
        out_put(o, s, n);
        s += n;
        size_t klen = strcspn(s, "= \t\n\r\f\v");
        const char *eq = s + klen + strspn(s + klen, ws);
        if (*eq != '=') { /* not key=value: copy the word */
            out_put(o, s, klen);
            s += klen;
            continue;
        }
        const char *v = eq + 1 + strspn(eq + 1, ws);
        const char *end = conninfo_value_end(v);
        bool pw = memmem(s, klen, "password", 8) != NULL; /* also sslpassword */
        out_put(o, s, (size_t)((pw ? v : end) - s));
        if (pw)
            out_puts(o, "****");
        s = end;
    }
}

bool config_secret_property(const char *key)
{
    /* passwords, client secrets, private keys (PEM text or a JAAS/OAuth
     * config that embeds credentials) */
    static const char *const marks[] = {"password", "secret", "key.pem",
                                        "oauthbearer.config", "jaas", NULL};
    for (int i = 0; marks[i]; i++)
        if (strstr(key, marks[i]))
            return true;
    return false;
}

/* postgresql://user:PASSWORD@host/db?password=PASSWORD&... */
static void mask_uri(struct out *o, const char *s, const char *auth)
{
    size_t alen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        out_put(o, s, (size_t)(colon + 1 - s));
        out_puts(o, "****");
        s = at;
    }
    const char *q = strchr(s, '?');
    if (!q) {
        out_puts(o, s);
        return;
    }
    out_put(o, s, (size_t)(q + 1 - s));
    for (s = q + 1; *s;) {
        size_t n = strcspn(s, "&#"), klen = strcspn(s, "=&#");
        bool pw = s[klen] == '=' && memmem(s, klen, "password", 8) != NULL;
        out_put(o, s, pw ? klen + 1 : n);
        if (pw)
            out_puts(o, "****");
        s += n;
        if (*s != '&') {
            out_puts(o, s);
            return;
        }
        out_put(o, s++, 1);
    }
}

size_t config_mask_conninfo(const char *conninfo, char *buf, size_t len)
{
    static const char *const schemes[] = {"postgresql://", "postgres://"};
    struct out o = {.buf = buf, .len = len};
    const char *s = conninfo ? conninfo : "";
    bool uri = false;
    for (size_t i = 0; i < ARRAY_LEN(schemes) && !uri; i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0) {
            mask_uri(&o, s, s + strlen(schemes[i]));
            uri = true;
        }
    if (!uri)
        mask_keyword_conninfo(&o, s);
    if (len)
        buf[o.pos < len ? o.pos : len - 1] = '\0';
    return o.pos;
}

static void print_masked_conninfo(FILE *f, const char *s)
{
    char small[1024];
    size_t n = config_mask_conninfo(s, small, sizeof small);
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) {
        fputs("****", f); /* out of memory: show nothing rather than the secret */
        return;
    }
    if (buf != small)
        config_mask_conninfo(s, buf, n + 1);
    fputs(buf, f);
    if (buf != small)
        free(buf);
}

void config_print(const camjoin_config *cfg, FILE *f)
{
    char num[32];
    fputs("# camjoin effective configuration; secrets are masked as ****\n", f);
    for (size_t i = 0; i < config_n_rows; i++) {
        const struct key_row *r = &config_rows[i];
        size_t sec = (size_t)(strchr(r->name, '.') - r->name) + 1; /* "kafka." */
        if (i == 0 || strncmp(config_rows[i - 1].name, r->name, sec) != 0)
            fprintf(f, "\n[%.*s]\n", (int)sec - 1, r->name);
        fprintf(f, "%s =", r->name + sec);
        const void *p = config_field(cfg, r);
        if (r->type == T_STRING && !**(char *const *)p) {
            fputc('\n', f);
            continue;
        }
        fputc(' ', f);
        if (r->type == T_STRING && r->secret)
            print_masked_conninfo(f, *(char *const *)p);
        else if (r->type == T_STRING)
            fputs(*(char *const *)p, f);
        else if (r->type == T_ENUM)
            fputs(r->choices[*(const int *)p], f);
        else {
            config_format_number(r->type, *(const int64_t *)p, num, sizeof num);
            fputs(num, f);
        }
        fputc('\n', f);
    }
    fputs("\n[" KAFKA_PROPS "]\n", f);
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const camjoin_kv *kv = &cfg->kafka_props[i];
        fprintf(f, "%s = %s\n", kv->key,
                config_secret_property(kv->key) ? "****" : kv->value);
    }
}

/* ---- argv scrubbing ---------------------------------------------------- */

static void stars(char *from, char *to)
{
    for (; from < to; from++)
        *from = '*';
}

/* In place: the values of password keys (keyword or ?query form) and the
 * password of a URI's userinfo. */
static void scrub_conninfo(char *a)
{
    for (char *k = strstr(a, "password"); k; k = strstr(k + 1, "password")) {
        char *v = k + 8;
        v += strspn(v, " \t");
        if (*v != '=')
            continue;
        v++;
        v += strspn(v, " \t");
        stars(v, v + strcspn(v, " \t&#"));
    }
    char *scheme = strstr(a, "://");
    if (!scheme)
        return;
    char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#");
    char *at = memrchr(auth, '@', (size_t)(end - auth));
    char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon)
        stars(colon + 1, at);
}

void config_scrub_argv(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        scrub_conninfo(a);
        /* a secret kafka property: "-Xkey=value", or "key=value" after -X */
        char *key = strncmp(a, "-X", 2) == 0 ? a + 2 : a;
        char *eq = strchr(key, '=');
        if (eq && (i > 1 && strcmp(argv[i - 1], "-X") == 0 ? 1 : key != a)) {
            *eq = '\0';
            bool secret = config_secret_property(key);
            *eq = '=';
            if (secret)
                stars(eq + 1, eq + 1 + strlen(eq + 1));
        }
    }
}
