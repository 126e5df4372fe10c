/* http_parse: the request heads the server answers and those it refuses,
 * with the status each gets (include/camjoin/http.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "camjoin/http.h"

struct want {
    const char *name;
    const char *req;
    size_t len; /* 0: strlen(req) */
    int result, status, head;
    const char *path;
};

static const struct want cases[] = {
    {"GET with headers", "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 0,
     HTTP_PARSE_DONE, 0, 0, "/metrics"},
    {"HEAD, HTTP/1.0, bare LF", "HEAD /healthz HTTP/1.0\n\n", 0, HTTP_PARSE_DONE, 0, 1, "/healthz"},
    {"query string cut", "GET /metrics?name=x HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 0, 0, "/metrics"},
    {"dot-dot stays a path (the handler 404s it)", "GET /../etc/passwd HTTP/1.1\r\n\r\n", 0,
     HTTP_PARSE_DONE, 0, 0, "/../etc/passwd"},
    {"pipelined: the first request only", "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 0,
     HTTP_PARSE_DONE, 0, 0, "/a"},
    {"obs-text in a header", "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n", 0, HTTP_PARSE_DONE, 0,
     0, "/"},
    {"empty", "", 0, HTTP_PARSE_MORE, 0, 0, ""},
    {"no blank line yet", "GET /metrics HTTP/1.1\r\nHost: x\r\n", 0, HTTP_PARSE_MORE, 0, 0, ""},
    {"POST", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, HTTP_PARSE_DONE, 405, 0, ""},
    {"PUT", "PUT / HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 405, 0, ""},
    {"DELETE", "DELETE / HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 405, 0, ""},
    {"lower-case method", "get / HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"method too long", "GETGETGET / HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"target without a slash", "GET metrics HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"no version", "GET /\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"two spaces", "GET  / HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"junk after the version", "GET / HTTP/1.1x\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"control byte in the target", "GET /\x01 HTTP/1.1\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"invalid bytes for a request line", "\xff\xfe\xfd /\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
    {"NUL in a header", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26, HTTP_PARSE_DONE, 400, 0, ""},
    {"escape in a header", "GET / HTTP/1.1\r\nX: \x1b[2J\r\n\r\n", 0, HTTP_PARSE_DONE, 400, 0, ""},
};

static void table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct want *w = &cases[i];
        http_request req;
        size_t len = w->len ? w->len : strlen(w->req);
        int r = http_parse(w->req, len, &req);
        if (r != w->result || (r == HTTP_PARSE_DONE && (req.status != w->status ||
                                                       req.head != w->head ||
                                                       strcmp(req.path, w->path) != 0)))
            fail_msg("%s: result %d status %d head %d path \"%s\"", w->name, r, req.status,
                     req.head, req.path);
    }
}

/* A head that reaches HTTP_HEAD_MAX without its blank line is refused
 * (431) rather than waited for; a complete one longer than that too; a
 * target of 512 bytes or more is 414. */
static void limits(void **state)
{
    (void)state;
    static char big[HTTP_HEAD_MAX + 64];
    http_request req;
    const char *line = "GET / HTTP/1.1\r\nX: ";
    memset(big, 'a', sizeof big);
    memcpy(big, line, strlen(line));
    assert_int_equal(http_parse(big, HTTP_HEAD_MAX - 1, &req), HTTP_PARSE_MORE);
    assert_int_equal(http_parse(big, HTTP_HEAD_MAX, &req), HTTP_PARSE_DONE);
    assert_int_equal(req.status, 431);
    memcpy(big + HTTP_HEAD_MAX + 10, "\r\n\r\n", 4);
    assert_int_equal(http_parse(big, HTTP_HEAD_MAX + 14, &req), HTTP_PARSE_DONE);
    assert_int_equal(req.status, 431);

    char target[700];
    int n = snprintf(target, sizeof target, "GET /%0511d HTTP/1.1\r\n\r\n", 0); /* 512 bytes */
    assert_int_equal(http_parse(target, (size_t)n, &req), HTTP_PARSE_DONE);
    assert_int_equal(req.status, 414);
    n = snprintf(target, sizeof target, "GET /%0510d HTTP/1.1\r\n\r\n", 0); /* 511 bytes */
    assert_int_equal(http_parse(target, (size_t)n, &req), HTTP_PARSE_DONE);
    assert_int_equal(req.status, 0);
    assert_int_equal(strlen(req.path), 511);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
