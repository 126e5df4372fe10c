/* batchq — see include/camjoin/batchq.h.
 *
 * One spare batch is kept: a committed batch is reset and becomes the next
 * open one, so at steady state no batch is allocated (the buffers of a batch
 * keep their capacity across batch_reset). The buffered count includes the
 * batch in flight at the sink, which is why it is kept here and not summed
 * over the batches this queue holds.
 */
#include "camjoin/batchq.h"

#include <stdlib.h>
#include <string.h>

struct batchq {
    char *topic;
    batch_t *open;        /* filling */
    batch_t **sealed;     /* FIFO, waiting for the connection */
    size_t nsealed, capsealed;
    batch_t *spare;       /* one recycled batch */
    size_t buffered;      /* messages read and not yet committed */
    int64_t open_since;   /* when the open batch was created */
    uint64_t nseal, ndone;
};

batchq_t *batchq_new(const char *topic)
{
    batchq_t *q = calloc(1, sizeof *q);
    if (!q || !(q->topic = strdup(topic))) {
        free(q);
        return NULL;
    }
    return q;
}

static void recycle(batchq_t *q, batch_t *b)
{
    batch_reset(b);
    if (q->spare)
        batch_free(b);
    else
        q->spare = b;
}

size_t batchq_drop(batchq_t *q)
{
    size_t dropped = 0;
    if (q->open) {
        dropped += batch_messages(q->open);
        recycle(q, q->open);
        q->open = NULL;
    }
    for (size_t i = 0; i < q->nsealed; i++) {
        dropped += batch_messages(q->sealed[i]);
        recycle(q, q->sealed[i]);
    }
    q->ndone += q->nsealed;
    q->nsealed = 0;
    q->buffered -= dropped;
    return dropped;
}

void batchq_free(batchq_t *q)
{
    if (!q)
        return;
    batchq_drop(q);
    if (q->spare)
        batch_free(q->spare);
    free(q->sealed);
    free(q->topic);
    free(q);
}

batch_t *batchq_open(batchq_t *q, int64_t now)
{
    if (q->open)
        return q->open;
    batch_t *b = q->spare;
    q->spare = NULL;
    if (!b && !(b = batch_new(q->topic)))
        return NULL;
    q->open = b;
    q->open_since = now;
    return b;
}

batch_t *batchq_current(const batchq_t *q) { return q->open; }
int64_t batchq_open_since(const batchq_t *q) { return q->open_since; }
void batchq_note(batchq_t *q) { q->buffered++; }
size_t batchq_buffered(const batchq_t *q) { return q->buffered; }
size_t batchq_sealed(const batchq_t *q) { return q->nsealed; }
uint64_t batchq_sealed_count(const batchq_t *q) { return q->nseal; }
uint64_t batchq_done_count(const batchq_t *q) { return q->ndone; }

int batchq_seal(batchq_t *q)
{
    if (!q->open || batch_messages(q->open) == 0)
        return 0;
    if (q->nsealed == q->capsealed) {
        size_t n = q->capsealed ? 2 * q->capsealed : 4;
        batch_t **ns = realloc(q->sealed, n * sizeof *ns);
        if (!ns)
            return -1;
        q->sealed = ns;
        q->capsealed = n;
    }
    q->sealed[q->nsealed++] = q->open;
    q->open = NULL;
    q->nseal++;
    return 0;
}

batch_t *batchq_next(batchq_t *q)
{
    if (!q->nsealed)
        return NULL;
    batch_t *b = q->sealed[0];
    memmove(q->sealed, q->sealed + 1, --q->nsealed * sizeof *q->sealed);
    return b; /* the caller's until batchq_done */
}

void batchq_done(batchq_t *q, batch_t *b)
{
    q->buffered -= batch_messages(b);
    q->ndone++;
    recycle(q, b);
}
