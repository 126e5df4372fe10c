/*
 * http — a deliberately small HTTP/1.x server on the libuv loop, for
 * /metrics, /healthz and /readyz.
 *
 * It reads one request per connection (the request line and headers, at
 * most HTTP_HEAD_MAX bytes, within 5 seconds), asks the owner's handler for
 * the response to GET <path>, writes it with `Connection: close` and closes;
 * anything after the first request (pipelining) is not read. Refused, each
 * with its status and the connection closed: a malformed request line or a
 * control byte (400), another method (405), a head not complete in 5 s
 * (408), a target over 511 bytes (414), a head over HTTP_HEAD_MAX (431), and
 * a connection beyond HTTP_CONN_MAX open ones (503, at once, unread; past 64
 * such answers in flight the next connections wait in the kernel's backlog
 * until one closes). Memory and descriptors are bounded by those two caps
 * (HTTP_CONN_MAX + 64 connections, each with HTTP_HEAD_MAX bytes). That is all
 * Prometheus, load balancers and curl need, and it keeps the attack surface
 * small.
 *
 * Ownership: the handler fills an http_response whose body it malloc()s; the
 * server frees it after writing. Loop thread; http_parse() is pure.
 */
#ifndef CAMJOIN_HTTP_H
#define CAMJOIN_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "camjoin/base.h"

typedef struct http http_t;

typedef struct http_response {
    int status;               /* 200, 404, 503, ... */
    const char *content_type; /* static string */
    char *body;               /* malloc'd; freed by the server */
    size_t len;
} http_response;

typedef void (*http_handler)(void *ud, const char *path, http_response *res);

#define HTTP_HEAD_MAX 8192 /* bytes of a request head, blank line included */
#define HTTP_CONN_MAX 256  /* open connections; the next ones get 503 */

enum { HTTP_PARSE_MORE = 0, HTTP_PARSE_DONE = 1 };
typedef struct http_request {
    int status;     /* 0: answer `path`; else the error status to send */
    int head;       /* HEAD: no body */
    char method[8];
    char path[512]; /* the target without its query string */
} http_request;

/* Parses the request head in buf[0..len) (len bytes, no terminator needed).
 * HTTP_PARSE_MORE while it is incomplete and under HTTP_HEAD_MAX bytes;
 * HTTP_PARSE_DONE with *req set otherwise: status 0 for GET or HEAD of a
 * path, or 400, 405, 414 or 431 (the header's comment). Pure. */
int http_parse(const char *buf, size_t len, http_request *req);

/* Checks the syntax of `listen`: PORT, :PORT, HOST:PORT or [V6ADDR]:PORT (a
 * configuration error otherwise; host names are resolved by http_new).
 * Returns 0 or -1 with err set. */
CJ_MUSTCHECK int http_check_listen(const char *listen, char *err, size_t errlen);

/* Listens on `listen`: a port alone ("9464") means loopback, 127.0.0.1;
 * ":9464" every interface, as exporters read it ("::", which takes IPv4
 * too, or 0.0.0.0 without IPv6); "HOST:9464" a numeric address
 * ("127.0.0.1", "[::1]", "0.0.0.0") or a host name, resolved once here.
 * Returns NULL with err set ("http.listen ...: ..."). */
http_t *http_new(uv_loop_t *loop, const char *listen, http_handler h, void *ud,
                 char *err, size_t errlen);

/* Stops listening and closes open connections; memory goes when the loop
 * has closed the handles. */
void http_close(http_t *s);

#endif
