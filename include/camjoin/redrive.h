/*
 * redrive — camjoin --redrive-dead-letters: the topic's stored dead letters,
 * run once more through the current rules (parse, timestamp policy, join),
 * after the rule or the reference data that sent them there was fixed.
 *
 * Exactly once: a dead letter is re-driven in the transaction that writes
 * what it became (a row, or nothing under join.on_miss=drop), and that
 * transaction marks it in camjoin_redriven (its primary key is the dead
 * letter's position: topic, partition, offset); re-drives are serialized by a transaction advisory lock
 * and never select a marked one. A dead letter that is still dead stays
 * unmarked, for a later re-drive. Rows go through the staged path (ON
 * CONFLICT DO NOTHING, rollup of the rows really inserted); the stored Kafka
 * offsets are not touched.
 *
 * Blocking libpq on the calling thread, before any loop runs; reads cfg and
 * ref, owns its connection. Errors: -1 with one line in err; what was
 * committed before stays committed and is not selected again.
 */
#ifndef CAMJOIN_REDRIVE_H
#define CAMJOIN_REDRIVE_H

#include <stdint.h>
#include <stdio.h>

#include "camjoin/base.h"
#include "camjoin/config.h"
#include "camjoin/refdata.h"

/* --since's @TIME (replay_parse()'s time forms) as epoch ms into *ms; NULL
 * gives -1 (no bound). -1 with err set on anything else. */
CJ_MUSTCHECK int redrive_parse_since(const char *spec, int64_t *ms, char *err, size_t errlen);

/* Re-drives the dead letters of cfg->topic (cfg->redrive_reason: only that
 * reason; since_ms >= 0: only those stored at or after it), in transactions
 * of up to 5,000, and prints what they became to out (the format is in
 * README.md, "Re-drive dead letters"). */
CJ_MUSTCHECK int redrive_run(const camjoin_config *cfg, const refdata_t *ref, int64_t since_ms,
                             FILE *out, char *err, size_t errlen);

#endif
