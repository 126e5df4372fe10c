/*
 * log — leveled logfmt lines on stderr.
 *
 * Every line is one record: `ts=<RFC 3339 UTC> level=<lvl> msg="<text>"`
 * followed by the caller's `key=value` pairs, already formatted. Values that
 * may contain spaces or quotes are quoted with log_quote(), which escapes `"`
 * and `\` and control bytes, so a line always parses as logfmt.
 *
 * Only main.c and the pipeline log. Deep modules return an error code and put
 * their message in a caller-supplied buffer; the layer that decides what to do
 * about the error is the one that logs it.
 *
 * Cost: one snprintf and one write(2) per line; nothing is buffered, so lines
 * from a crashing process are not lost. Not thread-safe by design: only the
 * loop thread logs (librdkafka's own log callback is routed to the loop).
 */
#ifndef CAMJOIN_LOG_H
#define CAMJOIN_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Lines above `level` are discarded. Default: LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 on anything else. */
int log_level_parse(const char *name);

/* Emits `ts=.. level=.. msg="msg"` then the printf-formatted `kvfmt` pairs
 * (may be NULL). */
void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes `s` as a quoted logfmt value into `buf` (always NUL-terminated,
 * truncated with "..." if it does not fit). Returns buf, for use in a
 * log_emit() argument list. */
const char *log_quote(char *buf, size_t size, const char *s);

#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_emit(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_emit(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__)

#endif
