/* libFuzzer target: arbitrary bytes as the reference CSV file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "memfile.h"
#include "camjoin/refdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = memfile_open(data, size, path);
    if (fd < 0)
        return 0;
    refdata_t *r = NULL;
    if (refdata_load(&r, path, err, sizeof err) == 0) {
        for (size_t i = 0; i < refdata_count(r); i++) {
            const refdata_row_t *row = refdata_row(r, i);
            /* every loaded row must be found again by its id */
            if (refdata_lookup(r, row->camera_id, row->camera_id_len) != row)
                __builtin_trap();
        }
        refdata_free(r);
    } else if (r != NULL || err[0] == '\0') {
        __builtin_trap(); /* a failed load leaves nothing and says why */
    }
    close(fd);
    return 0;
}
