/* refwatch — see include/camjoin/refwatch.h.
 *
 * libuv's uv_fs_event_t is inotify on Linux. On a directory it reports each
 * change with the name of the file inside it, which is how a rename onto
 * the file (IN_MOVED_TO) and writes to it (IN_MODIFY, IN_CLOSE_WRITE) are
 * told from changes to its neighbours. Two handles, closed together; the
 * struct is freed when both close callbacks have run.
 */
#include "camjoin/refwatch.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct refwatch {
    uv_fs_event_t ev;
    uv_timer_t debounce;
    char *dir, *base;   /* of the watched path (owned) */
    uint64_t debounce_ms;
    refwatch_cb changed;
    void *ud;
    int open_handles;
};

static void on_debounced(uv_timer_t *t)
{
    refwatch_t *w = t->data;
    w->changed(w->ud);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    refwatch_t *w = h->data;
    (void)events;
    if (status < 0 || (filename && strcmp(filename, w->base) != 0))
        return;
    uv_timer_start(&w->debounce, on_debounced, w->debounce_ms, 0); /* restarts it */
}

static void free_watch(refwatch_t *w)
{
    free(w->dir);
    free(w->base);
    free(w);
}

static void on_closed(uv_handle_t *h)
{
    refwatch_t *w = h->data;
    if (--w->open_handles == 0)
        free_watch(w);
}

refwatch_t *refwatch_start(uv_loop_t *loop, const char *path, uint64_t debounce_ms,
                           refwatch_cb changed, void *ud, char *err, size_t errlen)
{
    refwatch_t *w = calloc(1, sizeof *w);
    char *d = strdup(path), *b = strdup(path);
    if (!w || !d || !b) {
        free(d);
        free(b);
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->dir = strdup(dirname(d)); /* dirname and basename may modify their argument */
    w->base = strdup(basename(b));
    free(d);
    free(b);
    if (!w->dir || !w->base) {
        free_watch(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->debounce_ms = debounce_ms;
    w->changed = changed;
    w->ud = ud;
    uv_fs_event_init(loop, &w->ev);
    uv_timer_init(loop, &w->debounce);
    w->ev.data = w->debounce.data = w;
    w->open_handles = 2;
    int rc = uv_fs_event_start(&w->ev, on_event, w->dir, 0);
    if (rc != 0) {
        snprintf(err, errlen, "cannot watch %s: %s", w->dir, uv_strerror(rc));
        refwatch_close(w);
        return NULL;
    }
    return w;
}

void refwatch_close(refwatch_t *w)
{
    if (!w)
        return;
    uv_fs_event_stop(&w->ev);
    uv_timer_stop(&w->debounce);
    uv_close((uv_handle_t *)&w->ev, on_closed);
    uv_close((uv_handle_t *)&w->debounce, on_closed);
}
