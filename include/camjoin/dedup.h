/*
 * dedup — which event_ids were seen in the last `window` milliseconds.
 *
 * An event_id is new the first time it is seen, and a duplicate while that
 * first sighting is less than `window` old; a duplicate does not refresh it.
 * `now_ms` must not go backwards (pass a monotonic clock); a smaller value
 * counts as the last one seen.
 *
 * A re-delivery is not a duplicate. Each entry remembers where the event was
 * first seen (Kafka partition and offset), and the same message read again —
 * after a rollback, a rebalance or a replay — is reported new, so its row is
 * written again (the table's primary key absorbs it if the first write did
 * commit). The position is kept as a 32-bit hash, so a true duplicate whose
 * position hash collides (2^-32) is reported new as well, and the primary key
 * absorbs that one too: the error only ever goes that way.
 *
 * Capacity: at most DEDUP_MAX_KEYS live keys; beyond that, or when memory
 * runs out, dedup_check() returns -1 for a new key and the caller writes the
 * row anyway. Memory follows the live count (about 30 bytes a key;
 * dedup_bytes() is exact). The how is at the top of dedup.c.
 *
 * One owner, one thread (the pipeline's loop); not thread-safe.
 */
#ifndef CAMJOIN_DEDUP_H
#define CAMJOIN_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"

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
 * present with another position, returns DEDUP_DUPLICATE. Returns -1 when a new key cannot be added (it is not
 * added; expiry has still run): out of memory, or DEDUP_MAX_KEYS keys live. */
CJ_MUSTCHECK int dedup_check(dedup_t *d, const void *key, size_t len, int32_t partition,
                int64_t offset, int64_t now_ms);

/* Drops entries older than the window. dedup_check() calls this itself; call
 * it from a timer to shrink the set while no events arrive. */
void dedup_expire(dedup_t *d, int64_t now_ms);

size_t dedup_count(const dedup_t *d);  /* live keys */
size_t dedup_bytes(const dedup_t *d);  /* bytes allocated: ring chunks, chunk
                                        * directory, index and the struct */

#endif
