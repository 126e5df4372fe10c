/*
 * config_table — PRIVATE to the config module (config.c, config_text.c,
 * config_man.c); not installed and not under include/. Everything else uses
 * camjoin/config.h.
 *
 * The key table and the flag table (config_table.c) that the parser
 * (config.c), --help and --print-config (config_text.c) and the man page
 * (config_man.c) read, and the value types' parsing, formatting and names.
 * Constant data and pure functions; nothing here allocates. Each of the
 * three readers calls only into this unit, never into another reader.
 */
#ifndef CAMJOIN_CONFIG_TABLE_H
#define CAMJOIN_CONFIG_TABLE_H

#include "camjoin/config.h"

#include "camjoin/base.h" /* ARRAY_LEN */
#define KAFKA_PROPS "kafka.properties"

enum value_type { T_STRING, T_INT, T_DURATION, T_SIZE, T_ENUM };

/* One settable key. Parsing (file, env, CLI), --help and --print-config all
 * iterate config_rows[]; nothing else knows the list of keys. */
struct key_row {
    const char *name;            /* "section.key" */
    enum value_type type;
    const char *def;             /* default, as text, parsed like any value */
    const char *flag;            /* long CLI flag without "--", or NULL */
    const char *metavar;         /* the flag's argument in --help */
    const char *env;             /* environment variable, or NULL */
    size_t offset;               /* field in camjoin_config */
    int64_t min, max;            /* INT/DURATION/SIZE range; STRING: min 1 = non-empty */
    const char *const *choices;  /* ENUM: NULL-terminated; index = stored int */
    bool secret;                 /* a conninfo: --print-config masks its password */
    const char *help;
};

/* Flags that are not config keys. Row 0 (-c) is listed first in --help. */
enum { OPT_SET = 256, OPT_REPLAY, OPT_REPLAY_UNTIL, OPT_UNTIL_END, OPT_DRY_RUN, OPT_REDRIVE,
       OPT_REASON, OPT_SINCE, OPT_CHECK, OPT_PRINT, OPT_VERSION,
       OPT_ROW = 512 /* + index into config_rows[] */ };
struct run_flag {
    const char *name;    /* long name, or NULL */
    int val;             /* short letter, or OPT_* */
    const char *metavar; /* NULL: takes no value */
    bool repeat;
    const char *help;
};

/* bounds for arrays sized at compile time (checked in config_table.c) */
#define CONFIG_ROWS_MAX 64
#define CONFIG_RUN_FLAGS_MAX 20
extern const struct key_row config_rows[];
extern const size_t config_n_rows;
extern const struct run_flag config_run_flags[];
extern const size_t config_n_run_flags;

static inline void *config_field(const camjoin_config *cfg, const struct key_row *r)
{
    return (char *)cfg + r->offset;
}

/* Digits only, no sign or unit, overflow refused: 0 or -1. */
int config_parse_uint(const char *s, int64_t *v);
/* Writes v as the type's text: "10m", "1MiB", "20000". */
void config_format_number(enum value_type t, int64_t v, char *buf, size_t len);
/* "keep, drop, dead-letter" (sep ", ") for an ENUM row. */
void config_join_choices(const struct key_row *r, const char *sep, char *buf, size_t len);
/* "integer", "string, non-empty", ...: the type of a row, as --help and
 * the man page name it. */
const char *config_type_name(const struct key_row *r);
/* The --help and --version texts (config_text.c). */
void config_print_help(FILE *f);
void config_print_version(FILE *f);


#endif
