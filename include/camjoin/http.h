/*
 * http — a deliberately small HTTP/1.x server on the libuv loop, for
 * /metrics, /healthz and /readyz.
 *
 * It reads one request per connection (the request line and headers, at
 * most 8 KiB, within 5 seconds), asks the owner's handler for the response
 * to GET <path>, writes it with `Connection: close` and closes. Anything but
 * GET/HEAD gets 405; an oversized or malformed request gets 400. That is all
 * Prometheus, load balancers and curl need, and it keeps the attack surface
 * to a few dozen lines.
 *
 * Ownership: the handler fills an http_response whose body it malloc()s; the
 * server frees it after writing.
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
