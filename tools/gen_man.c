/*
 * camjoin-gen-man — writes the camjoin(1) man page, generated from the config
 * tables by config_print_man(), to OUTPUT (or stdout). Run by the build (the
 * camjoin.1 custom command in CMakeLists.txt); not installed.
 *
 *   camjoin-gen-man [OUTPUT]
 *
 * Exit 0, or 1 when OUTPUT cannot be written (a partial file is removed).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "camjoin/config.h"

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs("usage: camjoin-gen-man [OUTPUT]\n", stderr);
        return 2;
    }
    const char *path = argc == 2 ? argv[1] : NULL;
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "camjoin-gen-man: %s: %s\n", path, strerror(errno));
        return 1;
    }
    config_print_man(f);
    int bad = ferror(f);
    if (path)
        bad |= fclose(f);
    else
        bad |= fflush(f);
    if (bad) {
        fprintf(stderr, "camjoin-gen-man: %s: write error\n", path ? path : "stdout");
        if (path)
            remove(path);
        return 1;
    }
    return 0;
}
