/*
 * reload — loads the reference CSV again on libuv's thread pool (a million
 * rows take seconds), so the loop only swaps a pointer.
 *
 * One load at a time: a request while one runs is remembered and run after
 * it (any number of requests meanwhile make one more load). The result comes
 * back on the loop thread through the callback: a fresh table, owned by the
 * callee from then on, or NULL with a one-line reason. `more` is 1 when
 * another load follows at once.
 *
 * The loop does not end while a load runs (it is a uv_work_t), so
 * reload_free() is called after uv_run() returned, or when idle.
 */
#ifndef CAMJOIN_RELOAD_H
#define CAMJOIN_RELOAD_H

#include <uv.h>

#include "camjoin/base.h"
#include "camjoin/refdata.h"

typedef struct reload reload_t;
typedef void (*reload_cb)(void *ud, refdata_t *fresh, const char *err, int more);

/* `path` must outlive the reloader. NULL when out of memory. */
reload_t *reload_new(uv_loop_t *loop, const char *path, reload_cb done, void *ud);
/* Starts a load, or queues one behind the running one. 0, or -1 (out of
 * memory, or the thread pool refused: nothing started). */
CJ_MUSTCHECK int reload_request(reload_t *r);
int reload_busy(const reload_t *r);
/* No more loads after the running one (shutdown; may be called from the
 * callback). */
void reload_cancel_queued(reload_t *r);
void reload_free(reload_t *r);

#endif
