/* reload — see include/camjoin/reload.h.
 *
 * The job record is allocated per load and freed on the loop thread after
 * the callback; the worker touches only the job (the path is read-only), so
 * nothing is shared between threads but what uv_queue_work hands over.
 */
#include "camjoin/reload.h"

#include <stdlib.h>

struct reload {
    uv_loop_t *loop;
    const char *path;
    reload_cb done;
    void *ud;
    int busy, again;
};

struct job {
    uv_work_t req;
    reload_t *r;
    refdata_t *fresh;
    char err[512];
};

reload_t *reload_new(uv_loop_t *loop, const char *path, reload_cb done, void *ud)
{
    reload_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->path = path;
    r->done = done;
    r->ud = ud;
    return r;
}

static void work(uv_work_t *w)
{
    struct job *j = w->data;
    if (refdata_load(&j->fresh, j->r->path, j->err, sizeof j->err) != 0)
        j->fresh = NULL;
}

static void after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    reload_t *r = j->r;
    r->busy = 0;
    if (status != 0) {
        refdata_free(j->fresh);
        j->fresh = NULL;
    }
    /* the table is the callee's from here; it may cancel what is queued */
    r->done(r->ud, j->fresh, status ? "cancelled" : j->err, r->again);
    free(j);
    if (r->again) {
        r->again = 0;
        if (reload_request(r) != 0)
            r->done(r->ud, NULL, "out of memory", 0);
    }
}

int reload_request(reload_t *r)
{
    if (r->busy) {
        r->again = 1;
        return 0;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->r = r;
    j->req.data = j;
    if (uv_queue_work(r->loop, &j->req, work, after) != 0) {
        free(j);
        return -1;
    }
    r->busy = 1;
    return 0;
}

int reload_busy(const reload_t *r) { return r->busy; }
void reload_cancel_queued(reload_t *r) { r->again = 0; }
void reload_free(reload_t *r) { free(r); }
