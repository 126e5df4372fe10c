/* config_man — the camjoin(1) man page (roff, man(7) macros), generated from
 * the key and flag tables in config_table.h, like --help, so the page cannot
 * drift from the parser. See include/camjoin/config.h. */
#include "camjoin/config.h"
#include "config_table.h"

#include <stdio.h>
#include <string.h>

/* Table text is escaped for roff: `\` prints as \e, every `-` as \- (a
 * literal hyphen-minus, so flags and values copy and paste), and a `.` or `'`
 * that would start a line is guarded with \&, so it is never a request. */
static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

/* A sentence on a text line: escaped, guarded, ended with a full stop. */
static void text_line(FILE *f, const char *s)
{
    size_t n = strlen(s);
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    esc(f, s);
    fputs(n && s[n - 1] == '.' ? "\n" : ".\n", f);
}

/* \fB\%word\fR (\% : never hyphenated), in font B or I. */
static void word(FILE *f, char font, const char *s)
{
    fprintf(f, "\\f%c\\%%", font);
    esc(f, s);
    fputs("\\fR", f);
}

/* "-c FILE", "--set KEY=VALUE", "-v, --verbose": flag(s) bold, value italic. */
static void run_flag_label(FILE *f, const struct run_flag *r, const char *sep)
{
    char s[8];
    if (r->val < OPT_SET) {
        snprintf(s, sizeof s, "-%c", r->val);
        word(f, 'B', s);
        if (r->name)
            fputs(sep, f);
    }
    if (r->name) {
        fputs("\\fB\\-\\-", f);
        esc(f, r->name);
        fputs("\\fR", f);
    }
    if (r->metavar) {
        fputs("\\ ", f);
        word(f, 'I', r->metavar);
    }
}

static void key_flag_label(FILE *f, const struct key_row *r)
{
    fputs("\\fB\\-\\-", f);
    esc(f, r->flag);
    fputs("\\fR\\ ", f);
    word(f, 'I', r->metavar);
}

static void synopsis(FILE *f)
{
    fputs(".SH SYNOPSIS\n.SY camjoin\n", f);
    for (size_t i = 0; i < config_n_run_flags; i++) {
        const struct run_flag *r = &config_run_flags[i];
        fputc('[', f);
        run_flag_label(f, r, "|");
        fprintf(f, "]%s\n", r->repeat ? "\\&..." : "");
        for (size_t k = 0; i == 0 && k < config_n_rows; k++) { /* key flags after -c */
            if (!config_rows[k].flag)
                continue;
            fputc('[', f);
            key_flag_label(f, &config_rows[k]);
            fputs("]\n", f);
        }
    }
    fputs(".YS\n", f);
}

static void options(FILE *f)
{
    fputs(".SH OPTIONS\n", f);
    for (size_t i = 0; i < config_n_run_flags; i++) {
        const struct run_flag *r = &config_run_flags[i];
        fputs(".TP\n", f);
        run_flag_label(f, r, ", ");
        fputc('\n', f);
        text_line(f, r->help);
        if (r->repeat)
            fputs("May be given more than once.\n", f);
        for (size_t k = 0; i == 0 && k < config_n_rows; k++) {
            const struct key_row *kr = &config_rows[k];
            if (!kr->flag)
                continue;
            fputs(".TP\n", f);
            key_flag_label(f, kr);
            fputs("\nSets ", f);
            word(f, 'B', kr->name);
            fputs(" (see \\fBCONFIGURATION\\fR):\n", f);
            text_line(f, kr->help);
        }
    }
}

/* "integer, 1 to 10000000", "one of: keep, drop, dead-letter", ... */
static void key_type(FILE *f, const struct key_row *r)
{
    char lo[32], hi[32], choices[256];
    fputs(".br\nType: ", f);
    if (r->type == T_ENUM) {
        config_join_choices(r, ", ", choices, sizeof choices);
        fputs("one of ", f);
        esc(f, choices);
    } else if (r->type == T_STRING) {
        fputs(config_type_name(r), f);
    } else {
        config_format_number(r->type, r->min, lo, sizeof lo);
        config_format_number(r->type, r->max, hi, sizeof hi);
        fprintf(f, "%s, %s to %s", config_type_name(r), lo, hi);
    }
    fputs(".\n.br\nDefault: ", f);
    if (*r->def)
        word(f, 'B', r->def);
    else
        fputs("empty", f);
    fputs(".\n", f);
}

static void key_entry(FILE *f, const struct key_row *r)
{
    fputs(".TP\n", f);
    word(f, 'B', r->name);
    fputc('\n', f);
    text_line(f, r->help);
    key_type(f, r);
    if (r->flag) {
        fputs(".br\nFlag: ", f);
        key_flag_label(f, r);
        fputs(".\n", f);
    }
    if (r->env) {
        fputs(".br\nEnvironment: ", f);
        word(f, 'B', r->env);
        fputs(".\n", f);
    }
    if (r->secret)
        fputs(".br\nIts password is masked by \\fB\\-\\-print\\-config\\fR.\n", f);
}

static void configuration(FILE *f)
{
    fputs(".SH CONFIGURATION\n"
          "The file named by \\fB\\-c\\fR is INI: \\fB[\\fR\\fIsection\\fR\\fB]\\fR, then "
          "\\fIname\\fR\\fB = \\fR\\fIvalue\\fR lines; a key \\fIsection.name\\fR below is "
          "written \\fIname\\fR inside \\fB[\\fR\\fIsection\\fR\\fB]\\fR. "
          "Lines starting with \\fB#\\fR or \\fB;\\fR are comments; a value runs to the end "
          "of its line. Unknown keys and sections are errors that name \\fIfile:line\\fR. "
          "Any key can also be set with \\fB\\-\\-set\\fR \\fIsection.name\\fR\\fB=\\fR\\fIvalue\\fR.\n"
          ".PP\n"
          "Precedence: command line, then environment, then the file, then the defaults.\n"
          "Durations are an integer with \\fBms\\fR, \\fBs\\fR, \\fBm\\fR or \\fBh\\fR "
          "(\\fB0\\fR alone is allowed). Sizes are bytes, or an integer with \\fBKiB\\fR, "
          "\\fBMiB\\fR, \\fBGiB\\fR (1024^n) or \\fBk\\fR, \\fBM\\fR, \\fBG\\fR (1000^n).\n",
          f);
    for (size_t i = 0; i < config_n_rows; i++)
        key_entry(f, &config_rows[i]);
    fputs(".TP\n\\fB[" KAFKA_PROPS "]\\fR\n"
          "Any librdkafka property, passed unchanged to rd_kafka_conf_set(); "
          "\\fB\\-X\\fR wins over this section. Properties whose name contains "
          "\\fBpassword\\fR or \\fBsecret\\fR are masked by \\fB\\-\\-print\\-config\\fR.\n",
          f);
}

static void environment(FILE *f)
{
    fputs(".SH ENVIRONMENT\n", f);
    for (size_t i = 0; i < config_n_rows; i++) {
        if (!config_rows[i].env)
            continue;
        fputs(".TP\n", f);
        word(f, 'B', config_rows[i].env);
        fputs("\nSets ", f);
        word(f, 'B', config_rows[i].name);
        fputs(".\n", f);
    }
    fputs(".TP\n\\fBPGHOST\\fR, \\fBPGPORT\\fR, \\fBPGUSER\\fR, \\fBPGDATABASE\\fR, "
          "\\fBPGPASSFILE\\fR, \\fBPGPASSWORD\\fR, ...\n"
          "libpq's own variables fill in what \\fBpostgres.conninfo\\fR leaves out. "
          "Prefer a passfile to a password on the command line.\n"
          ".TP\n\\fBNOTIFY_SOCKET\\fR, \\fBWATCHDOG_USEC\\fR\n"
          "Set by systemd for a \\fBType=notify\\fR service: camjoin reports READY=1 "
          "once PostgreSQL is connected, a STATUS= line with its counters, RELOADING=1 "
          "on SIGHUP, STOPPING=1 on SIGTERM, and WATCHDOG=1 at half the watchdog "
          "interval (when built with libsystemd).\n",
          f);
}

static const char tail_sections[] =
    ".SH SIGNALS\n"
    ".TP\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR\n"
    "Stop fetching, flush and commit the buffered rows, leave the consumer group, exit 0. "
    "A second signal exits at once; uncommitted messages are read again on the next start.\n"
    ".TP\n\\fBSIGHUP\\fR\n"
    "Read the reference CSV at \\fBreference.path\\fR again. The new table replaces the "
    "old one in one swap; a bad file keeps the old table and is logged. The configuration "
    "file is not read again: a changed setting needs a restart.\n"
    ".SH EXIT STATUS\n"
    ".TP\n\\fB0\\fR\nSuccess (including a graceful stop).\n"
    ".TP\n\\fB1\\fR\nRuntime failure, for example a permanent PostgreSQL failure at startup "
    "(authentication, TLS verification, a database that does not exist), named in one line. "
    "A PostgreSQL that is only unreachable is waited for, with \\fB/readyz\\fR answering 503.\n"
    ".TP\n\\fB2\\fR\nUsage or configuration error, reported in one line that names the "
    "flag, the key or \\fIfile:line\\fR.\n"
    ".SH FILES\n"
    ".TP\n\\fI/etc/camjoin/camjoin.conf\\fR\n"
    "The configuration file of the systemd service (\\fB\\-c\\fR).\n";

void config_print_man(FILE *f)
{
    const struct key_row *ref = NULL;
    for (size_t i = 0; i < config_n_rows; i++)
        if (strcmp(config_rows[i].name, "reference.path") == 0)
            ref = &config_rows[i];
    fputs(".\\\" camjoin(1), generated by camjoin-gen-man from the config tables; do not edit.\n"
          ".TH CAMJOIN 1 \"\" \"camjoin " CAMJOIN_VERSION "\" \"User Commands\"\n"
          ".\\\" identifiers must stay whole: no hyphenation, ragged right\n"
          ".nr HY 0\n.nh\n.ad l\n"
          ".SH NAME\n"
          "camjoin \\- Kafka camera events, deduplicated and joined, into PostgreSQL\n",
          f);
    synopsis(f);
    fputs(".SH DESCRIPTION\n"
          "\\fBcamjoin\\fR consumes camera events (JSON) from a Kafka topic, drops the "
          "duplicates that retrying producers create, joins each event to a reference "
          "table of cameras read from a CSV file, and writes the joined rows to "
          "PostgreSQL in batches. Rows, dead letters (messages that break the event "
          "contract, with a reason) and the Kafka offsets are committed in the same "
          "transaction, so every message is written exactly once. It is one process "
          "with one event loop, meant to run as a systemd service.\n",
          f);
    options(f);
    configuration(f);
    environment(f);
    fputs(tail_sections, f);
    if (ref) {
        fputs(".TP\n", f);
        fputs("\\fI\\%", f);
        esc(f, ref->def);
        fputs("\\fR\nThe reference CSV by default (\\fBreference.path\\fR).\n", f);
    }
    fputs(".SH SEE ALSO\n"
          "\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5), \\fBsystemd.service\\fR(5), "
          "\\fBpsql\\fR(1), \\fBkcat\\fR(1); README.md and docs/SECURITY.md, installed in "
          "\\fIshare/doc/camjoin\\fR under the install prefix.\n",
          f);
}
