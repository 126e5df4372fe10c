/* libFuzzer target: arbitrary bytes as the INI configuration file (-c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "memfile.h"
#include "camjoin/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = memfile_open(data, size, path);
    if (fd < 0)
        return 0;
    char *argv[] = {"camjoin", "-c", path, NULL};
    camjoin_config *cfg = NULL;
    FILE *null = fopen("/dev/null", "w");
    enum config_status st = config_parse(3, argv, null, &cfg, err, sizeof err);
    if (st == CONFIG_OK) {
        config_print(cfg, null); /* what parses must print */
        config_free(cfg);
    } else if (st == CONFIG_ERROR && err[0] == '\0') {
        __builtin_trap(); /* an error always says why */
    }
    fclose(null);
    close(fd);
    return 0;
}
