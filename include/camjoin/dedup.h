/*
 * dedup — which event_ids were seen in the last `window` milliseconds.
 *
 * Each event_id is reduced to a 128-bit XXH3 fingerprint (collision chance
 * ~n^2/2^129: nil for any realistic window). Entries live in a FIFO ring in
 * arrival order; an open-addressing (linear probing) index maps fingerprints
 * to ring positions. Because arrival order is time order, expiry pops the
 * ring's head while it is older than the window and deletes its index slot
 * (backward-shift deletion, no tombstones): O(1) amortised per insert, and no
 * scan of the whole set ever happens on the hot path. When the ring fills it
 * doubles and the index is rebuilt, which is also amortised O(1).
 *
 * Each entry remembers where the event was first seen (Kafka partition and
 * offset). Seeing the same (partition, offset) again is a re-delivery of the
 * same message — after a rollback, a rebalance or a replay — not a duplicate,
 * so dedup_check() reports it as new and the row is written again (the
 * primary key's ON CONFLICT absorbs it if the first write did commit).
 * Without that rule a rolled-back batch would be dropped on its re-read.
 *
 * The window is measured from the first sighting: a duplicate does not
 * refresh its entry. `now_ms` must not go backwards (pass a monotonic clock);
 * if it does, it is treated as equal to the last value seen.
 *
 * Cost: 32-byte ring entry + 4-byte index slot at load <= 0.5, i.e. about
 * 40 bytes per key; dedup_bytes() reports the exact figure.
 */
#ifndef CAMJOIN_DEDUP_H
#define CAMJOIN_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dedup dedup_t;

enum dedup_result { DEDUP_NEW = 0, DEDUP_DUPLICATE = 1 };

/* `initial` is a capacity hint (rounded up to a power of two, min 1024).
 * Returns NULL on allocation failure. */
dedup_t *dedup_new(int64_t window_ms, size_t initial);
void dedup_free(dedup_t *d);

/* Expires old entries, then looks `key` up. If absent, inserts it with
 * (partition, offset, now_ms) and returns DEDUP_NEW. If present with the same
 * (partition, offset), returns DEDUP_NEW and leaves the entry as it was. If
 * present with another position, returns DEDUP_DUPLICATE. Returns -1 only
 * when growing the table fails (out of memory). */
int dedup_check(dedup_t *d, const void *key, size_t len, int32_t partition,
                int64_t offset, int64_t now_ms);

/* Drops entries older than the window. dedup_check() calls this itself; call
 * it from a timer to shrink the set while no events arrive. */
void dedup_expire(dedup_t *d, int64_t now_ms);

size_t dedup_count(const dedup_t *d);  /* live keys */
size_t dedup_bytes(const dedup_t *d);  /* bytes allocated for ring + index */

#endif
