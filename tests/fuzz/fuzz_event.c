/* libFuzzer target: one Kafka message value through the event parser and,
 * when it is valid, through the COPY encoder (the path every message takes). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "camjoin/batch.h"
#include "camjoin/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static batch_t *b;
    char reason[EVENT_REASON_MAX];
    event_t ev;
    if (!b)
        b = batch_new("fuzz");
    if (event_parse(&ev, data, size, 1 << 20, reason) == EVENT_OK) {
        refdata_row_t row = {.camera_id = ev.camera_id,
                             .camera_id_len = ev.camera_id_len,
                             .site_id = "s", .site_id_len = 1,
                             .has_latitude = 1, .latitude = 1.5};
        batch_add_event(b, &ev, size & 1 ? &row : NULL, 0, (int64_t)size);
        event_clear(&ev);
    } else {
        /* every rejection must carry a reason code */
        if (reason[0] == '\0' || memchr(reason, '\0', EVENT_REASON_MAX) == NULL)
            __builtin_trap();
        batch_add_dead(b, 0, (int64_t)size, data, size, reason);
    }
    batch_reset(b);
    return 0;
}
