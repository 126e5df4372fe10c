/* memfile.h — fuzz input as a file path, for loaders that take a path. */
#ifndef CAMJOIN_FUZZ_MEMFILE_H
#define CAMJOIN_FUZZ_MEMFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data into an anonymous memory file and puts its /proc path in
 * `path`. Returns the descriptor (close it when done) or -1. */
static inline int memfile_open(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz-input", 0);
    if (fd < 0)
        return -1;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
