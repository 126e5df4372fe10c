/*
 * replay — the --replay-from specification: where each partition starts on
 * its first positioning instead of the stored offset; and --replay-until's,
 * where each partition stops. A pure parser (the
 * relative form reads the wall clock once, when it is parsed); any thread.
 *
 * Ownership: a parsed spec owns its arrays until replay_spec_clear(); the
 * assignment module takes them over (assignment_new).
 */
#ifndef CAMJOIN_REPLAY_H
#define CAMJOIN_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"

enum replay_kind {
    REPLAY_NONE = 0,      /* no --replay-from: stored offsets */
    REPLAY_EARLIEST,
    REPLAY_LATEST,
    REPLAY_OFFSET,        /* one offset for every partition */
    REPLAY_PARTITIONS,    /* P:OFFSET list; partitions not listed use stored */
    REPLAY_TIME,          /* @TIME */
};

typedef struct replay_spec {
    enum replay_kind kind;
    int64_t offset;        /* REPLAY_OFFSET */
    int64_t time_ms;       /* REPLAY_TIME, epoch milliseconds */
    size_t n;              /* REPLAY_PARTITIONS */
    int32_t *partitions;   /* owned; replay_spec_clear() frees */
    int64_t *offsets;
} replay_spec_t;

/* Parses SPEC: earliest | latest | OFFSET | P:OFFSET[,P:OFFSET...] |
 * @RFC3339 | @EPOCH_MS | @-DURATION (e.g. @-1h: an hour before now, the
 * moment of parsing). NULL or "" gives REPLAY_NONE. On error returns -1 and
 * writes a one-line reason naming the spec into err. */
CJ_MUSTCHECK int replay_parse(const char *spec, replay_spec_t *out, char *err,
                 size_t errlen);
/* The --replay-until bound, where each partition stops: OFFSET, P:OFFSET
 * list (partitions not listed stop at their end at assignment) or @TIME
 * (before the first offset whose timestamp is >= TIME), in replay_parse()'s
 * syntax; earliest and latest are refused. NULL or "" gives REPLAY_NONE. */
CJ_MUSTCHECK int replay_parse_until(const char *spec, replay_spec_t *out, char *err,
                                    size_t errlen);
void replay_spec_clear(replay_spec_t *r);

#endif
