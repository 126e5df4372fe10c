/* libFuzzer target: arbitrary text as --replay-from SPEC. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1), err[512];
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    replay_spec_t r;
    if (replay_parse(spec, &r, err, sizeof err) == 0) {
        if (r.kind == REPLAY_PARTITIONS && (r.n == 0 || !r.partitions))
            __builtin_trap();
        for (size_t i = 0; i < r.n; i++)
            if (r.partitions[i] < 0 || r.offsets[i] < 0)
                __builtin_trap(); /* negative values must be rejected */
        replay_spec_clear(&r);
    } else if (err[0] == '\0') {
        __builtin_trap();
    }
    free(spec);
    return 0;
}
