/*
 * refdata — Dataset B: the camera reference table, loaded from CSV.
 *
 * Format: RFC 4180 (libcsv in strict mode): comma-separated, fields
 * optionally quoted with `"`, `""` inside quotes for a quote, commas, quotes
 * and newlines allowed inside quoted fields, LF or CRLF line ends, an
 * optional UTF-8 byte-order mark. The first record is the header; it must
 * contain camera_id, site_id, site_name, zone, latitude, longitude in any
 * order (names compared after trimming spaces); other columns are ignored.
 * Every record must have as many fields as the header.
 *
 * Values: camera_id non-empty and unique; latitude in [-90, 90] and longitude
 * in [-180, 180] as decimal numbers, or empty for unknown (NULL in the
 * table); other columns are text taken as they are (empty allowed). All text
 * must be valid UTF-8 without NUL.
 *
 * Errors name the file, the line on which the offending record starts (1 =
 * header) and the reason, e.g. "cameras.csv:17: duplicate camera_id
 * \"cam-0042\" (first on line 9)". A failed load returns -1 and leaves
 * nothing allocated.
 *
 * The table is immutable once loaded. Reload (SIGHUP) = load a new table,
 * then swap the pointer and free the old one; since the loop thread is the
 * only reader and rows are copied into the batch at once, the swap is atomic
 * with respect to every event.
 *
 * Cost: one allocation for all strings plus an open-addressing index keyed by
 * XXH3 of camera_id; lookup is one hash and, almost always, one compare.
 */
#ifndef CAMJOIN_REFDATA_H
#define CAMJOIN_REFDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"

typedef struct refdata refdata_t;

typedef struct refdata_row {
    const char *camera_id;  size_t camera_id_len;
    const char *site_id;    size_t site_id_len;
    const char *site_name;  size_t site_name_len;
    const char *zone;       size_t zone_len;
    bool has_latitude;      double latitude;
    bool has_longitude;     double longitude;
} refdata_row_t;

/* Loads `path`. On success *out owns the table; on failure err holds one
 * line ("path:line: reason" or "path: reason") and *out is NULL. */
CJ_MUSTCHECK int refdata_load(refdata_t **out, const char *path, char *err, size_t errlen);

/* Returns the row for camera_id, or NULL. The row lives as long as the table. */
const refdata_row_t *refdata_lookup(const refdata_t *r, const char *camera_id,
                                    size_t len);

size_t refdata_count(const refdata_t *r);
/* XXH3-64 of the file's bytes, for the startup log line. */
uint64_t refdata_hash(const refdata_t *r);
/* Row i in file order, 0 <= i < refdata_count(). */
const refdata_row_t *refdata_row(const refdata_t *r, size_t i);

void refdata_free(refdata_t *r);

#endif
