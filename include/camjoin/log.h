/*
 * log — leveled lines on stderr, as logfmt (the default) or JSON.
 *
 * Every line is one record: `ts=<RFC 3339 UTC> level=<lvl> msg="<text>"`
 * followed by the caller's `key=value` pairs, already formatted. Values that
 * may contain spaces or quotes are quoted with log_quote(), which escapes `"`
 * and `\` as `\"` `\\`, newline as `\n` and other control bytes as `\xHH`, so
 * a line always parses as logfmt.
 *
 * JSON (log_set_format(LOG_FORMAT_JSON), `log.format = json`): one object a
 * line, `{"ts":"...","level":"info","msg":"...",<pairs>}`. The caller's text
 * is the same logfmt; log_emit() parses it back and re-encodes each pair as a
 * member:
 *   - a quoted value is decoded (the escapes above) and becomes a string;
 *   - a bare value that is a JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?
 *     ([eE][+-]?[0-9]{1,2})?` with at most 15 digits before the exponent, so
 *     that any parser reads it as a double without losing a digit or
 *     overflowing) becomes a number; anything else, `true` and `false`
 *     included, is a string. The type thus follows the value: bare
 *     `id=0042` is a string and `id=4242` a number, so quote (log_quote())
 *     any value whose type must not vary, such as hashes and identifiers;
 *   - text that is not a pair (a word without '=', an empty key, a quoted
 *     value running into the next word) is collected, space-separated, in
 *     one string member "kv_error" placed last;
 *   - strings are escaped as JSON requires (`\"` `\\` `\n` `\t` `\r`, other
 *     control bytes and DEL as \u00XX); bytes that are not UTF-8 become
 *     U+FFFD. A line too long for the 8 KiB buffer ends its last string with
 *     "..." and gets "truncated":true. So every line is valid JSON.
 *
 * Repeats: a warn or error line whose level and msg equal those of a line
 * written less than the repeat interval ago (default 10 s, monotonic clock)
 * is not written but counted. The next one written after the interval
 * carries an extra pair `repeated=<n>`, n being the lines suppressed since
 * the previous written one (no pair when n is 0). The pairs of suppressed
 * lines are lost; only their number is kept. A table of 64 slots indexed by
 * a hash of level and msg remembers the recent lines; a slot holds one msg,
 * and a different msg hashing to a busy slot takes it over (first writing
 * the count it held, as log_flush_repeats() does). So a collision can only
 * make a line be written that could have been suppressed, never suppress a
 * line that differs. A msg of 128 bytes or more is never suppressed.
 * Info and debug lines are never suppressed, nor are lines written with
 * log_emit_each().
 *
 * Who logs: main.c and the pipeline, the layer that decides what to do about
 * what happened. The other modules return an error code with their message
 * in a caller-supplied buffer, or report events to their owner (the sink's
 * news, the upkeep's report), and the pipeline logs them. The two modules
 * that wrap a library turn its own messages into log lines at the boundary:
 * source_kafka librdkafka's log lines, pg_conn PostgreSQL's notices.
 *
 * journald: when stderr is systemd's journal stream ($JOURNAL_STREAM names
 * stderr's device and inode, as systemd sets it for a unit), every line
 * starts with sd-daemon(3)'s priority prefix: <3> error, <4> warn, <6> info,
 * <7> debug. journald strips it and records the priority, so `journalctl -p
 * err` finds the errors. Anywhere else (a terminal, a file, a pipe) lines
 * are unchanged.
 *
 * Cost: one vsnprintf, a pass over the pair text in JSON mode, a hash of msg
 * for warn/error, and one write(2) per line; nothing is buffered, so lines
 * from a crashing process are not lost. Not thread-safe by design (the level,
 * format and repeat table are plain globals): only the loop thread logs;
 * librdkafka's own log lines are queued (log.queue=true) and served by the
 * consumer poll on the loop, and its error callback runs there too.
 */
#ifndef CAMJOIN_LOG_H
#define CAMJOIN_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON = 1 };

/* Lines above `level` are discarded. Default: LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 on anything else. */
int log_level_parse(const char *name);

/* "error", "warn", "info", "debug". */
const char *log_level_name(enum log_level level);

/* Default: LOG_FORMAT_LOGFMT. */
void log_set_format(enum log_format format);
/* "logfmt", "json" (the names of the log.format values). */
const char *log_format_name(enum log_format format);

/* Repeat suppression window in milliseconds (default 10000; 0 disables it).
 * Also forgets every remembered line and pending count: call
 * log_flush_repeats() first to keep them. */
void log_set_repeat_interval_ms(int64_t ms);

/* Writes, for each line suppressed since its last written occurrence, one
 * line with its level and msg and the pairs `repeated=<n> summary=flush`,
 * and zeroes the counts. main() calls it before it returns. (A slot taken
 * over by another msg writes the same line with `summary=evicted`.) */
void log_flush_repeats(void);

/* Emits `ts=.. level=.. msg="msg"` then the printf-formatted `kvfmt` pairs
 * (may be NULL), in the current format, unless `level` is above the
 * current level or the line is a suppressed repeat. */
void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_emit() without repeat suppression: for lines that answer an
 * operator's action (the outcome of a SIGHUP reload), where every
 * occurrence matters however close together they come. */
void log_emit_each(enum log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line of plain text on stderr, without ts/level/msg but with the
 * journal's prefix for `level`: main()'s "camjoin: ..." lines for usage and
 * startup errors. Never suppressed. */
void log_plain(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes `s` as a quoted logfmt value into `buf` (always NUL-terminated,
 * truncated with "..." if it does not fit). Returns buf, for use in a
 * log_emit() argument list. */
const char *log_quote(char *buf, size_t size, const char *s);
/* Writes ids as "0,3,5" into `buf` (always NUL-terminated, ending in "..."
 * if they do not fit): partition lists. Returns buf, like log_quote(). */
const char *log_ids(char *buf, size_t size, const int32_t *ids, size_t n);

#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_emit(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_emit(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__)

#endif
