/*
 * dedup — which event_ids were seen in the last `window` milliseconds.
 *
 * Each event_id is reduced to a 128-bit XXH3 fingerprint (collision chance
 * ~n^2/2^129: nil for any realistic window). Entries live in a FIFO ring in
 * arrival order; an open-addressing index (linear probing in Robin Hood
 * order) maps fingerprints to ring positions. Because arrival order is time
 * order, expiry pops the ring's head while it is older than the window and
 * deletes its index slot (backward-shift deletion, no tombstones): O(1)
 * amortised per insert, and no scan of the whole set ever happens on the hot
 * path. Each 4-byte index slot holds a ring position, the entry's distance
 * from its home slot and one fingerprint bit, so a deletion almost never
 * reads the ring and a lookup reads it only for entries that share its home
 * slot (and that bit).
 * The ring is a chain of fixed-size chunks (1024 entries) reached through a
 * small circular directory: a chunk is allocated when the tail enters it and
 * freed when the head leaves it, so memory follows the live count, and
 * nothing is copied as the set grows. The index (any size, not a power of
 * two) is rebuilt from the ring when its load leaves [0.52, 0.8], back to
 * 0.625; the rebuilds are amortised O(1) too, but one rebuild is a pause of
 * roughly 20-30 ns per live key.
 *
 * Each entry remembers where the event was first seen, as a 32-bit hash of
 * its Kafka partition and offset. Seeing the same (partition, offset) again
 * is a re-delivery of the same message — after a rollback, a rebalance or a
 * replay — not a duplicate, so dedup_check() reports it as new and the row is
 * written again (the primary key's ON CONFLICT absorbs it if the first write
 * did commit). Without that rule a rolled-back batch would be dropped on its
 * re-read. Because only a hash is kept, a true duplicate from another
 * position whose hash happens to collide (probability 2^-32 per duplicate)
 * is also reported as new: it is written, and the table's primary key
 * absorbs it (ON CONFLICT DO NOTHING), as it does a duplicate that arrives
 * after the window. The error only ever goes that way: a re-delivery is
 * never reported as a duplicate.
 *
 * The window is measured from the first sighting: a duplicate does not
 * refresh its entry. `now_ms` must not go backwards (pass a monotonic clock);
 * if it does, it is treated as equal to the last value seen.
 *
 * Capacity: at most DEDUP_MAX_KEYS live keys (index slots hold 27-bit ring
 * positions); beyond that, dedup_check() returns -1 for new keys, as it does
 * when memory runs out, and the caller writes the row anyway.
 *
 * Cost: a 24-byte ring entry (fingerprint 16, first-sighting time 4, position
 * hash 4) plus 4-byte index slots at load 0.52..0.8, i.e. 29..31.7 bytes per
 * key; on top of that at most ~48 KiB of partly used chunks and a directory
 * of at most 32 bytes per 1024 keys. That is <= 32 bytes per key from about
 * 200k live keys on (below that the fixed parts dominate), e.g. 29.3 at 1M
 * and 30.3 at 10M keys. dedup_bytes() reports the exact figure.
 */
#ifndef CAMJOIN_DEDUP_H
#define CAMJOIN_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dedup dedup_t;

/* Most live keys a window can hold (134,216,704; about 4 GiB). */
#define DEDUP_MAX_KEYS (((size_t)1 << 27) - 1024)

enum dedup_result { DEDUP_NEW = 0, DEDUP_DUPLICATE = 1 };

/* `initial` is a capacity hint: the index starts sized for that many keys
 * (at least 1024 slots) and never shrinks below it. Ring chunks are allocated
 * only as keys arrive. Returns NULL on allocation failure. */
dedup_t *dedup_new(int64_t window_ms, size_t initial);
void dedup_free(dedup_t *d);

/* Expires old entries, then looks `key` up. If absent, inserts it with
 * (partition, offset, now_ms) and returns DEDUP_NEW. If present with the same
 * (partition, offset), returns DEDUP_NEW and leaves the entry as it was. If
 * present with another position, returns DEDUP_DUPLICATE (see above for the
 * hashed position). Returns -1 when a new key cannot be added (it is not
 * added; expiry has still run): out of memory, or DEDUP_MAX_KEYS keys live. */
int dedup_check(dedup_t *d, const void *key, size_t len, int32_t partition,
                int64_t offset, int64_t now_ms);

/* Drops entries older than the window. dedup_check() calls this itself; call
 * it from a timer to shrink the set while no events arrive. */
void dedup_expire(dedup_t *d, int64_t now_ms);

size_t dedup_count(const dedup_t *d);  /* live keys */
size_t dedup_bytes(const dedup_t *d);  /* bytes allocated: ring chunks, chunk
                                        * directory, index and the struct */

#endif
