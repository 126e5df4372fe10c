/* config — see include/camjoin/config.h. */
#include "camjoin/config.h"
#include "camjoin/log.h"

#include "config_table.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 512


static __attribute__((format(printf, 3, 4))) int problem(char *msg, size_t len,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct key_row *find_row(const char *name, size_t len)
{
    for (size_t i = 0; i < config_n_rows; i++)
        if (strlen(config_rows[i].name) == len && memcmp(config_rows[i].name, name, len) == 0)
            return &config_rows[i];
    return NULL;
}

/* ---- numbers ---------------------------------------------------------- */

static int parse_int(const char *s, int64_t *v)
{
    int64_t mag;
    if (config_parse_uint(s + (*s == '-'), &mag) < 0)
        return -1;
    *v = *s == '-' ? -mag : mag;
    return 0;
}

/* ---- setting one key -------------------------------------------------- */

static int set_string(char **slot, const char *v, char *msg, size_t len)
{
    char *dup = strdup(v);
    if (!dup)
        return problem(msg, len, "out of memory");
    free(*slot);
    *slot = dup;
    return 0;
}

static int set_enum(int *slot, const struct key_row *r, const char *v, char *msg, size_t len)
{
    char names[128];
    for (int i = 0; r->choices[i]; i++)
        if (strcmp(v, r->choices[i]) == 0) {
            *slot = i;
            return 0;
        }
    config_join_choices(r, ", ", names, sizeof names);
    return problem(msg, len, "bad value \"%s\" (one of: %s)", v, names);
}

/* Parses v into r's field; on failure writes the problem (no location). */
static int set_value(camjoin_config *cfg, const struct key_row *r, const char *v,
                     char *msg, size_t len)
{
    int64_t n = 0;
    char lo[32], hi[32];
    switch (r->type) {
    case T_STRING:
        if (r->min > 0 && *v == '\0')
            return problem(msg, len, "must not be empty");
        return set_string(config_field(cfg, r), v, msg, len);
    case T_ENUM:
        return set_enum(config_field(cfg, r), r, v, msg, len);
    case T_INT:
        if (parse_int(v, &n) < 0)
            return problem(msg, len, "bad integer \"%s\"", v);
        break;
    case T_DURATION:
        if (config_parse_duration(v, &n) < 0)
            return problem(msg, len, "bad duration \"%s\" (use e.g. 250ms, 10s, 10m, 2h)", v);
        break;
    case T_SIZE:
        if (config_parse_size(v, &n) < 0)
            return problem(msg, len, "bad size \"%s\" (use e.g. 1048576, 512KiB, 1MiB, 2G)", v);
        break;
    }
    if (n < r->min || n > r->max) {
        config_format_number(r->type, r->min, lo, sizeof lo);
        config_format_number(r->type, r->max, hi, sizeof hi);
        return problem(msg, len, "must be between %s and %s, got \"%s\"", lo, hi, v);
    }
    *(int64_t *)config_field(cfg, r) = n;
    return 0;
}

/* set_value() that reports "<where>: <problem>" in err. */
static int set_from(camjoin_config *cfg, const struct key_row *r, const char *v,
                    const char *where, char *err, size_t errlen)
{
    char msg[MSG_MAX];
    if (set_value(cfg, r, v, msg, sizeof msg) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", where, msg);
    return -1;
}

/* librdkafka properties that camjoin sets itself and that a user's value
 * would silently break: the offsets are keyed by kafka.group, committed in
 * PostgreSQL, and follow the end-of-partition events. Each names what to use
 * instead. */
static const struct {
    const char *key, *instead;
} owned_kafka_keys[] = {
    {"bootstrap.servers", "use --brokers (kafka.brokers)"},
    {"metadata.broker.list", "use --brokers (kafka.brokers)"},
    {"group.id", "use --group (kafka.group), which also keys camjoin_offsets"},
    {"enable.auto.commit", "camjoin commits offsets in PostgreSQL, with each batch"},
    {"auto.commit.enable", "camjoin commits offsets in PostgreSQL, with each batch"},
    {"enable.auto.offset.store", "camjoin commits offsets in PostgreSQL, with each batch"},
    {"enable.partition.eof", "camjoin's offsets need the end-of-partition events"},
};

/* 0, or -1 with "KEY: set by camjoin; INSTEAD" in msg. */
static int check_kafka_key(const char *key, size_t keylen, char *msg, size_t msglen)
{
    for (size_t i = 0; i < ARRAY_LEN(owned_kafka_keys); i++)
        if (strlen(owned_kafka_keys[i].key) == keylen &&
            memcmp(owned_kafka_keys[i].key, key, keylen) == 0) {
            snprintf(msg, msglen, "%s: set by camjoin; %s", owned_kafka_keys[i].key,
                     owned_kafka_keys[i].instead);
            return -1;
        }
    return 0;
}

/* Adds or replaces a kafka property; an existing key keeps its place. */
static int kv_set(camjoin_config *cfg, const char *key, size_t keylen, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -1;
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        camjoin_kv *kv = &cfg->kafka_props[i];
        if (strlen(kv->key) == keylen && memcmp(kv->key, key, keylen) == 0) {
            free(kv->value);
            kv->value = v;
            return 0;
        }
    }
    camjoin_kv *grown = realloc(cfg->kafka_props, (cfg->n_kafka_props + 1) * sizeof *grown);
    if (!grown)
        goto fail_grow;
    cfg->kafka_props = grown;
    char *k = strndup(key, keylen);
    if (!k)
        goto fail_grow;
    grown[cfg->n_kafka_props++] = (camjoin_kv){.key = k, .value = v}; /* owned by cfg */
    return 0;
fail_grow:
    free(v);
    return -1;
}

/* ---- file ------------------------------------------------------------- */

struct file_ctx {
    camjoin_config *cfg;
    char msg[MSG_MAX]; /* the handler's error, without file:line */
};

static bool section_known(const char *section)
{
    size_t n = strlen(section);
    for (size_t i = 0; i < config_n_rows; i++)
        if (strncmp(config_rows[i].name, section, n) == 0 && config_rows[i].name[n] == '.')
            return true;
    return false;
}

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *ctx = user;
    char full[256], msg[MSG_MAX - 128]; /* leaves room for the key in ctx->msg */
    if (!*name) {
        snprintf(ctx->msg, sizeof ctx->msg, "missing key before '='");
        return 0;
    }
    if (strcmp(section, KAFKA_PROPS) == 0) {
        if (check_kafka_key(name, strlen(name), ctx->msg, sizeof ctx->msg) < 0)
            return 0;
        if (kv_set(ctx->cfg, name, strlen(name), value) == 0)
            return 1;
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        return 0;
    }
    int n = snprintf(full, sizeof full, "%s.%s", section, name);
    const struct key_row *r = find_row(full, (size_t)n);
    if (!*section)
        snprintf(ctx->msg, sizeof ctx->msg, "key \"%s\" is outside any [section]", name);
    else if (!section_known(section))
        snprintf(ctx->msg, sizeof ctx->msg, "unknown section [%s]", section);
    else if (!r)
        snprintf(ctx->msg, sizeof ctx->msg, "unknown key \"%s\"", full);
    else if (set_value(ctx->cfg, r, value, msg, sizeof msg) < 0)
        snprintf(ctx->msg, sizeof ctx->msg, "%s: %s", r->name, msg);
    else
        return 1;
    return 0;
}

/* Debian's inih (libinih 55) exposes its build options as globals; camjoin
 * is their only user in the process. */
static void configure_inih(void)
{
    ini_allow_multiline = false;       /* an indented line is not a continuation */
    ini_allow_inline_comments = false; /* "a ;b" is a value: passwords may hold ';' */
    ini_stop_on_first_error = true;    /* the return value is then our error's line */
    ini_use_stack = false;             /* heap line buffer, grown up to ini_max_line */
    ini_allow_realloc = true;
    ini_max_line = 65536;
}

/* inih splits a line longer than its buffer and parses the rest as another
 * line; refuse such a file up front, naming the line. Returns its number. */
static int overlong_line(FILE *fp)
{
    int c, line = 1;
    long len = 0;
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') {
            line++;
            len = 0;
        } else if (++len >= ini_max_line - 1) {
            return line;
        }
    }
    rewind(fp);
    return 0;
}

static int load_file(camjoin_config *cfg, char *err, size_t errlen)
{
    const char *path = cfg->config_file;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    configure_inih();
    int longline = overlong_line(fp);
    if (longline) {
        fclose(fp);
        snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, longline,
                 ini_max_line - 2);
        return -1;
    }
    struct file_ctx ctx = {.cfg = cfg};
    int line = ini_parse_file(fp, on_ini_pair, &ctx);
    int read_errno = ferror(fp) ? errno : 0;
    fclose(fp);
    if (read_errno)
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(read_errno));
    else if (line < 0)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 ctx.msg[0] ? ctx.msg : "syntax error (expected [section] or name = value)");
    return read_errno || line ? -1 : 0;
}

/* ---- environment and command line ------------------------------------- */

static int apply_defaults(camjoin_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < config_n_rows; i++)
        if (set_from(cfg, &config_rows[i], config_rows[i].def, config_rows[i].name, err,
                     errlen) < 0)
            return -1;
    return 0;
}

static int apply_env(camjoin_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < config_n_rows; i++) {
        const char *v = config_rows[i].env ? getenv(config_rows[i].env) : NULL;
        if (v && set_from(cfg, &config_rows[i], v, config_rows[i].env, err, errlen) < 0)
            return -1;
    }
    return 0;
}

struct cli {
    char shortopts[16];
    struct option longopts[CONFIG_ROWS_MAX + CONFIG_RUN_FLAGS_MAX + 1];
};

static void build_cli(struct cli *cli)
{
    size_t s = 0, l = 0;
    memset(cli, 0, sizeof *cli);
    cli->shortopts[s++] = ':'; /* report a missing value as ':' */
    for (size_t i = 0; i < config_n_rows; i++)
        if (config_rows[i].flag)
            cli->longopts[l++] = (struct option){config_rows[i].flag, required_argument, NULL,
                                                 OPT_ROW + (int)i};
    for (size_t i = 0; i < config_n_run_flags; i++) {
        const struct run_flag *f = &config_run_flags[i];
        int has_arg = f->metavar ? required_argument : no_argument;
        if (f->name)
            cli->longopts[l++] = (struct option){f->name, has_arg, NULL, f->val};
        if (f->val < OPT_SET) {
            cli->shortopts[s++] = (char)f->val;
            if (f->metavar)
                cli->shortopts[s++] = ':';
        }
    }
}

static const struct option *long_option(const struct cli *cli, int val)
{
    for (const struct option *o = cli->longopts; o->name; o++)
        if (o->val == val)
            return o;
    return NULL;
}

/* "--brokers" or "-c" for an option's getopt value. */
static const char *flag_name(const struct cli *cli, int val, char *buf, size_t len)
{
    const struct option *o = long_option(cli, val);
    if (o)
        snprintf(buf, len, "--%s", o->name);
    else
        snprintf(buf, len, "-%c", val);
    return buf;
}

/* Pass 1: checks the syntax of argv, finds -c, and handles --help and
 * --version, before anything else is read. */
static enum config_status scan_args(int argc, char **argv, const struct cli *cli, FILE *info,
                                    camjoin_config *cfg, char *err, size_t errlen)
{
    char name[64];
    int c;
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    while ((c = getopt_long(argc, argv, cli->shortopts, cli->longopts, NULL)) != -1) {
        if (c == ':' || (optarg && strncmp(optarg, "--", 2) == 0)) {
            snprintf(err, errlen, "%s: requires a value",
                     flag_name(cli, c == ':' ? optopt : c, name, sizeof name));
            return CONFIG_ERROR;
        }
        if (c == '?' && optopt && long_option(cli, optopt)) { /* --verbose=x */
            snprintf(err, errlen, "%s: takes no value", flag_name(cli, optopt, name, sizeof name));
            return CONFIG_ERROR;
        }
        if (c == '?' && optopt) {
            snprintf(err, errlen, "unknown option -%c (see --help)", optopt);
            return CONFIG_ERROR;
        }
        if (c == '?') {
            const char *arg = argv[optind - 1];
            snprintf(err, errlen, "unknown option %.*s (see --help)", (int)strcspn(arg, "="), arg);
            return CONFIG_ERROR;
        }
        if (c == 'c' && set_string(&cfg->config_file, optarg, err, errlen) < 0)
            return CONFIG_ERROR;
        if (c == 'h' || c == OPT_VERSION) {
            if (c == 'h')
                config_print_help(info);
            else
                config_print_version(info);
            return CONFIG_EXIT;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* Splits "key=value" at the first '='; the key must not be empty. */
static int split_kv(const char *arg, const char *flag, size_t *keylen, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (eq && eq != arg) {
        *keylen = (size_t)(eq - arg);
        return 0;
    }
    snprintf(err, errlen, "%s: expected key=value, got \"%s\"", flag, arg);
    return -1;
}

static int apply_set(camjoin_config *cfg, const char *arg, char *err, size_t errlen)
{
    size_t klen;
    char where[256];
    if (split_kv(arg, "--set", &klen, err, errlen) < 0)
        return -1;
    const struct key_row *r = find_row(arg, klen);
    if (!r) {
        snprintf(err, errlen, "--set: unknown key \"%.*s\"", (int)klen, arg);
        return -1;
    }
    snprintf(where, sizeof where, "--set: %s", r->name);
    return set_from(cfg, r, arg + klen + 1, where, err, errlen);
}

/* Pass 2: applies the flags, in order, over defaults, file and environment. */
static int apply_args(int argc, char **argv, const struct cli *cli, camjoin_config *cfg,
                      char *err, size_t errlen)
{
    char where[64];
    size_t klen;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, cli->shortopts, cli->longopts, NULL)) != -1) {
        if (c >= OPT_ROW) {
            rc = set_from(cfg, &config_rows[c - OPT_ROW], optarg,
                          flag_name(cli, c, where, sizeof where), err, errlen);
            continue;
        }
        switch (c) {
        case 'X': {
            char msg[MSG_MAX];
            rc = split_kv(optarg, "-X", &klen, err, errlen);
            if (rc == 0 && (rc = check_kafka_key(optarg, klen, msg, sizeof msg)) < 0)
                snprintf(err, errlen, "-X %s", msg);
            else if (rc == 0 && (rc = kv_set(cfg, optarg, klen, optarg + klen + 1)) < 0)
                snprintf(err, errlen, "-X: out of memory");
            break;
        }
        case OPT_SET:
            rc = apply_set(cfg, optarg, err, errlen);
            break;
        case OPT_REPLAY:
            rc = set_string(&cfg->replay_from, optarg, err, errlen);
            break;
        case OPT_REPLAY_UNTIL:
            rc = set_string(&cfg->replay_until, optarg, err, errlen);
            break;
        case OPT_UNTIL_END:
            cfg->until_end = true;
            break;
        case OPT_DRY_RUN:
            cfg->dry_run = true;
            break;
        case OPT_REDRIVE:
            cfg->redrive = true;
            break;
        case OPT_REASON:
            rc = set_string(&cfg->redrive_reason, optarg, err, errlen);
            break;
        case OPT_SINCE:
            rc = set_string(&cfg->redrive_since, optarg, err, errlen);
            break;
        case OPT_CHECK:
            cfg->check_config = true;
            break;
        case OPT_PRINT:
            cfg->print_config = true;
            break;
        case 'v':
            cfg->log_level = LOG_DEBUG;
            break;
        }
    }
    return rc;
}

/* What no single key can say wrong. */
static int check_combination(const camjoin_config *cfg, char *err, size_t errlen)
{
    if ((cfg->redrive_reason || cfg->redrive_since) && !cfg->redrive) {
        snprintf(err, errlen, "%s is for --redrive-dead-letters",
                 cfg->redrive_reason ? "--reason" : "--since");
        return -1;
    }
    if (cfg->redrive && (cfg->replay_from || cfg->replay_until || cfg->until_end ||
                         cfg->dry_run)) {
        snprintf(err, errlen, "--redrive-dead-letters reads PostgreSQL, not Kafka: it takes "
                 "no --replay-from, --replay-until, --until-end or --dry-run");
        return -1;
    }
    if (cfg->pool_mode == POOL_TRANSACTION && !cfg->upkeep_conninfo[0]) {
        snprintf(err, errlen, "postgres.pool_mode=transaction needs postgres.upkeep_conninfo: "
                 "the partition upkeep holds a session advisory lock and session settings, "
                 "so it must reach PostgreSQL itself or a session pool");
        return -1;
    }
    return 0;
}

enum config_status config_parse(int argc, char **argv, FILE *info, camjoin_config **out,
                                char *err, size_t errlen)
{
    struct cli cli;
    enum config_status st = CONFIG_ERROR;
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    build_cli(&cli);
    camjoin_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_ERROR;
    }
    st = scan_args(argc, argv, &cli, info, cfg, err, errlen);
    if (st != CONFIG_OK)
        goto fail_cfg;
    st = CONFIG_ERROR;
    if (apply_defaults(cfg, err, errlen) < 0 ||
        (cfg->config_file && load_file(cfg, err, errlen) < 0) ||
        apply_env(cfg, err, errlen) < 0 || apply_args(argc, argv, &cli, cfg, err, errlen) < 0 ||
        check_combination(cfg, err, errlen) < 0)
        goto fail_cfg;
    *out = cfg; /* owned by the caller */
    return CONFIG_OK;
fail_cfg:
    config_free(cfg);
    return st;
}

void config_free(camjoin_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < config_n_rows; i++)
        if (config_rows[i].type == T_STRING)
            free(*(char **)config_field(cfg, &config_rows[i]));
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    free(cfg->config_file);
    free(cfg->replay_from);
    free(cfg->replay_until);
    free(cfg->redrive_reason);
    free(cfg->redrive_since);
    free(cfg);
}
