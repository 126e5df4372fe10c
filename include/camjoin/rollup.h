/*
 * rollup — the per-minute aggregates of one batch's event rows, the rows
 * camjoin adds to the rollup table <T>_minute in the batch's transaction
 * (docs/ARCHITECTURE.md §3, "The rollup").
 *
 * A group is one (UTC minute of event_ts, site_id, zone, camera_id,
 * event_type); a join miss (no reference row) has site_id and zone NULL and
 * is its own group. Each group holds events (rows), object_count_sum (a
 * missing object_count adds 0), confidence_max (NULL while no row had a
 * confidence) and site_name (the last one seen: the reference table may be
 * reloaded within a batch, and the table's upsert keeps the newest too).
 *
 * Adding is two-phase, so a batch can refuse a row without leaving a trace
 * of it here: rollup_prepare() does everything that can fail (lookup,
 * allocation), and rollup_commit() applies the row it prepared and cannot
 * fail. A prepare that is not committed is forgotten by the next prepare.
 *
 * Ownership: the rollup copies what it keeps (no pointer into the event or
 * the reference row survives rollup_commit()). The data returned by
 * rollup_data() belongs to the rollup and is valid until the next prepare,
 * reset or free. One thread: the loop's, like the batch that owns it.
 */
#ifndef CAMJOIN_ROLLUP_H
#define CAMJOIN_ROLLUP_H

#include <stddef.h>

#include "camjoin/base.h"
#include "camjoin/event.h"
#include "camjoin/refdata.h"

/* The column order of rollup_data()'s rows. */
#define ROLLUP_COLUMNS                                                          \
    "minute, site_id, site_name, zone, camera_id, event_type, events, "        \
    "object_count_sum, confidence_max"

typedef struct rollup rollup_t;

rollup_t *rollup_new(void);
void rollup_free(rollup_t *r);

/* Finds or makes room for the group of this row (ref NULL: a join miss).
 * Returns 0, or -1 on ENOMEM or a string longer than INT32_MAX bytes (the
 * rollup is unchanged either way). The event and ref must stay valid until
 * rollup_commit(). */
CJ_MUSTCHECK int rollup_prepare(rollup_t *r, const event_t *ev, const refdata_row_t *ref);
/* Adds the row of the last successful rollup_prepare(). */
void rollup_commit(rollup_t *r);

size_t rollup_groups(const rollup_t *r);

/* The groups as one binary COPY stream (header, then one tuple per group in
 * ROLLUP_COLUMNS order, no trailer), or NULL on ENOMEM. */
const char *rollup_data(rollup_t *r, size_t *len);

/* Forgets every group, keeping the memory. */
void rollup_reset(rollup_t *r);

#endif
