/* libFuzzer target: arbitrary bytes as an HTTP request head (http_parse). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* no terminator: the parser takes a length */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    http_request req;
    int r = http_parse(buf, size, &req);
    if (r == HTTP_PARSE_MORE) {
        if (size >= HTTP_HEAD_MAX || memmem(buf, size, "\n\n", 2))
            __builtin_trap(); /* a complete or oversized head is never "more" */
    } else if (r != HTTP_PARSE_DONE) {
        __builtin_trap();
    } else if (req.status == 0) {
        if (req.path[0] != '/' || strnlen(req.path, sizeof req.path) == sizeof req.path ||
            (strcmp(req.method, "GET") != 0 && strcmp(req.method, "HEAD") != 0))
            __builtin_trap();
        for (const char *p = req.path; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?')
                __builtin_trap();
    } else if (req.status != 400 && req.status != 405 && req.status != 414 &&
               req.status != 431) {
        __builtin_trap();
    }
    free(buf);
    return 0;
}
