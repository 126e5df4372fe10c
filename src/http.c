/* http — see include/camjoin/http.h. */
#include "camjoin/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQ_MAX 8192
#define REQ_TIMEOUT_MS 5000

struct http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_handler handler;
    void *ud;
    struct conn *conns;     /* open connections, closed by http_close() */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    http_t *srv;
    struct conn *next, **pprev;
    char req[REQ_MAX];
    size_t len;
    int closing, handles;
    char *out;              /* header + body, one buffer */
};

static void conn_freed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0) {
        free(c->out);
        free(c);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    *c->pprev = c->next; /* unlink */
    if (c->next)
        c->next->pprev = c->pprev;
    uv_close((uv_handle_t *)&c->tcp, conn_freed);
    uv_close((uv_handle_t *)&c->timer, conn_freed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond(struct conn *c, http_response *res, int head_only)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     res->status, reason(res->status),
                     res->content_type ? res->content_type : "text/plain",
                     res->len);
    size_t body = head_only ? 0 : res->len;
    c->out = malloc((size_t)n + body);
    if (!c->out) {
        free(res->body);
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (body)
        memcpy(c->out + n, res->body, body);
    free(res->body);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + body));
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    http_response res = {.status = status, .body = strdup(text),
                         .len = strlen(text)};
    if (!res.body)
        res.len = 0;
    respond(c, &res, 0);
}

static void handle(struct conn *c)
{
    char method[8], path[512];
    c->req[c->len] = '\0';
    if (sscanf(c->req, "%7s %511s HTTP/1.%*c", method, path) != 2) {
        respond_text(c, 400, "bad request\n");
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    path[strcspn(path, "?")] = '\0'; /* query strings are ignored */
    http_response res = {.status = 404, .content_type = "text/plain"};
    c->srv->handler(c->srv->ud, path, &res);
    respond(c, &res, head);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        handle(c);
    else if (c->len >= REQ_MAX - 1)
        respond_text(c, 400, "request too large\n");
}

static void on_timeout(uv_timer_t *t) { conn_close(t->data); }

static void on_connection(uv_stream_t *l, int status)
{
    http_t *s = l->data;
    struct conn *c;
    if (status < 0 || !(c = calloc(1, sizeof *c)))
        return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = s->conns; /* link before any close can unlink */
    c->pprev = &s->conns;
    if (s->conns)
        s->conns->pprev = &c->next;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);
}

/* ADDR:PORT, [V6ADDR]:PORT, or PORT / :PORT alone = loopback 127.0.0.1 */
static int parse_listen(const char *spec, struct sockaddr_storage *sa)
{
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(spec, ':');
    const char *portstr = colon ? colon + 1 : spec;
    if (colon && colon != spec) {
        size_t hl = (size_t)(colon - spec);
        if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
            spec++;
            hl -= 2;
        }
        if (hl >= sizeof host)
            return -1;
        memcpy(host, spec, hl);
        host[hl] = '\0';
    }
    char *end;
    long port = strtol(portstr, &end, 10);
    if (!*portstr || *end || port < 1 || port > 65535)
        return -1;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0)
        return 0;
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0 ? 0 : -1;
}

int http_check_listen(const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    if (parse_listen(listen, &sa) == 0)
        return 0;
    snprintf(err, errlen, "http.listen: expected ADDR:PORT or PORT (e.g. 127.0.0.1:9464), "
             "got \"%s\"", listen);
    return -1;
}

http_t *http_new(uv_loop_t *loop, const char *listen, http_handler h, void *ud,
                 char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    int rc;
    if (http_check_listen(listen, err, errlen) != 0)
        return NULL;
    parse_listen(listen, &sa);
    http_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->handler = h;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection)) != 0) {
        snprintf(err, errlen, "http.listen %s: %s", listen, uv_strerror(rc));
        http_close(s);
        return NULL;
    }
    return s;
}

static void listener_closed(uv_handle_t *h) { free(h->data); }

void http_close(http_t *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, listener_closed);
}
