/*
 * metrics — what the HTTP endpoints say about the pipeline.
 *
 *   /metrics  Prometheus text format (version 0.0.4): counters end in
 *             _total, every name starts with camjoin_, units are in names.
 *   /healthz  200 "ok" while the loop runs (it answers from the loop, so a
 *             stuck loop shows up as a timeout).
 *   /readyz   200 when PostgreSQL is connected, partitions are assigned and
 *             consuming, and camjoin is not paused or stopping; otherwise 503
 *             with the reason.
 *
 * Rendering reads counters the pipeline already keeps; it allocates only the
 * response body.
 */
#ifndef CAMJOIN_METRICS_H
#define CAMJOIN_METRICS_H

#include "camjoin/http.h"

/* An http_handler; `ud` is the pipeline_t. */
void metrics_handle(void *ud, const char *path, http_response *res);

#endif
